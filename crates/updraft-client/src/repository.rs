//! The TUF client workflow (spec section 5), to the letter: root chain with
//! bounded hops, timestamp, snapshot, targets, one fixed reference time, size
//! caps on every file, and persistence of each file only after it passed
//! every check, written atomically under non-versioned names.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use updraft_protocol::tuf::{Lookup, Root, TargetFile, Targets, TrustedSet, role_file_stem};
use updraft_protocol::{Error as ProtocolError, TargetPath};

use crate::error::{Error, Result};
use crate::transport::Fetcher;

/// Most root versions followed in one refresh.
pub const MAX_ROOT_ROTATIONS: u64 = 32;
/// Size caps for metadata whose length is not pinned.
pub const MAX_ROOT_BYTES: u64 = 512 * 1024;
/// Size cap for `timestamp.json`.
pub const MAX_TIMESTAMP_BYTES: u64 = 16 * 1024;
/// Size cap for snapshot metadata when the timestamp does not pin its length.
pub const MAX_SNAPSHOT_BYTES: u64 = 2 * 1024 * 1024;
/// Size cap for targets metadata when the snapshot does not pin its length.
pub const MAX_TARGETS_BYTES: u64 = 16 * 1024 * 1024;

/// A client's trusted copy of a repository's metadata.
#[derive(Debug, Clone)]
pub struct Repository {
    metadata_dir: PathBuf,
    trusted: TrustedSet,
    /// The top-level targets with every target the delegation search
    /// resolves, from whichever role it trusts for each path.
    resolved: Targets,
    /// Delegated roles that could not be loaded, with the reason.
    unavailable: Vec<(String, String)>,
}

fn persist(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    updraft_fs::write_atomic(&dir.join(name), bytes)?;
    Ok(())
}

fn read_local(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

/// Fetches a file that must exist (`name` is joined to `base` unless empty).
async fn fetch_required(fetcher: &Fetcher, base: &str, name: &str, cap: u64) -> Result<Vec<u8>> {
    let url = if name.is_empty() {
        base.to_owned()
    } else {
        join(base, name)
    };
    fetcher
        .fetch(&url, cap)
        .await?
        .ok_or_else(|| Error::Network {
            url,
            reason: "it does not exist (404)".into(),
        })
}

fn join(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

impl Repository {
    /// Starts trusting `root` (it must be signed by its own threshold) and
    /// stores it as `root.json` in `metadata_dir`.
    pub fn init(metadata_dir: &Path, root: &[u8]) -> Result<()> {
        TrustedSet::new(root, OffsetDateTime::now_utc())
            .map_err(|e| Error::Verification(format!("The trusted root is not valid: {e}")))?;
        updraft_fs::create_dir_all_durable(metadata_dir)?;
        persist(metadata_dir, "root.json", root)
    }

    /// Runs the whole update workflow against `metadata_url` (the folder that
    /// holds `N.root.json` and `timestamp.json`), with `now` as the one
    /// reference time for every expiry check.
    pub async fn refresh(
        metadata_dir: &Path,
        metadata_url: &str,
        fetcher: &Fetcher,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let verification = |what: &str, e: ProtocolError| {
            Error::Verification(format!(
                "`{}` failed verification: {e}",
                join(metadata_url, what)
            ))
        };
        let root_bytes = read_local(metadata_dir, "root.json").ok_or_else(|| {
            Error::Usage(format!(
                "`{}` holds no trusted root.json; initialise it first",
                metadata_dir.display()
            ))
        })?;
        let mut trusted = TrustedSet::new(&root_bytes, now).map_err(|e| {
            Error::Verification(format!("The local trusted root is not valid: {e}"))
        })?;
        let original_root: Root = trusted.root().signed.clone();

        // 5.3: the root chain, one version at a time, at most MAX_ROOT_ROTATIONS hops.
        for _ in 0..MAX_ROOT_ROTATIONS {
            let name = format!("{}.root.json", trusted.root().signed.version + 1);
            let Some(bytes) = fetcher
                .fetch(&join(metadata_url, &name), MAX_ROOT_BYTES)
                .await?
            else {
                break;
            };
            trusted
                .update_root(&bytes)
                .map_err(|e| verification(&name, e))?;
            persist(metadata_dir, "root.json", &bytes)?;
        }
        // 5.3.11: new timestamp or snapshot keys make the cached files worthless.
        if TrustedSet::online_keys_rotated(&original_root, &trusted.root().signed) {
            for name in ["timestamp.json", "snapshot.json"] {
                let _ = std::fs::remove_file(metadata_dir.join(name));
            }
        }

        // 5.4: timestamp. The cached one guards against rollback.
        if let Some(bytes) = read_local(metadata_dir, "timestamp.json") {
            let _ = trusted.load_trusted_timestamp(&bytes);
        }
        let bytes =
            fetch_required(fetcher, metadata_url, "timestamp.json", MAX_TIMESTAMP_BYTES).await?;
        match trusted.update_timestamp(&bytes) {
            Ok(()) => persist(metadata_dir, "timestamp.json", &bytes)?,
            // The same timestamp as the cached one: nothing new, keep it.
            Err(ProtocolError::EqualVersion { .. }) => {}
            Err(e) => return Err(verification("timestamp.json", e)),
        }

        // 5.5: snapshot.
        let pinned = trusted
            .timestamp()
            .expect("loaded")
            .signed
            .snapshot_meta()
            .clone();
        if let Some(bytes) = read_local(metadata_dir, "snapshot.json") {
            let _ = trusted.update_snapshot(&bytes, true);
        }
        let consistent = trusted.root().signed.consistent_snapshot;
        let name = if consistent {
            format!("{}.snapshot.json", pinned.version)
        } else {
            "snapshot.json".into()
        };
        let bytes = fetch_required(
            fetcher,
            metadata_url,
            &name,
            pinned.length.unwrap_or(MAX_SNAPSHOT_BYTES),
        )
        .await?;
        trusted
            .update_snapshot(&bytes, false)
            .map_err(|e| verification(&name, e))?;
        persist(metadata_dir, "snapshot.json", &bytes)?;

        // 5.6: targets; the cached copy is used when it is still the pinned one.
        let pinned = trusted
            .snapshot()
            .expect("loaded")
            .signed
            .meta
            .get("targets.json")
            .cloned()
            .ok_or_else(|| {
                Error::Verification(format!(
                    "`{}` does not list targets.json",
                    join(metadata_url, &name)
                ))
            })?;
        let cached = read_local(metadata_dir, "targets.json");
        let mut loaded = false;
        if let Some(bytes) = cached {
            let mut candidate = trusted.clone();
            if candidate.update_targets(&bytes).is_ok() {
                trusted = candidate;
                loaded = true;
            }
        }
        if !loaded {
            let name = if consistent {
                format!("{}.targets.json", pinned.version)
            } else {
                "targets.json".into()
            };
            let bytes = fetch_required(
                fetcher,
                metadata_url,
                &name,
                pinned.length.unwrap_or(MAX_TARGETS_BYTES),
            )
            .await?;
            trusted
                .update_targets(&bytes)
                .map_err(|e| verification(&name, e))?;
            persist(metadata_dir, "targets.json", &bytes)?;
        }

        // 5.6.7: every delegated role reachable from targets, pinned by the
        // snapshot and verified with its delegator's keys. A role that fails
        // is left out: the paths whose search reaches it resolve to nothing.
        let mut unavailable = Vec::new();
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
                let local = format!("{}.json", role_file_stem(&role));
                if let Some(bytes) = read_local(metadata_dir, &local) {
                    let mut candidate = trusted.clone();
                    if candidate
                        .update_delegated_targets(&bytes, &role, &parent)
                        .is_ok()
                    {
                        trusted = candidate;
                        continue;
                    }
                }
                let Some(pinned) = trusted
                    .snapshot()
                    .expect("loaded")
                    .signed
                    .meta
                    .get(&format!("{role}.json"))
                    .cloned()
                else {
                    unavailable.push((role, "the snapshot does not list it".into()));
                    continue;
                };
                let name = if consistent {
                    format!("{}.{local}", pinned.version)
                } else {
                    local.clone()
                };
                let url = join(metadata_url, &name);
                let Some(bytes) = fetcher
                    .fetch(&url, pinned.length.unwrap_or(MAX_TARGETS_BYTES))
                    .await?
                else {
                    unavailable.push((role, format!("`{url}` does not exist (404)")));
                    continue;
                };
                match trusted.update_delegated_targets(&bytes, &role, &parent) {
                    Ok(()) => persist(metadata_dir, &local, &bytes)?,
                    Err(e) => unavailable.push((role, format!("`{url}` failed verification: {e}"))),
                }
            }
        }
        Ok(Self::new(metadata_dir, trusted, unavailable))
    }

    fn new(metadata_dir: &Path, trusted: TrustedSet, unavailable: Vec<(String, String)>) -> Self {
        let mut resolved = trusted.targets().expect("loaded").signed.clone();
        resolved.targets = trusted.resolved_targets().0;
        Self {
            metadata_dir: metadata_dir.to_path_buf(),
            trusted,
            resolved,
            unavailable,
        }
    }

    /// Delegated roles that could not be loaded (role, reason): targets
    /// they would provide are missing from [`Repository::targets`].
    pub fn unavailable_roles(&self) -> &[(String, String)] {
        &self.unavailable
    }

    /// Looks one target up through the delegations (spec 5.6.7).
    pub fn find_target(&self, path: &str) -> Result<&TargetFile> {
        match self.trusted.find_target(path) {
            Lookup::Found(target, _) => Ok(target),
            Lookup::NotFound => Err(Error::Verification(format!(
                "`{path}` is not a signed target"
            ))),
            Lookup::Unavailable(role) => {
                let reason = self
                    .unavailable
                    .iter()
                    .find(|(r, _)| *r == role)
                    .map_or("it was not loaded", |(_, reason)| reason.as_str());
                Err(Error::Verification(format!(
                    "`{path}` cannot be looked up: the delegated role `{role}` is not trusted ({reason})"
                )))
            }
        }
    }

    /// Loads the metadata a refresh already verified and persisted, checking
    /// it again (signatures, pins and expiry) without any network access.
    pub fn refresh_offline(metadata_dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            read_local(metadata_dir, name).ok_or_else(|| {
                Error::Usage(format!(
                    "`{}` has no {name}; check for updates first",
                    metadata_dir.display()
                ))
            })
        };
        let local = |name: &str, e: ProtocolError| {
            Error::Verification(format!("the local `{name}` is no longer valid: {e}"))
        };
        let mut trusted = TrustedSet::new(&read("root.json")?, OffsetDateTime::now_utc())
            .map_err(|e| local("root.json", e))?;
        trusted
            .update_timestamp(&read("timestamp.json")?)
            .map_err(|e| local("timestamp.json", e))?;
        trusted
            .update_snapshot(&read("snapshot.json")?, true)
            .map_err(|e| local("snapshot.json", e))?;
        trusted
            .update_targets(&read("targets.json")?)
            .map_err(|e| local("targets.json", e))?;
        let mut unavailable = Vec::new();
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
                let name = format!("{}.json", role_file_stem(&role));
                let outcome = match read_local(metadata_dir, &name) {
                    Some(bytes) => trusted
                        .update_delegated_targets(&bytes, &role, &parent)
                        .map_err(|e| e.to_string()),
                    None => Err("it was never downloaded".into()),
                };
                if let Err(reason) = outcome {
                    unavailable.push((role, reason));
                }
            }
        }
        Ok(Self::new(metadata_dir, trusted, unavailable))
    }

    /// The verified targets, through the delegations: the top-level targets
    /// metadata whose `targets` holds every path the delegation search
    /// resolves (spec 5.6.7), each from the role trusted for it.
    pub fn targets(&self) -> &Targets {
        &self.resolved
    }

    /// The verified metadata set.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// Where the metadata is kept.
    pub fn metadata_dir(&self) -> &Path {
        &self.metadata_dir
    }

    /// The URL a target is fetched from under `target_base_url`.
    pub fn target_url(
        &self,
        target_base_url: &str,
        path: &str,
        target: &TargetFile,
    ) -> Result<String> {
        let checked = TargetPath::new(path)
            .map_err(|e| Error::Verification(format!("The target path is unsafe: {e}")))?;
        let relative = match (
            self.trusted.root().signed.consistent_snapshot,
            target.prefix_digest(),
        ) {
            (true, Some(hex)) => checked.with_hex_prefix(&hex),
            _ => checked.to_string(),
        };
        Ok(join(target_base_url, &relative))
    }

    /// Downloads a small target completely into memory, verified, and writes
    /// it to `dest` atomically. A `dest` that already has the signed hashes is
    /// kept without a download.
    pub async fn download_small_target(
        &self,
        fetcher: &Fetcher,
        target_base_url: &str,
        path: &str,
        dest: &Path,
    ) -> Result<()> {
        let target = self.find_target(path)?;
        if let Ok(existing) = std::fs::read(dest)
            && verify_bytes(path, target, &existing).is_ok()
        {
            return Ok(());
        }
        let url = self.target_url(target_base_url, path, target)?;
        let bytes = fetch_required(fetcher, &url, "", target.length).await?;
        verify_bytes(path, target, &bytes).map_err(|e| Error::verification(&e))?;
        if let Some(parent) = dest.parent() {
            updraft_fs::create_dir_all_durable(parent)?;
        }
        updraft_fs::write_atomic(dest, &bytes)?;
        Ok(())
    }
}

/// Checks bytes against a target's signed length and hashes.
pub fn verify_bytes(
    path: &str,
    target: &TargetFile,
    bytes: &[u8],
) -> std::result::Result<(), ProtocolError> {
    let mut checker = target.checker(path)?;
    checker.update(path, bytes)?;
    checker.finish(path, target)
}
