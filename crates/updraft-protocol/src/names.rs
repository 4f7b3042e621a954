//! Validated names that must never be mixed up: app ids, channels, target
//! paths, digests, platforms and architectures.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::Error;

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $validate:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `value`.
            pub fn new(value: &str) -> Result<Self, Error> {
                match $validate(value) {
                    Ok(()) => Ok(Self(value.to_owned())),
                    Err(reason) => Err(Error::InvalidName { kind: $kind, value: value.to_owned(), reason }),
                }
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// An application id (`kuzflow`): 1–64 of `[A-Za-z0-9._-]`, starting with a
    /// letter or digit. It appears in file names and URLs, so nothing else is allowed.
    AppId,
    "app id",
    validate_app_id
);

string_newtype!(
    /// A release channel (`stable`, `beta`): 1–32 of `[a-z0-9-]`, starting with a
    /// letter or digit.
    Channel,
    "channel",
    validate_channel
);

string_newtype!(
    /// A path inside a repository or release, always `/`-separated and
    /// relative: no empty, `.` or `..` component, no leading `/`, no `\`, no
    /// drive prefix (`C:`), no control characters, at most 1024 bytes.
    TargetPath,
    "path",
    validate_target_path
);

impl Channel {
    /// The default channel, `stable`.
    pub fn stable() -> Self {
        Self("stable".to_owned())
    }
}

impl TargetPath {
    /// The last component (`kuzflow_v1.1.0_full.tar.zst`).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the last component, without the trailing `/` (empty at the top).
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(parent, _)| parent)
    }

    /// The components in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The name a consistent-snapshot repository stores this target under:
    /// the file name prefixed with its SHA-256 (`dir/{hex}.name`).
    pub fn with_hash_prefix(&self, digest: &Sha256Digest) -> String {
        self.with_hex_prefix(&digest.to_hex())
    }

    /// The consistent-snapshot name with any hex digest (`dir/{hex}.name`).
    pub fn with_hex_prefix(&self, hex: &str) -> String {
        match self.parent() {
            "" => format!("{hex}.{}", self.file_name()),
            parent => format!("{parent}/{hex}.{}", self.file_name()),
        }
    }
}

fn validate_app_id(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 64 {
        return Err("it must be 1 to 64 characters long".into());
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("it must start with a letter or digit".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{bad}` is not allowed; use letters, digits, `.`, `_` and `-`"
        ));
    }
    if value.contains("..") {
        return Err("`..` is not allowed".into());
    }
    Ok(())
}

fn validate_channel(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 32 {
        return Err("it must be 1 to 32 characters long".into());
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("it must start with a letter or digit".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{bad}` is not allowed; use lowercase letters, digits and `-`"
        ));
    }
    Ok(())
}

fn validate_target_path(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 1024 {
        return Err("it must be 1 to 1024 bytes long".into());
    }
    if value.starts_with('/') {
        return Err("it must be relative, not start with `/`".into());
    }
    if value.contains('\\') {
        return Err("it must use `/` as the separator, not `\\`".into());
    }
    if value.chars().any(char::is_control) {
        return Err("it must not contain control characters".into());
    }
    let first = value.split('/').next().unwrap_or_default();
    if first.len() >= 2 && first.as_bytes()[1] == b':' && first.as_bytes()[0].is_ascii_alphabetic()
    {
        return Err("it must not start with a drive prefix such as `C:`".into());
    }
    for component in value.split('/') {
        match component {
            "" => {
                return Err(
                    "it must not contain an empty component (`//` or a trailing `/`)".into(),
                );
            }
            "." | ".." => return Err(format!("it must not contain a `{component}` component")),
            _ => {}
        }
    }
    Ok(())
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Hashes `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidName {
            kind: "sha256 digest",
            value: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.len() != 64 {
            return Err(invalid("it must be 64 hex digits"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| invalid("it must be 64 hex digits"))?;
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_hex(text)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

macro_rules! alias_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident => $canonical:literal [$($alias:literal),*]),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The normalised name used in metadata, file names and URLs.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $canonical),+ }
            }

            /// Parses the normalised name or a common alias, ignoring case.
            pub fn parse(value: &str) -> Result<Self, Error> {
                let lower = value.to_ascii_lowercase();
                $(if lower == $canonical $(|| lower == $alias)* { return Ok(Self::$variant); })+
                let known = [$($canonical),+].join(", ");
                Err(Error::InvalidName { kind: $kind, value: value.to_owned(), reason: format!("expected one of {known} (or a common alias)") })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self, Error> {
                Self::parse(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

alias_enum!(
    /// An operating system a release is built for.
    Platform, "platform", {
        /// Linux.
        Linux => "linux" [],
        /// Windows.
        Windows => "windows" ["win", "win32", "win64"],
        /// macOS.
        Macos => "macos" ["darwin", "osx", "mac", "macosx"],
    }
);

alias_enum!(
    /// A CPU architecture a release is built for.
    Arch, "arch", {
        /// 64-bit x86.
        X86_64 => "x86_64" ["amd64", "x64", "x86-64"],
        /// 64-bit ARM.
        Aarch64 => "aarch64" ["arm64"],
        /// 32-bit x86.
        X86 => "x86" ["i386", "i486", "i586", "i686", "ia32", "386"],
    }
);

/// The platform and arch this program was built for (Linux and x86_64 when
/// it is something updraft has no name for).
pub fn host() -> (Platform, Arch) {
    let platform = Platform::parse(std::env::consts::OS).unwrap_or(Platform::Linux);
    let arch = Arch::parse(std::env::consts::ARCH).unwrap_or(Arch::X86_64);
    (platform, arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalise() {
        assert_eq!(Platform::parse("darwin").unwrap(), Platform::Macos);
        assert_eq!(Platform::parse("Win32").unwrap(), Platform::Windows);
        assert_eq!(Arch::parse("amd64").unwrap().as_str(), "x86_64");
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Aarch64);
        assert_eq!(Arch::parse("i686").unwrap(), Arch::X86);
        let error = Platform::parse("beos").unwrap_err().to_string();
        assert!(
            error.contains("`beos`") && error.contains("linux, windows, macos"),
            "{error}"
        );
    }

    #[test]
    fn target_paths_refuse_escapes() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "./a",
            "a//b",
            "a/",
            "C:/x",
            "c:",
            "a\\b",
            "a\nb",
        ] {
            assert!(TargetPath::new(bad).is_err(), "{bad:?} accepted");
        }
        let path = TargetPath::new("releases/v1.0.0/app.tar.zst").unwrap();
        assert_eq!(path.file_name(), "app.tar.zst");
        assert_eq!(path.parent(), "releases/v1.0.0");
        let digest = Sha256Digest::of(b"");
        assert_eq!(
            path.with_hash_prefix(&digest),
            format!("releases/v1.0.0/{digest}.app.tar.zst")
        );
    }

    #[test]
    fn app_ids_and_channels_are_strict() {
        assert!(AppId::new("kuzflow").is_ok());
        assert!(AppId::new("Kuz.flow_2-x").is_ok());
        for bad in ["", "-x", "a/b", "a..b", "a b", &"x".repeat(65)] {
            assert!(AppId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Channel::new("beta").is_ok());
        assert!(Channel::new("Beta").is_err());
    }

    #[test]
    fn digests_round_trip_and_reject_garbage() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Sha256Digest::from_hex(&digest.to_hex().to_uppercase()).unwrap(),
            digest
        );
        assert!(Sha256Digest::from_hex("zz").is_err());
    }
}
