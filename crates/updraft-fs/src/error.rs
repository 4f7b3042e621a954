use std::io;
use std::path::PathBuf;

/// A file-system operation failed; every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call on `path` failed.
    #[error("Could not {action} `{path}`: {source}")]
    Io {
        /// What was being done ("write", "rename", ...).
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the lock.
    #[error("`{path}` is locked by another updraft process; wait for it to finish and try again")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A journal could not be read back.
    #[error("The journal `{path}` is corrupt: {reason}")]
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when the underlying cause is a full disk (ENOSPC) or exceeded quota.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// Shorthand used throughout the crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
