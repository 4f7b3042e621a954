//! Crash-safe file-system primitives shared by every part of updraft that writes
//! something a user depends on (the release store, installs, backups, journals).
//!
//! The one rule: a write that matters is *write a temp file in the same folder,
//! fsync it, rename it over the destination, fsync the folder*. [`AtomicFile`]
//! and [`write_atomic`] do exactly that; [`Transaction`] builds multi-file
//! changes on top of it with an undo journal, so a process killed at any
//! instant leaves either the old state or the new one after [`recover`].
//! [`Intent`] is the one-file journal of a change made in steps (the
//! installer's switch), and [`replace_symlink`] swaps a link atomically.
//!
//! Everything it creates gets an explicit mode whatever the process's umask:
//! files [`FILE_MODE`] (0644, or what the caller asks, such as 0600 for
//! secrets), folders [`DIR_MODE`] (0755, or 0700 for private ones), lock
//! files 0600; copies never keep setuid, setgid or group/other write bits.
//!
//! ```
//! # fn main() -> Result<(), updraft_fs::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("settings.json");
//! updraft_fs::write_atomic(&path, b"{}")?;
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod atomic;
mod error;
pub mod fault;
mod intent;
mod lock;
mod transaction;

/// Running code under another umask, and reading modes back, in tests.
#[cfg(all(test, unix))]
mod test_umask {
    use std::path::Path;

    /// The umask of this test process, set to `mask` until dropped.
    pub(crate) struct Umask(rustix::fs::Mode);

    impl Umask {
        pub(crate) fn set(mask: u32) -> Self {
            Self(rustix::process::umask(rustix::fs::Mode::from_raw_mode(
                mask,
            )))
        }
    }

    impl Drop for Umask {
        fn drop(&mut self) {
            rustix::process::umask(self.0);
        }
    }

    /// The permission bits of `path` (not following a link).
    pub(crate) fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

pub use atomic::{
    AtomicFile, DIR_MODE, FILE_MODE, SAFE_MODE_MASK, create_dir_all_durable,
    create_dir_all_durable_with_mode, fsync_dir, link_or_copy_atomic, remove_stale_temps,
    rename_durable, write_atomic,
};
pub use error::Error;
#[cfg(unix)]
pub use intent::replace_symlink;
pub use intent::{Intent, discard_symlink_temp, symlink_temp};
pub use lock::{LOCK_MODE, StoreLock};
pub use transaction::{Recovery, Transaction, recover};
