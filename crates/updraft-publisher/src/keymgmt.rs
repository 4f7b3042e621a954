//! Key management: `repo rotate-root`, `repo rotate`, and offline signing
//! (`repo export-unsigned` on the online machine, `repo sign` on each
//! air-gapped one, `repo import-signed` back on the online machine).
//!
//! Every change is one store transaction, checked in memory the way a client
//! will check it (root N+1 against the thresholds of root N and of itself,
//! then timestamp, snapshot and targets against the new root) before
//! anything is written.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use updraft_protocol::tuf::{
    Envelope, Expires, MetaFile, PublicKey, RoleKeys, RoleName, Root, SigningKey, Targets,
    TrustedSet,
};

use crate::error::{Error, Result};
use crate::keys::{KeyDir, LoadedKey, check_trusted, load_key_file};
use crate::repo::{ExpiryPolicy, meta_path, sign_timestamp, stage_signed_targets, stage_views};
use crate::store::{Current, Store, metadata_name};

/// The version of the file `repo export-unsigned` writes.
pub const UNSIGNED_FORMAT_VERSION: u32 = 1;
/// The largest file `repo sign` and `repo import-signed` read.
const MAX_UNSIGNED_BYTES: u64 = 64 << 20;

/// What a root change (`rotate-root`, `rotate`, `import-signed` of a root)
/// wrote.
#[derive(Debug, Clone)]
pub struct RotateReport {
    /// The new root version.
    pub root_version: u64,
    /// When the new root expires.
    pub root_expires: Expires,
    /// Roles whose keys or threshold changed.
    pub changed_roles: Vec<RoleName>,
    /// Metadata re-signed to stay valid under the new root, as `role version`.
    pub resigned: Vec<String>,
}

/// `repo rotate-root`: root N+1 lists the root keys found in `new_keys_dir`
/// (with its `keyset.json` threshold; the old root keys stay when it has
/// none) and the `targets.key`, `snapshot.key`, `timestamp.key` it holds (the
/// others stay). It is signed by the old root keys in `old_keys_dir` (their
/// threshold must be met) and the new ones; online metadata whose keys
/// changed is re-signed with the new keys, looked up in `new_keys_dir` and
/// then `old_keys_dir`.
pub fn rotate_root(
    store_dir: &Path,
    old_keys_dir: &Path,
    new_keys_dir: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RotateReport> {
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let old_keys = KeyDir::open(old_keys_dir)?;
    let new_keys = KeyDir::open(new_keys_dir)?;
    let old_root = &current.root().signed;
    let mut signers = root_signers(&old_keys, old_root)?;
    let public = new_keys.public_keys()?;
    if public.root.is_empty() && public.roles.is_empty() {
        return Err(Error::Conflict(format!(
            "`{}` holds no `root-N.key`, `targets.key`, `snapshot.key` or `timestamp.key`: nothing to rotate; create new keys with `updraft keygen --out {}`",
            new_keys_dir.display(),
            new_keys_dir.display()
        )));
    }
    let root_change = if public.root.is_empty() {
        None
    } else {
        for key in new_keys.root_keys()? {
            let id = key.key.public().key_id();
            if !signers.iter().any(|s| s.key.public().key_id() == id) {
                signers.push(key);
            }
        }
        Some((public.root.clone(), u64::from(public.root_threshold)))
    };
    let new_root = plan_root(old_root, root_change, &public.roles, now, policy)?;
    let signing: Vec<&SigningKey> = signers.iter().map(|k| &k.key).collect();
    let envelope = Envelope::sign(new_root, &signing);
    let finder = |role: RoleName| match new_keys.role_key(role) {
        Err(Error::MissingKey { .. }) => old_keys.role_key(role),
        other => other,
    };
    install_root(&store, &current, &envelope, &finder, now, policy)
}

/// `repo rotate --role R`: root N+1 lists `new_key_file` as the only key of
/// `role` (the old key is revoked), signed by the root keys in `keys_dir`,
/// and `role`'s metadata (and what pins it: targets → snapshot → timestamp)
/// is re-signed, the other online keys coming from `keys_dir`.
pub fn rotate_role(
    store_dir: &Path,
    keys_dir: &Path,
    role: RoleName,
    new_key_file: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RotateReport> {
    if role == RoleName::Root {
        return Err(Error::Conflict(
            "Root keys are rotated with `updraft repo rotate-root --keys OLD --new-keys NEW`"
                .into(),
        ));
    }
    let new_key = load_key_file(role.as_str(), new_key_file)?;
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let keys = KeyDir::open(keys_dir)?;
    let old_root = &current.root().signed;
    let id = new_key.key.public().key_id();
    if old_root
        .role_keys(role)
        .is_some_and(|r| r.keyids == [id.clone()])
    {
        return Err(Error::Conflict(format!(
            "The key `{}` ({}) is already the {role} key of this store; create a new one with `updraft keygen --out DIR --role {role}`",
            new_key_file.display(),
            &id[..16]
        )));
    }
    let signers = root_signers(&keys, old_root)?;
    let new_root = plan_root(old_root, None, &[(role, new_key.key.public())], now, policy)?;
    let signing: Vec<&SigningKey> = signers.iter().map(|k| &k.key).collect();
    let envelope = Envelope::sign(new_root, &signing);
    let finder = |wanted: RoleName| {
        if wanted == role {
            Ok(new_key.clone())
        } else {
            keys.role_key(wanted)
        }
    };
    install_root(&store, &current, &envelope, &finder, now, policy)
}

/// The root keys of `keys` that `root` trusts, refused unless they meet its
/// root threshold.
fn root_signers(keys: &KeyDir, root: &Root) -> Result<Vec<LoadedKey>> {
    let role = root
        .role_keys(RoleName::Root)
        .expect("a verified root has a root role");
    let mut usable = Vec::new();
    let mut material = HashSet::new();
    for name in keys.root_key_names()? {
        let key = load_key_file("root", &keys.path().join(&name))?;
        let public = key.key.public();
        if role.keyids.contains(&public.key_id()) && material.insert(public.material()) {
            usable.push(key);
        }
    }
    if (usable.len() as u64) < role.threshold {
        return Err(Error::NotEnoughKeys {
            role: "root".into(),
            found: usable.len(),
            threshold: role.threshold,
            dir: keys.path().to_path_buf(),
        });
    }
    Ok(usable)
}

/// Root N+1: `old` with a fresh expiry, the given root keys and threshold
/// (when `Some`) and the given online role keys; keys no role uses any more
/// are dropped.
fn plan_root(
    old: &Root,
    root_keys: Option<(Vec<PublicKey>, u64)>,
    roles: &[(RoleName, PublicKey)],
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<Root> {
    let mut root = old.clone();
    root.version = old.version + 1;
    root.expires = Expires::at(now + policy.root);
    let set = |root: &mut Root, role: RoleName, keys: &[PublicKey], threshold: u64| {
        let unrecognized = root
            .roles
            .get(role.as_str())
            .map(|r| r.unrecognized.clone())
            .unwrap_or_default();
        root.roles.insert(
            role.as_str().to_owned(),
            RoleKeys {
                keyids: keys.iter().map(PublicKey::key_id).collect(),
                threshold,
                unrecognized,
            },
        );
        for key in keys {
            root.keys.insert(key.key_id(), key.clone());
        }
    };
    if let Some((keys, threshold)) = root_keys {
        let distinct: HashSet<Vec<u8>> = keys.iter().map(PublicKey::material).collect();
        if threshold == 0 || threshold > distinct.len() as u64 {
            return Err(Error::Conflict(format!(
                "A root threshold of {threshold} with {} distinct root key(s) is impossible",
                distinct.len()
            )));
        }
        set(&mut root, RoleName::Root, &keys, threshold);
    }
    for (role, key) in roles {
        set(&mut root, *role, std::slice::from_ref(key), 1);
    }
    let used: HashSet<String> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| used.contains(id));
    Ok(root)
}

/// Checks `root` as root N+1 of `current` the way a client will, re-signs
/// the online metadata whose keys changed (`key_for` supplies the new keys),
/// checks the whole new chain, and writes it all in one transaction.
fn install_root(
    store: &Store,
    current: &Current,
    root: &Envelope<Root>,
    key_for: &dyn Fn(RoleName) -> Result<LoadedKey>,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RotateReport> {
    let old = &current.root().signed;
    let new = &root.signed;
    let root_name = format!("{}.root.json", new.version);
    let root_bytes = root.to_bytes();
    let mut check = TrustedSet::new(&current.root().to_bytes(), OffsetDateTime::UNIX_EPOCH)
        .map_err(|e| refused(&root_name, &e.to_string()))?;
    check.update_root(&root_bytes).map_err(|e| {
        refused(
            &root_name,
            &format!(
                "{e} (root {} must be signed by the root threshold of version {} and by its own)",
                new.version, old.version
            ),
        )
    })?;
    if new.expires.is_expired(now) {
        return Err(refused(
            &root_name,
            &format!(
                "it expired at {}; clients would refuse it, so export a new one",
                new.expires
            ),
        ));
    }
    if new.consistent_snapshot != old.consistent_snapshot {
        return Err(refused(
            &root_name,
            "it changes `consistent_snapshot`, which would change where clients look for every file of the store",
        ));
    }
    let changed_roles: Vec<RoleName> = RoleName::ALL
        .into_iter()
        .filter(|role| old.role_keys(*role) != new.role_keys(*role))
        .collect();
    let changed = |role| changed_roles.contains(&role);
    let signing_key = |role: RoleName| -> Result<SigningKey> {
        let key = key_for(role).map_err(|e| match e {
            Error::MissingKey { path, .. } => Error::Conflict(format!(
                "The new root {} makes the {role} metadata need a new signature, but `{}` is missing; pass a keys folder that holds {role}.key",
                new.version,
                path.display()
            )),
            other => other,
        })?;
        check_trusted(&key, role, new)?;
        Ok(key.key)
    };

    let mut resigned = Vec::new();
    let mut targets = current.targets().clone();
    let targets_resigned = changed(RoleName::Targets);
    if targets_resigned {
        let key = signing_key(RoleName::Targets)?;
        let mut signed = targets.signed.clone();
        signed.version += 1;
        signed.expires = Expires::at(now + policy.targets);
        targets = Envelope::sign(signed, &[&key]);
        resigned.push(format!("targets {}", targets.signed.version));
    }
    let mut snapshot = current.snapshot().clone();
    let snapshot_resigned = targets_resigned || changed(RoleName::Snapshot);
    if snapshot_resigned {
        let key = signing_key(RoleName::Snapshot)?;
        let mut signed = snapshot.signed.clone();
        signed.version += 1;
        signed.expires = Expires::at(now + policy.snapshot);
        signed.meta.insert(
            "targets.json".to_owned(),
            MetaFile::pinned(targets.signed.version, &targets.to_bytes()),
        );
        snapshot = Envelope::sign(signed, &[&key]);
        resigned.push(format!("snapshot {}", snapshot.signed.version));
    }
    let mut timestamp = current.timestamp().clone();
    if snapshot_resigned || changed(RoleName::Timestamp) {
        let key = signing_key(RoleName::Timestamp)?;
        timestamp = sign_timestamp(&snapshot, timestamp.signed.version + 1, now, policy, &key);
        resigned.push(format!("timestamp {}", timestamp.signed.version));
    }
    // What a client will do with the new files (expiry aside).
    check
        .update_timestamp(&timestamp.to_bytes())
        .map_err(|e| refused("timestamp.json", &e.to_string()))?;
    check
        .update_snapshot(&snapshot.to_bytes(), false)
        .map_err(|e| refused("snapshot.json", &e.to_string()))?;
    check
        .update_targets(&targets.to_bytes())
        .map_err(|e| refused("targets.json", &e.to_string()))?;

    let mut tx = store.begin()?;
    tx.stage_bytes(&meta_path(&root_name), &root_bytes)?;
    tx.stage_bytes(&meta_path("root.json"), &root_bytes)?;
    if targets_resigned {
        // The views name the targets version: the releases are the same.
        let mut resolved = current.resolved();
        resolved.version = targets.signed.version;
        resolved.expires = targets.signed.expires;
        stage_views(store, &mut tx, &resolved)?;
        tx.stage_bytes(
            &meta_path(&metadata_name("targets", targets.signed.version, true)),
            &targets.to_bytes(),
        )?;
    }
    if snapshot_resigned {
        tx.stage_bytes(
            &meta_path(&metadata_name("snapshot", snapshot.signed.version, true)),
            &snapshot.to_bytes(),
        )?;
    }
    if !resigned.is_empty() {
        tx.stage_bytes(&meta_path("timestamp.json"), &timestamp.to_bytes())?;
    }
    updraft_fs::fault::point("rotate.staged");
    tx.commit()?;
    Ok(RotateReport {
        root_version: new.version,
        root_expires: new.expires,
        changed_roles,
        resigned,
    })
}

fn refused(name: &str, reason: &str) -> Error {
    Error::Refused {
        path: meta_path(name),
        reason: reason.to_owned(),
    }
}

/// The file `repo export-unsigned` writes and `repo sign` adds signatures to.
#[derive(Debug, Serialize, Deserialize)]
struct UnsignedFile {
    /// [`UNSIGNED_FORMAT_VERSION`].
    updraft_unsigned: u32,
    /// `root` or `targets`.
    role: String,
    /// The store's root when the file was exported: which keys may sign, and,
    /// at import, proof that the store has not moved on since.
    trusted_root: Value,
    /// The metadata being signed, as a TUF file (`signatures`, `signed`).
    metadata: Value,
}

struct Unsigned {
    file: UnsignedFile,
    trusted_root: Envelope<Root>,
}

enum Metadata {
    Root(Envelope<Root>),
    Targets(Envelope<Targets>),
}

impl Unsigned {
    fn read(path: &Path) -> Result<Self> {
        let size = fs::metadata(path)
            .map_err(|e| Error::io("read", path, e))?
            .len();
        let bad = |reason: String| Error::Refused {
            path: path.to_path_buf(),
            reason,
        };
        if size > MAX_UNSIGNED_BYTES {
            return Err(bad(format!(
                "it is {size} bytes; the limit is {MAX_UNSIGNED_BYTES}"
            )));
        }
        let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let file: UnsignedFile = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "it is not a file written by `updraft repo export-unsigned` ({e})"
            ))
        })?;
        if file.updraft_unsigned != UNSIGNED_FORMAT_VERSION {
            return Err(bad(format!(
                "it has format version {}; this updraft reads version {UNSIGNED_FORMAT_VERSION}",
                file.updraft_unsigned
            )));
        }
        let trusted_root = Envelope::<Root>::from_slice(
            "trusted_root",
            &serde_json::to_vec(&file.trusted_root).expect("a JSON value serialises"),
        )
        .map_err(|e| bad(format!("its `trusted_root` is not valid: {e}")))?;
        trusted_root
            .verify(&trusted_root.signed)
            .map_err(|e| bad(format!("its `trusted_root` is not valid: {e}")))?;
        Ok(Self { file, trusted_root })
    }

    fn metadata(&self, path: &Path) -> Result<Metadata> {
        let bytes = serde_json::to_vec(&self.file.metadata).expect("a JSON value serialises");
        let bad = |e: updraft_protocol::Error| Error::Refused {
            path: path.to_path_buf(),
            reason: format!(
                "its `metadata` is not valid {} metadata: {e}",
                self.file.role
            ),
        };
        match self.file.role.as_str() {
            "root" => Ok(Metadata::Root(
                Envelope::from_slice("root.json", &bytes).map_err(bad)?,
            )),
            "targets" => Ok(Metadata::Targets(
                Envelope::from_slice("targets.json", &bytes).map_err(bad)?,
            )),
            other => Err(Error::Refused {
                path: path.to_path_buf(),
                reason: format!("its role `{other}` is not `root` or `targets`"),
            }),
        }
    }

    fn write(&self, path: &Path, metadata: &Metadata) -> Result<()> {
        let bytes = match metadata {
            Metadata::Root(e) => e.to_bytes(),
            Metadata::Targets(e) => e.to_bytes(),
        };
        let file = UnsignedFile {
            updraft_unsigned: UNSIGNED_FORMAT_VERSION,
            role: self.file.role.clone(),
            trusted_root: self.file.trusted_root.clone(),
            metadata: serde_json::from_slice(&bytes).expect("metadata is JSON"),
        };
        write_unsigned(path, &file)
    }
}

fn write_unsigned(path: &Path, file: &UnsignedFile) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(file).expect("the file serialises");
    bytes.push(b'\n');
    updraft_fs::write_atomic(path, &bytes)?;
    Ok(())
}

/// Writes `targets` (the next version, already numbered) unsigned to `out`,
/// for `publish --export-unsigned`.
pub(crate) fn write_unsigned_targets(
    current: &Current,
    targets: Targets,
    out: &Path,
) -> Result<()> {
    let file = UnsignedFile {
        updraft_unsigned: UNSIGNED_FORMAT_VERSION,
        role: RoleName::Targets.as_str().into(),
        trusted_root: serde_json::from_slice(&current.root().to_bytes()).expect("root is JSON"),
        metadata: serde_json::from_slice(&Envelope::sign(targets, &[]).to_bytes())
            .expect("metadata is JSON"),
    };
    write_unsigned(out, &file)
}

/// What `repo export-unsigned` wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The role.
    pub role: RoleName,
    /// The version to be signed.
    pub version: u64,
    /// Its expiry.
    pub expires: Expires,
    /// Who must sign it, in words.
    pub needs: String,
}

/// `repo export-unsigned`: writes to `out` the next version of `role`
/// (`root`, or `targets`) with a fresh expiry and no signatures, for
/// `repo sign` on offline machines. For `root`, `new_keys_dir` (a keys
/// folder whose files may hold only public keys) makes it a rotation, as
/// with [`rotate_root`].
pub fn export_unsigned(
    store_dir: &Path,
    role: RoleName,
    new_keys_dir: Option<&Path>,
    out: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<ExportReport> {
    if out.exists() {
        return Err(Error::AlreadyExists {
            path: out.to_path_buf(),
            hint: "choose another --out file (an exported file is never overwritten)".into(),
        });
    }
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let old_root = &current.root().signed;
    let (metadata, version, expires, needs) = match role {
        RoleName::Root => {
            let (root_change, roles) = match new_keys_dir {
                None => (None, Vec::new()),
                Some(dir) => {
                    let public = KeyDir::open(dir)?.public_keys()?;
                    let change = (!public.root.is_empty())
                        .then(|| (public.root.clone(), u64::from(public.root_threshold)));
                    (change, public.roles)
                }
            };
            let root = plan_root(old_root, root_change, &roles, now, policy)?;
            let old_role = old_root.role_keys(RoleName::Root).expect("verified");
            let new_role = root.role_keys(RoleName::Root).expect("planned");
            let needs = if old_role == new_role {
                format!(
                    "{} of the {} root key(s)",
                    old_role.threshold,
                    old_role.keyids.len()
                )
            } else {
                format!(
                    "{} of the {} current root key(s) and {} of the {} new one(s)",
                    old_role.threshold,
                    old_role.keyids.len(),
                    new_role.threshold,
                    new_role.keyids.len()
                )
            };
            let (version, expires) = (root.version, root.expires);
            (
                Envelope::sign(root, &[]).to_bytes(),
                version,
                expires,
                needs,
            )
        }
        RoleName::Targets => {
            if new_keys_dir.is_some() {
                return Err(Error::Conflict(
                    "--new-keys applies to `--role root` only; rotate the targets key with `updraft repo rotate --role targets`".into(),
                ));
            }
            let mut targets = current.targets().signed.clone();
            targets.version += 1;
            targets.expires = Expires::at(now + policy.targets);
            let role_keys = old_root.role_keys(RoleName::Targets).expect("verified");
            let needs = format!(
                "{} of the {} targets key(s)",
                role_keys.threshold,
                role_keys.keyids.len()
            );
            let (version, expires) = (targets.version, targets.expires);
            (
                Envelope::sign(targets, &[]).to_bytes(),
                version,
                expires,
                needs,
            )
        }
        other => {
            return Err(Error::Conflict(format!(
                "Only root and targets metadata are signed offline; {other} is re-signed by the online key (`updraft repo refresh`)"
            )));
        }
    };
    let file = UnsignedFile {
        updraft_unsigned: UNSIGNED_FORMAT_VERSION,
        role: role.as_str().into(),
        trusted_root: serde_json::from_slice(&current.root().to_bytes()).expect("root is JSON"),
        metadata: serde_json::from_slice(&metadata).expect("metadata is JSON"),
    };
    write_unsigned(out, &file)?;
    Ok(ExportReport {
        role,
        version,
        expires,
        needs,
    })
}

/// Checks a threshold of one set of keys over an envelope.
type ThresholdCheck<'a> = dyn Fn(&BTreeMap<String, PublicKey>, &RoleKeys) -> std::result::Result<(), updraft_protocol::Error>
    + 'a;

/// What `repo sign` did.
#[derive(Debug, Clone)]
pub struct SignReport {
    /// The role of the metadata signed.
    pub role: String,
    /// Its version.
    pub version: u64,
    /// When it expires.
    pub expires: Expires,
    /// The id of the key that signed.
    pub keyid: String,
    /// How far each threshold is met, in words (`root: 1 of 2`).
    pub progress: Vec<String>,
    /// True once every threshold is met and the file can be imported.
    pub complete: bool,
    /// For a root: the roles whose keys or threshold it changes, in words,
    /// so the person signing sees what they sign.
    pub changes: Vec<String>,
}

/// `repo sign`: adds the signature of `key_file` (any scheme `keygen`
/// writes) to an exported file, in place. Refuses a key that may not sign
/// the file's role. Needs no store, so it runs on an air-gapped machine; a
/// second signer runs it again on the same file.
pub fn sign(file: &Path, key_file: &Path) -> Result<SignReport> {
    let unsigned = Unsigned::read(file)?;
    let mut metadata = unsigned.metadata(file)?;
    let key = load_key_file(&unsigned.file.role, key_file)?;
    let keyid = key.key.public().key_id();
    let trusted = &unsigned.trusted_root.signed;
    let mut allowed: Vec<(String, BTreeMap<String, PublicKey>, RoleKeys)> = Vec::new();
    let mut changes = Vec::new();
    let (version, expires) = match &metadata {
        Metadata::Root(envelope) => {
            for role in RoleName::ALL {
                let (before, after) = (trusted.role_keys(role), envelope.signed.role_keys(role));
                if before != after {
                    changes.push(format!(
                        "{role} keys: {} -> {}",
                        describe_role(before),
                        describe_role(after)
                    ));
                }
            }
            allowed.push((
                format!("current root (version {})", trusted.version),
                trusted.keys.clone(),
                trusted.role_keys(RoleName::Root).expect("verified").clone(),
            ));
            let role = envelope
                .signed
                .role_keys(RoleName::Root)
                .expect("validated");
            if Some(role) != trusted.role_keys(RoleName::Root) {
                allowed.push((
                    format!("new root (version {})", envelope.signed.version),
                    envelope.signed.keys.clone(),
                    role.clone(),
                ));
            }
            (envelope.signed.version, envelope.signed.expires)
        }
        Metadata::Targets(envelope) => {
            allowed.push((
                "targets".into(),
                trusted.keys.clone(),
                trusted
                    .role_keys(RoleName::Targets)
                    .expect("verified")
                    .clone(),
            ));
            (envelope.signed.version, envelope.signed.expires)
        }
    };
    if !allowed
        .iter()
        .any(|(_, _, role)| role.keyids.contains(&keyid))
    {
        return Err(Error::WrongKey {
            role: unsigned.file.role.clone(),
            path: key_file.to_path_buf(),
            reason: format!(
                "its key id `{}` is not among the keys that may sign {} version {version} ({}); is this the right key?",
                &keyid[..16],
                unsigned.file.role,
                allowed
                    .iter()
                    .map(|(what, _, role)| format!(
                        "{what}: {}",
                        role.keyids
                            .iter()
                            .map(|id| short(id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let progress_of = |envelope_check: &ThresholdCheck<'_>| {
        allowed
            .iter()
            .map(|(what, keys, role)| match envelope_check(keys, role) {
                Ok(()) => (format!("{what}: threshold {} met", role.threshold), true),
                Err(updraft_protocol::Error::Threshold {
                    valid, threshold, ..
                }) => (
                    format!("{what}: {valid} of {threshold} signature(s)"),
                    false,
                ),
                Err(e) => (format!("{what}: {e}"), false),
            })
            .collect::<Vec<_>>()
    };
    let progress = match &mut metadata {
        Metadata::Root(envelope) => {
            envelope.add_signature(&key.key);
            progress_of(&|keys, role| envelope.verify_with(keys, role))
        }
        Metadata::Targets(envelope) => {
            envelope.add_signature(&key.key);
            progress_of(&|keys, role| envelope.verify_with(keys, role))
        }
    };
    unsigned.write(file, &metadata)?;
    Ok(SignReport {
        role: unsigned.file.role.clone(),
        version,
        expires,
        keyid,
        complete: progress.iter().all(|(_, met)| *met),
        changes,
        progress: progress.into_iter().map(|(text, _)| text).collect(),
    })
}

/// The first 16 characters of a key id (ids in an exported file are not
/// trusted to be that long).
fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

fn describe_role(keys: Option<&RoleKeys>) -> String {
    keys.map_or_else(
        || "none".to_owned(),
        |k| {
            format!(
                "{} of [{}]",
                k.threshold,
                k.keyids
                    .iter()
                    .map(|id| short(id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )
}

/// Whether the store holds `path` as a regular file with `target`'s length
/// and hashes (streamed, so a large package costs no memory).
fn check_stored_target(
    store: &Path,
    path: &str,
    target: &updraft_protocol::tuf::TargetFile,
) -> std::result::Result<(), String> {
    use std::io::Read;
    let path = updraft_protocol::TargetPath::new(path).map_err(|e| e.to_string())?;
    let full = store.join(path.as_str());
    match fs::symlink_metadata(&full) {
        Ok(meta) if meta.is_file() => {}
        _ => return Err("is missing".into()),
    }
    let mut checker = target.checker(path.as_str()).map_err(|e| e.to_string())?;
    let mut reader = fs::File::open(&full).map_err(|e| format!("cannot be read ({e})"))?;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| format!("cannot be read ({e})"))?;
        if read == 0 {
            break;
        }
        checker
            .update(path.as_str(), &buffer[..read])
            .map_err(|e| format!("does not match ({e})"))?;
    }
    checker
        .finish(path.as_str(), target)
        .map_err(|e| format!("does not match ({e})"))?;
    // The name consistent-snapshot clients fetch (a hard link of the same file).
    if let Some(digest) = target.sha256() {
        let prefixed = store.join(path.with_hash_prefix(&digest));
        match fs::symlink_metadata(&prefixed) {
            Ok(meta) if meta.is_file() && meta.len() == target.length => {}
            _ => return Err(format!("`{}` is missing", prefixed.display())),
        }
    }
    Ok(())
}

/// What `repo import-signed` wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The role imported.
    pub role: RoleName,
    /// Its version.
    pub version: u64,
    /// Metadata re-signed with the online keys, as `role version`.
    pub resigned: Vec<String>,
}

/// `repo import-signed`: checks an exported file that `repo sign` completed
/// against the store's thresholds, as a client will, and installs it in one
/// transaction; snapshot and timestamp (and, for a root that changes online
/// keys, the metadata of those roles) are re-signed with the keys in
/// `keys_dir`, needed only then.
pub fn import_signed(
    store_dir: &Path,
    file: &Path,
    keys_dir: Option<&Path>,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<ImportReport> {
    let unsigned = Unsigned::read(file)?;
    let metadata = unsigned.metadata(file)?;
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    if unsigned.trusted_root.canonical_bytes() != current.root().canonical_bytes() {
        return Err(Error::Conflict(format!(
            "`{}` was exported from root version {}, but the store's root is now version {}; export and sign it again",
            file.display(),
            unsigned.trusted_root.signed.version,
            current.root().signed.version
        )));
    }
    let keys = keys_dir.map(KeyDir::open).transpose()?;
    let need_keys = |role: RoleName| -> Result<&KeyDir> {
        keys.as_ref().ok_or_else(|| {
            Error::Conflict(format!(
                "Importing `{}` re-signs the {role} metadata; pass `--keys DIR` holding {role}.key",
                file.display()
            ))
        })
    };
    match metadata {
        Metadata::Root(envelope) => {
            let finder = |role: RoleName| need_keys(role)?.role_key(role);
            let report = install_root(&store, &current, &envelope, &finder, now, policy)?;
            Ok(ImportReport {
                role: RoleName::Root,
                version: report.root_version,
                resigned: report.resigned,
            })
        }
        Metadata::Targets(envelope) => {
            let expected = current.targets().signed.version + 1;
            if envelope.signed.version != expected {
                return Err(Error::Conflict(format!(
                    "`{}` holds targets version {}, but the store's next targets version is {expected} (it changed since the export); export and sign it again",
                    file.display(),
                    envelope.signed.version
                )));
            }
            if envelope.signed.expires.is_expired(now) {
                return Err(Error::Refused {
                    path: file.to_path_buf(),
                    reason: format!(
                        "its targets expired at {}; export and sign it again",
                        envelope.signed.expires
                    ),
                });
            }
            envelope
                .verify(&current.root().signed)
                .map_err(|e| Error::Refused {
                    path: file.to_path_buf(),
                    reason: format!(
                        "{e}; add signatures with `updraft repo sign --file {} --key KEY`",
                        file.display()
                    ),
                })?;
            // Every target it adds must already be in the store
            // (`publish --export-unsigned` put it there).
            for (path, target) in &envelope.signed.targets {
                let unchanged = current
                    .targets()
                    .signed
                    .targets
                    .get(path)
                    .is_some_and(|old| old == target);
                if unchanged {
                    continue;
                }
                if let Err(reason) = check_stored_target(store.path(), path, target) {
                    return Err(Error::Conflict(format!(
                        "`{}` signs the target `{path}` ({} bytes), but the store's copy {reason}; publish it here with `updraft publish --export-unsigned` and sign that file",
                        file.display(),
                        target.length
                    )));
                }
            }
            let keys = need_keys(RoleName::Snapshot)?;
            let mut tx = store.begin()?;
            let (snapshot, timestamp) =
                stage_signed_targets(&store, &mut tx, &current, &envelope, keys, now, policy)?;
            let mut check = TrustedSet::new(&current.root().to_bytes(), OffsetDateTime::UNIX_EPOCH)
                .map_err(|e| refused("root.json", &e.to_string()))?;
            check
                .update_timestamp(&timestamp.to_bytes())
                .and_then(|()| check.update_snapshot(&snapshot.to_bytes(), false))
                .and_then(|()| check.update_targets(&envelope.to_bytes()))
                .map_err(|e| Error::Refused {
                    path: file.to_path_buf(),
                    reason: e.to_string(),
                })?;
            updraft_fs::fault::point("import.staged");
            tx.commit()?;
            Ok(ImportReport {
                role: RoleName::Targets,
                version: envelope.signed.version,
                resigned: vec![
                    format!("snapshot {}", snapshot.signed.version),
                    format!("timestamp {}", timestamp.signed.version),
                ],
            })
        }
    }
}
