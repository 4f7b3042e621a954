//! Which signed release a client is offered: channels, platform and arch,
//! yanked and halted releases, staged rollout, forced updates and the minimum
//! supported version. Pure functions over the in-memory [`View`].

use serde::{Deserialize, Serialize};
use updraft_protocol::offer::{self, Asker};
use updraft_protocol::{AppId, Arch, Channel, Platform, UpdateType, Version};

use crate::error::ApiError;
use crate::view::{Release, View};

/// A check, from the query string or a JSON body.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CheckParams {
    pub(crate) current_version: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) arch: Option<String>,
    pub(crate) app: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) install_id: Option<String>,
    pub(crate) user_id: Option<String>,
}

/// A check with every field validated.
#[derive(Debug, Clone)]
pub(crate) struct CheckRequest {
    pub(crate) current_version: Version,
    pub(crate) platform: Platform,
    pub(crate) arch: Arch,
    pub(crate) app: AppId,
    pub(crate) channel: Channel,
    pub(crate) rollout_id: Option<String>,
}

pub(crate) fn required<'a>(value: Option<&'a String>, field: &str) -> Result<&'a str, ApiError> {
    value
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` is required")))
}

pub(crate) fn parse_platform(value: Option<&String>) -> Result<Platform, ApiError> {
    Platform::parse(required(value, "platform")?).map_err(|e| ApiError::field("platform", &e))
}

pub(crate) fn parse_arch(value: Option<&String>) -> Result<Arch, ApiError> {
    Arch::parse(required(value, "arch")?).map_err(|e| ApiError::field("arch", &e))
}

pub(crate) fn parse_version(value: Option<&String>, field: &str) -> Result<Version, ApiError> {
    Version::parse(required(value, field)?).map_err(|e| ApiError::field(field, &e))
}

/// The app a request is about: the one named, or the store's only app.
pub(crate) fn resolve_app(view: &View, value: Option<&String>) -> Result<AppId, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        Some(name) => {
            let app = AppId::new(name).map_err(|e| ApiError::field("app", &e))?;
            if view.apps.contains(&app) {
                Ok(app)
            } else {
                Err(ApiError::not_found(format!(
                    "`app`: no app `{app}` is published on this server"
                )))
            }
        }
        None => match view.apps.len() {
            1 => Ok(view.apps.iter().next().expect("one app").clone()),
            0 => Err(ApiError::not_found(
                "nothing is published on this server yet",
            )),
            _ => {
                let names: Vec<&str> = view.apps.iter().map(AppId::as_str).collect();
                Err(ApiError::bad_request(format!(
                    "`app` is required: this server publishes {}",
                    names.join(", ")
                )))
            }
        },
    }
}

const MAX_ID: usize = 128;

impl CheckRequest {
    pub(crate) fn parse(params: &CheckParams, view: &View) -> Result<Self, ApiError> {
        let current_version = parse_version(params.current_version.as_ref(), "current_version")?;
        let platform = parse_platform(params.platform.as_ref())?;
        let arch = parse_arch(params.arch.as_ref())?;
        let channel = match params.channel.as_deref().filter(|c| !c.is_empty()) {
            Some(channel) => Channel::new(channel).map_err(|e| ApiError::field("channel", &e))?,
            None => Channel::stable(),
        };
        let mut rollout_id = None;
        for (field, value) in [
            ("install_id", &params.install_id),
            ("user_id", &params.user_id),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                if value.len() > MAX_ID || value.chars().any(char::is_control) {
                    return Err(ApiError::bad_request(format!(
                        "`{field}` must be at most {MAX_ID} printable characters"
                    )));
                }
                rollout_id.get_or_insert_with(|| value.to_owned());
            }
        }
        let app = resolve_app(view, params.app.as_ref())?;
        Ok(Self {
            current_version,
            platform,
            arch,
            app,
            channel,
            rollout_id,
        })
    }
}

/// The answer to a check: the seed's fields are always present (`null`
/// where there is no value), so a client written against the seed's schema
/// can read `data["..."]` whatever the answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckAnswer {
    pub(crate) current_version: String,
    pub(crate) latest_version: Option<String>,
    pub(crate) update_available: bool,
    pub(crate) update_type: Option<UpdateType>,
    pub(crate) force_update: bool,
    pub(crate) download_url: Option<String>,
    pub(crate) file_size: Option<u64>,
    pub(crate) changelog: Option<String>,
    pub(crate) release_date: Option<String>,
    pub(crate) min_supported_version: Option<String>,
    /// updraft extras, only with an offer: every version's notes between
    /// the installed one and the offered one (newest first), and the signed
    /// target to fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) changelogs: Option<Vec<VersionNotes>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
    /// The signed patch from the installed version to the offered one, if
    /// the store has one: where it is, its size and the version it applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_target: Option<String>,
    /// What an updraft client will fetch: `delta` (one patch), `chain`
    /// (several) or `full`, and how many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) download_path: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) download_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct VersionNotes {
    pub(crate) version: String,
    pub(crate) notes: String,
}

impl CheckAnswer {
    /// No update: the installed version, and no release to describe.
    fn none(current_version: &Version) -> Self {
        Self {
            update_available: false,
            current_version: current_version.to_string(),
            latest_version: None,
            update_type: None,
            force_update: false,
            download_url: None,
            file_size: None,
            changelog: None,
            release_date: None,
            min_supported_version: None,
            changelogs: None,
            app: None,
            channel: None,
            target: None,
            sha256: None,
            patch_url: None,
            patch_size: None,
            patch_from: None,
            patch_target: None,
            download_path: None,
            download_size: None,
        }
    }
}

impl CheckRequest {
    fn asker(&self) -> Asker<'_> {
        Asker {
            app: &self.app,
            platform: self.platform,
            arch: self.arch,
            channel: &self.channel,
            current_version: &self.current_version,
            rollout_id: self.rollout_id.as_deref(),
        }
    }
}

/// Decides the offer. `download_url` is built by the caller's `url_for`.
pub(crate) fn check(
    view: &View,
    request: &CheckRequest,
    url_for: impl Fn(&str) -> String,
) -> (CheckAnswer, Option<Release>) {
    let asker = request.asker();
    let Some(offer) = offer::best(&view.releases, |r| &r.info, &asker) else {
        return (CheckAnswer::none(&request.current_version), None);
    };
    let info = &offer.info;
    let changelogs: Vec<VersionNotes> = view
        .releases
        .iter()
        .filter(|r| {
            offer::applies(&r.info, &asker)
                && !r.info.yanked
                && r.info.version <= info.version
                && !r.info.notes.is_empty()
        })
        .map(|r| VersionNotes {
            version: r.info.version.to_string(),
            notes: r.info.notes.clone(),
        })
        .collect();
    let answer = CheckAnswer {
        update_available: true,
        current_version: request.current_version.to_string(),
        latest_version: Some(info.version.to_string()),
        update_type: Some(UpdateType::between(&request.current_version, &info.version)),
        force_update: offer::is_forced(info, &request.current_version),
        download_url: Some(url_for(&offer.package)),
        file_size: Some(offer.length),
        changelog: Some(info.notes.clone()).filter(|notes| !notes.is_empty()),
        release_date: Some(info.release_date.clone()).filter(|date| !date.is_empty()),
        min_supported_version: info.min_supported_version.as_ref().map(ToString::to_string),
        changelogs: Some(changelogs),
        app: Some(info.app.to_string()),
        channel: Some(info.channel.to_string()),
        target: Some(offer.package.clone()),
        sha256: offer.sha256.map(|d| d.to_hex()),
        patch_url: None,
        patch_size: None,
        patch_from: None,
        patch_target: None,
        download_path: Some("full"),
        download_size: Some(offer.length),
    };
    let mut answer = answer;
    if let Some(patch) = view.find_patch(
        &info.app,
        &request.current_version,
        &info.version,
        info.platform,
        info.arch,
    ) {
        answer.patch_url = Some(url_for(&patch.path));
        answer.patch_size = Some(patch.length);
        answer.patch_from = Some(patch.custom.from_version.to_string());
        answer.patch_target = Some(patch.path.clone());
    }
    if let Some((chain, bytes)) = view.cheapest_path(&request.current_version, offer) {
        answer.download_path = Some(if chain.len() == 1 { "delta" } else { "chain" });
        answer.download_size = Some(bytes);
    }
    (answer, Some(offer.clone()))
}
