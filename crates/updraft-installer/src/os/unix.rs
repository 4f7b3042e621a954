//! The Unix implementation (Linux, and the BSDs and macOS where the calls
//! exist). Each function's doc says what its Windows and macOS counterparts
//! will do.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Points `current` (`link`) at `versions/{version}` with one atomic
/// `rename(2)` of a fresh symlink over it, durably.
///
/// Windows: `current` is a directory junction made under a temporary name and
/// renamed over the old one with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)`.
/// macOS: the unit is the `.app` bundle, exchanged with
/// `renameatx_np(RENAME_SWAP)` (Finder, Dock and Gatekeeper follow a bundle
/// path, not a symlink).
pub(crate) fn switch_current(link: &Path, version: &str) -> Result<()> {
    updraft_fs::replace_symlink(link, Path::new(&format!("versions/{version}")))?;
    Ok(())
}

/// The version `current` (`link`) points at, if it is a link into `versions/`.
///
/// Windows: the junction's target, read with `DeviceIoControl(FSCTL_GET_REPARSE_POINT)`.
pub(crate) fn linked_version(link: &Path) -> Option<String> {
    fs::read_link(link).ok().and_then(|target| {
        target
            .strip_prefix("versions")
            .ok()
            .map(|v| v.to_string_lossy().into_owned())
    })
}

/// Waits until process `pid` has exited, at most `timeout`, or until `stop`
/// says to stop waiting (asked at least every [`STOP_CHECK`]): `Ok(true)`
/// when the process is gone, `Ok(false)` when stopped. On Linux this waits
/// on a pidfd, so it returns the instant the process is gone (even before
/// its parent reaps it); elsewhere it polls `kill(pid, 0)` every 5 ms.
///
/// Windows: `OpenProcess(SYNCHRONIZE)` + `WaitForSingleObject` in slices of
/// `STOP_CHECK`. macOS: polling as here, or a kqueue `EVFILT_PROC`/`NOTE_EXIT`.
pub(crate) fn wait_for_exit(pid: u32, timeout: Duration, stop: &dyn Fn() -> bool) -> Result<bool> {
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
    let deadline = Instant::now() + timeout;
    #[cfg(target_os = "linux")]
    {
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => {
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                loop {
                    if stop() {
                        return Ok(false);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(gave_up());
                    }
                    let slice = rustix::event::Timespec::try_from(left.min(STOP_CHECK)).unwrap_or(
                        rustix::event::Timespec {
                            tv_sec: 0,
                            tv_nsec: 50_000_000,
                        },
                    );
                    match rustix::event::poll(&mut fds, Some(&slice)) {
                        Ok(0) | Err(rustix::io::Errno::INTR) => {}
                        Ok(_) => return Ok(true),
                        Err(e) => {
                            return Err(Error::io("wait for", Path::new("the app"), e.into()));
                        }
                    }
                }
            }
            Err(rustix::io::Errno::SRCH) => return Ok(true),
            // An old kernel without pidfds: poll below.
            Err(_) => {}
        }
    }
    while rustix::process::test_kill_process(pid).is_ok() {
        if stop() {
            return Ok(false);
        }
        if Instant::now() >= deadline {
            return Err(gave_up());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(true)
}

/// How often a wait for the app's exit asks whether to stop waiting.
pub(crate) const STOP_CHECK: Duration = Duration::from_millis(50);

/// Opens (creating) `path` and takes a shared `flock` on it, held until the
/// file is closed: any number of holders, and the OS drops it when a holder
/// dies.
///
/// Windows: `LockFileEx` without `LOCKFILE_EXCLUSIVE_LOCK` (std's
/// `File::lock_shared` already maps to it). macOS: the same `flock`.
pub(crate) fn hold_shared(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        updraft_fs::create_dir_all_durable(dir)?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(updraft_fs::LOCK_MODE)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.lock_shared().map_err(|e| Error::io("lock", path, e))?;
    Ok(file)
}

/// Some process holds a [`hold_shared`] lock on `path`.
pub(crate) fn held_elsewhere(path: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new().write(true).open(path) else {
        return false;
    };
    matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock))
}

/// Makes folder `dir` private to this user (0700), best effort.
///
/// Windows: nothing (the per-user install folder's ACLs already exclude
/// other users).
pub(crate) fn make_private(dir: &Path) {
    set_mode(dir, 0o700);
}

/// Sets `path`'s permission bits to exactly `mode`, best effort.
///
/// Windows: nothing (ACLs are inherited from the install folder).
pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
}

/// Opens `path` for appending, creating it private to this user (0600).
///
/// Windows: `OpenOptions::append` (the folder's ACLs apply).
pub(crate) fn open_private_log(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// Why this process must not trust `meta`, the `lstat` of a path of its
/// install, if it must not: it belongs to a user other than this one or
/// root, or (a link's own bits mean nothing) it is writable by group or
/// others, or it is setuid or setgid. The reason says what to do.
///
/// Windows: the owner SID from `GetSecurityInfo` against the current
/// user's and the Administrators', and an ACL granting write to anyone else.
/// macOS: as here.
pub(crate) fn distrust(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner != me && owner != 0 {
        return Some(format!(
            "belongs to user {owner}, not to this user ({me}) or root, so that user could change what runs; check it, then give it back with `chown` or reinstall"
        ));
    }
    if meta.file_type().is_symlink() {
        return None;
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by other users (mode {mode:04o}), so they could change what runs; check it, then run `chmod go-w` on it or reinstall"
        ));
    }
    if meta.is_file() && mode & 0o6000 != 0 {
        return Some(format!(
            "is setuid or setgid (mode {mode:04o}), which updraft never installs; check it, then run `chmod ug-s` on it or reinstall"
        ));
    }
    None
}

/// Puts the process `command` will start in its own process group, so a
/// Ctrl-C or a terminal's hang-up meant for the app does not stop it (the
/// updater, and the app it restarts).
///
/// Windows: `CommandExt::creation_flags(CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS)`.
pub fn own_process_group(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    command.process_group(0)
}
