//! A PostgreSQL that goes away under load (issue 12): checks keep being
//! answered from memory, `/metrics` says the database is down, and the
//! statistics counted meanwhile arrive, each exactly once, when it returns.
//! Uses a private cluster (its own port), so stopping it disturbs no other
//! test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use updraft_test_support::postgres::{TempCluster, psql};

use crate::support::{Running, config, publish_with, temp};

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(server: &Running) -> String {
    crate::support::text(&server.client, &server.url("/metrics")).await
}

fn checks_in_database(url: &str) -> u64 {
    psql(
        url,
        "SELECT coalesce(sum(count), 0) FROM counters WHERE event = 'check'",
    )
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_restarted_under_check_load() {
    let _ = crate::support::captured_logs();
    let Some(cluster) = TempCluster::start() else {
        return;
    };
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let mut settings = config(&store);
    settings.database = Some(cluster.url().into());
    let server = Arc::new(Running::start(settings).await);

    // Check load from four tasks until told to stop; every answer counted.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (server, stop, answered, failed) = (
            Arc::clone(&server),
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&failed),
        );
        load.push(tokio::spawn(async move {
            let url = server.url(
                "/api/version/check?current_version=0.9.0&platform=linux&arch=x86_64&app=kuzflow",
            );
            while !stop.load(Ordering::Relaxed) {
                let status = server.client.get(&url).send().await.unwrap().status();
                if status.is_success() {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        metric(&metrics(&server).await, "updraft_database_up"),
        Some(1)
    );

    let cluster = Arc::new(cluster);
    let stopping = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let before_outage = answered.load(Ordering::Relaxed);
    // Down: noticed within a second or two, checks still answered.
    let noticed = Instant::now();
    loop {
        let text = metrics(&server).await;
        if metric(&text, "updraft_database_up") == Some(0) {
            break;
        }
        assert!(noticed.elapsed() < Duration::from_secs(5), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = metrics(&server).await;
    assert!(
        metric(&text, "updraft_stats_buffered_events").unwrap_or(0) > 0,
        "{text}"
    );
    assert!(metric(&text, "updraft_database_errors_total").unwrap_or(0) > 0);
    let (_, health) = server.get_json("/healthz").await;
    assert_eq!(health["database"], "down");
    // Admin changes need the database: 503 with a JSON error, never applied
    // to memory alone.
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/releases/kuzflow/1.0.0/halt",
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("database is unavailable")),
        "{body}"
    );
    let (_, check) = server
        .get_json("/api/version/check?current_version=0.9.0&platform=linux&arch=x86_64&app=kuzflow")
        .await;
    assert_eq!(
        check["update_available"], true,
        "the halt was not applied: {check}"
    );
    // That check counts too.
    answered.fetch_add(1, Ordering::Relaxed);
    assert!(
        answered.load(Ordering::Relaxed) > before_outage + 20,
        "checks went on while the database was down"
    );

    let starting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no check failed");
    let total = answered.load(Ordering::Relaxed);

    // Everything counted arrives once the database is back.
    let url = cluster.url();
    let arrived = Instant::now();
    loop {
        let in_database = tokio::task::spawn_blocking({
            let url = url.clone();
            move || checks_in_database(&url)
        })
        .await
        .unwrap();
        if in_database == total {
            break;
        }
        assert!(
            in_database < total,
            "double-counted: {in_database} in the database, {total} answered"
        );
        assert!(
            arrived.elapsed() < Duration::from_secs(10),
            "only {in_database} of {total} checks arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "updraft_database_up"), Some(1), "{text}");
    assert_eq!(
        metric(&text, "updraft_stats_buffered_events"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "updraft_stats_dropped_total"),
        Some(0),
        "{text}"
    );
    let logs = crate::support::captured_logs();
    assert!(logs.contains("the database is unavailable"), "{logs}");
    assert!(logs.contains("the database answers again"), "{logs}");
    Arc::into_inner(server).unwrap().stop().await;
}
