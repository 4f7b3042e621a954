//! Which release an install is offered: the one rule set the server's
//! dynamic check and a static-feed client both apply.

use crate::manifest::ReleaseInfo;
use crate::names::{AppId, Arch, Channel, Platform};
use crate::rollout;
use crate::version::Version;

/// The install asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker<'a> {
    /// Its app.
    pub app: &'a AppId,
    /// Its platform.
    pub platform: Platform,
    /// Its arch.
    pub arch: Arch,
    /// Its channel.
    pub channel: &'a Channel,
    /// The version it runs.
    pub current_version: &'a Version,
    /// Its install id (or user id), for staged rollout.
    pub rollout_id: Option<&'a str>,
}

/// A `stable` install sees stable releases; an install on any other channel
/// sees its channel and stable.
pub fn channel_visible(asker: &Channel, release: &Channel) -> bool {
    release == asker || release.as_str() == "stable"
}

/// True when the asker runs a version below the release's minimum supported one.
pub fn below_minimum(release: &ReleaseInfo, current: &Version) -> bool {
    release
        .min_supported_version
        .as_ref()
        .is_some_and(|min| current < min)
}

/// True when the update to `release` is mandatory for the asker.
pub fn is_forced(release: &ReleaseInfo, current: &Version) -> bool {
    release.force || below_minimum(release, current)
}

/// True when `release` is for this asker's app, platform, arch and channel
/// and newer than what it runs (whatever the rollout state).
pub fn applies(release: &ReleaseInfo, asker: &Asker<'_>) -> bool {
    release.app == *asker.app
        && release.platform == asker.platform
        && release.arch == asker.arch
        && channel_visible(asker.channel, &release.channel)
        && release.version > *asker.current_version
}

/// True when `release` may be offered: it applies, is neither yanked nor
/// halted, and the asker is inside its rollout (or below its minimum
/// supported version, which offers it whatever the rollout).
pub fn is_offered(release: &ReleaseInfo, asker: &Asker<'_>) -> bool {
    applies(release, asker)
        && !release.yanked
        && !release.halted
        && (below_minimum(release, asker.current_version)
            || rollout::is_offered(
                release.rollout_percent,
                &release.app,
                &release.version,
                asker.rollout_id,
            ))
}

/// The newest release offered to the asker.
pub fn best<'r, R>(
    releases: impl IntoIterator<Item = &'r R>,
    info: impl Fn(&R) -> &ReleaseInfo,
    asker: &Asker<'_>,
) -> Option<&'r R> {
    releases
        .into_iter()
        .filter(|r| is_offered(info(r), asker))
        .max_by(|a, b| info(a).version.cmp(&info(b).version))
}
