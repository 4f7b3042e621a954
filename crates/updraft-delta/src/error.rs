//! Errors of making and applying patches.

use std::path::PathBuf;

/// What went wrong; every message is one sentence naming the file or patch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("Cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The patch's bytes do not make sense (truncated, damaged, forged).
    #[error("The patch is corrupt: {0}")]
    Corrupt(String),
    /// The patch was written by a newer updraft.
    #[error(
        "The patch has format version {found}; this updraft reads version {supported}: upgrade updraft"
    )]
    UnsupportedFormat {
        /// The version found.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The patch is for other releases than the manifests given.
    #[error("The patch is not for this update: {0}")]
    WrongRelease(String),
    /// An installed file the patch needs differs from the installed
    /// version's signed manifest (changed locally, or damaged): the caller
    /// falls back to the full package.
    #[error(
        "The installed file `{path}` differs from the signed manifest of {version}, so the patch cannot use it"
    )]
    ModifiedOldFile {
        /// The file, relative to the install.
        path: String,
        /// The installed version.
        version: String,
    },
    /// A rebuilt file does not match the new manifest.
    #[error("`{path}` rebuilt from the patch differs from the signed manifest of {version}")]
    OutputMismatch {
        /// The file.
        path: String,
        /// The new version.
        version: String,
    },
    /// The sink refused an entry or could not write it.
    #[error("{0}")]
    Sink(String),
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

    /// True when the installed version's files, not the patch, are the
    /// problem (a modified install).
    pub fn is_modified_install(&self) -> bool {
        matches!(self, Self::ModifiedOldFile { .. })
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
