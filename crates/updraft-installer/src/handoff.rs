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
use std::time::Duration;

use crate::error::{Error, Result};
use crate::install::Layout;

/// How [`UpdateManager::apply_on_exit`](crate::UpdateManager::apply_on_exit) hands off.
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
    let temp = bin.join(".updraft.new");
    let _ = std::fs::remove_file(&temp);
    if std::fs::hard_link(program, &temp).is_err() {
        std::fs::copy(program, &temp).map_err(|e| Error::io("copy the updater to", &temp, e))?;
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync", &temp, e))?;
    }
    std::fs::rename(&temp, &dest).map_err(|e| Error::io("install the updater as", &dest, e))?;
    updraft_fs::fsync_dir(bin)?;
    Ok(())
}

/// Waits until process `pid` has exited, at most `timeout`. On Linux this
/// waits on a pidfd, so it returns the instant the process is gone (even
/// before its parent reaps it); elsewhere it polls every 5 ms.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> Result<()> {
    let gave_up = || Error::Install {
        version: "(prepared)".into(),
        reason: format!(
            "the app (pid {pid}) did not exit within {} s; the update stays prepared and is applied at the next `updraft run`",
            timeout.as_secs()
        ),
    };
    let raw =
        i32::try_from(pid).map_err(|_| Error::Usage(format!("`{pid}` is not a process id")))?;
    let Some(pid) = rustix::process::Pid::from_raw(raw) else {
        return Err(Error::Usage(format!("`{raw}` is not a process id")));
    };
    #[cfg(target_os = "linux")]
    {
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => {
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    let spec = rustix::event::Timespec::try_from(left).unwrap_or(
                        rustix::event::Timespec {
                            tv_sec: i64::MAX,
                            tv_nsec: 0,
                        },
                    );
                    match rustix::event::poll(&mut fds, Some(&spec)) {
                        Ok(0) => return Err(gave_up()),
                        Ok(_) => return Ok(()),
                        Err(rustix::io::Errno::INTR) => {}
                        Err(e) => {
                            return Err(Error::io("wait for", Path::new("the app"), e.into()));
                        }
                    }
                }
            }
            Err(rustix::io::Errno::SRCH) => return Ok(()),
            // An old kernel without pidfds: poll below.
            Err(_) => {}
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    while rustix::process::test_kill_process(pid).is_ok() {
        if std::time::Instant::now() >= deadline {
            return Err(gave_up());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
