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

pub use atomic::{
    AtomicFile, create_dir_all_durable, fsync_dir, link_or_copy_atomic, rename_durable,
    write_atomic,
};
pub use error::Error;
#[cfg(unix)]
pub use intent::replace_symlink;
pub use intent::{Intent, discard_symlink_temp, symlink_temp};
pub use lock::StoreLock;
pub use transaction::{Recovery, Transaction, recover};
