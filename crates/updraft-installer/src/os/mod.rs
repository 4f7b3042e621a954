//! Everything the installer asks of the operating system, one module per OS,
//! so a port is a contained change: the rest of the crate calls only what is
//! re-exported here.
//!
//! | need | Linux / Unix ([`unix`]) | Windows (planned) | macOS (planned) |
//! |---|---|---|---|
//! | make a version current atomically | `current` symlink replaced with `rename(2)` | a directory junction (`mklink /J`) made under a temporary name and renamed with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)` | `/Applications/App.app` swapped with `renameatx_np(RENAME_SWAP)` of two bundles on one volume |
//! | wait for the app's exit | pidfd + `poll` (Linux), else `kill(pid, 0)` every 5 ms | `OpenProcess` + `WaitForSingleObject` with the timeout | `kill(pid, 0)` every 5 ms (or a kqueue `EVFILT_PROC`) |
//! | mark a version running | shared `flock` on `.updraft/running/{v}.lock` | `LockFileEx` without `LOCKFILE_EXCLUSIVE_LOCK` (std's `File::lock_shared`) | shared `flock` |
//! | file modes | explicit whatever the umask: folders `0755` (`0700` staging), files `0644`, locks and the updater's log `0600` (the unpacked files' modes are set, and limited to `0755`, by `updraft_package::Unpack`) | none (ACLs inherited from the install folder) | mode bits; extended attributes kept, a signed bundle never modified |
//! | trust the install before using it | `lstat`: owned by this user or root, not writable by group or others | the owner SID and the ACL (`GetSecurityInfo`) | as on Linux |
//! | make an unpacked tree durable | done before it reaches the installer: `updraft_package::Unpack::durable` syncs each file as it completes, then every folder (`fsync`) | `FlushFileBuffers` per file | `fcntl(F_FULLFSYNC)` per file |
//! | detach the updater | its own process group | `CREATE_NEW_PROCESS_GROUP` | its own process group |
//!
//! On Windows a running `.exe` or loaded DLL cannot be replaced or removed:
//! that is why the switch waits for the app's exit, why the updater lives in
//! `.updraft\bin\`, and why removing an old version may fail and is retried
//! by recovery at the next start (the folder is unnamed by then).

#[cfg(unix)]
mod unix;

#[cfg(unix)]
pub use unix::own_process_group;
#[cfg(unix)]
pub(crate) use unix::{
    distrust, held_elsewhere, hold_shared, linked_version, make_private, open_private_log,
    set_mode, switch_current, wait_for_exit,
};

#[cfg(not(unix))]
compile_error!(
    "updraft-installer switches versions on Unix only; a port adds `src/os/<os>.rs` with the mapping in `src/os/mod.rs`"
);
