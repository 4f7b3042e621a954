//! The install folder's paths and the state updraft keeps about it.
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
//!   .updraft/lock                  held by whichever updraft is changing the install
//!   .updraft/running/{v}.lock      held (shared) by every `updraft run` of version v
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::install::Install;

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
    /// Creates `.updraft/staging/` (durably) if needed, private to this user
    /// (0700), and returns it.
    pub fn create_staging(&self) -> Result<PathBuf> {
        let staging = self.staging();
        updraft_fs::create_dir_all_durable(&staging)?;
        crate::os::make_private(&staging);
        Ok(staging)
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

    /// Refuses ([`Error::Untrusted`], naming the path and what to do) an
    /// install that no longer belongs to the user running updraft: the
    /// folder, `update_config.json`, `.updraft/` and the state, the trusted
    /// metadata, the updater, `versions/` or `current` owned by another user
    /// (not root) or writable by group or others, or `current` not a link to
    /// `versions/{version}`. Paths that do not exist yet are skipped.
    /// Opening an [`Install`] and [`InstallState::load`] run it first.
    pub fn check_trusted(&self) -> Result<()> {
        crate::trust::check_install(self)
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
    /// an interrupted install and cleaning up (through [`Install::open_if_free`])
    /// when no other updraft holds the install's lock; when one does, reads
    /// the last committed state.
    pub fn load(layout: &Layout) -> Result<Self> {
        if !layout.state().exists() {
            return Self::read(layout);
        }
        layout.check_trusted()?;
        if let Some(install) = Install::open_if_free(&layout.root)? {
            return install.state();
        }
        Self::read(layout)
    }

    /// Reads the state as it is on disk: the last committed state. Under the
    /// install's lock, read it with [`Install::state`].
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

    /// Writes the state atomically. Only for a new install, which no other
    /// process knows yet; under the install's lock, use [`Install::save`].
    pub fn save(&self, layout: &Layout) -> Result<()> {
        updraft_fs::write_atomic(&layout.state(), &self.to_bytes())?;
        Ok(())
    }

    /// The state as written to `state.json` (and to the journal's intent).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        bytes.push(b'\n');
        bytes
    }

    /// A fresh random install id.
    pub fn new_install_id() -> String {
        let mut bytes = [0u8; 16];
        let _ = getrandom::fill(&mut bytes);
        hex::encode(bytes)
    }
}
