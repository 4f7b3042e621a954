//! TUF 1.0 repository metadata: `root`, `targets`, `snapshot`, `timestamp`.
//!
//! The files are genuine TUF: python-tuf reads what updraft writes and the
//! other way round (see the interop tests). Signatures (Ed25519, ECDSA P-256,
//! RSA-PSS or RSA PKCS #1 v1.5) are over the canonical JSON of the `signed`
//! object *as received*, so fields this version does not know still verify.

mod canonical;
mod delegation;
mod keys;
mod trusted;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

pub use canonical::to_canonical;
pub use delegation::{
    DelegatedRole, Delegations, Lookup, MAX_DELEGATIONS, find_target, path_matches,
    reachable_roles, role_file_stem,
};
pub use keys::{KeyVal, PublicKey, RSA_BITS, RSA_MAX_BITS, RSA_MIN_BITS, Scheme, SigningKey};
pub use trusted::TrustedSet;

use crate::error::Error;

/// The TUF specification version updraft writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// The four top-level roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleName {
    /// Root of trust: keys and thresholds for every role.
    Root,
    /// Lengths and hashes of every target.
    Targets,
    /// Versions (and hashes) of every targets metadata file.
    Snapshot,
    /// The current snapshot; short-lived.
    Timestamp,
}

impl RoleName {
    /// Every role, root first.
    pub const ALL: [Self; 4] = [Self::Root, Self::Targets, Self::Snapshot, Self::Timestamp];

    /// `root`, `targets`, `snapshot` or `timestamp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An expiry instant, written `YYYY-MM-DDTHH:MM:SSZ` as TUF requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expires(OffsetDateTime);

const EXPIRES_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

impl Expires {
    /// `at`, truncated to whole seconds, in UTC.
    pub fn at(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(time::UtcOffset::UTC);
        Self(utc.replace_nanosecond(0).unwrap_or(utc))
    }

    /// The instant.
    pub fn instant(self) -> OffsetDateTime {
        self.0
    }

    /// True when the metadata has expired at `now` (expiry at exactly `now` counts).
    pub fn is_expired(self, now: OffsetDateTime) -> bool {
        self.0 <= now
    }

    /// Parses the TUF form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = time::PrimitiveDateTime::parse(text, EXPIRES_FORMAT)
            .map_err(|e| format!("`{text}` is not a `YYYY-MM-DDTHH:MM:SSZ` time: {e}"))?;
        Ok(Self(parsed.assume_utc()))
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(EXPIRES_FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What every role's `signed` object has in common.
pub trait Role: Serialize + DeserializeOwned {
    /// Which role this is.
    const NAME: RoleName;
    /// The metadata version number.
    fn version(&self) -> u64;
    /// When it expires.
    fn expires(&self) -> Expires;
    /// The `_type` field as received.
    fn type_field(&self) -> &str;
    /// The `spec_version` field as received.
    fn spec_version(&self) -> &str;
    /// Role-specific checks beyond the schema.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

macro_rules! role_impl {
    ($type:ty, $name:expr) => {
        impl Role for $type {
            const NAME: RoleName = $name;
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> Expires {
                self.expires
            }
            fn type_field(&self) -> &str {
                &self.type_
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn validate(&self) -> Result<(), String> {
                self.check()
            }
        }
    };
}

/// The keys and threshold of one role, as root lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Ids of the keys that may sign for the role.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// Root metadata: the keys and thresholds of every role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF spec version.
    pub spec_version: String,
    /// Metadata version number.
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Whether metadata and targets are also stored under version- and hash-prefixed names.
    pub consistent_snapshot: bool,
    /// Every key, by id.
    pub keys: BTreeMap<String, PublicKey>,
    /// Keys and threshold per role.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role_impl!(Root, RoleName::Root);

impl Root {
    fn check(&self) -> Result<(), String> {
        for role in RoleName::ALL {
            let keys = self
                .roles
                .get(role.as_str())
                .ok_or_else(|| format!("it has no `{role}` role"))?;
            if keys.threshold == 0 {
                return Err(format!("the `{role}` role has a threshold of 0"));
            }
            let mut seen = HashSet::new();
            for id in &keys.keyids {
                if !seen.insert(id) {
                    return Err(format!("the `{role}` role lists key `{id}` twice"));
                }
                if !self.keys.contains_key(id) {
                    return Err(format!(
                        "the `{role}` role names key `{id}`, which is not in `keys`"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The keys and threshold of `role`.
    pub fn role_keys(&self, role: RoleName) -> Option<&RoleKeys> {
        self.roles.get(role.as_str())
    }
}

/// Hashes and length of a metadata file, as snapshot and timestamp list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's metadata version.
    pub version: u64,
    /// Its length in bytes, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes by algorithm, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

impl MetaFile {
    /// Pins `version` and, for stronger mix-and-match protection, the exact bytes.
    pub fn pinned(version: u64, bytes: &[u8]) -> Self {
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_owned(), hex::encode(Sha256::digest(bytes)));
        Self {
            version,
            length: Some(bytes.len() as u64),
            hashes: Some(hashes),
            unrecognized: Map::new(),
        }
    }

    /// Checks `bytes` against whatever length and hashes are pinned.
    pub fn verify_bytes(&self, what: &str, bytes: &[u8]) -> Result<(), Error> {
        if let Some(length) = self.length {
            check_length(what, length, bytes.len() as u64)?;
        }
        if let Some(hashes) = &self.hashes {
            let mut hasher = MultiHasher::new(what, hashes)?;
            hasher.update(bytes);
            hasher.verify(what, hashes)?;
        }
        Ok(())
    }
}

/// Timestamp metadata: pins the current snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF spec version.
    pub spec_version: String,
    /// Metadata version number.
    pub version: u64,
    /// Expiry (short: hours or a day).
    pub expires: Expires,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role_impl!(Timestamp, RoleName::Timestamp);

impl Timestamp {
    fn check(&self) -> Result<(), String> {
        if self.meta.len() != 1 || !self.meta.contains_key("snapshot.json") {
            return Err("`meta` must list exactly `snapshot.json`".into());
        }
        Ok(())
    }

    /// The pinned snapshot.
    pub fn snapshot_meta(&self) -> &MetaFile {
        &self.meta["snapshot.json"]
    }
}

/// Snapshot metadata: pins the version of every targets metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF spec version.
    pub spec_version: String,
    /// Metadata version number.
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// `targets.json` (and delegated roles) by file name.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role_impl!(Snapshot, RoleName::Snapshot);

impl Snapshot {
    fn check(&self) -> Result<(), String> {
        if !self.meta.contains_key("targets.json") {
            return Err("`meta` does not list `targets.json`".into());
        }
        Ok(())
    }
}

/// One target file: its length, hashes and application data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes by algorithm (`sha256` always, for updraft's files).
    pub hashes: BTreeMap<String, String>,
    /// Application data; updraft puts release info under `custom.updraft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

impl TargetFile {
    /// A target of `length` bytes with digest `sha256`.
    pub fn new(length: u64, sha256: &crate::Sha256Digest, custom: Option<Value>) -> Self {
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_owned(), sha256.to_hex());
        Self {
            length,
            hashes,
            custom,
            unrecognized: Map::new(),
        }
    }

    /// The SHA-256 digest, if listed.
    pub fn sha256(&self) -> Option<crate::Sha256Digest> {
        self.hashes
            .get("sha256")
            .and_then(|hex| crate::Sha256Digest::from_hex(hex).ok())
    }

    /// The digest a consistent-snapshot repository prefixes the file name
    /// with: the SHA-256 when listed, else the SHA-512 (lower-case hex, checked).
    pub fn prefix_digest(&self) -> Option<String> {
        ["sha256", "sha512"].into_iter().find_map(|algorithm| {
            let hex = self.hashes.get(algorithm)?.to_ascii_lowercase();
            let want = if algorithm == "sha256" { 64 } else { 128 };
            (hex.len() == want && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
        })
    }

    /// A streaming checker for this target's content.
    pub fn checker(&self, what: &str) -> Result<TargetChecker, Error> {
        Ok(TargetChecker {
            hasher: MultiHasher::new(what, &self.hashes)?,
            expected_length: self.length,
            seen: 0,
        })
    }
}

/// Checks a target's bytes as they stream past: never more than the signed
/// length, and every listed hash at the end.
#[derive(Debug)]
pub struct TargetChecker {
    hasher: MultiHasher,
    expected_length: u64,
    seen: u64,
}

impl TargetChecker {
    /// Feeds the next chunk; fails as soon as the signed length is exceeded.
    pub fn update(&mut self, what: &str, chunk: &[u8]) -> Result<(), Error> {
        self.seen += chunk.len() as u64;
        if self.seen > self.expected_length {
            return Err(Error::LengthMismatch {
                what: what.to_owned(),
                expected: self.expected_length,
                actual: self.seen,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Checks the final length and every hash.
    pub fn finish(self, what: &str, target: &TargetFile) -> Result<(), Error> {
        check_length(what, self.expected_length, self.seen)?;
        self.hasher.verify(what, &target.hashes)
    }
}

/// Targets metadata: every target updraft may install.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF spec version.
    pub spec_version: String,
    /// Metadata version number.
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Targets by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Roles this one delegates paths to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role_impl!(Targets, RoleName::Targets);

impl Targets {
    fn check(&self) -> Result<(), String> {
        for (path, target) in &self.targets {
            if target.hashes.is_empty() {
                return Err(format!("target `{path}` lists no hashes"));
            }
        }
        if let Some(delegations) = &self.delegations {
            delegations.check()?;
        }
        Ok(())
    }
}

/// Builds the common header fields of a new role.
pub fn new_role_header(role: RoleName) -> (String, String) {
    (role.as_str().to_owned(), SPEC_VERSION.to_owned())
}

/// One signature in a metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id.
    pub keyid: String,
    /// Hex-encoded signature bytes.
    pub sig: String,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// A parsed metadata file: the typed `signed` part, its signatures, and the
/// canonical bytes the signatures cover.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    /// The signed content.
    pub signed: T,
    /// The signatures as received.
    pub signatures: Vec<Signature>,
    /// The signed part exactly as received or signed (unknown fields included).
    raw: Value,
    canonical: Vec<u8>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    signatures: &'a [Signature],
    signed: &'a Value,
}

impl<T: Role> Envelope<T> {
    /// Parses a metadata file, checking its `_type`, spec version and shape.
    /// Signatures are *not* checked here; see [`Envelope::verify`].
    pub fn from_slice(what: &str, bytes: &[u8]) -> Result<Self, Error> {
        let json = |source| Error::Json {
            what: what.to_owned(),
            source,
        };
        let invalid = |reason: String| Error::Invalid {
            what: what.to_owned(),
            reason,
        };
        let mut value: Value = serde_json::from_slice(bytes).map_err(json)?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| invalid("it is not a JSON object".into()))?;
        let signed = object
            .remove("signed")
            .ok_or_else(|| invalid("it has no `signed` object".into()))?;
        let signatures = object
            .remove("signatures")
            .ok_or_else(|| invalid("it has no `signatures` list".into()))?;
        let signatures: Vec<Signature> = serde_json::from_value(signatures).map_err(json)?;
        // Spec 5.4.2 and friends count a threshold of *unique* keys; python-tuf
        // refuses a file that carries two signatures for one key id, and so do we.
        let mut seen = HashSet::new();
        for signature in &signatures {
            if !seen.insert(signature.keyid.as_str()) {
                return Err(invalid(format!(
                    "it carries two signatures by key `{}`",
                    signature.keyid
                )));
            }
        }
        let found = signed
            .get("_type")
            .and_then(Value::as_str)
            .unwrap_or("(missing)")
            .to_owned();
        if found != T::NAME.as_str() {
            return Err(Error::WrongType {
                what: what.to_owned(),
                expected: T::NAME.as_str().into(),
                found,
            });
        }
        let spec = signed
            .get("spec_version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if spec.split('.').next() != Some("1") {
            return Err(Error::UnsupportedFormat {
                what: what.to_owned(),
                found: format!("TUF {spec}"),
                supported: "TUF 1.x".into(),
            });
        }
        let canonical = to_canonical(&signed).map_err(|reason| Error::BadCanonicalForm {
            what: what.to_owned(),
            reason,
        })?;
        let typed: T = serde_json::from_value(signed.clone()).map_err(json)?;
        typed.validate().map_err(invalid)?;
        Ok(Self {
            signed: typed,
            signatures,
            raw: signed,
            canonical,
        })
    }

    /// Signs `signed` with every key in `keys`.
    pub fn sign(signed: T, keys: &[&SigningKey]) -> Self {
        let value = serde_json::to_value(&signed).expect("metadata types serialise");
        let canonical = to_canonical(&value).expect("metadata types hold no floats");
        let signatures = keys
            .iter()
            .map(|key| Signature {
                keyid: key.public().key_id(),
                sig: hex::encode(key.sign(&canonical)),
                unrecognized: Map::new(),
            })
            .collect();
        Self {
            signed,
            signatures,
            raw: value,
            canonical,
        }
    }

    /// Adds `key`'s signature over the signed part exactly as it is (unknown
    /// fields included), replacing an earlier signature by the same key id.
    /// This is how several signers meet a threshold one after the other.
    pub fn add_signature(&mut self, key: &SigningKey) {
        let keyid = key.public().key_id();
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature {
            sig: hex::encode(key.sign(&self.canonical)),
            keyid,
            unrecognized: Map::new(),
        });
    }

    /// The file as updraft writes it (pretty JSON, signatures first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(&EnvelopeOut {
            signatures: &self.signatures,
            signed: &self.raw,
        })
        .expect("metadata serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The canonical bytes of the signed part.
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// Checks that at least `threshold` distinct keys of `role_keys` signed.
    ///
    /// Distinct means distinct key material: one signature repeated, or one
    /// key listed under two ids, counts once.
    pub fn verify_with(
        &self,
        keys: &BTreeMap<String, PublicKey>,
        role_keys: &RoleKeys,
    ) -> Result<(), Error> {
        self.verify_named(T::NAME.as_str(), keys, role_keys)
    }

    /// [`Envelope::verify_with`] for a role named `role` (a delegated role).
    pub fn verify_named(
        &self,
        role: &str,
        keys: &BTreeMap<String, PublicKey>,
        role_keys: &RoleKeys,
    ) -> Result<(), Error> {
        let mut counted = HashSet::new();
        for signature in &self.signatures {
            if !role_keys.keyids.contains(&signature.keyid) {
                continue;
            }
            let Some(key) = keys.get(&signature.keyid) else {
                continue;
            };
            let material = key.material();
            if counted.contains(&material) {
                continue;
            }
            let Ok(raw) = hex::decode(&signature.sig) else {
                continue;
            };
            if key.verify(&self.canonical, &raw) {
                counted.insert(material);
            }
        }
        let valid = counted.len() as u64;
        if valid < role_keys.threshold {
            return Err(Error::Threshold {
                role: role.into(),
                valid,
                threshold: role_keys.threshold,
            });
        }
        Ok(())
    }

    /// Checks the signatures against the keys `root` assigns to this role.
    pub fn verify(&self, root: &Root) -> Result<(), Error> {
        let role_keys = root.role_keys(T::NAME).ok_or(Error::Threshold {
            role: T::NAME.as_str().into(),
            valid: 0,
            threshold: 1,
        })?;
        self.verify_with(&root.keys, role_keys)
    }
}

struct Hashers {
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

/// Computes whichever supported hashes a metadata entry lists.
pub struct MultiHasher(Hashers);

impl fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MultiHasher")
    }
}

impl MultiHasher {
    /// A hasher for the algorithms in `hashes` that updraft knows (`sha256`,
    /// `sha512`); the others are ignored. Fails when none is known (fail
    /// closed), or none is listed.
    pub fn new(what: &str, hashes: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut hashers = Hashers {
            sha256: None,
            sha512: None,
        };
        for algorithm in hashes.keys() {
            match algorithm.as_str() {
                "sha256" => hashers.sha256 = Some(Sha256::new()),
                "sha512" => hashers.sha512 = Some(Sha512::new()),
                _ => {}
            }
        }
        if hashers.sha256.is_none() && hashers.sha512.is_none() {
            let listed: Vec<&str> = hashes.keys().map(String::as_str).collect();
            return Err(Error::Invalid {
                what: what.to_owned(),
                reason: if listed.is_empty() {
                    "no hashes are listed".into()
                } else {
                    format!(
                        "none of its hash algorithms ({}) is supported; updraft checks sha256 and sha512",
                        listed.join(", ")
                    )
                },
            });
        }
        Ok(Self(hashers))
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.0.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.0.sha512 {
            h.update(bytes);
        }
    }

    /// Compares every computed hash with the expected one.
    pub fn verify(self, what: &str, expected: &BTreeMap<String, String>) -> Result<(), Error> {
        let mut computed = Vec::new();
        if let Some(h) = self.0.sha256 {
            computed.push(("sha256", hex::encode(h.finalize())));
        }
        if let Some(h) = self.0.sha512 {
            computed.push(("sha512", hex::encode(h.finalize())));
        }
        for (algorithm, actual) in computed {
            let wanted = expected
                .get(algorithm)
                .map(|s| s.to_ascii_lowercase())
                .unwrap_or_default();
            if wanted != actual {
                return Err(Error::HashMismatch {
                    what: what.to_owned(),
                    algorithm: algorithm.into(),
                    expected: wanted,
                    actual,
                });
            }
        }
        Ok(())
    }
}

fn check_length(what: &str, expected: u64, actual: u64) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: what.to_owned(),
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests;
