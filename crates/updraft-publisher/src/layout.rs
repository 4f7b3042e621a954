//! The seed's human-readable views of the store (`metadata/versions.json`
//! and `releases/latest/*.json`), derived entirely from the signed targets.
//!
//! They are conveniences for people browsing the store; clients trust only
//! the TUF metadata. Because they are pure functions of the signed targets,
//! `repo verify` can regenerate them and compare byte for byte.

use std::collections::BTreeMap;

use serde::Serialize;
use updraft_protocol::tuf::Targets;
use updraft_protocol::{PackageCustom, Sha256Digest, Version};

use crate::store::latest_path;

/// A package target with its decoded release info.
#[derive(Debug, Clone)]
pub struct PublishedRelease {
    /// Target path of the package.
    pub path: String,
    /// Signed length.
    pub length: u64,
    /// Signed digest.
    pub sha256: Option<Sha256Digest>,
    /// Release info from `custom.updraft`.
    pub custom: PackageCustom,
}

/// Every updraft package in `targets`, oldest version first. Targets whose
/// custom data cannot be read are returned as errors by path.
pub fn releases(
    targets: &Targets,
) -> (
    Vec<PublishedRelease>,
    Vec<(String, updraft_protocol::Error)>,
) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (path, target) in &targets.targets {
        match PackageCustom::from_custom(path, target.custom.as_ref()) {
            Ok(Some(custom)) => found.push(PublishedRelease {
                path: path.clone(),
                length: target.length,
                sha256: target.sha256(),
                custom,
            }),
            Ok(None) => {}
            Err(error) => errors.push((path.clone(), error)),
        }
    }
    found.sort_by(|a, b| {
        let (ra, rb) = (&a.custom.release, &b.custom.release);
        (ra.app.as_str(), &ra.version, ra.platform, ra.arch).cmp(&(
            rb.app.as_str(),
            &rb.version,
            rb.platform,
            rb.arch,
        ))
    });
    (found, errors)
}

#[derive(Serialize)]
struct VersionsFile<'a> {
    format_version: u32,
    targets_version: u64,
    apps: BTreeMap<&'a str, Vec<Entry<'a>>>,
    /// Delta packages per app, by target path.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    patches: BTreeMap<String, Vec<PatchEntry>>,
}

#[derive(Serialize)]
struct PatchEntry {
    from_version: String,
    to_version: String,
    channel: String,
    platform: String,
    arch: String,
    package: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize)]
struct Entry<'a> {
    version: &'a Version,
    channel: &'a str,
    platform: &'a str,
    arch: &'a str,
    release_date: &'a str,
    package: &'a str,
    size: u64,
    sha256: String,
    manifest: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    changelog: Option<&'a str>,
    force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_supported_version: Option<&'a Version>,
    rollout_percent: u8,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    halted: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    yanked: bool,
}

fn entry(release: &PublishedRelease) -> Entry<'_> {
    let info = &release.custom.release;
    Entry {
        version: &info.version,
        channel: info.channel.as_str(),
        platform: info.platform.as_str(),
        arch: info.arch.as_str(),
        release_date: &info.release_date,
        package: &release.path,
        size: release.length,
        sha256: release.sha256.map(|d| d.to_hex()).unwrap_or_default(),
        manifest: release.custom.manifest.path.as_str(),
        changelog: release.custom.changelog.as_ref().map(|c| c.path.as_str()),
        force: info.force,
        min_supported_version: info.min_supported_version.as_ref(),
        rollout_percent: info.rollout_percent,
        halted: info.halted,
        yanked: info.yanked,
    }
}

fn to_bytes(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("views serialise");
    bytes.push(b'\n');
    bytes
}

/// `metadata/versions.json`: every release of every app, oldest first.
pub fn versions_json(targets: &Targets) -> Vec<u8> {
    let (found, _) = releases(targets);
    let mut apps: BTreeMap<&str, Vec<Entry<'_>>> = BTreeMap::new();
    for release in &found {
        apps.entry(release.custom.release.app.as_str())
            .or_default()
            .push(entry(release));
    }
    let mut patches: BTreeMap<String, Vec<PatchEntry>> = BTreeMap::new();
    for (path, target) in &targets.targets {
        if let Ok(Some(patch)) =
            updraft_protocol::PatchCustom::from_custom(path, target.custom.as_ref())
        {
            patches
                .entry(patch.app.to_string())
                .or_default()
                .push(PatchEntry {
                    from_version: patch.from_version.to_string(),
                    to_version: patch.to_version.to_string(),
                    channel: patch.channel.to_string(),
                    platform: patch.platform.to_string(),
                    arch: patch.arch.to_string(),
                    package: path.clone(),
                    size: target.length,
                    sha256: target.sha256().map(|d| d.to_hex()).unwrap_or_default(),
                });
        }
    }
    to_bytes(&VersionsFile {
        format_version: 1,
        targets_version: targets.version,
        apps,
        patches,
    })
}

/// `releases/latest/*.json`: the newest release that is not yanked per app,
/// channel, platform and arch, by store-relative path.
pub fn latest_files(targets: &Targets) -> BTreeMap<String, Vec<u8>> {
    let (found, _) = releases(targets);
    let mut newest: BTreeMap<String, &PublishedRelease> = BTreeMap::new();
    for release in found.iter().filter(|r| !r.custom.release.yanked) {
        let info = &release.custom.release;
        let key = latest_path(&info.app, &info.channel, info.platform, info.arch);
        let replace = newest
            .get(&key)
            .is_none_or(|current| current.custom.release.version < info.version);
        if replace {
            newest.insert(key, release);
        }
    }
    newest
        .into_iter()
        .map(|(path, release)| {
            let value = serde_json::json!({
                "app": release.custom.release.app,
                "entry": entry(release),
            });
            (path, to_bytes(&value))
        })
        .collect()
}
