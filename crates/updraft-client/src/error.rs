use std::path::PathBuf;

/// Why a client operation failed. [`Error::kind`] maps it to PRODUCT.md's
/// exit codes; every message names the file, URL, version or setting.
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
    /// A server could not be reached, answered an error, or was too slow.
    #[error("Could not download `{url}`: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Metadata or a package failed verification: nothing was installed.
    #[error("{0}")]
    Verification(String),
    /// The offered update is not a signed target of this app.
    #[error(
        "The server offered `{target}`, which is not a signed {app} package for {platform}/{arch}; nothing was installed"
    )]
    NotSigned {
        /// What was offered.
        target: String,
        /// The app.
        app: String,
        /// Platform.
        platform: String,
        /// Arch.
        arch: String,
    },
    /// Not enough free disk space.
    #[error(
        "Not enough free space in `{path}`: {needed} bytes are needed and {available} are free"
    )]
    DiskSpace {
        /// The folder.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// Installing failed; the previous version is intact.
    #[error("Installing {version} failed: {reason}; the previous version is intact")]
    Install {
        /// The version being installed.
        version: String,
        /// What failed.
        reason: String,
    },
    /// The operation was cancelled.
    #[error("The download was cancelled")]
    Cancelled,
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
    /// A crash-safe file operation failed.
    #[error(transparent)]
    Fs(#[from] updraft_fs::Error),
    /// Installing, switching, rolling back or recovering failed (`updraft-installer`).
    #[error(transparent)]
    Installer(#[from] updraft_installer::Error),
}

/// The class of an error, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Exit 2.
    Usage,
    /// Exit 3.
    Network,
    /// Exit 4.
    Verification,
    /// Exit 5.
    Install,
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

    pub(crate) fn verification(error: &updraft_protocol::Error) -> Self {
        Self::Verification(error.to_string())
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config { .. } | Self::Usage(_) => ErrorKind::Usage,
            Self::Network { .. } | Self::Cancelled => ErrorKind::Network,
            Self::Verification(_) | Self::NotSigned { .. } => ErrorKind::Verification,
            Self::Install { .. }
            | Self::DiskSpace { .. }
            | Self::Fs(updraft_fs::Error::Locked { .. }) => ErrorKind::Install,
            // A disk that filled up stopped the update before it touched the app.
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                ErrorKind::Install
            }
            Self::Installer(error) => match error.kind() {
                updraft_installer::ErrorKind::Usage => ErrorKind::Usage,
                updraft_installer::ErrorKind::Install => ErrorKind::Install,
                updraft_installer::ErrorKind::Verification => ErrorKind::Verification,
                _ => ErrorKind::Other,
            },
            _ => ErrorKind::Other,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
