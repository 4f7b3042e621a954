//! Delta packages at publish time: for each earlier release of the same
//! app, channel, platform and arch chosen by [`DeltaPolicy`], the old
//! package is unpacked from the store (every entry checked against its
//! signed manifest) into a scratch folder under `.updraft/`, diffed against
//! the folder being published with `updraft_delta`, and the patch is staged
//! in the same transaction as the full package, unless it is not smaller.

use std::path::{Path, PathBuf};

use updraft_protocol::manifest::{FileRef, PackageChunks};
use updraft_protocol::{ReleaseManifest, Sha256Digest, TargetPath, Version};

use crate::error::{Error, Result};
use crate::layout::PublishedRelease;

/// Which earlier releases `publish` builds patches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaPolicy {
    /// The newest `n` earlier releases of the same app, channel, platform
    /// and arch (`publish` default: 3).
    Previous(usize),
    /// Exactly these versions (`--delta-from VER`, repeatable).
    From(Vec<Version>),
    /// None (`--no-delta`).
    None,
}

impl Default for DeltaPolicy {
    fn default() -> Self {
        Self::Previous(3)
    }
}

/// A patch `publish` added.
#[derive(Debug, Clone)]
pub struct PublishedPatch {
    /// Its target path.
    pub path: TargetPath,
    /// The version it applies to.
    pub from: Version,
    /// Its length.
    pub length: u64,
    /// Its digest.
    pub sha256: Sha256Digest,
}

/// A patch `publish` did not add, and why.
#[derive(Debug, Clone)]
pub struct SkippedPatch {
    /// The version it would have applied to.
    pub from: Version,
    /// One sentence.
    pub reason: String,
}

/// The releases to diff against, newest first.
pub(crate) fn bases<'a>(
    existing: &'a [PublishedRelease],
    request: &crate::PublishRequest,
) -> Result<Vec<&'a PublishedRelease>> {
    let mut same: Vec<&PublishedRelease> = existing
        .iter()
        .filter(|r| {
            let info = &r.custom.release;
            info.app == request.app
                && info.channel == request.channel
                && info.platform == request.platform
                && info.arch == request.arch
                && info.version < request.version
                && !info.yanked
        })
        .collect();
    same.sort_by(|a, b| b.custom.release.version.cmp(&a.custom.release.version));
    match &request.deltas {
        DeltaPolicy::None => Ok(Vec::new()),
        DeltaPolicy::Previous(n) => Ok(same.into_iter().take(*n).collect()),
        DeltaPolicy::From(versions) => versions
            .iter()
            .map(|wanted| {
                same.iter()
                    .find(|r| r.custom.release.version == *wanted)
                    .copied()
                    .ok_or_else(|| {
                        Error::Conflict(format!(
                            "`--delta-from {wanted}`: {} {wanted} is not published for {}/{} on channel {} below {}",
                            request.app, request.platform, request.arch, request.channel, request.version
                        ))
                    })
            })
            .collect(),
    }
}

/// The patch's target path: `releases/v{new}/{app}_v{new}_{platform}_{arch}_from_v{old}_patch.delta`.
pub(crate) fn patch_path(request: &crate::PublishRequest, from: &Version) -> TargetPath {
    let (app, version) = (&request.app, &request.version);
    TargetPath::new(&format!(
        "releases/v{version}/{app}_v{version}_{}_{}_from_v{from}_patch.delta",
        request.platform, request.arch
    ))
    .expect("built from validated parts")
}

/// A folder removed again when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the patch from `base` to the release in `new_root`.
pub(crate) fn make(
    store: &Path,
    base: &PublishedRelease,
    new_root: &Path,
    new_manifest: &ReleaseManifest,
    new_manifest_ref: &FileRef,
    level: i32,
) -> std::result::Result<Vec<u8>, String> {
    let manifest_ref = &base.custom.manifest;
    let manifest_path = store.join(manifest_ref.path.as_str());
    let bytes = std::fs::read(&manifest_path)
        .map_err(|e| format!("cannot read `{}`: {e}", manifest_ref.path))?;
    if bytes.len() as u64 != manifest_ref.length || Sha256Digest::of(&bytes) != manifest_ref.sha256
    {
        return Err(format!(
            "`{}` differs from its signed digest",
            manifest_ref.path
        ));
    }
    let old_manifest = ReleaseManifest::from_slice(manifest_ref.path.as_str(), &bytes)
        .map_err(|e| e.to_string())?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let scratch = Scratch(
        store
            .join(".updraft")
            .join(format!("delta-{}", hex::encode(random))),
    );
    updraft_package::create_root(&scratch.0)
        .map_err(|e| format!("cannot create `{}`: {e}", scratch.0.display()))?;
    updraft_package::walk(
        &store.join(&base.path),
        &old_manifest,
        &mut updraft_package::Unpack::new(&scratch.0),
    )
    .map_err(|e| format!("the package `{}` is unusable: {e}", base.path))?;
    let mut patch = Vec::new();
    updraft_delta::make(
        &updraft_delta::Release {
            root: &scratch.0,
            manifest: &old_manifest,
            manifest_sha256: manifest_ref.sha256,
        },
        &updraft_delta::Release {
            root: new_root,
            manifest: new_manifest,
            manifest_sha256: new_manifest_ref.sha256,
        },
        &updraft_delta::MakeOptions {
            level,
            ..updraft_delta::MakeOptions::default()
        },
        &mut patch,
    )
    .map_err(|e| e.to_string())?;
    Ok(patch)
}

/// The signed chunk digests of `bytes`.
pub(crate) fn chunks(bytes: &[u8]) -> PackageChunks {
    let size = PackageChunks::size_for(bytes.len() as u64);
    PackageChunks {
        size,
        sha256: bytes
            .chunks(usize::try_from(size).unwrap_or(usize::MAX))
            .map(Sha256Digest::of)
            .collect(),
    }
}
