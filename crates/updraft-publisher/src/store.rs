//! The release store on disk: where each file lives, the lock, crash
//! recovery, and loading the current signed metadata.
//!
//! ```text
//! store/
//!   metadata/              TUF metadata (root.json, N.root.json, N.targets.json,
//!                          N.snapshot.json, timestamp.json) and versions.json
//!   releases/v1.1.0/       kuzflow_v1.1.0_linux_x86_64_full.tar.zst, ..._manifest.json,
//!                          and their {sha256}.-prefixed names (consistent snapshots)
//!   releases/latest/       kuzflow_stable_linux_x86_64.json, newest release per target
//!   changelog/             kuzflow_v1.1.0.md
//!   .updraft/              lock and in-progress transactions (never served)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use updraft_fs::{Recovery, StoreLock, Transaction};
use updraft_protocol::tuf::{Envelope, Root, Snapshot, Targets, Timestamp, TrustedSet};
use updraft_protocol::{AppId, Arch, Channel, Platform, TargetPath, Version};

use crate::error::{Error, Result};

/// Folder of the TUF metadata (and `versions.json`).
pub const METADATA_DIR: &str = "metadata";
const STATE_DIR: &str = ".updraft";

/// An open, locked release store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    _lock: StoreLock,
    recovery: Recovery,
    /// Highest metadata version already used per file stem (`targets`,
    /// `snapshot`, a delegated role): see [`TAKEN_FILE`].
    taken: std::collections::BTreeMap<String, u64>,
}

/// `.updraft/taken.json`: the highest version of each versioned metadata
/// file (`N.targets.json`, `N.snapshot.json`, `N.ROLE.json`) that already
/// exists where the store is kept, by file stem. A local store has none (a
/// transaction never leaves a file behind); the working copy of an S3 store
/// lists the bucket, which may hold versions a killed publish uploaded but
/// never signed into a timestamp: the next versions skip them, since the
/// bucket never overwrites a versioned object.
pub const TAKEN_FILE: &str = "taken.json";

/// How long opening a store waits for another updraft that holds its lock:
/// a server's own changes (timestamp re-signing, admin changes) take
/// milliseconds, a publish of a large release may take longer and is then
/// reported as locked.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Creates the skeleton of a new store in `path`, which must be missing or empty.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            let mut entries = fs::read_dir(path).map_err(|e| Error::io("list", path, e))?;
            if entries.next().is_some() {
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                    hint: "`repo init` needs a missing or empty folder; an existing store is never overwritten".into(),
                });
            }
        }
        // The store is served to everyone; its own state (locks, journal, the
        // server's database) is for its owner only.
        updraft_fs::create_dir_all_durable(path)?;
        updraft_fs::create_dir_all_durable_with_mode(&path.join(STATE_DIR), 0o700)?;
        Self::lock(path)
    }

    /// Opens an existing store: takes its lock (waiting up to
    /// [`LOCK_WAIT`] for another updraft, such as a server re-signing its
    /// timestamp, to finish) and undoes any publish that was interrupted.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join(METADATA_DIR).join("root.json").is_file()
            && !path.join(METADATA_DIR).join("1.root.json").is_file()
        {
            return Err(Error::NotAStore {
                path: path.to_path_buf(),
                reason: "it has no `metadata/root.json`".into(),
            });
        }
        updraft_fs::create_dir_all_durable(&path.join(STATE_DIR))?;
        Self::lock(path)
    }

    fn lock(path: &Path) -> Result<Self> {
        let lock = StoreLock::acquire_within(&path.join(STATE_DIR).join("lock"), LOCK_WAIT)?;
        let recovery = updraft_fs::recover(path, &path.join(STATE_DIR).join("tx"))?;
        let taken_path = path.join(STATE_DIR).join(TAKEN_FILE);
        let taken = match fs::read(&taken_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::io("read", &taken_path, std::io::Error::other(e.to_string()))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::collections::BTreeMap::new()
            }
            Err(error) => return Err(Error::io("read", taken_path, error)),
        };
        Ok(Self {
            root: path.to_path_buf(),
            _lock: lock,
            recovery,
            taken,
        })
    }

    /// The store folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The version after `current` for the metadata file stem `stem`
    /// (`targets`, `snapshot`, or a delegated role's file stem), past any
    /// version already taken where the store is kept.
    pub fn next_version(&self, stem: &str, current: u64) -> u64 {
        current.max(self.taken.get(stem).copied().unwrap_or(0)) + 1
    }

    /// What opening the store had to recover from.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Starts a transaction over the store.
    pub fn begin(&self) -> Result<Transaction> {
        Ok(Transaction::begin(
            &self.root,
            &self.root.join(STATE_DIR).join("tx"),
        )?)
    }

    /// Reads a file relative to the store.
    pub fn read(&self, relative: &str) -> Result<Vec<u8>> {
        let path = self.root.join(relative);
        fs::read(&path).map_err(|e| Error::io("read", path, e))
    }

    /// Loads and verifies the current metadata chain (signatures, versions,
    /// hashes), ignoring expiry: the publisher must be able to re-sign
    /// metadata that has already expired.
    pub fn load_current(&self) -> Result<Current> {
        load_chain(&self.root, None)
    }
}

/// The store's current, verified metadata.
#[derive(Debug, Clone)]
pub struct Current {
    /// Every check passed except, when loaded by the publisher, expiry.
    pub trusted: TrustedSet,
    /// Whether metadata and targets use version- and hash-prefixed names.
    pub consistent_snapshot: bool,
}

impl Current {
    /// The root.
    pub fn root(&self) -> &Envelope<Root> {
        self.trusted.root()
    }

    /// The timestamp.
    pub fn timestamp(&self) -> &Envelope<Timestamp> {
        self.trusted.timestamp().expect("loaded")
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Envelope<Snapshot> {
        self.trusted.snapshot().expect("loaded")
    }

    /// The top-level targets.
    pub fn targets(&self) -> &Envelope<Targets> {
        self.trusted.targets().expect("loaded")
    }

    /// The top-level targets with `targets` replaced by every target the
    /// delegation search resolves (spec 5.6.7): what clients see.
    pub fn resolved(&self) -> Targets {
        let mut resolved = self.targets().signed.clone();
        resolved.targets = self.trusted.resolved_targets().0;
        resolved
    }

    /// A delegated role's metadata, if the store has it.
    pub fn delegated(&self, role: &str) -> Option<&Envelope<Targets>> {
        self.trusted.delegated(role)
    }
}

/// The file name of delegated role `role`'s metadata at `version`.
pub fn delegated_name(role: &str, version: u64, consistent: bool) -> String {
    let stem = updraft_protocol::tuf::role_file_stem(role);
    if consistent {
        format!("{version}.{stem}.json")
    } else {
        format!("{stem}.json")
    }
}

/// The file name of a role's metadata at `version`.
pub fn metadata_name(role: &str, version: u64, consistent: bool) -> String {
    if consistent || role == "root" {
        format!("{version}.{role}.json")
    } else {
        format!("{role}.json")
    }
}

/// Walks the metadata chain of the store at `root`: every `N.root.json`
/// from the first, then timestamp, snapshot and targets. With
/// `reference_time`, expired metadata is an error; without, expiry is ignored.
pub fn load_chain(root: &Path, reference_time: Option<OffsetDateTime>) -> Result<Current> {
    let metadata = root.join(METADATA_DIR);
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = metadata.join(name);
        fs::read(&path).map_err(|e| Error::io("read", path, e))
    };
    let verification = |name: &str, source| Error::Verification {
        path: metadata.join(name),
        source,
    };
    let first = if metadata.join("1.root.json").is_file() {
        "1.root.json"
    } else {
        "root.json"
    };
    let time = reference_time.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut trusted = TrustedSet::new(&read(first)?, time).map_err(|e| verification(first, e))?;
    loop {
        let name = format!("{}.root.json", trusted.root().signed.version + 1);
        if !metadata.join(&name).is_file() {
            break;
        }
        trusted
            .update_root(&read(&name)?)
            .map_err(|e| verification(&name, e))?;
    }
    trusted
        .update_timestamp(&read("timestamp.json")?)
        .map_err(|e| verification("timestamp.json", e))?;
    let consistent = trusted.root().signed.consistent_snapshot;
    let snapshot_name = metadata_name(
        "snapshot",
        trusted
            .timestamp()
            .expect("loaded")
            .signed
            .snapshot_meta()
            .version,
        consistent,
    );
    trusted
        .update_snapshot(&read(&snapshot_name)?, false)
        .map_err(|e| verification(&snapshot_name, e))?;
    let targets_version = trusted.snapshot().expect("loaded").signed.meta["targets.json"].version;
    let targets_name = metadata_name("targets", targets_version, consistent);
    trusted
        .update_targets(&read(&targets_name)?)
        .map_err(|e| verification(&targets_name, e))?;
    // Delegated roles: every one the snapshot lists must verify; one it does
    // not list yet (delegated, never published) is skipped.
    let mut attempted = std::collections::HashSet::new();
    loop {
        let pending: Vec<_> = trusted
            .delegations_to_load()
            .into_iter()
            .filter(|(role, _)| attempted.insert(role.clone()))
            .collect();
        if pending.is_empty() {
            break;
        }
        for (role, parent) in pending {
            let Some(pinned) = trusted
                .snapshot()
                .expect("loaded")
                .signed
                .meta
                .get(&format!("{role}.json"))
            else {
                continue;
            };
            let name = delegated_name(&role, pinned.version, consistent);
            trusted
                .update_delegated_targets(&read(&name)?, &role, &parent)
                .map_err(|e| verification(&name, e))?;
        }
    }
    Ok(Current {
        trusted,
        consistent_snapshot: consistent,
    })
}

/// Where one release's files live in the store.
#[derive(Debug, Clone)]
pub struct ReleasePaths {
    /// The full package.
    pub package: TargetPath,
    /// The per-file manifest.
    pub manifest: TargetPath,
    /// The changelog (one per app version, shared by its platforms).
    pub changelog: TargetPath,
    /// The pointer in `releases/latest/` for this app, channel and target.
    pub latest: String,
}

impl ReleasePaths {
    /// The seed's layout, with platform and arch in the names so one version
    /// folder can hold every target of every app.
    pub fn new(
        app: &AppId,
        version: &Version,
        channel: &Channel,
        platform: Platform,
        arch: Arch,
        extension: &str,
    ) -> Self {
        let stem = format!("{app}_v{version}_{platform}_{arch}");
        let path = |text: String| TargetPath::new(&text).expect("built from validated parts");
        Self {
            package: path(format!("releases/v{version}/{stem}_full.{extension}")),
            manifest: path(format!("releases/v{version}/{stem}_manifest.json")),
            changelog: path(format!("changelog/{app}_v{version}.md")),
            latest: latest_path(app, channel, platform, arch),
        }
    }
}

/// `releases/latest/{app}_{channel}_{platform}_{arch}.json`.
pub fn latest_path(app: &AppId, channel: &Channel, platform: Platform, arch: Arch) -> String {
    format!("releases/latest/{app}_{channel}_{platform}_{arch}.json")
}
