//! Prometheus metrics in the text exposition format, kept with atomics and
//! one small map so recording costs next to nothing on the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// All the server's metrics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    bytes_served: AtomicU64,
    checks: Mutex<BTreeMap<&'static str, u64>>,
    reloads: AtomicU64,
    timestamp_refreshes: AtomicU64,
    connections_open: AtomicU64,
    connections_refused_total: AtomicU64,
    connections_refused_per_address: AtomicU64,
    connections_timed_out: AtomicU64,
    sign_in_failures: AtomicU64,
    auto_halts: AtomicU64,
    /// Set while the database does not answer (so the default is "up").
    database_down: std::sync::atomic::AtomicBool,
    database_errors: AtomicU64,
    stats_buffered_events: AtomicU64,
    stats_buffered_counters: AtomicU64,
}

impl Metrics {
    /// Counts one request by route (a fixed name) and status, and its latency.
    pub(crate) fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route, status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts bytes of file bodies sent.
    pub(crate) fn bytes(&self, count: u64) {
        self.bytes_served.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a check by outcome (`update`, `no_update`, `error`).
    pub(crate) fn check(&self, outcome: &'static str) {
        *self
            .checks
            .lock()
            .expect("metrics lock")
            .entry(outcome)
            .or_default() += 1;
    }

    pub(crate) fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timestamp_refreshed(&self) {
        self.timestamp_refreshes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connections_open(&self, open: usize) {
        self.connections_open
            .store(u64::try_from(open).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self, why: crate::connections::Refusal) {
        match why {
            crate::connections::Refusal::Total => &self.connections_refused_total,
            crate::connections::Refusal::PerAddress => &self.connections_refused_per_address,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_timed_out(&self) {
        self.connections_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auto_halted(&self) {
        self.auto_halts.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the database down; true if it was up until now.
    pub(crate) fn database_failed(&self) -> bool {
        !self.database_down.swap(true, Ordering::Relaxed)
    }

    /// Marks the database up; true if it was down until now.
    pub(crate) fn database_answered(&self) -> bool {
        self.database_down.swap(false, Ordering::Relaxed)
    }

    /// False while the database does not answer.
    pub(crate) fn database_up(&self) -> bool {
        !self.database_down.load(Ordering::Relaxed)
    }

    /// Counts a failed statistics write.
    pub(crate) fn database_error(&self) {
        self.database_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Statistics counted but not yet committed.
    pub(crate) fn stats_buffered(&self, events: u64, counters: usize) {
        self.stats_buffered_events.store(events, Ordering::Relaxed);
        self.stats_buffered_counters.store(
            u64::try_from(counters).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn sign_in_failed(&self) {
        self.sign_in_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub(crate) fn render(&self, stats_dropped: u64, targets_version: u64) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP updraft_http_requests_total HTTP requests by route and status.\n# TYPE updraft_http_requests_total counter\n");
        for ((route, status), count) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "updraft_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP updraft_http_request_duration_seconds Time to produce the response head.\n# TYPE updraft_http_request_duration_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "updraft_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "updraft_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        #[allow(clippy::cast_precision_loss)]
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "updraft_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "updraft_http_request_duration_seconds_count {count}");
        out.push_str("# HELP updraft_bytes_served_total Bytes of store files and packages sent.\n# TYPE updraft_bytes_served_total counter\n");
        let _ = writeln!(
            out,
            "updraft_bytes_served_total {}",
            self.bytes_served.load(Ordering::Relaxed)
        );
        out.push_str("# HELP updraft_checks_total Update checks by outcome.\n# TYPE updraft_checks_total counter\n");
        for (outcome, count) in self.checks.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "updraft_checks_total{{outcome=\"{outcome}\"}} {count}");
        }
        single(
            &mut out,
            "updraft_store_reloads_total",
            "counter",
            "Times the release view was rebuilt from the store.",
            self.reloads.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_timestamp_refreshes_total",
            "counter",
            "Times the server re-signed timestamp.json.",
            self.timestamp_refreshes.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_connections_open",
            "gauge",
            "Client connections open now.",
            self.connections_open.load(Ordering::Relaxed),
        );
        out.push_str("# HELP updraft_connections_refused_total Connections closed at once because a cap was reached.\n# TYPE updraft_connections_refused_total counter\n");
        for (why, counter) in [
            (
                crate::connections::Refusal::Total,
                &self.connections_refused_total,
            ),
            (
                crate::connections::Refusal::PerAddress,
                &self.connections_refused_per_address,
            ),
        ] {
            let _ = writeln!(
                out,
                "updraft_connections_refused_total{{limit=\"{}\"}} {}",
                why.label(),
                counter.load(Ordering::Relaxed)
            );
        }
        single(
            &mut out,
            "updraft_connections_timed_out_total",
            "counter",
            "Connections closed because no complete request head (or TLS handshake) arrived in time.",
            self.connections_timed_out.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_admin_sign_in_failures_total",
            "counter",
            "Admin requests refused for a missing or wrong token.",
            self.sign_in_failures.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_rollout_auto_halts_total",
            "counter",
            "Rollouts the server halted because their install failure rate crossed the signed limit.",
            self.auto_halts.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_database_up",
            "gauge",
            "1 while the database answers, 0 while it does not (checks go on from memory).",
            u64::from(self.database_up()),
        );
        single(
            &mut out,
            "updraft_database_errors_total",
            "counter",
            "Statistics writes that failed (they are retried).",
            self.database_errors.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_stats_buffered_events",
            "gauge",
            "Statistics events counted in memory and not yet written to the database.",
            self.stats_buffered_events.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "updraft_stats_buffered_counters",
            "gauge",
            "Distinct counters held in memory (bounded; past the bound new ones are dropped).",
            self.stats_buffered_counters.load(Ordering::Relaxed),
        );
        out.push_str("# HELP updraft_stats_dropped_total Statistics events dropped because the queue was full or the in-memory bound was reached.\n# TYPE updraft_stats_dropped_total counter\n");
        let _ = writeln!(out, "updraft_stats_dropped_total {stats_dropped}");
        out.push_str("# HELP updraft_targets_version Version of the signed targets being served.\n# TYPE updraft_targets_version gauge\n");
        let _ = writeln!(out, "updraft_targets_version {targets_version}");
        out
    }
}

/// One metric without labels: its HELP and TYPE lines and its value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
