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

/// One signed patch, for [`cheapest_path`]: it rebuilds `to` from `from`
/// and costs `length` bytes to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchStep<'a> {
    /// The version it applies to.
    pub from: &'a Version,
    /// The version it rebuilds.
    pub to: &'a Version,
    /// Bytes to fetch.
    pub length: u64,
}

/// Most patches a chain may have.
pub const MAX_CHAIN: usize = 8;

/// The cheapest way by bytes from `installed` to `target`: the indices into
/// `patches` of a chain of patches (one or more, each going to a newer
/// version, at most [`MAX_CHAIN`]), or `None` when the full package of
/// `full_length` bytes costs no more than any chain.
pub fn cheapest_path(
    patches: &[PatchStep<'_>],
    installed: &Version,
    target: &Version,
    full_length: u64,
) -> Option<(Vec<usize>, u64)> {
    // Bellman-Ford over at most MAX_CHAIN hops; versions only go forwards,
    // so there are no cycles, and the graphs are small.
    let mut best: Vec<(&Version, u64, Vec<usize>)> = vec![(installed, 0, Vec::new())];
    let mut found: Option<(Vec<usize>, u64)> = None;
    for _ in 0..MAX_CHAIN {
        let mut next = Vec::new();
        for (at, cost, path) in &best {
            for (i, step) in patches.iter().enumerate() {
                if step.from != *at || step.to <= *at || step.to > target {
                    continue;
                }
                let total = cost.saturating_add(step.length);
                let mut chain = path.clone();
                chain.push(i);
                if step.to == target {
                    if found.as_ref().is_none_or(|(_, c)| total < *c) {
                        found = Some((chain, total));
                    }
                } else {
                    next.push((step.to, total, chain));
                }
            }
        }
        // Keep the cheapest way to each version.
        next.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        next.dedup_by(|a, b| a.0 == b.0);
        if next.is_empty() {
            break;
        }
        best = next;
    }
    found.filter(|(_, cost)| *cost < full_length)
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn the_cheapest_chain_wins_only_when_cheaper_than_the_full_package() {
        let parse = |text: &str| Version::parse(text).unwrap();
        let (a, b, c, d) = (
            parse("1.0.0"),
            parse("1.1.0"),
            parse("1.2.0"),
            parse("1.3.0"),
        );
        let patches = [
            PatchStep {
                from: &a,
                to: &b,
                length: 10,
            },
            PatchStep {
                from: &b,
                to: &c,
                length: 10,
            },
            PatchStep {
                from: &c,
                to: &d,
                length: 10,
            },
            PatchStep {
                from: &a,
                to: &d,
                length: 50,
            },
            PatchStep {
                from: &b,
                to: &d,
                length: 15,
            },
        ];
        assert_eq!(cheapest_path(&patches, &a, &d, 100), Some((vec![0, 4], 25)));
        assert_eq!(cheapest_path(&patches, &c, &d, 100), Some((vec![2], 10)));
        assert_eq!(
            cheapest_path(&patches, &a, &d, 25),
            None,
            "not cheaper than full"
        );
        assert_eq!(
            cheapest_path(&patches, &d, &a, 100),
            None,
            "never backwards"
        );
        assert_eq!(
            cheapest_path(&patches[..1], &a, &d, 100),
            None,
            "no way there"
        );
    }
}
