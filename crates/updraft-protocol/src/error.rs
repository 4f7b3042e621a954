/// Everything that can be wrong with a version, a name or a piece of metadata.
///
/// Variants that mean "this metadata must not be trusted" answer true to
/// [`Error::is_verification`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a SemVer 2.0.0 version.
    #[error("`{value}` is not a valid version: {reason}")]
    InvalidVersion {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name (app id, channel, path, platform, ...) failed validation.
    #[error("`{value}` is not a valid {kind}: {reason}")]
    InvalidName {
        /// Which kind of name.
        kind: &'static str,
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A document is not the JSON it should be.
    #[error("`{what}` is not valid: {source}")]
    Json {
        /// The document (file name or role).
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A document is well-formed JSON but breaks a rule of its format.
    #[error("`{what}` is not valid: {reason}")]
    Invalid {
        /// The document.
        what: String,
        /// The rule it breaks.
        reason: String,
    },
    /// Signed content cannot be put in canonical form (a float, say), so no
    /// signature over it can be checked.
    #[error(
        "`{what}` cannot be verified: its signed part is not in canonical JSON form ({reason})"
    )]
    BadCanonicalForm {
        /// The document.
        what: String,
        /// What is not canonical.
        reason: String,
    },
    /// The document declares a newer format than this build understands.
    #[error(
        "`{what}` uses format {found}, but this updraft understands only format {supported}; upgrade updraft"
    )]
    UnsupportedFormat {
        /// The document.
        what: String,
        /// The format it declares.
        found: String,
        /// The format this build reads.
        supported: String,
    },
    /// A role file holds a different role.
    #[error("`{what}` should be `{expected}` metadata but is `{found}`")]
    WrongType {
        /// The document.
        what: String,
        /// The role expected.
        expected: String,
        /// The role found.
        found: String,
    },
    /// Fewer distinct trusted keys signed than the threshold requires.
    #[error(
        "`{role}` metadata has {valid} valid signature(s) from distinct trusted keys; {threshold} are required"
    )]
    Threshold {
        /// The role.
        role: String,
        /// Distinct keys whose signature verified.
        valid: u64,
        /// The threshold.
        threshold: u64,
    },
    /// The metadata expired before the reference time.
    #[error(
        "`{role}` metadata expired at {expires}; the publisher must re-sign it (`updraft repo refresh`)"
    )]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        expires: String,
    },
    /// A version number went backwards or did not advance as required.
    #[error("`{role}` metadata version {found} is not allowed: {reason}")]
    BadVersion {
        /// The role.
        role: String,
        /// The version found.
        found: u64,
        /// The rule (`expected 4`, `older than the trusted 7`).
        reason: String,
    },
    /// The same version as the trusted one was offered again; nothing to do.
    #[error("`{role}` metadata version {version} is the one already trusted")]
    EqualVersion {
        /// The role.
        role: String,
        /// The version.
        version: u64,
    },
    /// A file's length differs from the signed length.
    #[error("`{what}` is {actual} bytes long, but the signed metadata says {expected}")]
    LengthMismatch {
        /// The file.
        what: String,
        /// Signed length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A file's hash differs from the signed hash.
    #[error("`{what}` failed verification: expected {algorithm} `{expected}`, got `{actual}`")]
    HashMismatch {
        /// The file.
        what: String,
        /// The hash algorithm.
        algorithm: String,
        /// Signed hash.
        expected: String,
        /// Actual hash.
        actual: String,
    },
    /// An update step was called out of order (a bug in the caller).
    #[error("metadata update out of order: {0}")]
    OutOfOrder(&'static str),
}

impl Error {
    /// True when the error means the data must not be trusted (tampered,
    /// unsigned, expired, rolled back, wrong target), as opposed to bad
    /// command-line input.
    pub fn is_verification(&self) -> bool {
        !matches!(
            self,
            Self::InvalidVersion { .. } | Self::InvalidName { .. } | Self::OutOfOrder(_)
        )
    }
}
