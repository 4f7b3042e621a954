//! The hand-off from a running app to the separate updater process.
//!
//! An app cannot safely replace itself while it runs (on Windows it cannot
//! at all), so the app prepares the update (unpacked beside the running
//! version), starts the updater, and exits. The updater, which lives outside
//! the app's files in `.updraft/bin/`, waits for the app's process to exit,
//! switches versions, restarts the app, and exits:
//!
//! ```text
//! app:      check → download → prepare → apply_on_exit() → exit
//! updater:                               wait for pid → activate → run app → exit
//! ```
//!
//! The user's downtime is the time from the app's exit to the new version's
//! start: one atomic rename and a process start, whatever the app's size.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::os;

/// How the app hands the prepared update to the updater ([`start_updater`];
/// `UpdateManager::apply_on_exit` in `updraft-client`).
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The process to wait for; this process when `None`.
    pub wait_pid: Option<u32>,
    /// How long the updater waits for it before giving up (the update then
    /// stays prepared and is applied by the next `updraft run`).
    pub wait_timeout: Duration,
    /// Restart the app with these arguments after the switch (when
    /// `install_settings.auto_restart` is on); `None` does not restart.
    pub restart_args: Option<Vec<String>>,
}

impl Default for Handoff {
    fn default() -> Self {
        Self {
            wait_pid: None,
            wait_timeout: Duration::from_mins(1),
            restart_args: Some(Vec::new()),
        }
    }
}

/// The updater program: `$UPDRAFT_UPDATER` if set, else the install's own
/// `.updraft/bin/updraft` (put there by `updraft install`).
pub fn updater_path(layout: &Layout) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("UPDRAFT_UPDATER") {
        return Ok(path.into());
    }
    let path = layout.updater();
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Usage(format!(
            "`{}` has no updater at `{}`: install with `updraft install`, or set UPDRAFT_UPDATER",
            layout.root.display(),
            path.display(),
        )))
    }
}

/// Puts the updater program `program` (normally the running `updraft`) at
/// `.updraft/bin/updraft`, atomically: a hard link when the file system
/// allows, a copy otherwise.
pub fn install_updater(layout: &Layout, program: &Path) -> Result<()> {
    let dest = layout.updater();
    let bin = dest.parent().expect("the updater has a folder");
    updraft_fs::create_dir_all_durable(bin)?;
    updraft_fs::link_or_copy_atomic(program, &dest)?;
    Ok(())
}

/// Starts the updater ([`updater_path`]) as `updraft apply --dir DIR
/// --wait-pid PID --wait-timeout S [--restart -- ARGS]` in its own process
/// group, its output appended to `.updraft/updater.log`, and returns its
/// process id. It waits for `handoff.wait_pid` (this process by default)
/// to exit, switches versions, and restarts the app.
pub fn start_updater(layout: &Layout, handoff: &Handoff) -> Result<u32> {
    let updater = updater_path(layout)?;
    let log_path = layout.updater_log();
    let log = os::open_private_log(&log_path)?;
    let mut command = Command::new(&updater);
    command
        .arg("apply")
        .arg("--dir")
        .arg(&layout.root)
        .arg("--wait-pid")
        .arg(
            handoff
                .wait_pid
                .unwrap_or_else(std::process::id)
                .to_string(),
        )
        .arg("--wait-timeout")
        .arg(handoff.wait_timeout.as_secs().max(1).to_string());
    if let Some(args) = &handoff.restart_args {
        command.arg("--restart").arg("--").args(args);
    }
    command
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| Error::io("open", &log_path, e))?,
        )
        .stderr(log);
    // Its own process group: a Ctrl-C meant for the app does not stop it.
    os::own_process_group(&mut command);
    let child = command
        .spawn()
        .map_err(|e| Error::io("start", &updater, e))?;
    Ok(child.id())
}

/// Waits until process `pid` has exited, at most `timeout` (on Linux on a
/// pidfd, so it returns the instant the process is gone; elsewhere by
/// polling every 5 ms). Gives up with an install error: the update stays
/// prepared and the next `updraft run` applies it.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> Result<()> {
    os::wait_for_exit(pid, timeout, &|| false).map(drop)
}

/// [`wait_for_exit`], which also stops waiting as soon as `stop` returns
/// true (asked every 50 ms): `Ok(true)` when the process has exited,
/// `Ok(false)` when stopped. The update stays prepared either way.
pub fn wait_for_exit_unless(pid: u32, timeout: Duration, stop: &dyn Fn() -> bool) -> Result<bool> {
    os::wait_for_exit(pid, timeout, stop)
}
