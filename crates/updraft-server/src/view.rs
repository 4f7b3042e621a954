//! The in-memory view of the store that every check is answered from: the
//! signed releases, with the admin API's overrides applied. It is rebuilt when
//! the store's timestamp changes or an override is set, never per request.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use updraft_protocol::{
    AppId, Arch, PackageCustom, PatchCustom, Platform, ReleaseInfo, Sha256Digest, Version,
};

use crate::error::Result;

/// Identifies a release across its platforms: the admin API acts on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReleaseKey {
    /// Application.
    pub app: String,
    /// Version, as published.
    pub version: String,
}

/// Rollout settings the admin API set, overriding the signed ones for the
/// dynamic check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Rollout percentage, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_percent: Option<u8>,
    /// Halted, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<bool>,
    /// Yanked, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<bool>,
}

/// One package of one release, as served.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// Effective release info (signed values with overrides applied).
    pub(crate) info: ReleaseInfo,
    /// Release info exactly as signed.
    pub(crate) signed: ReleaseInfo,
    /// The signed package data.
    pub(crate) custom: PackageCustom,
    /// Store-relative package path.
    pub(crate) package: String,
    /// Package length.
    pub(crate) length: u64,
    /// Package digest.
    pub(crate) sha256: Option<Sha256Digest>,
}

impl Release {
    pub(crate) fn key(&self) -> ReleaseKey {
        ReleaseKey {
            app: self.info.app.to_string(),
            version: self.info.version.to_string(),
        }
    }
}

/// One signed patch, as served.
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    /// The signed patch data.
    pub(crate) custom: PatchCustom,
    /// Store-relative path.
    pub(crate) path: String,
    /// Length.
    pub(crate) length: u64,
}

/// What the store signed: its releases, its patches, the targets version.
pub(crate) type Signed = (Vec<Release>, u64, Vec<Patch>);

/// The whole view.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) targets_version: u64,
    /// Every signed patch.
    pub(crate) patches: Vec<Patch>,
    /// Every package, newest version first.
    pub(crate) releases: Vec<Release>,
    pub(crate) apps: BTreeSet<AppId>,
}

impl View {
    /// Builds the view from the store's signed targets and `overrides`.
    pub(crate) fn build(
        signed: &[Release],
        targets_version: u64,
        patches: &[Patch],
        overrides: &BTreeMap<ReleaseKey, Override>,
    ) -> Self {
        let mut releases: Vec<Release> = signed
            .iter()
            .map(|release| {
                let mut release = release.clone();
                if let Some(change) = overrides.get(&release.key()) {
                    if let Some(percent) = change.rollout_percent {
                        release.info.rollout_percent = percent;
                    }
                    if let Some(halted) = change.halted {
                        release.info.halted = halted;
                    }
                    if let Some(yanked) = change.yanked {
                        release.info.yanked = yanked;
                    }
                }
                release
            })
            .collect();
        releases.sort_by(|a, b| b.info.version.cmp(&a.info.version));
        let apps = releases.iter().map(|r| r.info.app.clone()).collect();
        Self {
            targets_version,
            patches: patches.to_vec(),
            releases,
            apps,
        }
    }

    /// The signed patches from `from` to `release` (same app, channel,
    /// platform and arch), and the cheapest way there by bytes: `None` when
    /// the full package is cheapest.
    pub(crate) fn cheapest_path(
        &self,
        from: &Version,
        release: &Release,
    ) -> Option<(Vec<&Patch>, u64)> {
        let info = &release.info;
        let candidates: Vec<&Patch> = self
            .patches
            .iter()
            .filter(|p| {
                let c = &p.custom;
                c.app == info.app
                    && c.channel == info.channel
                    && c.platform == info.platform
                    && c.arch == info.arch
            })
            .collect();
        let steps: Vec<updraft_protocol::offer::PatchStep<'_>> = candidates
            .iter()
            .map(|p| updraft_protocol::offer::PatchStep {
                from: &p.custom.from_version,
                to: &p.custom.to_version,
                length: p.length,
            })
            .collect();
        updraft_protocol::offer::cheapest_path(&steps, from, &info.version, release.length)
            .map(|(chain, bytes)| (chain.into_iter().map(|i| candidates[i]).collect(), bytes))
    }

    /// The patch from `from` to `app` `version` for `platform`/`arch`.
    pub(crate) fn find_patch(
        &self,
        app: &AppId,
        from: &Version,
        version: &Version,
        platform: Platform,
        arch: Arch,
    ) -> Option<&Patch> {
        self.patches.iter().find(|p| {
            let c = &p.custom;
            c.app == *app
                && c.from_version == *from
                && c.to_version == *version
                && c.platform == platform
                && c.arch == arch
        })
    }

    /// The package of `app` `version` for `platform`/`arch`.
    pub(crate) fn find(
        &self,
        app: &AppId,
        version: &Version,
        platform: Platform,
        arch: Arch,
    ) -> Option<&Release> {
        self.releases.iter().find(|r| {
            r.info.app == *app
                && r.info.version == *version
                && r.info.platform == platform
                && r.info.arch == arch
        })
    }
}

/// Reads the signed releases from the store (signatures and hashes checked,
/// expiry ignored: the server keeps serving while an operator renews it).
pub(crate) fn load_signed(store: &Path) -> Result<Signed> {
    let current = updraft_publisher::store::load_chain(store, None)?;
    let resolved = current.resolved();
    let targets = &resolved;
    let (found, errors) = updraft_publisher::layout::releases(targets);
    for (path, error) in errors {
        tracing::warn!(target = %path, %error, "skipping a target whose release info cannot be read");
    }
    let releases = found
        .into_iter()
        .map(|r| Release {
            info: r.custom.release.clone(),
            signed: r.custom.release.clone(),
            custom: r.custom,
            package: r.path,
            length: r.length,
            sha256: r.sha256,
        })
        .collect();
    let mut patches = Vec::new();
    for (path, target) in &targets.targets {
        match PatchCustom::from_custom(path, target.custom.as_ref()) {
            Ok(Some(custom)) => patches.push(Patch {
                custom,
                path: path.clone(),
                length: target.length,
            }),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(target = %path, %error, "skipping a patch whose data cannot be read");
            }
        }
    }
    Ok((releases, targets.version, patches))
}

/// The view plus what it was built from, swapped atomically on reload.
#[derive(Debug)]
pub(crate) struct ViewCell {
    current: RwLock<Arc<View>>,
    signed: RwLock<Signed>,
    overrides: RwLock<BTreeMap<ReleaseKey, Override>>,
    stamp: RwLock<Option<(SystemTime, u64)>>,
}

impl ViewCell {
    pub(crate) fn new(signed: Signed, overrides: BTreeMap<ReleaseKey, Override>) -> Self {
        let view = View::build(&signed.0, signed.1, &signed.2, &overrides);
        Self {
            current: RwLock::new(Arc::new(view)),
            signed: RwLock::new(signed),
            overrides: RwLock::new(overrides),
            stamp: RwLock::new(None),
        }
    }

    /// The current view (a cheap pointer copy).
    pub(crate) fn get(&self) -> Arc<View> {
        Arc::clone(&self.current.read().expect("view lock"))
    }

    fn rebuild(&self) {
        let signed = self.signed.read().expect("view lock");
        let overrides = self.overrides.read().expect("view lock");
        let view = View::build(&signed.0, signed.1, &signed.2, &overrides);
        *self.current.write().expect("view lock") = Arc::new(view);
    }

    /// Replaces every override with `overrides` (as committed in the
    /// database) and rebuilds the view.
    pub(crate) fn replace_overrides(&self, overrides: BTreeMap<ReleaseKey, Override>) {
        *self.overrides.write().expect("view lock") = overrides;
        self.rebuild();
    }

    /// The override of one release.
    pub(crate) fn override_of(&self, key: &ReleaseKey) -> Option<Override> {
        self.overrides.read().expect("view lock").get(key).cloned()
    }

    /// Reloads the signed releases when `metadata/timestamp.json` changed.
    /// Returns true when it reloaded.
    pub(crate) fn reload_if_changed(&self, store: &Path) -> Result<bool> {
        let path = store.join("metadata/timestamp.json");
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if *self.stamp.read().expect("view lock") == stamp {
            return Ok(false);
        }
        let signed = load_signed(store)?;
        *self.signed.write().expect("view lock") = signed;
        *self.stamp.write().expect("view lock") = stamp;
        self.rebuild();
        Ok(true)
    }
}
