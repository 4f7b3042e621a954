use std::path::PathBuf;

/// Why an installer operation failed. [`Error::kind`] maps it to PRODUCT.md's
/// exit codes; every message names the file, version or setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `update_config.json` is malformed or holds a bad value.
    #[error("The configuration `{path}` is invalid: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// Installing failed; the previous version is intact.
    #[error("Installing {version} failed: {reason}; the previous version is intact")]
    Install {
        /// The version being installed.
        version: String,
        /// What failed.
        reason: String,
    },
    /// A local file operation failed.
    #[error("Could not {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A usage problem (a missing install, a bad argument).
    #[error("{0}")]
    Usage(String),
    /// A path of the install no longer belongs to it (another user owns or
    /// can write it, or `current` points outside `versions/`): updraft
    /// refuses to use the install rather than run what someone else put there.
    #[error("Refusing to use the install: `{path}` {reason}")]
    Untrusted {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// A crash-safe file operation failed, or another updraft holds the install's lock.
    #[error(transparent)]
    Fs(#[from] updraft_fs::Error),
}

/// The class of an error, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Exit 2.
    Usage,
    /// Exit 5: the previous version is intact.
    Install,
    /// Exit 4: the install was tampered with ([`Error::Untrusted`]).
    Verification,
    /// Exit 1.
    Other,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config { .. } | Self::Usage(_) => ErrorKind::Usage,
            Self::Install { .. } | Self::Fs(updraft_fs::Error::Locked { .. }) => ErrorKind::Install,
            Self::Untrusted { .. } => ErrorKind::Verification,
            _ => ErrorKind::Other,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
