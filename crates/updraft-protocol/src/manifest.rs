//! Release manifests and the release info carried in each package target's
//! `custom` field.
//!
//! Both documents carry an explicit `format_version` that can be read before
//! the full parse ([`read_format_version`]), so an old client meeting a newer
//! format says "upgrade updraft" instead of misreading it. New optional
//! fields may be added within a format version; old readers ignore them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::names::{AppId, Arch, Channel, Platform, Sha256Digest, TargetPath};
use crate::version::Version;

/// The manifest and release-info format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Reads just the `format_version` of a manifest or release info and refuses
/// one newer than this build understands.
pub fn read_format_version(what: &str, value: &Value) -> Result<u32, Error> {
    let found = value
        .get("format_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::Invalid {
            what: what.to_owned(),
            reason: "it has no numeric `format_version`".into(),
        })?;
    if found > u64::from(FORMAT_VERSION) {
        return Err(Error::UnsupportedFormat {
            what: what.to_owned(),
            found: found.to_string(),
            supported: FORMAT_VERSION.to_string(),
        });
    }
    Ok(u32::try_from(found).unwrap_or(FORMAT_VERSION))
}

/// Everything about one release for one platform and arch: what the
/// installed folder must contain, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The release this manifest describes.
    #[serde(flatten)]
    pub release: ReleaseInfo,
    /// Regular files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Folders (including empty ones), sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirEntry>,
    /// Symbolic links inside the release, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<SymlinkEntry>,
    /// Digests of the full package's consecutive byte ranges, so a client
    /// can verify (and keep, after an interruption) each part of the package
    /// before the whole has arrived. Optional: manifests written before it
    /// existed have none, and such packages are verified as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<PackageChunks>,
    /// Where the package's zstd frames start: points at which decoding can
    /// begin afresh, each at a tar entry boundary, so a resumed install
    /// decodes only from the last restart point before the first file it
    /// still lacks. Optional: packages written before them are one frame and
    /// are decoded from their start. Old readers ignore the field and decode
    /// the frames one after the other, as zstd does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<RestartPoint>,
}

/// A point of a package where a zstd frame starts and a tar entry begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPoint {
    /// Byte offset of the frame in the package.
    pub offset: u64,
    /// Index in the manifest's `files` (which lists files in package order)
    /// of the first regular file at or after this point: every file before
    /// it lies before the point.
    pub file: u64,
}

/// The signed digests of a package's chunks: bytes `[i * size, (i + 1) * size)`
/// for each `i`, the last one shorter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChunks {
    /// Bytes per chunk.
    pub size: u64,
    /// SHA-256 of each chunk, in order.
    pub sha256: Vec<Sha256Digest>,
}

/// Fewest bytes per chunk.
pub const MIN_CHUNK_SIZE: u64 = 64 * 1024;
/// Most bytes per chunk.
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

impl PackageChunks {
    /// The chunk size a package of about `length` bytes gets: a power of two
    /// giving at most about 1,024 chunks, between [`MIN_CHUNK_SIZE`] and
    /// [`MAX_CHUNK_SIZE`]. An interrupted download loses at most one chunk per
    /// connection, well under 1 % of a large package.
    pub fn size_for(length: u64) -> u64 {
        (length / 1024)
            .max(1)
            .next_power_of_two()
            .clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
    }

    /// The byte range of chunk `index` in a package of `length` bytes.
    pub fn range(&self, index: usize, length: u64) -> std::ops::Range<u64> {
        let start = (index as u64).saturating_mul(self.size).min(length);
        start..start.saturating_add(self.size).min(length)
    }

    /// Checks that these chunks cover exactly `length` bytes.
    pub fn check(&self, what: &str, length: u64) -> Result<(), Error> {
        let expected = if self.size == 0 {
            None
        } else {
            Some(length.div_ceil(self.size))
        };
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.size)
            || expected != Some(self.sha256.len() as u64)
        {
            return Err(Error::Invalid {
                what: what.to_owned(),
                reason: format!(
                    "its {} chunk digests of {} bytes do not cover the {length}-byte package",
                    self.sha256.len(),
                    self.size
                ),
            });
        }
        Ok(())
    }
}

/// Checks that `restarts` can be used for a package of `length` bytes whose
/// manifest lists `files` files: offsets strictly rising and inside the
/// package, file indices rising and at most `files`.
pub fn check_restarts(
    what: &str,
    restarts: &[RestartPoint],
    length: u64,
    files: usize,
) -> Result<(), Error> {
    let mut previous: Option<&RestartPoint> = None;
    for point in restarts {
        let rising = previous.is_none_or(|p| point.offset > p.offset && point.file >= p.file);
        if !rising || point.offset >= length || point.file > files as u64 {
            return Err(Error::Invalid {
                what: what.to_owned(),
                reason: format!(
                    "its restart point at byte {} (file {}) is out of order or outside the {length}-byte package of {files} files",
                    point.offset, point.file
                ),
            });
        }
        previous = Some(point);
    }
    Ok(())
}

impl ReleaseManifest {
    /// The last restart point at or before the file at `index` (in package
    /// order), if the manifest has one past the package's start.
    pub fn restart_before(&self, index: usize) -> Option<RestartPoint> {
        self.restarts
            .iter()
            .rev()
            .find(|point| point.file <= index as u64 && point.offset > 0)
            .copied()
    }

    /// Parses a manifest, refusing a newer format.
    pub fn from_slice(what: &str, bytes: &[u8]) -> Result<Self, Error> {
        let value: Value = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: what.to_owned(),
            source,
        })?;
        read_format_version(what, &value)?;
        serde_json::from_value(value).map_err(|source| Error::Json {
            what: what.to_owned(),
            source,
        })
    }

    /// Total size of the files, in bytes.
    pub fn installed_size(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// A regular file in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the install folder.
    pub path: TargetPath,
    /// Size in bytes.
    pub size: u64,
    /// Content digest.
    pub sha256: Sha256Digest,
    /// Unix permission bits (`0o755` for executables), written in decimal.
    pub mode: u32,
}

/// A folder in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Path relative to the install folder.
    pub path: TargetPath,
    /// Unix permission bits.
    pub mode: u32,
}

/// A symbolic link in a release; its target stays inside the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkEntry {
    /// Path relative to the install folder.
    pub path: TargetPath,
    /// The link's target, relative to the link's folder.
    pub target: String,
}

/// How a package is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PackageFormat {
    /// A POSIX tar stream compressed with zstd.
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl PackageFormat {
    /// The file extension (`tar.zst`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::TarZst => "tar.zst",
        }
    }
}

/// Whether a package holds the whole release or a delta from an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// Every file of the release.
    Full,
    /// A delta against an older release ([`PatchCustom`]).
    Patch,
}

/// A signed file that accompanies a package (manifest, changelog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Target path in the repository.
    pub path: TargetPath,
    /// Length in bytes.
    pub length: u64,
    /// Content digest.
    pub sha256: Sha256Digest,
}

/// Release info: what a client needs to decide about an update. It lives in
/// the package target's `custom.updraft` (signed by the targets role) and in
/// the release manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Application.
    pub app: AppId,
    /// Version.
    pub version: Version,
    /// Channel.
    pub channel: Channel,
    /// Operating system.
    pub platform: Platform,
    /// CPU architecture.
    pub arch: Arch,
    /// The main program, relative to the install folder.
    pub main: TargetPath,
    /// Release date, RFC 3339.
    pub release_date: String,
    /// Release notes (Markdown).
    #[serde(default)]
    pub notes: String,
    /// Clients older than this must update (the update is forced for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_supported_version: Option<Version>,
    /// Forced for everyone.
    #[serde(default)]
    pub force: bool,
    /// Share of installs offered the release, 0–100.
    #[serde(default = "full_rollout")]
    pub rollout_percent: u8,
    /// The rollout is paused: nobody is offered the release until it resumes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub halted: bool,
    /// Withdrawn: never offered again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub yanked: bool,
    /// When the server halts the rollout by itself (see [`AutoHalt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_halt: Option<AutoHalt>,
}

/// A rollout that halts itself: once at least `min_reports` install reports
/// arrived for the release and the share of `failed` + `rolled_back` among
/// them exceeds `max_failure_basis_points` (hundredths of a percent: 500 is
/// 5 %), the server halts it and re-signs the targets with `halted: true`.
/// Signed with the release, so every server and mirror applies the same rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoHalt {
    /// The failure share allowed, in hundredths of a percent (0–10000).
    pub max_failure_basis_points: u32,
    /// Reports needed before the rule applies (at least 1).
    pub min_reports: u64,
}

impl AutoHalt {
    /// True when `failures` of `reports` break the rule.
    pub fn exceeded(&self, failures: u64, reports: u64) -> bool {
        reports >= self.min_reports.max(1)
            && u128::from(failures) * 10_000
                > u128::from(self.max_failure_basis_points) * u128::from(reports)
    }

    /// The allowed rate as a percentage, for people (`5`, `2.5`).
    pub fn percent(&self) -> String {
        let whole = self.max_failure_basis_points / 100;
        let rest = self.max_failure_basis_points % 100;
        match rest {
            0 => whole.to_string(),
            r if r % 10 == 0 => format!("{whole}.{}", r / 10),
            r => format!("{whole}.{r:02}"),
        }
    }

    /// Parses a percentage (`5`, `2.5`, `0.25`) into basis points.
    pub fn parse_percent(text: &str) -> Result<u32, Error> {
        let invalid = || Error::InvalidName {
            kind: "failure rate",
            value: text.to_owned(),
            reason: "it must be a percentage from 0 to 100 with at most two decimals".into(),
        };
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        if whole.is_empty() && fraction.is_empty()
            || fraction.len() > 2
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
            || whole.len() > 3
        {
            return Err(invalid());
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let fraction: u32 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
        let points = whole * 100 + fraction;
        if points > 10_000 {
            return Err(invalid());
        }
        Ok(points)
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

impl ReleaseInfo {
    /// True when `other` describes the same release, ignoring the rollout
    /// state (percentage, halt, yank), which changes after publishing while
    /// the manifest keeps the state it was published with.
    pub fn same_release(&self, other: &Self) -> bool {
        let strip = |info: &Self| Self {
            rollout_percent: 0,
            halted: false,
            yanked: false,
            auto_halt: None,
            ..info.clone()
        };
        strip(self) == strip(other)
    }
}

fn full_rollout() -> u8 {
    100
}

/// Everything the signed `custom.updraft` field of a package target holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCustom {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Full or patch.
    pub kind: PackageKind,
    /// Encoding.
    pub format: PackageFormat,
    /// The release.
    #[serde(flatten)]
    pub release: ReleaseInfo,
    /// Sum of the sizes of the release's files.
    pub installed_size: u64,
    /// Number of files.
    pub file_count: u64,
    /// The signed per-file manifest.
    pub manifest: FileRef,
    /// The changelog file, if notes were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<FileRef>,
}

impl PackageCustom {
    /// Reads `custom.updraft` from a target's `custom` value. `Ok(None)` when
    /// the target is not an updraft package (a manifest, a changelog, or a
    /// file another tool put there).
    pub fn from_custom(what: &str, custom: Option<&Value>) -> Result<Option<Self>, Error> {
        let Some(value) = custom.and_then(|c| c.get("updraft")) else {
            return Ok(None);
        };
        read_format_version(what, value)?;
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|source| Error::Json {
                what: what.to_owned(),
                source,
            })
    }

    /// The `custom` value to put on the target.
    pub fn to_custom(&self) -> Value {
        serde_json::json!({ "updraft": self })
    }
}

/// Everything the signed `custom.updraft_patch` field of a patch target
/// holds: which release it rebuilds from which, against which manifests.
///
/// It lives under its own key, not `custom.updraft`, so that anything that
/// only knows full packages (older clients and servers, `rollout`,
/// `releases/latest/`) never takes a patch for a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchCustom {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Always [`PackageKind::Patch`].
    pub kind: PackageKind,
    /// The patch file format's version (`updraft_delta::format::FORMAT_VERSION`).
    pub patch_format: u32,
    /// Application.
    pub app: AppId,
    /// Channel.
    pub channel: Channel,
    /// Operating system.
    pub platform: Platform,
    /// CPU architecture.
    pub arch: Arch,
    /// The installed version the patch applies to.
    pub from_version: Version,
    /// The version it rebuilds.
    pub to_version: Version,
    /// The signed manifest of `from_version`.
    pub from_manifest: FileRef,
    /// The signed manifest of `to_version`.
    pub to_manifest: FileRef,
    /// The full package of `to_version`: the fallback.
    pub full: TargetPath,
    /// Digests of the patch's consecutive byte ranges, for exact resume.
    pub chunks: PackageChunks,
}

impl PatchCustom {
    /// Reads `custom.updraft_patch` from a target's `custom` value; `Ok(None)`
    /// when the target is not a patch.
    pub fn from_custom(what: &str, custom: Option<&Value>) -> Result<Option<Self>, Error> {
        let Some(value) = custom.and_then(|c| c.get("updraft_patch")) else {
            return Ok(None);
        };
        read_format_version(what, value)?;
        let patch: Self = serde_json::from_value(value.clone()).map_err(|source| Error::Json {
            what: what.to_owned(),
            source,
        })?;
        if patch.kind != PackageKind::Patch {
            return Err(Error::Invalid {
                what: what.to_owned(),
                reason: "its `updraft_patch` is not of kind `patch`".into(),
            });
        }
        Ok(Some(patch))
    }

    /// The `custom` value to put on the target.
    pub fn to_custom(&self) -> Value {
        serde_json::json!({ "updraft_patch": self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auto_halt_trips_only_past_the_rate_with_enough_reports() {
        let rule = AutoHalt {
            max_failure_basis_points: AutoHalt::parse_percent("20").unwrap(),
            min_reports: 10,
        };
        assert!(!rule.exceeded(9, 9), "too few reports");
        assert!(!rule.exceeded(2, 10), "exactly 20 % does not exceed 20 %");
        assert!(rule.exceeded(3, 10));
        assert_eq!(AutoHalt::parse_percent("2.5").unwrap(), 250);
        assert_eq!(AutoHalt::parse_percent("0.25").unwrap(), 25);
        assert_eq!(
            AutoHalt {
                max_failure_basis_points: 250,
                min_reports: 1
            }
            .percent(),
            "2.5"
        );
        for bad in ["", ".", "101", "1.234", "-1", "5%", "abc"] {
            assert!(AutoHalt::parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_newer_format_is_refused_before_parsing() {
        let bytes = serde_json::to_vec(&json!({"format_version": 2, "something": "new"})).unwrap();
        let error = ReleaseManifest::from_slice("manifest.json", &bytes).unwrap_err();
        assert!(matches!(error, Error::UnsupportedFormat { .. }), "{error}");
        assert!(error.to_string().contains("upgrade updraft"));
    }

    #[test]
    fn chunks_must_cover_the_package_exactly() {
        let size = PackageChunks::size_for(210_000_000);
        assert_eq!(size, 256 * 1024);
        assert_eq!(PackageChunks::size_for(10), MIN_CHUNK_SIZE);
        assert_eq!(PackageChunks::size_for(u64::MAX / 2), MAX_CHUNK_SIZE);
        let digest = Sha256Digest::of(b"");
        let chunks = PackageChunks {
            size: MIN_CHUNK_SIZE,
            sha256: vec![digest; 3],
        };
        assert!(chunks.check("p", 2 * MIN_CHUNK_SIZE + 1).is_ok());
        assert!(chunks.check("p", 3 * MIN_CHUNK_SIZE).is_ok());
        assert!(chunks.check("p", 3 * MIN_CHUNK_SIZE + 1).is_err());
        assert!(chunks.check("p", 2 * MIN_CHUNK_SIZE).is_err());
        assert_eq!(
            chunks.range(2, 2 * MIN_CHUNK_SIZE + 1),
            2 * MIN_CHUNK_SIZE..2 * MIN_CHUNK_SIZE + 1
        );
        let zero = PackageChunks {
            size: 0,
            sha256: vec![],
        };
        assert!(zero.check("p", 0).is_err());
    }

    #[test]
    fn unknown_optional_fields_are_ignored() {
        let value = json!({
            "format_version": 1, "app": "kuzflow", "version": "1.1.0", "channel": "stable",
            "platform": "linux", "arch": "x86_64", "main": "bin/kuzflow",
            "release_date": "2026-11-24T00:00:00Z", "files": [], "future_field": {"x": 1}
        });
        let manifest =
            ReleaseManifest::from_slice("m", &serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(manifest.release.rollout_percent, 100);
        assert_eq!(manifest.release.version, Version::new(1, 1, 0));
    }

    #[test]
    fn restart_points_must_rise_inside_the_package() {
        use super::{RestartPoint, check_restarts};
        let point = |offset, file| RestartPoint { offset, file };
        assert!(check_restarts("m", &[point(0, 0), point(100, 2), point(200, 2)], 300, 3).is_ok());
        assert!(check_restarts("m", &[], 300, 3).is_ok());
        for bad in [
            vec![point(0, 0), point(0, 1)],
            vec![point(100, 2), point(50, 3)],
            vec![point(100, 3), point(200, 2)],
            vec![point(300, 1)],
            vec![point(10, 4)],
        ] {
            let error = check_restarts("m", &bad, 300, 3).unwrap_err();
            assert!(error.to_string().contains("restart point"), "{error}");
        }
        // Old manifests (no field) parse, with no restart points.
        let old = json!({
            "format_version": 1, "app": "kuzflow", "version": "1.1.0", "channel": "stable",
            "platform": "linux", "arch": "x86_64", "main": "bin/kuzflow",
            "release_date": "2026-11-24T00:00:00Z", "files": []
        });
        let manifest =
            super::ReleaseManifest::from_slice("m", &serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(manifest.restarts.is_empty());
        assert_eq!(manifest.restart_before(5), None);
        assert!(
            !String::from_utf8(serde_json::to_vec(&manifest).unwrap())
                .unwrap()
                .contains("restarts")
        );
    }
}
