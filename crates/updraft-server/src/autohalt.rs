//! Rollouts that halt themselves. A release may carry a signed
//! [`AutoHalt`](updraft_protocol::AutoHalt) rule in `custom.updraft`; each
//! time a batch of install reports is written, every release with a rule is
//! checked against the counters in the database, and one whose share of
//! `failed` + `rolled_back` reports exceeds the rule is halted through the
//! same path as an admin halt: the override (checks stop offering it at
//! once), the audit log (actor `auto-halt`, the rate and the counts), and,
//! when the server holds the targets key, the signed targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::admin::{self, Change};
use crate::app::AppState;
use crate::view::ReleaseKey;

/// The audit log's actor for halts made by the rule.
pub(crate) const ACTOR: &str = "auto-halt";

/// Install reports of one release, over every platform and channel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reports {
    pub(crate) total: u64,
    pub(crate) failures: u64,
}

/// Checks at start, whenever reports were written, and every `every` (a
/// rule signed after the reports arrived, or a store reloaded with one,
/// applies without waiting for the next report).
pub(crate) fn spawn(
    state: Arc<AppState>,
    reports_written: Arc<Notify>,
    every: std::time::Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = reports_written.notified() => {}
                _ = tick.tick() => {}
            }
            if let Err(error) = check_all(&state).await {
                tracing::error!(%error, "could not check the rollouts that halt themselves");
            }
        }
    })
}

/// Install reports per release, from the committed counters.
pub(crate) fn reports(
    counters: &[(crate::stats::CounterKey, crate::stats::Count)],
) -> BTreeMap<ReleaseKey, Reports> {
    let mut out: BTreeMap<ReleaseKey, Reports> = BTreeMap::new();
    for (key, count) in counters {
        if !key.event.is_install_report() {
            continue;
        }
        let entry = out
            .entry(ReleaseKey {
                app: key.app.clone(),
                version: key.version.clone(),
            })
            .or_default();
        entry.total += count.count;
        if key.event.is_failure() {
            entry.failures += count.count;
        }
    }
    out
}

async fn check_all(state: &Arc<AppState>) -> Result<(), String> {
    let view = state.view.get();
    let candidates: BTreeMap<ReleaseKey, updraft_protocol::AutoHalt> = view
        .releases
        .iter()
        .filter(|r| !r.info.halted && !r.info.yanked)
        .filter_map(|r| r.signed.auto_halt.map(|rule| (r.key(), rule)))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let storage = Arc::clone(&state.storage);
    let counters = tokio::task::spawn_blocking(move || storage.counters())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let reports = reports(&counters);
    for (key, rule) in candidates {
        let counts = reports.get(&key).copied().unwrap_or_default();
        if !rule.exceeded(counts.failures, counts.total) {
            continue;
        }
        // An admin who resumed a halted release has the last word; clearing
        // the override arms the rule again.
        if state
            .view
            .override_of(&key)
            .is_some_and(|o| o.halted == Some(false))
        {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = counts.failures as f64 * 100.0 / counts.total as f64;
        let why = format!(
            "{} of {} install reports failed or rolled back ({rate:.1} % > {} %, at least {} reports)",
            counts.failures,
            counts.total,
            rule.percent(),
            rule.min_reports
        );
        tracing::warn!(app = %key.app, version = %key.version, failures = counts.failures, reports = counts.total, limit_percent = %rule.percent(), "halting a rollout by itself");
        state.metrics.auto_halted();
        admin::apply(state, key, Change::Halted(true), ACTOR, Some(&why))
            .await
            .map(drop)
            .map_err(|e| e.message)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Count, CounterKey, EventKind};

    #[test]
    fn reports_count_every_platform_and_only_install_outcomes() {
        let key = |platform: &str, event| CounterKey {
            app: "kuzflow".into(),
            version: "1.1.0".into(),
            channel: "stable".into(),
            platform: platform.into(),
            arch: "x86_64".into(),
            event,
        };
        let count = |n| Count { count: n, bytes: 0 };
        let counters = vec![
            (key("linux", EventKind::Installed), count(6)),
            (key("windows", EventKind::Failed), count(2)),
            (key("linux", EventKind::RolledBack), count(1)),
            (key("linux", EventKind::Offer), count(50)),
        ];
        let reports = reports(&counters);
        let release = ReleaseKey {
            app: "kuzflow".into(),
            version: "1.1.0".into(),
        };
        assert_eq!(
            reports[&release],
            Reports {
                total: 9,
                failures: 3
            }
        );
    }
}
