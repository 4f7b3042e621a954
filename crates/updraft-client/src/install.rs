//! The install folder, its state, and putting a verified release in place.
//!
//! ```text
//! INSTALL_DIR/
//!   update_config.json
//!   current -> versions/1.1.0      the running version (a symlink, replaced atomically)
//!   versions/1.1.0/                exactly the published files
//!   versions/1.0.0/                the previous version, kept for rollback
//!   data/                          the app's own files (settings, logs): never touched
//!   .updraft/bin/updraft           the updater, outside the app's files
//!   .updraft/metadata/             trusted TUF metadata
//!   .updraft/staging/              downloads in progress (private)
//!   .updraft/state.json            install id, versions, skip and remind-later state
//!   .updraft/state.next.json       a switch in progress (the journal's intent)
//! ```
//!
//! An update happens in two halves. [`prepare`] unpacks the verified release
//! into a fresh `versions/{version}` while the old version may still run, and
//! records it as `prepared`. [`activate`] (after the app has exited) switches
//! `current` with one journaled atomic rename and drops old versions beyond
//! `backup_count`. The app's files are never modified in place, and every
//! step that removes or replaces something is preceded by a durable state
//! write that [`recover`] uses to finish or undo it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use updraft_protocol::ReleaseManifest;

use crate::config::InstallSettings;
use crate::error::{Error, Result};

/// Paths inside an install folder.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The install folder.
    pub root: PathBuf,
}

impl Layout {
    /// The layout of `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    /// `update_config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("update_config.json")
    }
    /// `.updraft/`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".updraft")
    }
    /// `.updraft/metadata/`.
    pub fn metadata(&self) -> PathBuf {
        self.state_dir().join("metadata")
    }
    /// `.updraft/staging/`.
    pub fn staging(&self) -> PathBuf {
        self.state_dir().join("staging")
    }
    /// `.updraft/state.json`.
    pub fn state(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }
    /// `.updraft/state.next.json`: a switch in progress.
    pub fn next_state(&self) -> PathBuf {
        self.state_dir().join("state.next.json")
    }
    /// `versions/`.
    pub fn versions(&self) -> PathBuf {
        self.root.join("versions")
    }
    /// `current`.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }
    /// `.updraft/lock`.
    pub fn lock(&self) -> PathBuf {
        self.state_dir().join("lock")
    }
    /// `data/`: where the app keeps files it makes at run time. Updates and
    /// rollbacks never touch it; `updraft run` exports it as `UPDRAFT_DATA_DIR`.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    /// `.updraft/bin/updraft`: the updater program, outside the app's files.
    pub fn updater(&self) -> PathBuf {
        self.state_dir()
            .join("bin")
            .join(format!("updraft{}", std::env::consts::EXE_SUFFIX))
    }
    /// `.updraft/running/{version}.lock`: held (shared) by every `updraft run`
    /// of that version while the app runs, so its folder is never removed
    /// under it.
    pub fn running_lock(&self, version: &str) -> PathBuf {
        self.state_dir()
            .join("running")
            .join(format!("{version}.lock"))
    }
    /// `.updraft/updater.log`: what a handed-off updater printed.
    pub fn updater_log(&self) -> PathBuf {
        self.state_dir().join("updater.log")
    }
}

/// What updraft remembers about an install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallState {
    /// App id.
    pub app: String,
    /// Platform.
    pub platform: String,
    /// Arch.
    pub arch: String,
    /// Installed version.
    pub current_version: String,
    /// Earlier versions still on disk, newest first.
    #[serde(default)]
    pub previous_versions: Vec<String>,
    /// Random id for staged rollout, made once.
    pub install_id: String,
    /// Versions the user chose to skip.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// "Remind me later": no prompt before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_after: Option<String>,
    /// The new version waits for its health confirmation.
    #[serde(default)]
    pub pending_confirm: bool,
    /// When the pending version was installed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<String>,
    /// Launches of the pending version so far.
    #[serde(default)]
    pub pending_launches: u32,
    /// Versions that failed their health check: never offered again.
    #[serde(default)]
    pub bad_versions: Vec<String>,
    /// Each kept version's main program, relative to its folder.
    #[serde(default)]
    pub mains: BTreeMap<String, String>,
    /// A version unpacked and verified in `versions/`, waiting for the app to
    /// exit so it can be switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared: Option<String>,
}

impl InstallState {
    /// Reads the state, if the install has one, first finishing or undoing
    /// an interrupted install and cleaning up (see [`recover`]) when no other
    /// updraft holds the install's lock.
    pub fn load(layout: &Layout) -> Result<Self> {
        if layout.state().exists()
            && let Ok(_lock) = updraft_fs::StoreLock::try_acquire(&layout.lock())
        {
            recover(layout)?;
        }
        Self::read(layout)
    }

    /// Reads the state as it is on disk (the caller holds the lock and has recovered).
    pub fn read(layout: &Layout) -> Result<Self> {
        let path = layout.state();
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!("`{}` is not an updraft install (no `.updraft/state.json`); create one with `updraft install`", layout.root.display()))
            } else {
                Error::io("read", &path, e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Install {
            version: "(state)".into(),
            reason: format!("`{}` is corrupt: {e}", path.display()),
        })
    }

    /// Writes the state atomically.
    pub fn save(&self, layout: &Layout) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        bytes.push(b'\n');
        updraft_fs::write_atomic(&layout.state(), &bytes)?;
        Ok(())
    }

    /// A fresh random install id.
    pub fn new_install_id() -> String {
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        hex::encode(bytes)
    }
}

/// Moves `staged`, a release unpacked and checked against its signed
/// `manifest` (every file's size, hash and mode) and synced, into
/// `versions/{version}` with one rename. Call it with the lock held and
/// `versions/{version}` unreferenced by the state.
pub fn install_release(layout: &Layout, staged: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let version = manifest.release.version.to_string();
    updraft_fs::create_dir_all_durable(&layout.versions())?;
    let final_dir = layout.versions().join(&version);
    if !staged.is_dir() {
        return Err(Error::Install {
            version,
            reason: format!("its unpacked files `{}` are missing", staged.display()),
        });
    }
    updraft_fs::fault::point("prepare.unpacked");
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io("replace", &final_dir, e))?;
    }
    fs::rename(staged, &final_dir).map_err(|e| Error::io("move into place", &final_dir, e))?;
    updraft_fs::fsync_dir(&layout.versions())?;
    updraft_fs::fault::point("prepare.placed");
    Ok(())
}

/// The first half of an update, safe while the old version runs: moves the
/// verified, unpacked release into `versions/{version}` ([`install_release`])
/// and records it as the state's `prepared` version. Call it with the lock
/// held after [`recover`].
pub fn prepare(layout: &Layout, staged: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let version = manifest.release.version.to_string();
    let mut state = InstallState::read(layout)?;
    if state.current_version == version {
        return Err(Error::Install {
            version,
            reason: "it is already the installed version".into(),
        });
    }
    // A kept copy of this version (after a requested rollback) is about to be
    // replaced: forget it first, so no state ever names a half-removed folder.
    let earlier = state.prepared.take();
    if state.previous_versions.contains(&version) || earlier.is_some() {
        state.previous_versions.retain(|v| v != &version);
        if let Some(earlier) = &earlier {
            state.mains.remove(earlier);
        }
        state.mains.remove(&version);
        state.save(layout)?;
        updraft_fs::fault::point("prepare.forgotten");
        if let Some(earlier) = earlier.filter(|e| e != &version) {
            remove_version(layout, &earlier)?;
        }
    }
    install_release(layout, staged, manifest)?;
    state.prepared = Some(version.clone());
    state
        .mains
        .insert(version, manifest.release.main.to_string());
    state.save(layout)?;
    updraft_fs::fault::point("prepare.recorded");
    Ok(())
}

/// What [`activate`] switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// The version that was current.
    pub from: String,
    /// The version now current.
    pub to: String,
}

/// The second half of an update, once the app has exited: makes the prepared
/// version current with [`commit_switch`], marks it pending its health
/// confirmation when there is a version to return to, and removes versions
/// beyond `backup_count`. Returns `None` when nothing is prepared. Call it
/// with the lock held after [`recover`].
pub fn activate(layout: &Layout, settings: &InstallSettings) -> Result<Option<Switched>> {
    let mut state = InstallState::read(layout)?;
    let Some(version) = state.prepared.take() else {
        return Ok(None);
    };
    if !layout.versions().join(&version).is_dir() {
        state.mains.remove(&version);
        state.save(layout)?;
        return Err(Error::Install {
            version,
            reason: "its prepared folder is missing; it will be downloaded again".into(),
        });
    }
    let previous = std::mem::replace(&mut state.current_version, version.clone());
    if layout.versions().join(&previous).is_dir() {
        state.previous_versions.retain(|v| v != &previous);
        state.previous_versions.insert(0, previous.clone());
    } else {
        state.mains.remove(&previous);
    }
    state.skipped.retain(|v| v != &version);
    state.remind_after = None;
    let keep = if settings.backup_enabled {
        settings.backup_count as usize
    } else {
        0
    };
    let removed = prune(&mut state, keep);
    // The new version must confirm a healthy start (`updraft confirm`), or
    // `updraft run` restores the previous one.
    state.pending_confirm = !state.previous_versions.is_empty() && settings.rollback_on_failure;
    // Its time limit starts at its first launch (`health::run`).
    state.pending_since = None;
    state.pending_launches = 0;
    commit_switch(layout, &state)?;
    for old in removed {
        remove_version(layout, &old)?;
        updraft_fs::fault::point("prune.removed");
    }
    Ok(Some(Switched {
        from: previous,
        to: version,
    }))
}

/// Marks `version` as running for as long as the returned file stays open
/// (a shared lock: any number of copies may run).
pub fn hold_running(layout: &Layout, version: &str) -> Result<fs::File> {
    let path = layout.running_lock(version);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    file.lock_shared()
        .map_err(|e| Error::io("lock", &path, e))?;
    Ok(file)
}

/// Some `updraft run` of `version` is still running.
fn in_use(layout: &Layout, version: &str) -> bool {
    let Ok(file) = fs::OpenOptions::new()
        .write(true)
        .open(layout.running_lock(version))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock))
}

/// Removes `versions/{version}`, which no state names any more, unless a
/// copy of it is still running (recovery removes it once it has exited).
fn remove_version(layout: &Layout, version: &str) -> Result<()> {
    if in_use(layout, version) {
        return Ok(());
    }
    let dir = layout.versions().join(version);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &dir, e)),
        _ => Ok(()),
    }
}

/// Makes `next` the install's state and points `current` at
/// `next.current_version`, as one crash-safe step:
///
/// 1. write `state.next.json` (the intent) durably;
/// 2. switch `current` with one atomic rename;
/// 3. rename `state.next.json` over `state.json`.
///
/// A process killed anywhere in between is finished or undone by
/// [`recover`]: if `current` already points at the new version the intent is
/// committed, otherwise it is dropped. Call it with the install's lock held.
pub fn commit_switch(layout: &Layout, next: &InstallState) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(next).expect("state serialises");
    bytes.push(b'\n');
    updraft_fs::write_atomic(&layout.next_state(), &bytes)?;
    updraft_fs::fault::point("switch.intent");
    switch_current(layout, &next.current_version)?;
    updraft_fs::fault::point("switch.switched");
    fs::rename(layout.next_state(), layout.state())
        .map_err(|e| Error::io("commit", layout.state(), e))?;
    updraft_fs::fsync_dir(&layout.state_dir())?;
    updraft_fs::fault::point("switch.committed");
    Ok(())
}

/// Staged downloads untouched this long are abandoned and removed.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_hours(7 * 24);

/// Finishes or undoes whatever a killed process left half done, then cleans
/// up. Every entry point calls it with the install's lock held:
///
/// - a switch with its intent written ([`commit_switch`]) is committed if
///   `current` already points at the new version, and dropped otherwise;
/// - half-unpacked `versions/.*.partial` folders, a stray `.current.new`
///   link, and version folders the state no longer names (half-made
///   releases, versions pruned or rolled back from) are removed;
/// - a `prepared` version whose folder is gone is forgotten;
/// - staged downloads untouched for 7 days are removed.
///
/// Returns true when it changed something.
pub fn recover(layout: &Layout) -> Result<bool> {
    let mut changed = false;
    let next_path = layout.next_state();
    if let Ok(bytes) = fs::read(&next_path) {
        let next: Option<InstallState> = serde_json::from_slice(&bytes).ok();
        let linked = fs::read_link(layout.current()).ok();
        let done = next.as_ref().is_some_and(|next| {
            linked.as_deref() == Some(Path::new(&format!("versions/{}", next.current_version)))
        });
        if done {
            fs::rename(&next_path, layout.state())
                .map_err(|e| Error::io("commit", layout.state(), e))?;
        } else {
            fs::remove_file(&next_path).map_err(|e| Error::io("remove", &next_path, e))?;
        }
        updraft_fs::fsync_dir(&layout.state_dir())?;
        changed = true;
    }
    let stray_link = layout.root.join(".current.new");
    if fs::symlink_metadata(&stray_link).is_ok() {
        fs::remove_file(&stray_link).map_err(|e| Error::io("remove", &stray_link, e))?;
        changed = true;
    }
    let Ok(mut state) = InstallState::read(layout) else {
        return Ok(changed);
    };
    if let Some(prepared) = state.prepared.clone()
        && !layout.versions().join(&prepared).is_dir()
    {
        state.prepared = None;
        state.mains.remove(&prepared);
        state.save(layout)?;
        changed = true;
    }
    // Whatever `current` points at is never removed, whatever the state says.
    let linked = fs::read_link(layout.current()).ok().and_then(|link| {
        link.strip_prefix("versions")
            .ok()
            .map(|v| v.to_string_lossy().into_owned())
    });
    if let Ok(entries) = fs::read_dir(layout.versions()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = name == state.current_version
                || state.prepared.as_deref() == Some(name.as_str())
                || state.previous_versions.contains(&name)
                || linked.as_deref() == Some(name.as_str());
            if !named && !in_use(layout, &name) {
                let path = entry.path();
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.map_err(|e| Error::io("remove", &path, e))?;
                changed = true;
            }
        }
    }
    if let Ok(entries) = fs::read_dir(layout.staging()) {
        let now = std::time::SystemTime::now();
        for entry in entries.flatten() {
            // A lock file may be held however old it is (its mtime never moves).
            if entry.file_name().to_string_lossy().ends_with(".lock") {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > STALE_STAGING);
            if stale {
                let path = entry.path();
                let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Atomically points `current` at `versions/{version}`.
pub fn switch_current(layout: &Layout, version: &str) -> Result<()> {
    let link = layout.current();
    let temp = layout.root.join(".current.new");
    let _ = fs::remove_file(&temp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(format!("versions/{version}"), &temp)
        .map_err(|e| Error::io("create the link", &temp, e))?;
    #[cfg(not(unix))]
    return Err(Error::Install {
        version: version.into(),
        reason: "switching versions needs the installer on this platform".into(),
    });
    #[cfg(unix)]
    {
        fs::rename(&temp, &link).map_err(|e| Error::io("switch", &link, e))?;
        updraft_fs::fsync_dir(&layout.root)?;
        Ok(())
    }
}

/// Drops versions beyond the newest `keep` previous ones from `state` and
/// returns them; delete their folders once the new state is committed.
pub fn prune(state: &mut InstallState, keep: usize) -> Vec<String> {
    let mut removed = Vec::new();
    while state.previous_versions.len() > keep {
        if let Some(old) = state.previous_versions.pop() {
            state.mains.remove(&old);
            removed.push(old);
        }
    }
    removed
}
