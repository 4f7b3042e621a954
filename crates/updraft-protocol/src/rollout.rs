//! Staged (gray) rollout: which installs are offered a partially rolled-out
//! release. The server and static-feed clients compute the same answer.

use sha2::{Digest, Sha256};

use crate::names::AppId;
use crate::version::Version;

/// The install's bucket for one release, in `0..100`.
///
/// It depends on the app, the release and the install id only, so an install
/// gets the same answer every time, and raising the percentage only adds
/// installs (bucket `b` is offered whenever `b < percent`). The release is part
/// of the input so that each release reaches a different first group.
pub fn bucket(app: &AppId, version: &Version, install_id: &str) -> u8 {
    let mut hasher = Sha256::new();
    hasher.update(b"updraft-rollout-v1\0");
    hasher.update(app.as_str().as_bytes());
    hasher.update(b"\0");
    // Build metadata does not make a different release for rollout purposes.
    hasher.update(
        format!(
            "{}.{}.{}-{}",
            version.major,
            version.minor,
            version.patch,
            version.prerelease()
        )
        .as_bytes(),
    );
    hasher.update(b"\0");
    hasher.update(install_id.as_bytes());
    let digest = hasher.finalize();
    let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    u8::try_from(value % 100).expect("below 100")
}

/// True when an install with `install_id` is offered a release rolled out to
/// `percent` percent. Without an id, only a full rollout is offered.
pub fn is_offered(percent: u8, app: &AppId, version: &Version, install_id: Option<&str>) -> bool {
    match (percent, install_id) {
        (p, _) if p >= 100 => true,
        (0, _) | (_, None) => false,
        (p, Some(id)) => bucket(app, version, id) < p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_spread_and_monotonic() {
        let app = AppId::new("kuzflow").unwrap();
        let version = Version::parse("1.1.0").unwrap();
        let ids: Vec<String> = (0..10_000).map(|i| format!("install-{i}")).collect();
        let mut previous = 0;
        for percent in [0u8, 1, 5, 10, 25, 50, 75, 99, 100] {
            let offered: Vec<&String> = ids
                .iter()
                .filter(|id| is_offered(percent, &app, &version, Some(id)))
                .collect();
            assert!(
                offered.len() >= previous,
                "raising to {percent}% removed installs"
            );
            previous = offered.len();
            let share = f64::from(u32::try_from(offered.len()).unwrap()) / 100.0;
            assert!(
                (share - f64::from(percent)).abs() < 2.0,
                "{percent}% offered to {share:.1}%"
            );
        }
        assert_eq!(bucket(&app, &version, "abc"), bucket(&app, &version, "abc"));
        assert!(!is_offered(50, &app, &version, None));
        assert!(is_offered(100, &app, &version, None));
    }
}
