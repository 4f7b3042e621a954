//! [`Install`]: the one handle on an install folder. Opening it takes the
//! install's lock (`.updraft/lock`) and runs recovery once; every change to
//! the install (prepare, activate, confirm, rollback, a saved choice, a
//! launch) is a method on it, so none can run unlocked or unrecovered.
//!
//! An update happens in two halves. [`Install::prepare`] unpacks the verified
//! release into a fresh `versions/{version}` while the old version may still
//! run, and records it as `prepared`. [`Install::activate`] (after the app
//! has exited) switches `current` with one journaled atomic rename and drops
//! old versions beyond `backup_count`. The app's files are never modified in
//! place, and every step that removes or replaces something is preceded by a
//! durable state write that recovery uses to finish or undo it.

use std::path::Path;
use std::time::Duration;

use updraft_fs::StoreLock;
use updraft_protocol::ReleaseManifest;

use crate::config::InstallSettings;
use crate::error::{Error, Result};
use crate::journal::{commit_switch, prune, recover, remove_version};
use crate::layout::{InstallState, Layout};
use crate::release::install_release;

/// An install folder opened for changes: its lock is held, and whatever a
/// killed process left half done has been finished or undone, until this
/// value is dropped.
///
/// ```no_run
/// # fn demo() -> Result<(), updraft_installer::Error> {
/// use updraft_installer::{Install, RollbackReason};
/// let install = Install::open("/opt/kuzflow".as_ref())?;
/// let state = install.rollback(RollbackReason::Requested)?;
/// println!("back on {}", state.current_version);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Install {
    layout: Layout,
    _lock: StoreLock,
}

/// How [`take_lock`] waits for another holder of the lock.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    Forever,
    Within(Duration),
}

impl Install {
    /// Opens the install in `dir`, waiting for another updraft that holds its lock.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::lock(dir, Wait::Forever)
    }

    /// Opens the install in `dir`, failing at once (an install error:
    /// "locked by another updraft process") when another updraft holds its lock.
    pub fn try_open(dir: &Path) -> Result<Self> {
        Self::lock(dir, Wait::No)
    }

    /// Opens the install in `dir`, waiting at most `timeout` for another
    /// updraft that holds its lock.
    pub fn open_within(dir: &Path, timeout: Duration) -> Result<Self> {
        Self::lock(dir, Wait::Within(timeout))
    }

    /// Opens the install in `dir` if its lock is free; `None` when another
    /// updraft is at work (or the lock cannot be taken), whose last committed
    /// state is then what [`InstallState::read`] returns.
    pub fn open_if_free(dir: &Path) -> Result<Option<Self>> {
        let layout = Layout::new(dir);
        check_trusted(&layout)?;
        match take_lock(&layout, Wait::No) {
            Ok(lock) => Self::recovered(layout, lock).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn lock(dir: &Path, wait: Wait) -> Result<Self> {
        let layout = Layout::new(dir);
        check_trusted(&layout)?;
        let lock = take_lock(&layout, wait)?;
        Self::recovered(layout, lock)
    }

    /// The one place recovery runs: right after the lock is taken.
    fn recovered(layout: Layout, lock: StoreLock) -> Result<Self> {
        recover(&layout)?;
        Ok(Self {
            layout,
            _lock: lock,
        })
    }

    /// The install's paths.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The install's state.
    pub fn state(&self) -> Result<InstallState> {
        InstallState::read(&self.layout)
    }

    /// Replaces the install's state, atomically.
    pub fn save(&self, state: &InstallState) -> Result<()> {
        state.save(&self.layout)
    }

    /// Changes the install's state, starting from what is on disk (another
    /// process may have switched versions since it was last read), and
    /// returns the new state.
    pub fn update_state(&self, change: impl FnOnce(&mut InstallState)) -> Result<InstallState> {
        let mut state = self.state()?;
        change(&mut state);
        self.save(&state)?;
        Ok(state)
    }

    /// The first half of an update, safe while the old version runs: moves
    /// the verified release, unpacked in `staged`, into `versions/{version}`
    /// ([`install_release`]) and records it as the state's `prepared` version.
    pub fn prepare(&self, staged: &Path, manifest: &ReleaseManifest) -> Result<()> {
        let version = manifest.release.version.to_string();
        let mut state = self.state()?;
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
            self.save(&state)?;
            updraft_fs::fault::point("prepare.forgotten");
            if let Some(earlier) = earlier.filter(|e| e != &version) {
                remove_version(&self.layout, &earlier)?;
            }
        }
        install_release(&self.layout, staged, manifest)?;
        state.prepared = Some(version.clone());
        state
            .mains
            .insert(version, manifest.release.main.to_string());
        self.save(&state)?;
        updraft_fs::fault::point("prepare.recorded");
        Ok(())
    }

    /// The second half of an update, once the app has exited: makes the
    /// prepared version current with one journaled switch, marks it pending
    /// its health confirmation when there is a version to return to, and
    /// removes versions beyond `backup_count`. Returns `None` when nothing is
    /// prepared.
    pub fn activate(&self, settings: &InstallSettings) -> Result<Option<Switched>> {
        let mut state = self.state()?;
        let Some(version) = state.prepared.take() else {
            return Ok(None);
        };
        if !self.layout.versions().join(&version).is_dir() {
            state.mains.remove(&version);
            self.save(&state)?;
            return Err(Error::Install {
                version,
                reason: "its prepared folder is missing; it will be downloaded again".into(),
            });
        }
        let previous = std::mem::replace(&mut state.current_version, version.clone());
        if self.layout.versions().join(&previous).is_dir() {
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
        // Its time limit starts at its first launch (`updraft run`).
        state.pending_since = None;
        state.pending_launches = 0;
        commit_switch(&self.layout, &state)?;
        for old in removed {
            remove_version(&self.layout, &old)?;
            updraft_fs::fault::point("prune.removed");
        }
        Ok(Some(Switched {
            from: previous,
            to: version,
        }))
    }

    /// Marks the current version healthy.
    pub fn confirm(&self) -> Result<InstallState> {
        self.update_state(|state| {
            state.pending_confirm = false;
            state.pending_since = None;
            state.pending_launches = 0;
        })
    }

    /// Returns to the previous version with the same journaled switch. It also
    /// cancels an update prepared but not yet applied. A requested rollback
    /// keeps the newer version, so a second one goes forward again; a failed
    /// version is removed and recorded in `bad_versions`.
    pub fn rollback(&self, reason: RollbackReason) -> Result<InstallState> {
        let mut state = self.state()?;
        let Some(previous) = state.previous_versions.first().cloned() else {
            return Err(Error::Usage(format!(
                "`{}` has no previous version to return to",
                self.layout.root.display()
            )));
        };
        if !self.layout.versions().join(&previous).is_dir() {
            return Err(Error::Install {
                version: previous.clone(),
                reason: "its folder is missing".into(),
            });
        }
        let failed = std::mem::replace(&mut state.current_version, previous);
        state.previous_versions.remove(0);
        // Going back cancels an update waiting to be applied (recovery removes its folder).
        if let Some(prepared) = state.prepared.take() {
            state.mains.remove(&prepared);
        }
        state.pending_confirm = false;
        state.pending_since = None;
        state.pending_launches = 0;
        match reason {
            RollbackReason::Requested => state.previous_versions.insert(0, failed.clone()),
            RollbackReason::Failed => {
                if !state.bad_versions.contains(&failed) {
                    state.bad_versions.push(failed.clone());
                }
                state.mains.remove(&failed);
            }
        }
        commit_switch(&self.layout, &state)?;
        if reason == RollbackReason::Failed {
            let _ = std::fs::remove_dir_all(self.layout.versions().join(&failed));
        }
        Ok(state)
    }

    /// Marks `version` as running for as long as the returned file stays open
    /// (a shared lock: any number of copies may run). Taken under the
    /// install's lock, so no prune can slip in before it.
    pub(crate) fn hold_running(&self, version: &str) -> Result<std::fs::File> {
        crate::os::hold_shared(&self.layout.running_lock(version))
    }
}

/// Refuses an install that no longer belongs to this user
/// ([`Layout::check_trusted`]) before its lock file is even opened; a folder
/// that is not an install yet is left to the caller to report.
fn check_trusted(layout: &Layout) -> Result<()> {
    if layout.state().exists() {
        layout.check_trusted()?;
    }
    Ok(())
}

/// Takes `.updraft/lock`, waiting as `wait` says.
fn take_lock(layout: &Layout, wait: Wait) -> Result<StoreLock, updraft_fs::Error> {
    let path = layout.lock();
    match wait {
        Wait::No => StoreLock::try_acquire(&path),
        Wait::Forever => StoreLock::acquire(&path),
        Wait::Within(timeout) => StoreLock::acquire_within(&path, timeout),
    }
}

/// What [`Install::activate`] switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// The version that was current.
    pub from: String,
    /// The version now current.
    pub to: String,
}

/// Why a rollback happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackReason {
    /// The user asked ("Revert to previous version"): the newer version is kept on disk.
    Requested,
    /// The new version failed its health check: it is removed and never offered again.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An install of 1.0.0 with 1.1.0 unpacked beside it, `current` at 1.0.0,
    /// and a switch to 1.1.0 whose intent is written.
    fn interrupted_switch(dir: &Path) -> Layout {
        let layout = Layout::new(dir);
        for version in ["1.0.0", "1.1.0"] {
            std::fs::create_dir_all(layout.versions().join(version)).unwrap();
        }
        std::fs::create_dir_all(layout.state_dir()).unwrap();
        crate::os::switch_current(&layout.current(), "1.0.0").unwrap();
        let old = InstallState {
            current_version: "1.0.0".into(),
            prepared: Some("1.1.0".into()),
            ..InstallState::default()
        };
        old.save(&layout).unwrap();
        let next = InstallState {
            current_version: "1.1.0".into(),
            previous_versions: vec!["1.0.0".into()],
            ..InstallState::default()
        };
        updraft_fs::write_atomic(&layout.next_state(), &next.to_bytes()).unwrap();
        layout
    }

    #[test]
    fn opening_commits_a_switch_killed_after_current_moved() {
        let dir = tempfile::tempdir().unwrap();
        let layout = interrupted_switch(dir.path());
        crate::os::switch_current(&layout.current(), "1.1.0").unwrap();
        let install = Install::open(dir.path()).unwrap();
        assert_eq!(install.state().unwrap().current_version, "1.1.0");
        assert!(!layout.next_state().exists());
        assert!(
            layout.versions().join("1.0.0").is_dir(),
            "kept for rollback"
        );
    }

    #[test]
    fn opening_drops_a_switch_killed_before_current_moved() {
        let dir = tempfile::tempdir().unwrap();
        let layout = interrupted_switch(dir.path());
        let install = Install::open(dir.path()).unwrap();
        let state = install.state().unwrap();
        assert_eq!(state.current_version, "1.0.0");
        assert_eq!(state.prepared.as_deref(), Some("1.1.0"), "still prepared");
        assert!(!layout.next_state().exists());
    }

    #[test]
    fn a_second_handle_is_refused_or_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        interrupted_switch(dir.path());
        let first = Install::try_open(dir.path()).unwrap();
        let refused = Install::try_open(dir.path()).unwrap_err();
        assert_eq!(refused.kind(), crate::ErrorKind::Install);
        assert!(
            refused
                .to_string()
                .contains("locked by another updraft process")
        );
        assert!(Install::open_within(dir.path(), Duration::from_millis(50)).is_err());
        assert!(Install::open_if_free(dir.path()).unwrap().is_none());
        drop(first);
        assert!(Install::open_if_free(dir.path()).unwrap().is_some());
    }
}
