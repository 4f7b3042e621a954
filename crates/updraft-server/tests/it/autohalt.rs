//! Rollouts that halt themselves: install reports sent over HTTP push a
//! staged release past its signed failure limit, and the server halts it for
//! checks, in the audit log, in its metrics and in the signed targets.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;
use updraft_client::{CheckOutcome, InstallRequest, UpdateManager};
use updraft_protocol::{AutoHalt, Version};
use updraft_publisher::{ExpiryPolicy, PublishRequest};
use updraft_test_support::{TestStore, write_app};

use crate::support::{Running, config, temp};

fn publish_for_host(store: &TestStore, version: &str, tweak: impl FnOnce(&mut PublishRequest)) {
    let (platform, arch) = updraft_client::host();
    let source = store.dir.join(format!("src-{version}"));
    write_app(&source, version);
    let mut request = TestStore::request(version, &source);
    request.platform = platform;
    request.arch = arch;
    request.pack.level = 1;
    tweak(&mut request);
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
}

async fn install_from_folder(store: &TestStore, dir: &Path) {
    let (platform, arch) = updraft_client::host();
    let root = std::fs::read(store.store.join("metadata/1.root.json")).unwrap();
    let base = format!("file://{}", store.store.display());
    let version: Version = "1.0.0".parse().unwrap();
    let request = InstallRequest {
        install_dir: dir,
        base_url: &base,
        mirrors: &[],
        app: &"kuzflow".parse().unwrap(),
        channel: &"stable".parse().unwrap(),
        trusted_root: &root,
        version: Some(&version),
        platform,
        arch,
        allow_insecure_http: false,
    };
    updraft_client::bootstrap(&request, None).await.unwrap();
}

async fn report(server: &Running, outcome: &str, count: usize) {
    let (platform, arch) = updraft_client::host();
    for _ in 0..count {
        let response = server
            .client
            .post(server.url("/api/version/report"))
            .json(&serde_json::json!({"app": "kuzflow", "version": "1.1.0", "platform": platform.as_str(),
                                      "arch": arch.as_str(), "outcome": outcome}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

async fn offered(server: &Running) -> Option<String> {
    let (platform, arch) = updraft_client::host();
    let (status, answer) = server
        .get_json(&format!(
            "/api/version/check?app=kuzflow&current_version=1.0.0&platform={platform}&arch={arch}"
        ))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["latest_version"].as_str().map(str::to_owned)
}

fn signed_halted(store: &Path) -> bool {
    let current = updraft_publisher::store::load_chain(store, None).unwrap();
    let (releases, _) = updraft_publisher::layout::releases(&current.targets().signed);
    releases
        .iter()
        .filter(|r| r.custom.release.version.to_string() == "1.1.0")
        .all(|r| r.custom.release.halted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_past_its_failure_limit_halts_for_checks_and_for_static_clients() {
    let (dir, store) = temp();
    publish_for_host(&store, "1.0.0", |_| {});
    publish_for_host(&store, "1.1.0", |request| {
        request.rollout_percent = 100;
        request.auto_halt = Some(AutoHalt {
            max_failure_basis_points: AutoHalt::parse_percent("20").unwrap(),
            min_reports: 10,
        });
    });
    let install_dir = dir.path().join("install");
    install_from_folder(&store, &install_dir).await;
    let folder_client = UpdateManager::builder(&install_dir).build().unwrap();
    assert!(
        matches!(folder_client.check().await.unwrap(), CheckOutcome::Available(ref offer) if offer.version == "1.1.0"),
        "before any report the folder client is offered 1.1.0"
    );

    let mut server_config = config(&store);
    server_config.keys = Some(store.keys.clone());
    let server = Running::start(server_config).await;
    assert_eq!(offered(&server).await.as_deref(), Some("1.1.0"));

    // 2 failures of 9 reports: more than 20 %, but fewer than 10 reports.
    report(&server, "installed", 7).await;
    report(&server, "failed", 2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        offered(&server).await.as_deref(),
        Some("1.1.0"),
        "not halted below the minimum number of reports"
    );
    assert!(!signed_halted(&store.store));

    // The tenth report: 3 of 10 = 30 % > 20 %.
    report(&server, "rolled_back", 1).await;
    let mut halted = false;
    for _ in 0..100 {
        if offered(&server).await.is_none() {
            halted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        halted,
        "the server kept offering 1.1.0 past its failure limit"
    );

    let (_, audit) = server
        .admin(reqwest::Method::GET, "/api/admin/audit", None)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    let halt = entries
        .iter()
        .find(|e| e["action"].as_str().unwrap().starts_with("halt:"))
        .expect("an audit entry for the halt");
    assert_eq!(halt["who"], "auto-halt");
    assert_eq!(halt["version"], "1.1.0");
    let action = halt["action"].as_str().unwrap();
    assert!(
        action.contains("3 of 10") && action.contains("30.0 %") && action.contains("20 %"),
        "{action}"
    );
    let mut signed_entry = false;
    for _ in 0..100 {
        let (_, audit) = server
            .admin(reqwest::Method::GET, "/api/admin/audit", None)
            .await;
        signed_entry = audit["entries"].as_array().unwrap().iter().any(|e| {
            e["who"] == "auto-halt"
                && e["action"]
                    .as_str()
                    .unwrap()
                    .starts_with("signed into targets version")
        });
        if signed_entry {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_entry, "the halt was never signed into the targets");
    assert!(signed_halted(&store.store), "the signed targets say halted");

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("updraft_rollout_auto_halts_total 1\n"),
        "{metrics}"
    );

    // More reports do not halt it twice, and checks keep not offering it.
    report(&server, "failed", 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offered(&server).await, None);
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("updraft_rollout_auto_halts_total 1\n"));

    // A client reading the signed store directly, with no server, is not
    // offered it either.
    assert!(
        matches!(
            folder_client.check().await.unwrap(),
            CheckOutcome::UpToDate { .. }
        ),
        "the folder client still gets the halted release"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_rule_failures_never_halt_a_release() {
    let (_dir, store) = temp();
    publish_for_host(&store, "1.0.0", |_| {});
    publish_for_host(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    report(&server, "failed", 12).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offered(&server).await.as_deref(), Some("1.1.0"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_signed_after_the_reports_halts_when_the_server_starts() {
    let (_dir, store) = temp();
    publish_for_host(&store, "1.0.0", |_| {});
    publish_for_host(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    report(&server, "installed", 3).await;
    report(&server, "failed", 2).await;
    server.stop().await;
    updraft_publisher::rollout(
        &store.store,
        &store.keys,
        &"kuzflow".parse().unwrap(),
        &"1.1.0".parse().unwrap(),
        updraft_publisher::RolloutAction::AutoHalt(Some(AutoHalt {
            max_failure_basis_points: 1000,
            min_reports: 5,
        })),
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
    let server = Running::start(config(&store)).await;
    let mut halted = false;
    for _ in 0..50 {
        if offered(&server).await.is_none() {
            halted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(halted, "2 of 5 failed (40 % > 10 %): halted at start");
    // Without the targets key, only the dynamic check knows.
    assert!(!signed_halted(&store.store));
    server.stop().await;
}
