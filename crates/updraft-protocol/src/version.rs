//! SemVer 2.0.0 versions, exactly as <https://semver.org> specifies them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A SemVer 2.0.0 version such as `1.2.3`, `1.2.3-beta.1` or `1.2.3+20240902.1`.
///
/// Equality, ordering and hashing follow SemVer *precedence*: build metadata
/// is ignored (`1.0.0+a == 1.0.0+b`), and a pre-release sorts before its
/// release (`1.2.3-beta.1 < 1.2.3`). Use [`Version::is_identical`] to compare
/// the full text.
#[derive(Debug, Clone)]
pub struct Version {
    /// Incompatible API changes.
    pub major: u64,
    /// Backwards-compatible features.
    pub minor: u64,
    /// Backwards-compatible fixes.
    pub patch: u64,
    pre: Vec<Identifier>,
    build: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identifier {
    Numeric(u64),
    Alphanumeric(String),
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Numeric(a), Self::Numeric(b)) => a.cmp(b),
            (Self::Numeric(_), Self::Alphanumeric(_)) => Ordering::Less,
            (Self::Alphanumeric(_), Self::Numeric(_)) => Ordering::Greater,
            (Self::Alphanumeric(a), Self::Alphanumeric(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Numeric(n) => write!(f, "{n}"),
            Self::Alphanumeric(s) => f.write_str(s),
        }
    }
}

/// How big a step an update is, from the installed version's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateType {
    /// Only the patch number (or pre-release) changed.
    Patch,
    /// The minor number changed.
    Minor,
    /// The major number changed.
    Major,
}

impl UpdateType {
    /// The kind of step from `from` to `to`: the most significant of major,
    /// minor and patch that differs (a pre-release-only change is a patch).
    pub fn between(from: &Version, to: &Version) -> Self {
        if from.major != to.major {
            Self::Major
        } else if from.minor != to.minor {
            Self::Minor
        } else {
            Self::Patch
        }
    }

    /// `"major"`, `"minor"` or `"patch"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Patch => "patch",
        }
    }
}

impl fmt::Display for UpdateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Version {
    /// A release version `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
            build: Vec::new(),
        }
    }

    /// Parses a SemVer 2.0.0 string strictly (no leading `v`, no leading zeros).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidVersion {
            value: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut parts = core.split('.');
        let mut number = |name: &str| -> Result<u64, Error> {
            let part = parts
                .next()
                .ok_or_else(|| invalid(&format!("the {name} number is missing")))?;
            parse_numeric(part).ok_or_else(|| {
                invalid(&format!(
                    "the {name} number `{part}` is not a number without leading zeros"
                ))
            })
        };
        let (major, minor, patch) = (number("major")?, number("minor")?, number("patch")?);
        if parts.next().is_some() {
            return Err(invalid(
                "it has more than three numbers before the pre-release",
            ));
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(is_identifier_byte) {
                        Err(invalid(&format!("the pre-release identifier `{id}` is empty or has characters other than [0-9A-Za-z-]")))
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        parse_numeric(id)
                            .map(Identifier::Numeric)
                            .ok_or_else(|| invalid(&format!("the numeric pre-release identifier `{id}` has a leading zero or is too large")))
                    } else {
                        Ok(Identifier::Alphanumeric(id.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let build = match build {
            None => Vec::new(),
            Some(build) => build
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(is_identifier_byte) {
                        Err(invalid(&format!("the build identifier `{id}` is empty or has characters other than [0-9A-Za-z-]")))
                    } else {
                        Ok(id.to_owned())
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }

    /// True for a pre-release such as `1.2.3-beta.1`.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The pre-release part (`beta.1`), empty for a release.
    pub fn prerelease(&self) -> String {
        join(&self.pre)
    }

    /// The build metadata (`20240902.1`), empty when absent.
    pub fn build(&self) -> String {
        self.build.join(".")
    }

    /// True when the full text is the same, build metadata included.
    pub fn is_identical(&self, other: &Self) -> bool {
        self == other && self.build == other.build
    }
}

fn join(ids: &[Identifier]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

fn parse_numeric(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Vec's lexicographic order is SemVer's rule 11.4: identifier by
                // identifier, and a longer list wins when all before are equal.
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.major, self.minor, self.patch, &self.pre).hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", join(&self.pre))?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build.join("."))?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn the_spec_examples_are_in_precedence_order() {
        // semver.org, rule 11.
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn build_metadata_is_ignored_for_precedence_but_kept() {
        assert_eq!(v("1.2.3+20240902.1"), v("1.2.3"));
        assert!(!v("1.2.3+20240902.1").is_identical(&v("1.2.3")));
        assert_eq!(
            v("1.2.3-beta.1+exp.sha.5114f85").to_string(),
            "1.2.3-beta.1+exp.sha.5114f85"
        );
        assert!(v("1.2.3-beta.1") < v("1.2.3"));
    }

    #[test]
    fn invalid_versions_are_refused_with_a_reason() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "v1.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+",
            "1.2.3+a_b",
            "1.2.3-é",
            " 1.2.3",
            "1.2.-3",
            "18446744073709551616.0.0",
        ] {
            let error = Version::parse(bad).unwrap_err();
            assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
        }
        // Build identifiers may have leading zeros; numeric pre-release ones may not.
        assert!(Version::parse("1.2.3+001").is_ok());
    }

    #[test]
    fn update_type_is_the_most_significant_change() {
        assert_eq!(
            UpdateType::between(&v("1.0.0"), &v("2.0.0")),
            UpdateType::Major
        );
        assert_eq!(
            UpdateType::between(&v("1.0.9"), &v("1.1.0")),
            UpdateType::Minor
        );
        assert_eq!(
            UpdateType::between(&v("1.1.0"), &v("1.1.1")),
            UpdateType::Patch
        );
        assert_eq!(
            UpdateType::between(&v("1.1.0-beta.1"), &v("1.1.0")),
            UpdateType::Patch
        );
    }

    fn version_strategy() -> impl Strategy<Value = Version> {
        let ident = prop_oneof![
            (0u64..20).prop_map(|n| n.to_string()),
            "[a-zA-Z-][0-9a-zA-Z-]{0,5}",
        ];
        (
            0u64..4,
            0u64..4,
            0u64..4,
            prop::collection::vec(ident, 0..3),
            prop::collection::vec("[0-9a-zA-Z-]{1,4}", 0..2),
        )
            .prop_map(|(major, minor, patch, pre, build)| {
                let mut text = format!("{major}.{minor}.{patch}");
                if !pre.is_empty() {
                    text = format!("{text}-{}", pre.join("."));
                }
                if !build.is_empty() {
                    text = format!("{text}+{}", build.join("."));
                }
                Version::parse(&text).unwrap()
            })
    }

    proptest! {
        #[test]
        fn display_round_trips(version in version_strategy()) {
            let again = Version::parse(&version.to_string()).unwrap();
            prop_assert!(again.is_identical(&version));
        }

        #[test]
        fn ordering_is_a_total_order(a in version_strategy(), b in version_strategy(), c in version_strategy()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c { prop_assert!(a <= c); }
            prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
        }

        #[test]
        fn a_prerelease_precedes_its_release(version in version_strategy()) {
            let release = Version::new(version.major, version.minor, version.patch);
            if version.is_prerelease() { prop_assert!(version < release); } else { prop_assert!(version == release); }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,24}") {
            let _ = Version::parse(&text);
        }
    }
}
