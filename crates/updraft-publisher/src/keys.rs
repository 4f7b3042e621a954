//! Key files: generation (`updraft keygen`) and loading.
//!
//! A keys folder holds one private key file per key, written `0600` in a
//! `0700` folder, and a public `keyset.json` that records the root threshold:
//!
//! ```text
//! keys/keyset.json        root threshold and the key files' public ids
//! keys/root-1.key ...     offline root keys (move them off the build machine)
//! keys/targets.key        signs releases
//! keys/snapshot.key       signs the snapshot at each publish
//! keys/timestamp.key      re-signs the short-lived timestamp (cron, server)
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use updraft_fs::AtomicFile;
use updraft_protocol::tuf::{RoleName, Root, Scheme, SigningKey};

use crate::error::{Error, Result};

const KEYSET: &str = "keyset.json";

/// Options for [`generate`].
#[derive(Debug, Clone, Copy)]
pub struct KeygenOptions {
    /// How many root keys to create.
    pub root_keys: u32,
    /// How many of them must sign a root.
    pub root_threshold: u32,
    /// The signature scheme of every key.
    pub scheme: Scheme,
}

impl Default for KeygenOptions {
    fn default() -> Self {
        Self {
            root_keys: 1,
            root_threshold: 1,
            scheme: Scheme::Ed25519,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct KeySetFile {
    format_version: u32,
    root_threshold: u32,
    keys: Vec<KeySetEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeySetEntry {
    role: String,
    file: String,
    keyid: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    keytype: String,
    scheme: String,
    keyid: String,
    keyval: PrivateKeyVal,
}

#[derive(Debug, Serialize, Deserialize)]
struct PrivateKeyVal {
    public: String,
    private: String,
}

/// A generated key, as reported to the user (never the secret).
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The role it signs for.
    pub role: RoleName,
    /// Where it was written.
    pub path: PathBuf,
    /// Its TUF key id.
    pub keyid: String,
}

/// Creates a fresh set of keys in `out` (created if missing, and refused if it
/// already holds keys).
pub fn generate(out: &Path, options: KeygenOptions) -> Result<Vec<GeneratedKey>> {
    if options.root_keys == 0
        || options.root_threshold == 0
        || options.root_threshold > options.root_keys
    {
        return Err(Error::Conflict(format!(
            "A root threshold of {} with {} root key(s) is impossible; the threshold must be between 1 and the number of keys",
            options.root_threshold, options.root_keys
        )));
    }
    let mut plan: Vec<(RoleName, String)> = (1..=options.root_keys)
        .map(|n| (RoleName::Root, format!("root-{n}.key")))
        .collect();
    for role in [RoleName::Targets, RoleName::Snapshot, RoleName::Timestamp] {
        plan.push((role, format!("{role}.key")));
    }
    for name in plan.iter().map(|(_, name)| name.as_str()).chain([KEYSET]) {
        let path = out.join(name);
        if path.exists() {
            return Err(Error::AlreadyExists {
                path,
                hint: "keys are never overwritten; choose an empty --out folder".into(),
            });
        }
    }
    let created = updraft_fs::create_dir_all_durable(out)?;
    #[cfg(unix)]
    if !created.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(out, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("restrict", out, e))?;
    }
    let _ = created;

    let mut generated = Vec::new();
    for (role, name) in plan {
        let key = SigningKey::generate(options.scheme).map_err(|e| {
            Error::io(
                "generate a key for",
                out,
                std::io::Error::other(e.to_string()),
            )
        })?;
        let path = out.join(&name);
        let keyid = write_key_file(&path, &key)?;
        generated.push(GeneratedKey { role, path, keyid });
    }
    let keyset = KeySetFile {
        format_version: 1,
        root_threshold: options.root_threshold,
        keys: generated
            .iter()
            .map(|key| KeySetEntry {
                role: key.role.as_str().into(),
                file: key
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                keyid: key.keyid.clone(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&keyset).expect("keyset serialises");
    bytes.push(b'\n');
    updraft_fs::write_atomic(&out.join(KEYSET), &bytes)?;
    Ok(generated)
}

/// Writes `key` to a new private key file (`0600`), returning its key id.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<String> {
    let public = key.public();
    let file = KeyFile {
        keytype: public.keytype.clone(),
        scheme: public.scheme.clone(),
        keyid: public.key_id(),
        keyval: PrivateKeyVal {
            public: public.keyval.public.clone(),
            private: key.private_encoding(),
        },
    };
    let mut writer = AtomicFile::create_with_mode(path, 0o600)?;
    let bytes = serde_json::to_vec_pretty(&file).expect("key files serialise");
    writer
        .write_all(&bytes)
        .map_err(|e| Error::io("write", path, e))?;
    writer.commit()?;
    Ok(file.keyid)
}

/// Reads the public half of a key file: an updraft key file (its private
/// part is ignored) or a TUF public key object as securesystemslib writes it.
pub fn read_public_key(path: &Path) -> Result<updraft_protocol::tuf::PublicKey> {
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let wrong = |reason: String| Error::WrongKey {
        role: "public".into(),
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| wrong(format!("it is not a JSON key file ({e})")))?;
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    let (Some(keytype), Some(scheme), Some(public)) = (
        field("keytype"),
        field("scheme"),
        value
            .get("keyval")
            .and_then(|v| v.get("public"))
            .and_then(serde_json::Value::as_str),
    ) else {
        return Err(wrong(
            "it lacks `keytype`, `scheme` or `keyval.public`".into(),
        ));
    };
    let key = updraft_protocol::tuf::PublicKey {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval: updraft_protocol::tuf::KeyVal {
            public: public.into(),
            unrecognized: serde_json::Map::new(),
        },
        unrecognized: serde_json::Map::new(),
    };
    if key.known_scheme().is_none() {
        return Err(wrong(format!(
            "key type `{keytype}` with scheme `{scheme}` is not supported"
        )));
    }
    Ok(key)
}

/// A loaded signing key and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The key.
    pub key: SigningKey,
    /// Its file.
    pub path: PathBuf,
}

/// The keys folder, read lazily: only the roles a command needs are loaded,
/// so root keys can stay offline for `publish` and `refresh`.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// Opens a keys folder.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingKeysFolder {
                path: dir.to_path_buf(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The root threshold chosen at keygen (1 when `keyset.json` is absent).
    pub fn root_threshold(&self) -> Result<u32> {
        let path = self.dir.join(KEYSET);
        match fs::read(&path) {
            Ok(bytes) => {
                let keyset: KeySetFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Conflict(format!(
                        "The key set `{}` is not valid: {e}",
                        path.display()
                    ))
                })?;
                Ok(keyset.root_threshold.max(1))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn root_key_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?
            .filter_map(|entry| {
                entry
                    .ok()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
            })
            .filter(|name| name.starts_with("root-") && name.ends_with(".key"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every root key present, sorted by file name.
    pub fn root_keys(&self) -> Result<Vec<LoadedKey>> {
        let names = self.root_key_names()?;
        if names.is_empty() {
            return Err(Error::MissingKey {
                role: "root".into(),
                path: self.dir.join("root-1.key"),
            });
        }
        names
            .iter()
            .map(|name| load("root", &self.dir.join(name)))
            .collect()
    }

    /// The public halves of the keys present: every `root-*.key` (with the
    /// threshold of `keyset.json`) and whichever of `targets.key`,
    /// `snapshot.key` and `timestamp.key` exist. A file may be an updraft key
    /// file or a securesystemslib public key object, so a folder of public
    /// keys describes a new root without its secrets.
    pub fn public_keys(&self) -> Result<PublicKeySet> {
        let root = self
            .root_key_names()?
            .iter()
            .map(|name| read_public_key(&self.dir.join(name)))
            .collect::<Result<Vec<_>>>()?;
        let mut roles = Vec::new();
        for role in [RoleName::Targets, RoleName::Snapshot, RoleName::Timestamp] {
            let path = self.dir.join(format!("{role}.key"));
            if path.is_file() {
                roles.push((role, read_public_key(&path)?));
            }
        }
        Ok(PublicKeySet {
            root,
            root_threshold: self.root_threshold()?,
            roles,
        })
    }

    /// The key for an online role (`targets`, `snapshot`, `timestamp`).
    pub fn role_key(&self, role: RoleName) -> Result<LoadedKey> {
        load(role.as_str(), &self.dir.join(format!("{role}.key")))
    }

    /// The key of delegated role `name` (`NAME.key`).
    pub fn delegated_key(&self, name: &str) -> Result<LoadedKey> {
        load(name, &self.dir.join(format!("{name}.key")))
    }

    /// The key for `role`, checked against the keys `root` trusts for it.
    pub fn trusted_role_key(&self, role: RoleName, root: &Root) -> Result<LoadedKey> {
        let loaded = self.role_key(role)?;
        check_trusted(&loaded, role, root)?;
        Ok(loaded)
    }
}

/// The public keys of a keys folder ([`KeyDir::public_keys`]).
#[derive(Debug, Clone)]
pub struct PublicKeySet {
    /// The root keys (`root-*.key`), sorted by file name; may be empty.
    pub root: Vec<updraft_protocol::tuf::PublicKey>,
    /// The root threshold of `keyset.json` (1 without one).
    pub root_threshold: u32,
    /// The online roles whose key file is present.
    pub roles: Vec<(RoleName, updraft_protocol::tuf::PublicKey)>,
}

/// Loads one private key file of any scheme `keygen` writes; `role` names
/// what it was meant for in error messages.
pub fn load_key_file(role: &str, path: &Path) -> Result<LoadedKey> {
    load(role, path)
}

/// Fails unless `root` lists `loaded` among `role`'s keys.
pub fn check_trusted(loaded: &LoadedKey, role: RoleName, root: &Root) -> Result<()> {
    let id = loaded.key.public().key_id();
    let trusted = root
        .role_keys(role)
        .is_some_and(|keys| keys.keyids.contains(&id));
    if trusted {
        Ok(())
    } else {
        Err(Error::WrongKey {
            role: role.as_str().into(),
            path: loaded.path.clone(),
            reason: format!(
                "its key id `{id}` is not among the {role} keys of this store's root; is this the right --keys folder?"
            ),
        })
    }
}

fn load(role: &str, path: &Path) -> Result<LoadedKey> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingKey {
                role: role.into(),
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let wrong = |reason: String| Error::WrongKey {
        role: role.into(),
        path: path.to_path_buf(),
        reason,
    };
    let file: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|e| wrong(format!("it is not an updraft key file ({e})")))?;
    let Some(scheme) = Scheme::of(&file.keytype, &file.scheme) else {
        return Err(wrong(format!(
            "key type `{}`/`{}` is not supported; updraft signs with ed25519, ecdsa-sha2-nistp256, rsassa-pss-sha256 or rsa-pkcs1v15-sha256",
            file.keytype, file.scheme
        )));
    };
    let key = SigningKey::from_private(scheme, &file.keyval.private)
        .map_err(|e| wrong(format!("its private key cannot be read: {e}")))?;
    let public = key.public();
    if public.material() != recorded_public(&file).material() {
        return Err(wrong("its public and private halves do not match".into()));
    }
    Ok(LoadedKey {
        key,
        path: path.to_path_buf(),
    })
}

/// The public half recorded in a key file, as a TUF key.
fn recorded_public(file: &KeyFile) -> updraft_protocol::tuf::PublicKey {
    updraft_protocol::tuf::PublicKey {
        keytype: file.keytype.clone(),
        scheme: file.scheme.clone(),
        keyval: updraft_protocol::tuf::KeyVal {
            public: file.keyval.public.clone(),
            unrecognized: serde_json::Map::new(),
        },
        unrecognized: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("keys");
        let keys = generate(
            &out,
            KeygenOptions {
                root_keys: 3,
                root_threshold: 2,
                ..KeygenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(keys.len(), 6);
        for key in &keys {
            let mode = fs::metadata(&key.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.path.display());
        }
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let dir_keys = KeyDir::open(&out).unwrap();
        assert_eq!(dir_keys.root_threshold().unwrap(), 2);
        assert_eq!(dir_keys.root_keys().unwrap().len(), 3);
        assert!(matches!(
            generate(&out, KeygenOptions::default()),
            Err(Error::AlreadyExists { .. })
        ));
    }

    #[test]
    fn an_impossible_threshold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            generate(
                dir.path(),
                KeygenOptions {
                    root_keys: 1,
                    root_threshold: 2,
                    ..KeygenOptions::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn a_tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), KeygenOptions::default()).unwrap();
        let path = dir.path().join("targets.key");
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        value["keyval"]["public"] = serde_json::Value::String("00".repeat(32));
        fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        let error = KeyDir::open(dir.path())
            .unwrap()
            .role_key(RoleName::Targets)
            .unwrap_err();
        assert!(error.to_string().contains("do not match"), "{error}");
    }
}
