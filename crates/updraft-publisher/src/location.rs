//! Where a store is kept: a local folder or an S3-compatible bucket. Every
//! command is written once, against a local store; on S3 it runs on a
//! working copy that [`crate::s3`] fetches and uploads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use updraft_protocol::{AppId, Version};

use crate::error::{Error, Result};
use crate::layout;
use crate::s3::{self, Bucket, GcReport, S3Settings, S3Url};
use crate::{
    DelegateReport, DelegationRequest, ExpiryPolicy, InitReport, Problem, PublishReport,
    PublishRequest, RefreshReport, RolloutAction, RolloutReport, VerifyReport,
};

/// A store: `--repo DIR` or `--repo s3://BUCKET/PREFIX`.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local folder (transactions, a lock file).
    Local(PathBuf),
    /// A prefix in an S3-compatible bucket (conditional writes).
    S3(Bucket),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => path.display().fmt(f),
            Self::S3(bucket) => bucket.fmt(f),
        }
    }
}

impl Location {
    /// `s3://...` is a bucket reached with the settings in the environment
    /// ([`S3Settings::from_env`]); anything else is a folder.
    pub fn open(text: &str) -> Result<Self> {
        Self::open_with(text, &S3Settings::from_env())
    }

    /// [`Location::open`] with explicit S3 settings.
    pub fn open_with(text: &str, settings: &S3Settings) -> Result<Self> {
        if text.starts_with("s3://") {
            let url = S3Url::parse(text)?;
            Ok(Self::S3(Bucket::connect(&url, settings)?))
        } else {
            Ok(Self::Local(PathBuf::from(text)))
        }
    }

    /// The store's current signed metadata, every signature and hash
    /// checked (expiry ignored, as the publisher does).
    pub fn current(&self) -> Result<crate::store::Current> {
        match self {
            Self::Local(path) => crate::store::load_chain(path, None),
            Self::S3(bucket) => s3::block_on(async {
                let dir = tempfile::Builder::new()
                    .prefix("updraft-s3-")
                    .tempdir()
                    .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
                let listing = bucket.list(Some(crate::store::METADATA_DIR)).await?;
                if s3::fetch_chain(bucket, dir.path(), &listing)
                    .await?
                    .is_none()
                {
                    return Err(Error::NotAStore {
                        path: PathBuf::from(bucket.to_string()),
                        reason: "it has no `metadata/timestamp.json`".into(),
                    });
                }
                crate::store::load_chain(dir.path(), None)
                    .map_err(|e| s3::rename_error(e, dir.path(), bucket.url()))
            })?,
        }
    }

    /// `repo init`.
    pub fn init(
        &self,
        keys_dir: &Path,
        now: OffsetDateTime,
        policy: &ExpiryPolicy,
    ) -> Result<InitReport> {
        match self {
            Self::Local(path) => crate::init(path, keys_dir, now, policy),
            Self::S3(bucket) => {
                let mut report = s3::block_on(s3::change_async(
                    bucket,
                    false,
                    async |_| Ok(()),
                    |dir| {
                        // `init` wants a missing or empty folder.
                        let store = dir.join("store");
                        let report = crate::init(&store, keys_dir, now, policy)?;
                        move_up(&store, dir)?;
                        Ok(report)
                    },
                ))??;
                report.store = PathBuf::from(bucket.to_string());
                report.root_file = PathBuf::from(bucket.url().object_url("metadata/root.json"));
                Ok(report)
            }
        }
    }

    /// `publish` (into the top-level targets, or delegated role `role`).
    pub fn publish(
        &self,
        keys_dir: &Path,
        request: &PublishRequest,
        role: Option<&str>,
        now: OffsetDateTime,
        policy: &ExpiryPolicy,
    ) -> Result<PublishReport> {
        match self {
            Self::Local(path) => crate::publish_as(path, keys_dir, request, role, now, policy),
            Self::S3(bucket) => s3::change(
                bucket,
                // Deltas start from earlier packages: fetch the ones `publish` will use.
                async |copy| {
                    let current = crate::store::load_chain(copy.path(), None)?;
                    let resolved = current.resolved();
                    let (existing, _) = layout::releases(&resolved);
                    let Ok(bases) = crate::delta::bases(&existing, request) else {
                        return Ok(()); // `publish` reports it
                    };
                    for base in bases {
                        copy.fetch(bucket, base.custom.manifest.path.as_str())
                            .await?;
                        copy.fetch(bucket, &base.path).await?;
                    }
                    Ok(())
                },
                |dir| crate::publish_as(dir, keys_dir, request, role, now, policy),
            ),
        }
    }

    /// `rollout`.
    pub fn rollout(
        &self,
        keys_dir: &Path,
        app: &AppId,
        version: &Version,
        actions: &[RolloutAction],
        now: OffsetDateTime,
        policy: &ExpiryPolicy,
    ) -> Result<RolloutReport> {
        match self {
            Self::Local(path) => {
                crate::rollout_all(path, keys_dir, app, version, actions, now, policy)
            }
            Self::S3(bucket) => s3::change(
                bucket,
                async |_| Ok(()),
                |dir| crate::rollout_all(dir, keys_dir, app, version, actions, now, policy),
            ),
        }
    }

    /// `repo refresh`.
    pub fn refresh(
        &self,
        keys_dir: &Path,
        now: OffsetDateTime,
        policy: &ExpiryPolicy,
    ) -> Result<RefreshReport> {
        match self {
            Self::Local(path) => crate::refresh(path, keys_dir, now, policy),
            Self::S3(bucket) => s3::change(
                bucket,
                async |_| Ok(()),
                |dir| crate::refresh(dir, keys_dir, now, policy),
            ),
        }
    }

    /// `repo delegate`.
    pub fn delegate(
        &self,
        keys_dir: &Path,
        request: &DelegationRequest,
        now: OffsetDateTime,
        policy: &ExpiryPolicy,
    ) -> Result<DelegateReport> {
        match self {
            Self::Local(path) => crate::delegate(path, keys_dir, request, now, policy),
            Self::S3(bucket) => s3::change(
                bucket,
                async |_| Ok(()),
                |dir| crate::delegate(dir, keys_dir, request, now, policy),
            ),
        }
    }

    /// `repo verify`. On S3 every object is fetched and checked as in a
    /// local store, and the orphans (objects no signed metadata refers to,
    /// left by an interrupted publish) are listed in [`VerifyReport::orphans`].
    pub fn verify(&self, reference_time: OffsetDateTime) -> Result<VerifyReport> {
        match self {
            Self::Local(path) => crate::verify(path, reference_time),
            Self::S3(bucket) => s3::block_on(async {
                let (dir, listing) = s3::mirror(bucket).await?;
                let mut report = crate::verify(dir.path(), reference_time)
                    .map_err(|e| s3::rename_error(e, dir.path(), bucket.url()))?;
                for info in &listing {
                    if updraft_protocol::TargetPath::new(&info.relative).is_err() {
                        report.problems.push(Problem {
                            path: info.relative.clone(),
                            message: "the object's name is not a safe relative path; no updraft client or server uses it".into(),
                        });
                    }
                }
                let (stale, problems): (Vec<Problem>, Vec<Problem>) =
                    std::mem::take(&mut report.problems)
                        .into_iter()
                        .partition(|p| is_view(&p.path));
                report.problems = problems;
                report.stale_views = stale;
                if report.root_version > 0 {
                    report.orphans = s3::orphans(dir.path(), &listing)?
                        .into_iter()
                        .map(|info| (info.relative, info.size, info.modified))
                        .collect();
                }
                Ok::<_, Error>(report)
            })?,
        }
    }

    /// `repo gc`: removes the orphans of an S3 store older than `grace`.
    /// A local store never has any (each change is a transaction that an
    /// interrupted command undoes), so it is refused there.
    pub fn gc(&self, grace: Duration, now: OffsetDateTime) -> Result<GcReport> {
        match self {
            Self::Local(path) => Err(Error::S3Config(format!(
                "`repo gc` is for S3 stores: the local store `{}` never keeps orphans (an interrupted change is undone by the next command that opens it)",
                path.display()
            ))),
            Self::S3(bucket) => s3::block_on(s3::gc(bucket, grace, now))?,
        }
    }
}

/// The unsigned browsing views derived from the signed targets.
fn is_view(path: &str) -> bool {
    path == "metadata/versions.json"
        || path.starts_with("releases/latest/")
        || path.starts_with("feeds/")
        || (path.starts_with("changelog/") && path.ends_with("/index.html"))
}

/// Moves every entry of `from` into `to` (its parent), then removes `from`.
fn move_up(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io("list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", from, e))?;
        let target = to.join(entry.file_name());
        std::fs::rename(entry.path(), &target).map_err(|e| Error::io("move", target, e))?;
    }
    std::fs::remove_dir(from).map_err(|e| Error::io("remove", from, e))
}
