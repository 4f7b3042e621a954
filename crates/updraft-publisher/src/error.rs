use std::io;
use std::path::PathBuf;

/// Why a publisher command failed. Every variant names the file, folder,
/// key or version concerned; [`Error::kind`] tells the CLI which exit code to use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument is invalid (version, app id, platform, percentage...).
    #[error(transparent)]
    InvalidArgument(updraft_protocol::Error),
    /// The source folder is missing, not a folder, or empty.
    #[error("The source folder `{path}` {reason}")]
    BadSource {
        /// The folder.
        path: PathBuf,
        /// What is wrong ("does not exist", "is empty").
        reason: String,
    },
    /// `--main` does not name a regular file inside the source folder.
    #[error("The main program `{main}` is not a regular file inside `{source_dir}`")]
    MainNotFound {
        /// `--main` as given.
        main: String,
        /// The source folder.
        source_dir: PathBuf,
    },
    /// `--main` is a file of the release but cannot be run.
    #[error("The main program `{main}` in `{source_dir}` {reason}")]
    MainNotRunnable {
        /// `--main` as given.
        main: String,
        /// The source folder.
        source_dir: PathBuf,
        /// Why (empty, not executable) and what to do.
        reason: String,
    },
    /// A symbolic link in the source folder points outside it (or is absolute).
    #[error(
        "The symbolic link `{path}` points to `{target}`, outside the folder being published; releases may only link inside themselves"
    )]
    SymlinkOutside {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: String,
    },
    /// The source folder holds something that is not a file, folder or symlink.
    #[error("`{path}` is a {kind}; releases may only contain files, folders and symbolic links")]
    SpecialFile {
        /// The entry.
        path: PathBuf,
        /// Its kind (FIFO, socket, device).
        kind: &'static str,
    },
    /// A name in the source folder cannot be represented in a release.
    #[error("`{path}` cannot be published: {reason}")]
    BadName {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file changed while it was being packed.
    #[error(
        "`{path}` changed while it was being packed ({reason}); publish again when the build has finished"
    )]
    ChangedWhilePacking {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// The keys folder does not exist.
    #[error(
        "The keys folder `{path}` does not exist: pass the `--keys` folder this store was created with, or, for a new store, create keys with `updraft keygen --out {path}` (new keys cannot sign an existing store)"
    )]
    MissingKeysFolder {
        /// The folder given.
        path: PathBuf,
    },
    /// A key file is missing.
    #[error("The {role} key `{path}` is missing: pass the `--keys` folder this store was created with, or, for a new store, create keys with `updraft keygen --out {dir}` (new keys cannot sign an existing store)", dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    MissingKey {
        /// The role.
        role: String,
        /// The expected key file.
        path: PathBuf,
    },
    /// A key file is not a key, or not the key the store trusts for its role.
    #[error("The key `{path}` cannot sign {role} metadata: {reason}")]
    WrongKey {
        /// The role.
        role: String,
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A keys folder holds fewer of a role's trusted keys than its threshold.
    #[error(
        "`{dir}` holds {found} of the {role} keys this store's root trusts, but {threshold} must sign; pass the folder (or folders) with enough of them"
    )]
    NotEnoughKeys {
        /// The role (`root`).
        role: String,
        /// How many trusted keys were found.
        found: usize,
        /// The role's threshold.
        threshold: u64,
        /// The keys folder.
        dir: PathBuf,
    },
    /// Signed metadata brought in from outside (`repo import-signed`, or a
    /// new root) does not pass the checks a client would make.
    #[error("`{path}` was refused: {reason}")]
    Refused {
        /// The file (or the metadata name it would get).
        path: PathBuf,
        /// What failed, and what to do.
        reason: String,
    },
    /// Refusing to overwrite something.
    #[error("`{path}` already exists; {hint}")]
    AlreadyExists {
        /// What exists.
        path: PathBuf,
        /// What to do instead.
        hint: String,
    },
    /// The release is already in the store.
    #[error(
        "{app} {version} for {platform}/{arch} is already published in `{store}`; publish a new version instead (published releases are immutable)"
    )]
    AlreadyPublished {
        /// App id.
        app: String,
        /// Version.
        version: String,
        /// Platform.
        platform: String,
        /// Arch.
        arch: String,
        /// The store.
        store: PathBuf,
    },
    /// The folder is not an updraft store.
    #[error(
        "`{path}` is not an updraft release store ({reason}); create one with `updraft repo init`"
    )]
    NotAStore {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The store's signed metadata is invalid, so nothing will be signed on top of it.
    #[error("The store's metadata `{path}` failed verification: {source}")]
    Verification {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: updraft_protocol::Error,
    },
    /// A release with conflicting data.
    #[error("{0}")]
    Conflict(String),
    /// A file could not be read or written.
    #[error("Could not {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An S3 store URL, endpoint or credential setting is unusable.
    #[error("{0}")]
    S3Config(String),
    /// A request to an S3 store failed.
    #[error("Could not {action} `{url}`: {source}")]
    S3 {
        /// What was being done.
        action: &'static str,
        /// The object or store.
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// Other publishers changed the S3 store before every attempt of this one.
    #[error(
        "Gave up after {attempts} attempts: other publishers changed `{url}` each time before this change could be signed into it; nothing of this change is visible to clients; run the command again"
    )]
    Contended {
        /// The store.
        url: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A crash-safe file operation failed.
    #[error(transparent)]
    Fs(#[from] updraft_fs::Error),
}

/// Which exit code an error maps to (PRODUCT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad command-line input: exit 2.
    Usage,
    /// Tampered, unsigned, expired or inconsistent metadata: exit 4.
    Verification,
    /// Anything else: exit 1.
    Other,
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The class of this error, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_)
            | Self::BadSource { .. }
            | Self::MainNotFound { .. }
            | Self::SymlinkOutside { .. }
            | Self::SpecialFile { .. }
            | Self::MainNotRunnable { .. }
            | Self::BadName { .. }
            | Self::MissingKey { .. }
            | Self::MissingKeysFolder { .. }
            | Self::WrongKey { .. }
            | Self::NotEnoughKeys { .. }
            | Self::NotAStore { .. }
            | Self::S3Config(_) => ErrorKind::Usage,
            Self::Verification { .. } | Self::Refused { .. } => ErrorKind::Verification,
            _ => ErrorKind::Other,
        }
    }
}

impl From<updraft_protocol::Error> for Error {
    fn from(error: updraft_protocol::Error) -> Self {
        Self::InvalidArgument(error)
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
