//! [`UpdateManager`]: what an app embeds. It checks (through the server's
//! API, or from the signed metadata alone), downloads and verifies, installs,
//! remembers skip and remind-later choices, and reports outcomes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;
use updraft_protocol::offer::{self, Asker};
use updraft_protocol::{
    AppId, Arch, Channel, PackageCustom, PatchCustom, Platform, ReleaseManifest, Sha256Digest,
    UpdateType, Version,
};

use updraft_installer::{Handoff, Install, InstallState, Layout, Switched, UpdateConfig};

use crate::download::{self, DownloadOptions, DownloadRequest, DownloadStats, ProgressFn};
use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::transport::Fetcher;

/// How long an updater waits for the install's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// How long preparing waits for the install's lock.
const PREPARE_WAIT: Duration = Duration::from_secs(10);

/// A signed update this install may take.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    /// The version offered.
    pub version: String,
    /// The installed version.
    pub current_version: String,
    /// major, minor or patch.
    pub update_type: UpdateType,
    /// Mandatory (forced, or the install is below the minimum supported version).
    pub force_update: bool,
    /// The signed package target.
    pub target: String,
    /// Package size.
    pub file_size: u64,
    /// Package digest.
    pub sha256: String,
    /// Release date.
    pub release_date: String,
    /// Notes of the offered version.
    pub changelog: String,
    /// Notes of every version between the installed and the offered one, newest first.
    pub changelogs: Vec<(String, String)>,
    /// Minimum supported version, if any.
    pub min_supported_version: Option<String>,
    /// Where the package is, on the first server of the configuration.
    pub download_url: Option<String>,
    /// The cheapest signed patch chain from the installed version, when it
    /// costs fewer bytes than the full package (empty: the full package).
    #[serde(skip)]
    pub patches: Vec<OfferPatch>,
    #[serde(skip)]
    custom: PackageCustom,
}

impl Offer {
    /// The app offered (`kuzflow`), as the signed release names it.
    pub fn app(&self) -> &str {
        self.custom.release.app.as_str()
    }

    /// The path the download will take.
    pub fn path(&self) -> DownloadPath {
        match self.patches.len() {
            0 => DownloadPath::Full,
            1 => DownloadPath::Delta,
            _ => DownloadPath::Chain,
        }
    }

    /// Bytes the download will fetch on that path.
    pub fn download_size(&self) -> u64 {
        if self.patches.is_empty() {
            self.file_size
        } else {
            self.patches.iter().map(|p| p.length).sum()
        }
    }
}

impl Offer {
    /// The offer with the check API's fields (`latest_version`,
    /// `update_type`, `force_update`, ...), as `check --json` prints it.
    pub fn to_json(&self, status: &str) -> serde_json::Value {
        serde_json::json!({
            "update_available": true,
            "status": status,
            "current_version": self.current_version,
            "latest_version": self.version,
            "update_type": self.update_type,
            "force_update": self.force_update,
            "target": self.target,
            "file_size": self.file_size,
            "sha256": self.sha256,
            "changelog": self.changelog,
            "changelogs": self.changelogs.iter().map(|(v, n)| serde_json::json!({"version": v, "notes": n})).collect::<Vec<_>>(),
            "release_date": self.release_date,
            "min_supported_version": self.min_supported_version,
            "download_url": self.download_url,
            "download_path": self.path(),
            "download_size": self.download_size(),
            "patch_target": self.patches.first().map(|p| p.target.clone()),
            "patch_size": self.patches.first().map(|p| p.length),
            "patch_from": self.patches.first().map(|p| p.custom.from_version.to_string()),
        })
    }
}

impl CheckOutcome {
    /// The outcome with every field of the check API (`null` where there is
    /// no release), as `check --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::UpToDate { current_version } => serde_json::json!({
                "update_available": false, "status": "up_to_date",
                "current_version": current_version, "latest_version": null,
                "update_type": null, "force_update": false, "download_url": null,
                "file_size": null, "changelog": null, "release_date": null,
                "min_supported_version": null,
            }),
            Self::Available(offer) => offer.to_json("available"),
            Self::Skipped(offer) => offer.to_json("skipped"),
            Self::Snoozed(offer) => offer.to_json("snoozed"),
        }
    }
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Nothing newer is offered.
    UpToDate {
        /// The installed version.
        current_version: String,
    },
    /// An update is offered.
    Available(Offer),
    /// The user skipped this version (never for forced updates).
    Skipped(Offer),
    /// "Remind me later" is in effect (never for forced updates).
    Snoozed(Offer),
}

/// Events for a UI: the seed's signals.
#[derive(Debug, Clone)]
pub enum Event {
    /// An update is available.
    UpdateAvailable(Box<Offer>),
    /// Download progress: bytes done, total.
    Progress(u64, u64),
    /// Installed.
    Completed(String),
    /// Failed, with one sentence.
    Failed(String),
}

/// Builds an [`UpdateManager`].
#[derive(Debug)]
pub struct UpdateManagerBuilder {
    install_dir: PathBuf,
    platform: Option<Platform>,
    arch: Option<Arch>,
}

impl UpdateManagerBuilder {
    /// Overrides the platform (defaults to this machine's).
    #[must_use]
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Overrides the arch (defaults to this machine's).
    #[must_use]
    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = Some(arch);
        self
    }

    /// Opens the install: its configuration, state and trusted metadata.
    pub fn build(self) -> Result<UpdateManager> {
        let layout = Layout::new(&self.install_dir);
        let loaded = UpdateConfig::load(&layout.config())?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let server = &loaded.config.update_server;
        for (key, url) in loaded.config.keyed_base_urls() {
            if let Some(reason) = crate::transport::insecure_http(url, server.allow_insecure_http) {
                return Err(Error::Config {
                    path: layout.config(),
                    reason: format!("`{key}`: {reason}"),
                });
            }
        }
        if !loaded.config.download_settings.verify_ssl {
            tracing::warn!(
                "`download_settings.verify_ssl` is false in `{}`: TLS certificates are not checked, so anyone on the way can read and change what updraft sends and receives (the signed metadata still guards what is installed); set it to true",
                layout.config().display()
            );
        }
        let state = InstallState::load(&layout)?;
        let platform = self
            .platform
            .map_or_else(|| Platform::parse(&state.platform), Ok)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let arch = self
            .arch
            .map_or_else(|| Arch::parse(&state.arch), Ok)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let fetcher = Fetcher::new(&loaded.config)?;
        Ok(UpdateManager {
            layout,
            config: loaded.config,
            fetcher,
            platform,
            arch,
            state: Mutex::new(state),
        })
    }
}

/// The client library's front door.
///
/// ```no_run
/// # async fn demo() -> Result<(), updraft_client::Error> {
/// use updraft_client::{CheckOutcome, UpdateManager};
/// let manager = UpdateManager::builder("/opt/kuzflow").build()?;
/// if let CheckOutcome::Available(offer) = manager.check().await? {
///     println!("Version {} is available", offer.version);
///     let cancel = tokio_util::sync::CancellationToken::new();
///     let package = manager.download(&offer, None, &cancel).await?;
///     manager.install(&offer, &package).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UpdateManager {
    layout: Layout,
    config: UpdateConfig,
    fetcher: Fetcher,
    platform: Platform,
    arch: Arch,
    state: Mutex<InstallState>,
}

/// How an update's bytes were fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadPath {
    /// One patch from the installed version.
    Delta,
    /// Several patches, one after the other.
    Chain,
    /// The full package.
    Full,
}

/// One signed patch of an offer's path.
#[derive(Debug, Clone)]
pub struct OfferPatch {
    /// Its target path.
    pub target: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed data.
    pub custom: PatchCustom,
}

/// A verified release, unpacked in the staging folder, and its manifest.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The unpacked release (`.updraft/staging/{sha256}.tree`), every file
    /// checked against the manifest; [`UpdateManager::prepare`] moves it into
    /// `versions/`.
    pub staged: PathBuf,
    /// The verified manifest.
    pub manifest: ReleaseManifest,
    /// Transfer figures.
    pub stats: DownloadStats,
    /// Which signed path was taken.
    pub path: DownloadPath,
    /// Held until the package is installed: a second updater cannot rewrite it meanwhile.
    _lock: Arc<updraft_fs::StoreLock>,
}

impl UpdateManager {
    /// Starts building a manager for the install in `install_dir`.
    pub fn builder(install_dir: impl AsRef<Path>) -> UpdateManagerBuilder {
        UpdateManagerBuilder {
            install_dir: install_dir.as_ref().to_path_buf(),
            platform: None,
            arch: None,
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &UpdateConfig {
        &self.config
    }

    /// A copy of the install state.
    pub fn state(&self) -> InstallState {
        self.state.lock().expect("state lock").clone()
    }

    /// The install folder.
    pub fn install_dir(&self) -> &Path {
        &self.layout.root
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    fn base(&self) -> Result<String> {
        self.config
            .base_urls()
            .into_iter()
            .next()
            .ok_or_else(|| Error::Config {
                path: self.layout.config(),
                reason: "`update_server.base_url` is not set".into(),
            })
    }

    /// Refreshes the signed metadata from the first server or mirror that
    /// answers, and says which one did: the version check goes to the same.
    async fn repository(&self, now: OffsetDateTime) -> Result<(Repository, String)> {
        let mut last = None;
        for base in self.config.base_urls() {
            match Repository::refresh(
                &self.layout.metadata(),
                &format!("{base}/metadata"),
                &self.fetcher,
                now,
            )
            .await
            {
                Ok(repository) => return Ok((repository, base)),
                // A bad mirror: try the next; verification errors stay errors.
                Err(error @ Error::Network { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config {
            path: self.layout.config(),
            reason: "`update_server.base_url` is not set".into(),
        }))
    }

    /// Checks for an update: refreshes the signed metadata, asks the server
    /// (or, for a static store, applies the rules to the metadata), and
    /// accepts only an offer that is a signed package of this app.
    pub async fn check(&self) -> Result<CheckOutcome> {
        let now = OffsetDateTime::now_utc();
        let (repository, base) = self.repository(now).await?;
        let state = self.state();
        let app = AppId::new(&state.app).map_err(|e| Error::Usage(e.to_string()))?;
        let channel =
            Channel::new(&self.config.channel).map_err(|e| Error::Usage(e.to_string()))?;
        let current =
            Version::parse(&state.current_version).map_err(|e| Error::Usage(e.to_string()))?;
        let asker = Asker {
            app: &app,
            platform: self.platform,
            arch: self.arch,
            channel: &channel,
            current_version: &current,
            rollout_id: Some(&state.install_id),
        };
        let (releases, _) = crate::releases(repository.targets());
        let chosen = match self.dynamic_offer(&base, &state, &asker).await? {
            Some(DynamicAnswer::NoUpdate) => None,
            Some(DynamicAnswer::Target(target)) => {
                // The server only chooses; the choice must be a signed package of this app.
                let signed = releases
                    .iter()
                    .find(|r| r.0 == target && offer::applies(&r.2.release, &asker));
                Some(signed.ok_or_else(|| Error::NotSigned {
                    target: target.clone(),
                    app: app.to_string(),
                    platform: self.platform.to_string(),
                    arch: self.arch.to_string(),
                })?)
            }
            None => offer::best(
                releases.iter().filter(|r| {
                    !state
                        .bad_versions
                        .contains(&r.2.release.version.to_string())
                }),
                |r| &r.2.release,
                &asker,
            ),
        };
        // A version that failed its health check here is never offered again.
        let chosen = chosen.filter(|r| {
            !state
                .bad_versions
                .contains(&r.2.release.version.to_string())
        });
        let Some((target, file, custom)) = chosen.cloned() else {
            return Ok(CheckOutcome::UpToDate {
                current_version: state.current_version,
            });
        };
        let info = &custom.release;
        let mut changelogs: Vec<(Version, String)> = releases
            .iter()
            .filter(|r| {
                offer::applies(&r.2.release, &asker)
                    && !r.2.release.yanked
                    && r.2.release.version <= info.version
                    && !r.2.release.notes.is_empty()
            })
            .map(|r| (r.2.release.version.clone(), r.2.release.notes.clone()))
            .collect();
        changelogs.sort_by(|a, b| b.0.cmp(&a.0));
        let offer = Offer {
            version: info.version.to_string(),
            current_version: current.to_string(),
            update_type: UpdateType::between(&current, &info.version),
            force_update: offer::is_forced(info, &current),
            target: target.clone(),
            file_size: file.length,
            sha256: file.sha256().map(|d| d.to_hex()).unwrap_or_default(),
            release_date: info.release_date.clone(),
            changelog: info.notes.clone(),
            changelogs: changelogs
                .into_iter()
                .map(|(v, n)| (v.to_string(), n))
                .collect(),
            min_supported_version: info.min_supported_version.as_ref().map(ToString::to_string),
            download_url: self
                .config
                .base_urls()
                .first()
                .map(|base| format!("{base}/{target}")),
            patches: if self.layout.versions().join(current.to_string()).is_dir() {
                patch_chain(repository.targets(), &custom, &current, file.length)
            } else {
                Vec::new()
            },
            custom: custom.clone(),
        };
        if !offer.force_update {
            if state.skipped.contains(&offer.version) {
                return Ok(CheckOutcome::Skipped(offer));
            }
            if let Some(after) = state
                .remind_after
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                && after > now
            {
                return Ok(CheckOutcome::Snoozed(offer));
            }
        }
        Ok(CheckOutcome::Available(offer))
    }

    /// Asks the update server at `base` (the one the metadata came from) to
    /// choose; `None` when `base` is a static store that cannot.
    async fn dynamic_offer(
        &self,
        base: &str,
        state: &InstallState,
        asker: &Asker<'_>,
    ) -> Result<Option<DynamicAnswer>> {
        if base.starts_with("file://") {
            return Ok(None);
        }
        let body = serde_json::json!({
            "current_version": state.current_version, "platform": asker.platform, "arch": asker.arch,
            "app": state.app, "channel": asker.channel, "install_id": state.install_id,
        });
        let url = format!("{base}/api/version/check");
        let (status, answer) = self.fetcher.post_json(&url, &body, 1 << 20).await?;
        match status {
            // A static host: the signed metadata alone decides.
            404 | 405 | 501 => Ok(None),
            200 if answer["update_available"] == false => Ok(Some(DynamicAnswer::NoUpdate)),
            200 => {
                let target = answer["target"].as_str().map(str::to_owned).or_else(|| {
                    // A server that only names the version: find its signed package.
                    answer["latest_version"].as_str().map(|v| {
                        format!(
                            "releases/v{v}/{}_v{v}_{}_{}_full.tar.zst",
                            state.app, asker.platform, asker.arch
                        )
                    })
                });
                target
                    .map(DynamicAnswer::Target)
                    .map(Some)
                    .ok_or_else(|| Error::Network {
                        url,
                        reason: "the answer names no release".into(),
                    })
            }
            other => Err(Error::Network {
                url,
                reason: format!(
                    "the server answered {other}: {}",
                    answer["error"].as_str().unwrap_or("")
                ),
            }),
        }
    }

    /// Downloads and verifies the offer's release into the private staging
    /// folder (resuming an interrupted download), by the cheapest signed
    /// path ([`Offer::path`]): a patch, a chain of patches, or the full
    /// package. Whatever goes wrong on a patch path (a missing or corrupt
    /// patch, a locally modified install, an interrupted earlier attempt
    /// that cannot be resumed) falls back to the full package by itself.
    pub async fn download(
        &self,
        offer: &Offer,
        progress: Option<ProgressFn>,
        cancel: &CancellationToken,
    ) -> Result<Downloaded> {
        if !offer.patches.is_empty() {
            match self.download_patches(offer, progress.clone(), cancel).await {
                Ok(downloaded) => return Ok(downloaded),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                // The install's own disk failed: the full package would too.
                Err(error @ Error::Install { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "the delta update failed; fetching the full package");
                }
            }
        }
        let mut downloaded = self.download_full(offer, progress, cancel).await?;
        downloaded.path = DownloadPath::Full;
        Ok(downloaded)
    }

    /// Fetches a small signed file (a manifest) into the staging folder and
    /// parses it as a manifest.
    async fn fetch_manifest(
        &self,
        repository: &Repository,
        reference: &updraft_protocol::manifest::FileRef,
        dest: &Path,
    ) -> Result<ReleaseManifest> {
        let mut last = None;
        for base in self.config.base_urls() {
            match repository
                .download_small_target(&self.fetcher, &base, reference.path.as_str(), dest)
                .await
            {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(error @ Error::Network { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        if let Some(error) = last {
            return Err(error);
        }
        let bytes = std::fs::read(dest).map_err(|e| Error::io("read", dest, e))?;
        ReleaseManifest::from_slice(reference.path.as_str(), &bytes)
            .map_err(|e| Error::verification(&e))
    }

    /// The patch path: each patch of the chain is downloaded (chunk by
    /// chunk, resumable) and applied as it arrives, from the installed
    /// version's folder (or the previous step's tree) into a tree of its
    /// own in the staging folder; the last one is the offer's tree.
    async fn download_patches(
        &self,
        offer: &Offer,
        progress: Option<ProgressFn>,
        cancel: &CancellationToken,
    ) -> Result<Downloaded> {
        let staging = self.layout.create_staging()?;
        let lock =
            updraft_fs::StoreLock::try_acquire(&staging.join(format!("{}.lock", offer.sha256)))?;
        let repository = Repository::refresh_offline(&self.layout.metadata())?;
        let installed = self.layout.versions().join(&offer.current_version);
        let total: u64 = offer.patches.iter().map(|p| p.length).sum();
        let mut old_root = installed.clone();
        let mut old_manifest: Option<ReleaseManifest> = None;
        let mut stats = DownloadStats::default();
        let mut done_before = 0u64;
        let mut trees = Vec::new();
        let mut result = None;
        for (step, patch) in offer.patches.iter().enumerate() {
            let last = step + 1 == offer.patches.len();
            let custom = &patch.custom;
            let old = match old_manifest.take() {
                Some(manifest) => manifest,
                None => {
                    self.fetch_manifest(
                        &repository,
                        &custom.from_manifest,
                        &staging.join(format!("{}.manifest.json", custom.from_manifest.sha256)),
                    )
                    .await?
                }
            };
            let new = self
                .fetch_manifest(
                    &repository,
                    &custom.to_manifest,
                    &staging.join(format!("{}.manifest.json", custom.to_manifest.sha256)),
                )
                .await?;
            if old.release.version != custom.from_version
                || new.release.version != custom.to_version
            {
                return Err(Error::Verification(format!(
                    "The manifests of `{}` do not describe {} and {}",
                    patch.target, custom.from_version, custom.to_version
                )));
            }
            if last && !new.release.same_release(&offer.custom.release) {
                return Err(Error::Verification(format!(
                    "The patch `{}` does not rebuild {}",
                    patch.target, offer.version
                )));
            }
            let target = repository.find_target(&patch.target)?;
            custom
                .chunks
                .check(&patch.target, target.length)
                .map_err(|e| Error::verification(&e))?;
            let sha256 = target
                .sha256()
                .ok_or_else(|| Error::Verification(format!("`{}` has no SHA-256", patch.target)))?;
            let tree_name = if last {
                offer.sha256.clone()
            } else {
                sha256.to_hex()
            };
            let staged = Staged::of(&staging, &tree_name);
            let urls = self
                .config
                .base_urls()
                .iter()
                .map(|base| repository.target_url(base, &patch.target, target))
                .collect::<Result<Vec<_>>>()?;
            let request = DownloadRequest {
                urls,
                length: target.length,
                sha256,
                chunks: Some(custom.chunks.clone()),
                what: patch.target.clone(),
                dest: staging.join(format!("{}.delta", sha256.to_hex())),
                from: 0,
                sync_partial: true,
            };
            download::ensure_space(&staging, target.length.saturating_add(new.installed_size()))?;
            updraft_package::create_root(&staged.tree)
                .map_err(|e| Error::io("create", &staged.tree, e))?;
            let apply: download::ConsumeFn<()> = {
                let (tree, old_root, old, new) = (
                    staged.tree.clone(),
                    old_root.clone(),
                    old.clone(),
                    new.clone(),
                );
                let (from_sha, to_sha, what) = (
                    custom.from_manifest.sha256,
                    custom.to_manifest.sha256,
                    patch.target.clone(),
                );
                Arc::new(move |reader| {
                    let mut sink = updraft_package::Unpack::new(&tree)
                        .reuse_verified(true)
                        .backlog(reader.backlog())
                        .durable();
                    let old_release = updraft_delta::Release {
                        root: &old_root,
                        manifest: &old,
                        manifest_sha256: from_sha,
                    };
                    updraft_fs::fault::point("delta.applying");
                    updraft_delta::apply(reader, &old_release, &new, to_sha, &mut sink).map_err(
                        |e| match e {
                            // Writing the new version failed (a full disk): the full
                            // package would fail the same way.
                            updraft_delta::Error::Sink(reason) => Error::Install {
                                version: new.release.version.to_string(),
                                reason,
                            },
                            other => Error::Verification(format!(
                                "The patch `{what}` cannot be applied: {other}"
                            )),
                        },
                    )?;
                    updraft_fs::fault::point("delta.applied");
                    sink.finish().map_err(|reason| Error::Install {
                        version: new.release.version.to_string(),
                        reason,
                    })
                })
            };
            let step_progress: Option<ProgressFn> = progress.clone().map(|progress| {
                let before = done_before;
                let f: ProgressFn = Arc::new(move |done, _| progress(before + done, total));
                f
            });
            let settings = &self.config.download_settings;
            let options = DownloadOptions {
                parallel: settings.parallel_downloads,
                retry_count: settings.retry_count,
                min_rate: settings.min_rate,
                rate_window: Duration::from_secs(settings.stall_timeout),
                ..DownloadOptions::default()
            };
            let ((), step_stats) = download::download_streaming(
                &self.fetcher,
                &request,
                &options,
                step_progress,
                cancel,
                apply,
            )
            .await?;
            download::discard_partial(&request.dest);
            stats.fetched += step_stats.fetched;
            stats.resumed += step_stats.resumed;
            done_before += target.length;
            trees.push(staged.tree.clone());
            old_root = staged.tree.clone();
            if last {
                staged.mark_complete(&offer.version)?;
                result = Some((staged.tree, new));
            } else {
                old_manifest = Some(new);
            }
        }
        // Intermediate trees of a chain have served their purpose.
        for tree in trees.iter().take(trees.len().saturating_sub(1)) {
            let _ = std::fs::remove_dir_all(tree);
        }
        let (staged, manifest) =
            result.ok_or_else(|| Error::Usage("an empty patch chain".into()))?;
        Ok(Downloaded {
            staged,
            manifest,
            stats,
            path: if offer.patches.len() == 1 {
                DownloadPath::Delta
            } else {
                DownloadPath::Chain
            },
            _lock: Arc::new(lock),
        })
    }

    /// The full package path.
    async fn download_full(
        &self,
        offer: &Offer,
        progress: Option<ProgressFn>,
        cancel: &CancellationToken,
    ) -> Result<Downloaded> {
        let staging = self.layout.create_staging()?;
        let lock =
            updraft_fs::StoreLock::try_acquire(&staging.join(format!("{}.lock", offer.sha256)))?;
        let repository = Repository::refresh_offline(&self.layout.metadata())?;
        let manifest_ref = &offer.custom.manifest;
        let manifest_path = staging.join(format!("{}.manifest.json", offer.sha256));
        let manifest = self
            .fetch_manifest(&repository, manifest_ref, &manifest_path)
            .await?;
        if !manifest.release.same_release(&offer.custom.release) {
            return Err(Error::Verification(format!(
                "The manifest `{}` does not describe {}",
                manifest_ref.path, offer.version
            )));
        }
        let target = repository.find_target(&offer.target)?;
        let urls = self
            .config
            .base_urls()
            .iter()
            .map(|base| repository.target_url(base, &offer.target, target))
            .collect::<Result<Vec<_>>>()?;
        let sha256 = Sha256Digest::from_hex(&offer.sha256).map_err(|e| Error::verification(&e))?;
        if let Some(chunks) = &manifest.chunks {
            chunks
                .check(manifest_ref.path.as_str(), target.length)
                .map_err(|e| Error::verification(&e))?;
        }
        let staged = Staged::of(&staging, &offer.sha256);
        if staged.is_complete() {
            return Ok(Downloaded {
                staged: staged.tree,
                manifest,
                stats: DownloadStats {
                    already_complete: true,
                    ..DownloadStats::default()
                },
                path: DownloadPath::Full,
                _lock: Arc::new(lock),
            });
        }
        let request = DownloadRequest {
            urls,
            length: target.length,
            sha256,
            chunks: manifest.chunks.clone(),
            what: offer.target.clone(),
            dest: staged.package.clone(),
            from: 0,
            sync_partial: true,
        };
        // A resumed install decodes from the last restart point before the
        // first file it still lacks (what lies before it is hashed, never
        // trusted), so it fetches only what it does not hold from there on.
        let from = resume_point(
            &staged.tree,
            &manifest,
            manifest_ref.path.as_str(),
            target.length,
        )
        .await?;
        // With restart points inside the package, the unpacked, synced files
        // are what a resume after a power loss starts from: syncing the
        // partial package as well would write every byte to the disk twice
        // (measured on 1 GB: 6.5 s against 4.1–4.5 s, and 1.036x against
        // 1.018x the package on the wire after a power loss at 50 %).
        let request = DownloadRequest {
            from: from.map_or(0, |point| point.offset),
            sync_partial: !manifest.restarts.iter().any(|point| point.offset > 0),
            ..request
        };
        let settings = &self.config.download_settings;
        let options = DownloadOptions {
            parallel: settings.parallel_downloads,
            retry_count: settings.retry_count,
            min_rate: settings.min_rate,
            rate_window: Duration::from_secs(settings.stall_timeout),
            ..DownloadOptions::default()
        };
        // Room for the package and the unpacked release, side by side.
        download::ensure_space(
            &staging,
            target.length.saturating_add(offer.custom.installed_size),
        )?;
        updraft_package::create_root(&staged.tree)
            .map_err(|e| Error::io("create", &staged.tree, e))?;
        updraft_fs::fault::point("download.checked");
        let unpack: download::ConsumeFn<()> = {
            let (tree, manifest, version) =
                (staged.tree.clone(), manifest.clone(), offer.version.clone());
            let record = staged.synced_record();
            Arc::new(move |reader| {
                // Files an interrupted run already unpacked are kept once they
                // hash right; each file is synced as soon as it is complete.
                // The download keeps within a few requests of the last synced
                // file: what it holds beyond is what a power loss takes.
                let mut sink = updraft_package::Unpack::new(&tree)
                    .reuse_verified(true)
                    .record_synced(&record)
                    .backlog(reader.backlog())
                    .durable();
                let installing = |reason| Error::Install {
                    version: version.clone(),
                    reason,
                };
                // A chunked package reaches the walk only chunk by verified
                // chunk: its files are the signed ones without hashing them again.
                let digests = if manifest.chunks.is_some() {
                    updraft_package::FileDigests::CoveredByChunks
                } else {
                    updraft_package::FileDigests::Check
                };
                updraft_package::walk_reader_from(reader, &manifest, &mut sink, digests, from)
                    .map_err(installing)?;
                updraft_fs::fault::point("download.unpacked");
                sink.finish().map_err(installing)
            })
        };
        let ((), stats) = download::download_streaming(
            &self.fetcher,
            &request,
            &options,
            progress,
            cancel,
            unpack,
        )
        .await?;
        staged.mark_complete(&offer.version)?;
        let _ = std::fs::remove_file(staged.synced_record());
        updraft_fs::fault::point("download.staged");
        // The package has served its purpose: removed before the kernel
        // writes it out. Only the unpacked, synced tree is kept.
        download::discard_partial(&staged.package);
        Ok(Downloaded {
            staged: staged.tree,
            manifest,
            stats,
            path: DownloadPath::Full,
            _lock: Arc::new(lock),
        })
    }

    /// Installs a downloaded release and makes it current at once: [`prepare`](Self::prepare)
    /// then [`activate`](Self::activate). For an app that is running, use
    /// [`prepare`](Self::prepare) and [`apply_on_exit`](Self::apply_on_exit) instead.
    pub async fn install(&self, offer: &Offer, downloaded: &Downloaded) -> Result<()> {
        self.prepare(offer, downloaded).await?;
        match self.activate()? {
            Some(switched) if switched.to == offer.version => Ok(()),
            _ => Err(Error::Install {
                version: offer.version.clone(),
                reason: "another updater changed the prepared version meanwhile".into(),
            }),
        }
    }

    /// Unpacks and verifies a downloaded release into its own folder beside
    /// the running version (which is not touched), and records it as
    /// prepared. It becomes current with [`activate`](Self::activate), with
    /// [`apply_on_exit`](Self::apply_on_exit), or at the next `updraft run`.
    pub async fn prepare(&self, offer: &Offer, downloaded: &Downloaded) -> Result<()> {
        let layout = self.layout.clone();
        let (tree, manifest) = (downloaded.staged.clone(), downloaded.manifest.clone());
        let version = offer.version.clone();
        tokio::task::spawn_blocking(move || {
            // Preparing is one rename now: wait for `status`, `run` or
            // `confirm`, which hold the lock for moments, instead of failing
            // when one of them happens to hold it. (A second updater is
            // refused earlier, at the staged download's own lock.)
            let install = Install::open_within(&layout.root, PREPARE_WAIT)?;
            updraft_fs::fault::point("prepare.checked");
            install.prepare(&tree, &manifest)?;
            Ok::<_, Error>(install.state()?)
        })
        .await
        .map_err(|e| Error::Install {
            version,
            reason: e.to_string(),
        })?
        .map(|state| *self.state.lock().expect("state lock") = state)?;
        let _ = std::fs::remove_file(Staged::marker_of(&downloaded.staged));
        Ok(())
    }

    /// Makes the prepared version current (one journaled atomic switch) and
    /// removes versions beyond `backup_count`. Call it when the app is not
    /// running; returns `None` when nothing is prepared.
    pub fn activate(&self) -> Result<Option<Switched>> {
        // `run` and `confirm` hold the lock for moments: wait for them.
        let install = Install::open_within(&self.layout.root, LOCK_WAIT)?;
        let switched = install.activate(&self.config.install_settings)?;
        *self.state.lock().expect("state lock") = install.state()?;
        Ok(switched)
    }

    /// The one call for a running app's "Install now": prepares the
    /// downloaded release beside the running version, then hands it to the
    /// updater ([`apply_on_exit`](Self::apply_on_exit)), which switches
    /// versions once this process exits and restarts the app. Exit the app
    /// after it returns.
    pub async fn install_on_exit(
        &self,
        offer: &Offer,
        downloaded: &Downloaded,
        handoff: &Handoff,
    ) -> Result<u32> {
        self.prepare(offer, downloaded).await?;
        self.apply_on_exit(handoff)
    }

    /// Hands the prepared update to a separate updater process (the
    /// install's `.updraft/bin/updraft`, or `$UPDRAFT_UPDATER`) and returns its
    /// process id. The updater waits for `options.wait_pid` (this process by
    /// default) to exit, switches versions, and restarts the app with
    /// `options.restart_args` when `install_settings.auto_restart` is on. The
    /// app should exit promptly after this call; what the updater does is
    /// appended to `.updraft/updater.log`.
    pub fn apply_on_exit(&self, options: &Handoff) -> Result<u32> {
        let prepared = self
            .state()
            .prepared
            .ok_or_else(|| Error::Usage("no update is prepared; call `prepare` first".into()))?;
        let pid = updraft_installer::start_updater(&self.layout, options)?;
        tracing::info!(version = %prepared, pid, "handed the update to the updater");
        Ok(pid)
    }

    /// "Skip this version": never offered again unless forced.
    pub fn skip(&self, version: &str) -> Result<()> {
        self.change_state(|state| {
            if !state.skipped.iter().any(|v| v == version) {
                state.skipped.push(version.to_owned());
            }
        })
    }

    /// "Remind me later": no prompt for `remind_interval` seconds unless forced.
    pub fn remind_later(&self) -> Result<()> {
        let until = OffsetDateTime::now_utc()
            + Duration::from_secs(self.config.check_settings.remind_interval);
        self.change_state(|state| state.remind_after = until.format(&Rfc3339).ok())
    }

    /// Changes the state on disk under the install's lock, starting from what
    /// is on disk now (another process may have switched versions since this
    /// manager was built), and refreshes this manager's copy.
    fn change_state(&self, change: impl FnOnce(&mut InstallState)) -> Result<()> {
        let state = Install::open_within(&self.layout.root, LOCK_WAIT)?.update_state(change)?;
        *self.state.lock().expect("state lock") = state;
        Ok(())
    }

    /// Reads the state from disk again (after a `confirm` or `rollback` made
    /// through [`updraft_installer::Install`], for example).
    pub fn reload_state(&self) -> Result<InstallState> {
        let state = InstallState::load(&self.layout)?;
        *self.state.lock().expect("state lock") = state.clone();
        Ok(state)
    }

    /// Tells the server how an install went (unless `install_settings.report_outcome` is off).
    /// Failures to report are logged, never fatal.
    pub async fn report(&self, version: &str, outcome: &str, error: Option<&str>) {
        if !self.config.install_settings.report_outcome {
            return;
        }
        let Ok(base) = self.base() else { return };
        if base.starts_with("file://") {
            return;
        }
        let state = self.state();
        let body = serde_json::json!({"app": state.app, "version": version, "platform": self.platform, "arch": self.arch,
                                      "channel": self.config.channel, "outcome": outcome, "error": error});
        if let Err(error) = self
            .fetcher
            .post_json(&format!("{base}/api/version/report"), &body, 64 * 1024)
            .await
        {
            tracing::debug!(%error, "could not report the install outcome");
        }
    }

    /// Runs checks in the background for an embedding app: on start-up (if
    /// `check_on_startup`) and every `check_interval` with ±10 % jitter (if
    /// `auto_check`). `on_event` receives `UpdateAvailable` for offers the user
    /// has neither skipped nor snoozed.
    pub fn spawn_scheduler(
        self: Arc<Self>,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let settings = self.config.check_settings.clone();
            if !settings.auto_check && !settings.check_on_startup {
                return;
            }
            let mut first = settings.check_on_startup;
            loop {
                if !first {
                    if !settings.auto_check {
                        return;
                    }
                    let mut random = [0u8; 2];
                    let _ = getrandom::fill(&mut random);
                    let jitter =
                        f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.2 - 0.1;
                    #[allow(clippy::cast_precision_loss)]
                    let seconds = settings.check_interval as f64 * (1.0 + jitter);
                    tokio::time::sleep(Duration::from_secs_f64(seconds.max(1.0))).await;
                }
                first = false;
                match self.check().await {
                    Ok(CheckOutcome::Available(offer)) => {
                        on_event(Event::UpdateAvailable(Box::new(offer)));
                    }
                    Ok(_) => {}
                    Err(error) => on_event(Event::Failed(error.to_string())),
                }
            }
        })
    }
}

/// Where a package's download and unpacked tree live in the staging folder.
struct Staged {
    /// `{sha256}.tar.zst`: the download's name (its `.part` holds the bytes).
    package: PathBuf,
    /// `{sha256}.tree`: the release, unpacked as the bytes arrive.
    tree: PathBuf,
    /// `{sha256}.tree.json`: written once the tree is complete, synced and
    /// the whole package verified.
    marker: PathBuf,
}

impl Staged {
    fn of(staging: &Path, sha256: &str) -> Self {
        let tree = staging.join(format!("{sha256}.tree"));
        Self {
            package: staging.join(format!("{sha256}.tar.zst")),
            marker: Self::marker_of(&tree),
            tree,
        }
    }

    fn marker_of(tree: &Path) -> PathBuf {
        tree.with_extension("tree.json")
    }

    /// `{sha256}.tree.synced.json`: how many files (in package order) the
    /// unpacker had synced, with their folders ([`updraft_package::Unpack::record_synced`]).
    fn synced_record(&self) -> PathBuf {
        self.tree.with_extension("tree.synced.json")
    }

    fn is_complete(&self) -> bool {
        self.marker.is_file() && self.tree.is_dir()
    }

    fn mark_complete(&self, version: &str) -> Result<()> {
        let bytes = serde_json::to_vec(&serde_json::json!({ "version": version }))
            .expect("markers serialise");
        updraft_fs::write_atomic(&self.marker, &bytes)?;
        Ok(())
    }
}

/// Where a resumed install of `manifest`'s package into `tree` starts: the
/// last restart point at or before the first file (in package order) that is
/// not in place with its signed size and SHA-256, or `None` (from the start)
/// for a package without restart points or chunk digests, or a fresh tree.
async fn resume_point(
    tree: &Path,
    manifest: &ReleaseManifest,
    what: &str,
    length: u64,
) -> Result<Option<updraft_protocol::manifest::RestartPoint>> {
    if manifest.chunks.is_none() || manifest.restarts.is_empty() {
        return Ok(None);
    }
    updraft_protocol::manifest::check_restarts(
        what,
        &manifest.restarts,
        length,
        manifest.files.len(),
    )
    .map_err(|e| Error::verification(&e))?;
    let has_files = std::fs::read_dir(tree).is_ok_and(|mut entries| entries.next().is_some());
    if !has_files {
        return Ok(None);
    }
    let (tree, manifest) = (tree.to_path_buf(), manifest.clone());
    let point = tokio::task::spawn_blocking(move || {
        let intact = updraft_package::Unpack::new(&tree).verify_prefix(&manifest.files);
        manifest.restart_before(intact)
    })
    .await
    .map_err(|e| Error::io("inspect", Path::new("the staged release"), io_other(&e)))?;
    Ok(point)
}

fn io_other(error: &impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

/// The cheapest chain of signed patches from `current` to the release of
/// `custom`, when it costs fewer bytes than `full_length` (else empty).
fn patch_chain(
    targets: &updraft_protocol::tuf::Targets,
    custom: &PackageCustom,
    current: &Version,
    full_length: u64,
) -> Vec<OfferPatch> {
    let info = &custom.release;
    let candidates: Vec<OfferPatch> = targets
        .targets
        .iter()
        .filter_map(|(path, target)| {
            let patch = PatchCustom::from_custom(path, target.custom.as_ref()).ok()??;
            (patch.app == info.app
                && patch.channel == info.channel
                && patch.platform == info.platform
                && patch.arch == info.arch)
                .then(|| OfferPatch {
                    target: path.clone(),
                    length: target.length,
                    custom: patch,
                })
        })
        .collect();
    let steps: Vec<offer::PatchStep<'_>> = candidates
        .iter()
        .map(|p| offer::PatchStep {
            from: &p.custom.from_version,
            to: &p.custom.to_version,
            length: p.length,
        })
        .collect();
    offer::cheapest_path(&steps, current, &info.version, full_length)
        .map(|(chain, _)| chain.into_iter().map(|i| candidates[i].clone()).collect())
        .unwrap_or_default()
}

enum DynamicAnswer {
    NoUpdate,
    Target(String),
}

/// What [`bootstrap`] installs, and from where.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    /// The folder to create the install in.
    pub install_dir: &'a Path,
    /// The update server or static store.
    pub base_url: &'a str,
    /// Other copies of the same store, tried in order when `base_url` cannot
    /// be reached (`update_server.mirrors`).
    pub mirrors: &'a [String],
    /// The app.
    pub app: &'a AppId,
    /// Its channel.
    pub channel: &'a Channel,
    /// The root metadata to trust (shipped with the app).
    pub trusted_root: &'a [u8],
    /// The version to install, or the newest offered.
    pub version: Option<&'a Version>,
    /// This machine's platform.
    pub platform: Platform,
    /// This machine's arch.
    pub arch: Arch,
    /// Accept a plain `http://` `base_url` to a host that is not loopback
    /// (written to the install's `update_server.allow_insecure_http`).
    pub allow_insecure_http: bool,
}

/// Creates a fresh install from the store at `base_url`: trusts the root,
/// writes the configuration, and installs the chosen version. Returns it.
///
/// All or nothing: if anything fails, whatever this call created in
/// `install_dir` is removed again (the folder itself too, when it did not
/// exist), so a retry starts afresh.
pub async fn bootstrap(
    request: &InstallRequest<'_>,
    progress: Option<ProgressFn>,
) -> Result<String> {
    // What was there before: `None` when the folder did not exist. A folder
    // that cannot be listed is never cleaned up.
    let before = match std::fs::read_dir(request.install_dir) {
        Ok(entries) => Some(Some(
            entries
                .flatten()
                .map(|e| e.file_name())
                .collect::<std::collections::BTreeSet<_>>(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
        Err(_) => None,
    };
    let result = bootstrap_into(request, progress).await;
    if result.is_err()
        && let Some(before) = before
    {
        remove_created(request.install_dir, before.as_ref());
    }
    result.map_err(|error| match error {
        // The store answered, but nothing it signed matches the root given.
        Error::Verification(message) if message.contains("valid signature") => {
            Error::Verification(format!(
                "{message}. The trusted root given does not seem to belong to the store `{}` serves: use that store's `metadata/root.json`",
                request.base_url
            ))
        }
        other => other,
    })
}

/// Removes what a failed [`bootstrap`] made in `dir`: every entry that was
/// not there `before`, or the folder itself when it did not exist.
fn remove_created(dir: &Path, before: Option<&std::collections::BTreeSet<std::ffi::OsString>>) {
    let Some(before) = before else {
        let _ = std::fs::remove_dir_all(dir);
        return;
    };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !before.contains(&entry.file_name()) {
            let path = entry.path();
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

async fn bootstrap_into(
    request: &InstallRequest<'_>,
    progress: Option<ProgressFn>,
) -> Result<String> {
    let InstallRequest {
        install_dir,
        base_url,
        mirrors,
        app,
        channel,
        trusted_root,
        version,
        platform,
        arch,
        allow_insecure_http,
    } = request.clone();
    for url in std::iter::once(base_url).chain(mirrors.iter().map(String::as_str)) {
        if !(url.starts_with("http://")
            || url.starts_with("https://")
            || url.starts_with("file://"))
        {
            return Err(Error::Usage(format!(
                "`{url}` is not an http://, https:// or file:// URL"
            )));
        }
        if let Some(reason) = crate::transport::insecure_http(url, allow_insecure_http) {
            return Err(Error::Usage(format!(
                "Refusing to install from {reason} (`updraft install` takes `--allow-insecure-http`)"
            )));
        }
    }
    let layout = Layout::new(install_dir);
    if layout.state().exists() {
        return Err(Error::Usage(format!(
            "`{}` is already an updraft install; use `updraft update`",
            install_dir.display()
        )));
    }
    updraft_fs::create_dir_all_durable(&layout.state_dir())?;
    // A folder another user can write to (made under a wide umask, or theirs)
    // would let them change what this install runs.
    layout.check_trusted()?;
    let defaults = UpdateConfig::default();
    let config = UpdateConfig {
        app: Some(app.to_string()),
        channel: channel.to_string(),
        update_server: updraft_installer::ServerSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            mirrors: mirrors
                .iter()
                .map(|m| m.trim_end_matches('/').to_owned())
                .collect(),
            allow_insecure_http,
            ..defaults.update_server.clone()
        },
        ..defaults
    };
    config.save(&layout.config())?;
    Repository::init(&layout.metadata(), trusted_root)?;
    let state = InstallState {
        app: app.to_string(),
        platform: platform.to_string(),
        arch: arch.to_string(),
        current_version: "0.0.0".into(),
        previous_versions: Vec::new(),
        install_id: InstallState::new_install_id(),
        skipped: Vec::new(),
        remind_after: None,
        pending_confirm: false,
        pending_since: None,
        pending_launches: 0,
        bad_versions: Vec::new(),
        mains: std::collections::BTreeMap::new(),
        prepared: None,
    };
    state.save(&layout)?;
    let manager = UpdateManager::builder(install_dir)
        .platform(platform)
        .arch(arch)
        .build()?;
    let (repository, _) = manager.repository(OffsetDateTime::now_utc()).await?;
    let (releases, _) = crate::releases(repository.targets());
    let zero = Version::new(0, 0, 0);
    let asker = Asker {
        app,
        platform,
        arch,
        channel,
        current_version: &zero,
        rollout_id: Some(&state.install_id),
    };
    let chosen = match version {
        Some(wanted) => releases
            .iter()
            .find(|r| offer::applies(&r.2.release, &asker) && r.2.release.version == *wanted)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{app} {wanted} is not published for {platform}/{arch} on channel {channel}"
                ))
            })?,
        None => offer::best(&releases, |r| &r.2.release, &asker).ok_or_else(|| {
            Error::Usage(format!(
                "no release of {app} is published for {platform}/{arch} on channel {channel}"
            ))
        })?,
    };
    let (target, file, custom) = chosen.clone();
    let offer = Offer {
        version: custom.release.version.to_string(),
        current_version: zero.to_string(),
        update_type: UpdateType::Major,
        force_update: false,
        target,
        file_size: file.length,
        sha256: file.sha256().map(|d| d.to_hex()).unwrap_or_default(),
        release_date: custom.release.release_date.clone(),
        changelog: custom.release.notes.clone(),
        changelogs: Vec::new(),
        min_supported_version: None,
        download_url: None,
        patches: Vec::new(),
        custom,
    };
    let downloaded = manager
        .download(&offer, progress, &CancellationToken::new())
        .await?;
    manager.install(&offer, &downloaded).await?;
    Install::open(install_dir)?.update_state(|state| {
        state.previous_versions.retain(|v| v != "0.0.0");
        state.pending_confirm = false;
        state.pending_since = None;
    })?;
    Ok(offer.version)
}
