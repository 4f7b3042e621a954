//! Ed25519 keys in TUF's JSON form.

use std::fmt;

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::canonical::to_canonical;
use crate::error::Error;

/// A public key as it appears in root metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `ed25519` for every key updraft writes.
    pub keytype: String,
    /// `ed25519` for every key updraft writes.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
    /// Fields this version does not know, kept so signatures still verify.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// The `keyval` object of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Hex-encoded public key bytes.
    pub public: String,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

impl PublicKey {
    /// An Ed25519 public key.
    pub fn ed25519(bytes: &[u8; 32]) -> Self {
        Self {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal {
                public: hex::encode(bytes),
                unrecognized: Map::new(),
            },
            unrecognized: Map::new(),
        }
    }

    /// The key id securesystemslib and python-tuf compute: SHA-256 of the
    /// canonical JSON of `keytype`, `scheme` and `keyval`.
    pub fn key_id(&self) -> String {
        let value = json!({"keytype": self.keytype, "scheme": self.scheme, "keyval": {"public": self.keyval.public}});
        let canonical = to_canonical(&value).expect("strings only");
        hex::encode(Sha256::digest(canonical))
    }

    /// The raw key material, which is what thresholds count: two key ids for
    /// the same material are one key.
    pub fn material(&self) -> (&str, &str, String) {
        (
            &self.keytype,
            &self.scheme,
            self.keyval.public.to_ascii_lowercase(),
        )
    }

    /// True when `signature` (raw bytes) is a valid signature of `message` by
    /// this key. Unsupported key types never verify (fail closed).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if self.keytype != "ed25519" || self.scheme != "ed25519" {
            return false;
        }
        let mut public = [0u8; 32];
        if hex::decode_to_slice(&self.keyval.public, &mut public).is_err() {
            return false;
        }
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        key.verify(message, &signature).is_ok() && key.verify_strict(message, &signature).is_ok()
    }
}

/// An Ed25519 private key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public().key_id())
    }
}

impl SigningKey {
    /// A key from its 32-byte secret seed (see [`SigningKey::seed`]).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// A key from the hex seed stored in a key file.
    pub fn from_hex_seed(text: &str) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| Error::InvalidName {
            kind: "ed25519 private key",
            value: "(hidden)".into(),
            reason: "it must be 64 hex digits".into(),
        })?;
        Ok(Self::from_seed(&seed))
    }

    /// The 32-byte secret seed, for writing to a private key file.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::ed25519(self.key.verifying_key().as_bytes())
    }

    /// Signs `message`, returning raw signature bytes.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_match_securesystemslib() {
        // The id securesystemslib 1.6 computes for this key (hashlib over encode_canonical).
        let key: PublicKey = serde_json::from_value(json!({
            "keytype": "ed25519", "scheme": "ed25519",
            "keyval": {"public": "edcd0a32a07dce33f7c7873aaffbff36d20ea30787574ead335eefd337e4dacd"}
        }))
        .unwrap();
        assert_eq!(
            key.key_id(),
            "2345a90ad8d76f3677f9ad6695b0ba0b5c7b7fbf27fb0ed35fbdf7b71264a679"
        );
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let key = SigningKey::from_seed(&[7; 32]);
        let other = SigningKey::from_seed(&[8; 32]);
        let signature = key.sign(b"hello");
        assert!(key.public().verify(b"hello", &signature));
        assert!(!key.public().verify(b"hellp", &signature));
        assert!(!other.public().verify(b"hello", &signature));
        let mut rsa = key.public();
        rsa.keytype = "rsa".into();
        assert!(
            !rsa.verify(b"hello", &signature),
            "unknown key types fail closed"
        );
    }
}
