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
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{ReleaseManifest, TargetPath};

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

/// Unpacks `package` into `versions/{version}` checking every entry against
/// the signed `manifest` (paths, sizes, hashes, modes, links; nothing extra,
/// nothing missing, no special files). The folder only appears, renamed from
/// `versions/.{version}.partial`, once it is complete and synced. Call it
/// with the lock held and `versions/{version}` unreferenced by the state.
pub fn install_release(layout: &Layout, package: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let version = manifest.release.version.to_string();
    let failed = |reason: String| Error::Install {
        version: version.clone(),
        reason,
    };
    updraft_fs::create_dir_all_durable(&layout.versions())?;
    let final_dir = layout.versions().join(&version);
    let partial = layout.versions().join(format!(".{version}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| Error::io("remove", &partial, e))?;
    }
    fs::create_dir(&partial).map_err(|e| Error::io("create", &partial, e))?;
    let outcome = unpack(package, &partial, manifest).map_err(failed);
    if let Err(error) = outcome {
        let _ = fs::remove_dir_all(&partial);
        return Err(error);
    }
    updraft_fs::fault::point("prepare.unpacked");
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io("replace", &final_dir, e))?;
    }
    fs::rename(&partial, &final_dir).map_err(|e| Error::io("move into place", &final_dir, e))?;
    updraft_fs::fsync_dir(&layout.versions())?;
    updraft_fs::fault::point("prepare.placed");
    Ok(())
}

/// The first half of an update, safe while the old version runs: unpacks the
/// verified release into `versions/{version}` ([`install_release`]) and
/// records it as the state's `prepared` version. Call it with the lock held
/// after [`recover`].
pub fn prepare(layout: &Layout, package: &Path, manifest: &ReleaseManifest) -> Result<()> {
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
    install_release(layout, package, manifest)?;
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
                let _ = fs::remove_file(entry.path());
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

/// Writes a checked package into a fresh folder: folders and links as listed,
/// files created new (never through an existing path) with the manifest's mode.
struct Unpacker<'a> {
    into: &'a Path,
}

impl updraft_package::Sink for Unpacker<'_> {
    fn dir(&mut self, path: &TargetPath, mode: u32) -> std::result::Result<(), String> {
        let dest = self.into.join(path.as_str());
        fs::create_dir_all(&dest).map_err(|e| format!("cannot create `{path}`: {e}"))?;
        set_mode(&dest, mode)
    }

    fn open_file(
        &mut self,
        path: &TargetPath,
        _: &FileEntry,
    ) -> std::result::Result<Box<dyn Write + '_>, String> {
        let dest = self.into.join(path.as_str());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| format!("cannot write `{path}`: {e}"))?;
        Ok(Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            file,
        )))
    }

    fn close_file(
        &mut self,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> std::result::Result<(), String> {
        set_mode(&self.into.join(path.as_str()), entry.mode)
    }

    fn symlink(&mut self, path: &TargetPath, target: &str) -> std::result::Result<(), String> {
        let dest = self.into.join(path.as_str());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, &dest)
            .map_err(|e| format!("cannot create link `{path}`: {e}"))?;
        #[cfg(not(unix))]
        let _ = target;
        Ok(())
    }
}

/// Unpacks `package` into `into`, every entry checked against the signed
/// manifest by [`updraft_package::walk`], then makes the tree durable with one
/// syncfs (the folder only becomes visible, renamed, after this returns).
fn unpack(
    package: &Path,
    into: &Path,
    manifest: &ReleaseManifest,
) -> std::result::Result<(), String> {
    updraft_package::walk(package, manifest, &mut Unpacker { into })?;
    sync_tree(into).map_err(|e| format!("cannot sync the new version: {e}"))
}

fn set_mode(path: &Path, mode: u32) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| format!("cannot set the mode of `{}`: {e}", path.display()))?;
    }
    let _ = (path, mode);
    Ok(())
}

fn sync_tree(dir: &Path) -> std::io::Result<()> {
    let handle = fs::File::open(dir)?;
    rustix::fs::syncfs(&handle).map_err(std::io::Error::from)
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

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_protocol::Sha256Digest;
    use updraft_protocol::manifest::FORMAT_VERSION;

    fn manifest(files: &[FileEntry]) -> ReleaseManifest {
        let json = serde_json::json!({
            "format_version": FORMAT_VERSION, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
            "platform": "linux", "arch": "x86_64", "main": "bin/app", "release_date": "2026-01-01T00:00:00Z",
            "files": files,
        });
        serde_json::from_value(json).unwrap()
    }

    /// Name, type, content, link target.
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a str>);

    /// Writes a tar.zst with raw headers, so hostile names survive.
    fn package(dir: &Path, entries: &[RawEntry<'_>]) -> PathBuf {
        let path = dir.join("p.tar.zst");
        let file = fs::File::create(&path).unwrap();
        let encoder = zstd::stream::write::Encoder::new(file, 3)
            .unwrap()
            .auto_finish();
        let mut builder = tar::Builder::new(encoder);
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap();
        path
    }

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.parse().unwrap(),
            size: data.len() as u64,
            sha256: Sha256Digest::of(data),
            mode: 0o644,
        }
    }

    #[test]
    fn hostile_archives_are_refused_and_nothing_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let signed = manifest(&[entry("bin/app", b"ok")]);
        let cases: Vec<(Vec<RawEntry<'_>>, &str)> = vec![
            (
                vec![("../evil", tar::EntryType::Regular, b"x", None)],
                "`..`",
            ),
            (
                vec![("/etc/evil", tar::EntryType::Regular, b"x", None)],
                "relative",
            ),
            (
                vec![("C:/evil", tar::EntryType::Regular, b"x", None)],
                "drive",
            ),
            (
                vec![("bin/app", tar::EntryType::Symlink, b"", Some("/etc/passwd"))],
                "not in the manifest",
            ),
            (
                vec![("bin/app", tar::EntryType::Link, b"", Some("bin/other"))],
                "never installed",
            ),
            (
                vec![("dev", tar::EntryType::Char, b"", None)],
                "never installed",
            ),
            (
                vec![("bin/app", tar::EntryType::Regular, b"tampered", None)],
                "larger than the manifest says",
            ),
            (
                vec![("bin/app", tar::EntryType::Regular, b"no", None)],
                "differs from the signed manifest",
            ),
            (
                vec![("bin/extra", tar::EntryType::Regular, b"x", None)],
                "not in the manifest",
            ),
            (vec![], "lacks `bin/app`"),
        ];
        for (entries, words) in cases {
            let work = tempfile::tempdir_in(dir.path()).unwrap();
            let package = package(work.path(), &entries);
            let into = work.path().join("into");
            fs::create_dir(&into).unwrap();
            let error = unpack(&package, &into, &signed).unwrap_err();
            assert!(error.contains(words), "{entries:?}: {error}");
            assert!(!dir.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        }
        let work = tempfile::tempdir_in(dir.path()).unwrap();
        let good = package(
            work.path(),
            &[("bin/app", tar::EntryType::Regular, b"ok", None)],
        );
        let into = work.path().join("into");
        fs::create_dir(&into).unwrap();
        unpack(&good, &into, &signed).unwrap();
        assert_eq!(fs::read(into.join("bin/app")).unwrap(), b"ok");
    }
}
