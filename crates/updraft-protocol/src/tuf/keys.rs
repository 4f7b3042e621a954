//! Public and private keys in TUF's JSON form, for every signature scheme of
//! the specification that securesystemslib implements for TUF 1.0 clients:
//!
//! | scheme                | key type                        | `keyval.public`      | signature (hex)   |
//! |-----------------------|---------------------------------|----------------------|-------------------|
//! | `ed25519`             | `ed25519`                       | 32 bytes, hex        | 64 bytes          |
//! | `ecdsa-sha2-nistp256` | `ecdsa` or `ecdsa-sha2-nistp256`| PEM SubjectPublicKeyInfo | DER `(r, s)`   |
//! | `rsassa-pss-sha256`   | `rsa`                           | PEM SubjectPublicKeyInfo | PSS, MGF1-SHA-256, any salt length |
//! | `rsa-pkcs1v15-sha256` | `rsa`                           | PEM SubjectPublicKeyInfo | PKCS #1 v1.5     |
//!
//! Any other key type or scheme never verifies: it is ignored, as the spec
//! says, and cannot help or hurt a threshold met by known keys.

use std::fmt;

use ed25519_dalek::{Signer as _, Verifier as _};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::canonical::to_canonical;
use crate::error::Error;

/// The RSA modulus size updraft generates (securesystemslib's default).
pub const RSA_BITS: usize = 3072;
/// Smaller RSA keys never verify.
pub const RSA_MIN_BITS: usize = 2048;
/// Larger RSA keys never verify (bounds the work a hostile key can cause).
pub const RSA_MAX_BITS: usize = 8192;

/// A signature scheme updraft can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Ed25519 (the default).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256.
    EcdsaP256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1v15Sha256,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Self; 4] = [
        Self::Ed25519,
        Self::EcdsaP256,
        Self::RsaPssSha256,
        Self::RsaPkcs1v15Sha256,
    ];

    /// The scheme's name in TUF metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-sha2-nistp256",
            Self::RsaPssSha256 => "rsassa-pss-sha256",
            Self::RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
        }
    }

    /// The key type updraft writes for the scheme.
    pub fn keytype(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa",
            Self::RsaPssSha256 | Self::RsaPkcs1v15Sha256 => "rsa",
        }
    }

    /// The scheme a key of `keytype` with `scheme` uses, if updraft knows it.
    pub fn of(keytype: &str, scheme: &str) -> Option<Self> {
        match (keytype, scheme) {
            ("ed25519", "ed25519") => Some(Self::Ed25519),
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => Some(Self::EcdsaP256),
            ("rsa", "rsassa-pss-sha256") => Some(Self::RsaPssSha256),
            ("rsa", "rsa-pkcs1v15-sha256") => Some(Self::RsaPkcs1v15Sha256),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scheme {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::InvalidName {
                kind: "signature scheme",
                value: text.to_owned(),
                reason: "it must be one of ed25519, ecdsa-sha2-nistp256, rsassa-pss-sha256, rsa-pkcs1v15-sha256".into(),
            })
    }
}

/// A public key as it appears in root metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256` or `rsa` (others are kept but never verify).
    pub keytype: String,
    /// The signature scheme.
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
    /// Hex (Ed25519) or PEM (ECDSA, RSA) public key.
    pub public: String,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// A parsed public key, ready to verify.
enum Verifier {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Rsa(RsaPublicKey, bool),
}

impl PublicKey {
    fn new(scheme: Scheme, public: String) -> Self {
        Self {
            keytype: scheme.keytype().into(),
            scheme: scheme.as_str().into(),
            keyval: KeyVal {
                public,
                unrecognized: Map::new(),
            },
            unrecognized: Map::new(),
        }
    }

    /// An Ed25519 public key.
    pub fn ed25519(bytes: &[u8; 32]) -> Self {
        Self::new(Scheme::Ed25519, hex::encode(bytes))
    }

    /// The key id securesystemslib and python-tuf compute: SHA-256 of the
    /// canonical JSON of `keytype`, `scheme` and `keyval`.
    pub fn key_id(&self) -> String {
        let value = json!({"keytype": self.keytype, "scheme": self.scheme, "keyval": {"public": self.keyval.public}});
        let canonical = to_canonical(&value).expect("strings only");
        hex::encode(Sha256::digest(canonical))
    }

    /// The scheme, when updraft knows it.
    pub fn known_scheme(&self) -> Option<Scheme> {
        Scheme::of(&self.keytype, &self.scheme)
    }

    fn verifier(&self) -> Option<Verifier> {
        match self.known_scheme()? {
            Scheme::Ed25519 => {
                let mut public = [0u8; 32];
                hex::decode_to_slice(&self.keyval.public, &mut public).ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(&public)
                    .ok()
                    .map(Verifier::Ed25519)
            }
            Scheme::EcdsaP256 => {
                p256::ecdsa::VerifyingKey::from_public_key_pem(&self.keyval.public)
                    .ok()
                    .map(Verifier::EcdsaP256)
            }
            scheme @ (Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256) => {
                let key = RsaPublicKey::from_public_key_pem(&self.keyval.public).ok()?;
                let bits = key.n().bits();
                (RSA_MIN_BITS..=RSA_MAX_BITS)
                    .contains(&bits)
                    .then_some(Verifier::Rsa(key, scheme == Scheme::RsaPssSha256))
            }
        }
    }

    /// The key material, which is what thresholds count: two key ids (or
    /// two schemes, or two PEM spellings) for the same key are one key.
    pub fn material(&self) -> Vec<u8> {
        match self.verifier() {
            Some(Verifier::Ed25519(key)) => key.as_bytes().to_vec(),
            Some(Verifier::EcdsaP256(key)) => key.to_encoded_point(true).as_bytes().to_vec(),
            Some(Verifier::Rsa(key, _)) => {
                let mut bytes = key.n().to_bytes_be();
                bytes.extend_from_slice(b"/");
                bytes.extend(key.e().to_bytes_be());
                bytes
            }
            None => format!("{}\0{}", self.keytype, self.keyval.public).into_bytes(),
        }
    }

    /// True when `signature` (raw bytes, decoded from hex) is a valid
    /// signature of `message` by this key. Unknown key types, schemes and
    /// malformed keys never verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self.verifier() {
            Some(Verifier::Ed25519(key)) => {
                let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify_strict(message, &signature).is_ok()
            }
            Some(Verifier::EcdsaP256(key)) => {
                // securesystemslib (pyca/cryptography) writes DER; OpenSSL may
                // produce a high s, which is as valid: normalise before checking.
                let Ok(signature) = p256::ecdsa::Signature::from_der(signature) else {
                    return false;
                };
                let signature = signature.normalize_s().unwrap_or(signature);
                key.verify(message, &signature).is_ok()
            }
            Some(Verifier::Rsa(key, true)) => verify_pss_any_salt(&key, message, signature),
            Some(Verifier::Rsa(key, false)) => {
                use rsa::signature::Verifier as _;
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
                    return false;
                };
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                    .verify(message, &signature)
                    .is_ok()
            }
            None => false,
        }
    }
}

/// EMSA-PSS verification (RFC 8017 §9.1.2) with SHA-256 and MGF1-SHA-256,
/// recovering the salt length as pyca/cryptography's `PSS.AUTO` does, so
/// signatures with the digest-length salt (securesystemslib) and the maximum
/// salt length (OpenSSL's default, HSMs) both verify.
fn verify_pss_any_salt(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    const H_LEN: usize = 32;
    let key_len = key.size();
    if signature.len() != key_len {
        return false;
    }
    let s = BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return false;
    }
    let Ok(m) = rsa::hazmat::rsa_encrypt(key, &s) else {
        return false;
    };
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let mut em = m.to_bytes_be();
    if em.len() > em_len {
        return false;
    }
    let mut padded = vec![0u8; em_len - em.len()];
    padded.append(&mut em);
    let em = padded;
    if em_len < H_LEN + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - H_LEN - 1);
    let h = &rest[..H_LEN];
    let unused_bits = 8 * em_len - em_bits;
    if masked_db[0] & !(0xffu8 >> unused_bits) != 0 {
        return false;
    }
    let mut db = masked_db.to_vec();
    let mut counter = 0u32;
    let mut offset = 0;
    while offset < db.len() {
        let mask = Sha256::new()
            .chain_update(h)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (byte, m) in db[offset..].iter_mut().zip(mask) {
            *byte ^= m;
        }
        offset += H_LEN;
        counter += 1;
    }
    db[0] &= 0xffu8 >> unused_bits;
    let Some(separator) = db.iter().position(|&b| b != 0) else {
        return false;
    };
    if db[separator] != 0x01 {
        return false;
    }
    let salt = &db[separator + 1..];
    let m_hash = Sha256::digest(message);
    let expected = Sha256::new()
        .chain_update([0u8; 8])
        .chain_update(m_hash)
        .chain_update(salt)
        .finalize();
    expected.as_slice() == h
}

enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
    Rsa(Box<RsaPrivateKey>, bool),
}

/// A private key of any supported scheme. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    secret: std::sync::Arc<Secret>,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({} {})",
            self.public.scheme,
            self.public.key_id()
        )
    }
}

fn bad_private(scheme: Scheme, reason: &str) -> Error {
    Error::InvalidName {
        kind: "private key",
        value: format!("({scheme}, hidden)"),
        reason: reason.into(),
    }
}

fn random_bytes() -> Result<[u8; 32], Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::InvalidName {
        kind: "private key",
        value: "(new)".into(),
        reason: format!("the system has no random numbers: {e}"),
    })?;
    Ok(seed)
}

impl SigningKey {
    fn from_secret(secret: Secret) -> Self {
        let public = match &secret {
            Secret::Ed25519(key) => PublicKey::ed25519(key.verifying_key().as_bytes()),
            Secret::EcdsaP256(key) => PublicKey::new(
                Scheme::EcdsaP256,
                key.verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("a P-256 key encodes"),
            ),
            Secret::Rsa(key, pss) => PublicKey::new(
                if *pss {
                    Scheme::RsaPssSha256
                } else {
                    Scheme::RsaPkcs1v15Sha256
                },
                key.to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("an RSA key encodes"),
            ),
        };
        Self {
            secret: std::sync::Arc::new(secret),
            public,
        }
    }

    /// An Ed25519 key from its 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_secret(Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    /// A fresh random key for `scheme` (RSA keys have [`RSA_BITS`] bits).
    pub fn generate(scheme: Scheme) -> Result<Self, Error> {
        let secret = match scheme {
            Scheme::Ed25519 => {
                Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&random_bytes()?))
            }
            Scheme::EcdsaP256 => loop {
                // Almost every 32-byte string is a valid scalar; retry the rest.
                if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&random_bytes()?.into()) {
                    break Secret::EcdsaP256(key);
                }
            },
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                let key = RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|e| bad_private(scheme, &e.to_string()))?;
                Secret::Rsa(Box::new(key), scheme == Scheme::RsaPssSha256)
            }
        };
        Ok(Self::from_secret(secret))
    }

    /// A key from the private part of a key file: the hex seed for Ed25519,
    /// PKCS #8 PEM for ECDSA and RSA.
    pub fn from_private(scheme: Scheme, private: &str) -> Result<Self, Error> {
        let secret = match scheme {
            Scheme::Ed25519 => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(private.trim(), &mut seed)
                    .map_err(|_| bad_private(scheme, "it must be 64 hex digits"))?;
                Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Scheme::EcdsaP256 => Secret::EcdsaP256(
                p256::ecdsa::SigningKey::from_pkcs8_pem(private)
                    .map_err(|_| bad_private(scheme, "it must be a PKCS #8 PEM P-256 key"))?,
            ),
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                let key = RsaPrivateKey::from_pkcs8_pem(private)
                    .map_err(|_| bad_private(scheme, "it must be a PKCS #8 PEM RSA key"))?;
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&key.n().bits()) {
                    return Err(bad_private(scheme, "RSA keys must have 2048 to 8192 bits"));
                }
                Secret::Rsa(Box::new(key), scheme == Scheme::RsaPssSha256)
            }
        };
        Ok(Self::from_secret(secret))
    }

    /// A key from the hex seed of an Ed25519 key file.
    pub fn from_hex_seed(text: &str) -> Result<Self, Error> {
        Self::from_private(Scheme::Ed25519, text)
    }

    /// The private part for a key file (see [`SigningKey::from_private`]).
    pub fn private_encoding(&self) -> String {
        match &*self.secret {
            Secret::Ed25519(key) => hex::encode(key.to_bytes()),
            Secret::EcdsaP256(key) => key
                .to_pkcs8_pem(LineEnding::LF)
                .expect("a P-256 key encodes")
                .to_string(),
            Secret::Rsa(key, _) => key
                .to_pkcs8_pem(LineEnding::LF)
                .expect("an RSA key encodes")
                .to_string(),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match &*self.secret {
            Secret::Ed25519(_) => Scheme::Ed25519,
            Secret::EcdsaP256(_) => Scheme::EcdsaP256,
            Secret::Rsa(_, true) => Scheme::RsaPssSha256,
            Secret::Rsa(_, false) => Scheme::RsaPkcs1v15Sha256,
        }
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `message`, returning raw signature bytes in the encoding
    /// securesystemslib writes (DER for ECDSA; PSS with a digest-length salt).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
        match &*self.secret {
            Secret::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Secret::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Secret::Rsa(key, true) => rsa::pss::SigningKey::<Sha256>::new((**key).clone())
                .sign_with_rng(&mut rand_core::OsRng, message)
                .to_vec(),
            Secret::Rsa(key, false) => {
                use rsa::signature::Signer as _;
                rsa::pkcs1v15::SigningKey::<Sha256>::new((**key).clone())
                    .sign(message)
                    .to_vec()
            }
        }
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

    #[test]
    fn every_scheme_signs_verifies_and_round_trips_its_private_key() {
        for scheme in Scheme::ALL {
            let key = SigningKey::generate(scheme).unwrap();
            assert_eq!(key.scheme(), scheme);
            let public = key.public();
            assert_eq!(public.known_scheme(), Some(scheme));
            let signature = key.sign(b"metadata");
            assert!(public.verify(b"metadata", &signature), "{scheme}");
            assert!(!public.verify(b"metadatA", &signature), "{scheme}");
            let mut flipped = signature.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(!public.verify(b"metadata", &flipped), "{scheme}");
            let again = SigningKey::from_private(scheme, &key.private_encoding()).unwrap();
            assert_eq!(again.public(), public, "{scheme}");
            // A different scheme over the same key does not verify.
            let mut other = public.clone();
            other.scheme = match scheme {
                Scheme::RsaPssSha256 => "rsa-pkcs1v15-sha256".into(),
                Scheme::RsaPkcs1v15Sha256 => "rsassa-pss-sha256".into(),
                _ => "made-up".into(),
            };
            assert!(!other.verify(b"metadata", &signature), "{scheme}");
            if scheme.keytype() == "rsa" {
                assert_eq!(
                    other.material(),
                    public.material(),
                    "one RSA key, two schemes"
                );
            }
        }
    }

    #[test]
    fn ecdsa_accepts_the_deprecated_key_type_and_rejects_raw_signatures() {
        let key = SigningKey::generate(Scheme::EcdsaP256).unwrap();
        let mut public = key.public();
        assert!(
            public
                .keyval
                .public
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        let der = key.sign(b"m");
        public.keytype = "ecdsa-sha2-nistp256".into();
        assert!(public.verify(b"m", &der));
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert!(
            !public.verify(b"m", &raw),
            "securesystemslib writes DER only"
        );
    }

    #[test]
    fn pss_verifies_with_the_maximum_salt_length_too() {
        let SigningKey { secret, public } = SigningKey::generate(Scheme::RsaPssSha256).unwrap();
        let Secret::Rsa(private, _) = &*secret else {
            unreachable!()
        };
        let digest = Sha256::digest(b"package");
        let max_salt = private.size() - 32 - 2;
        for salt in [0, 32, max_salt] {
            let signature = private
                .sign_with_rng(
                    &mut rand_core::OsRng,
                    rsa::Pss::new_with_salt::<Sha256>(salt),
                    &digest,
                )
                .unwrap();
            assert!(public.verify(b"package", &signature), "salt {salt}");
            assert!(!public.verify(b"packagf", &signature), "salt {salt}");
        }
    }
}
