//! The seed's API and the release rules.

use std::time::Duration;

use crate::support::{Running, config, publish_with, publish_with_policy, temp, wait_for_targets};

const CHECK: &str = "/api/version/check";

/// The answer when nothing is offered: every field of the seed's schema,
/// `null` where there is no release to describe (issue 10, contract fixes).
fn no_update(current_version: &str) -> serde_json::Value {
    serde_json::json!({
        "current_version": current_version, "latest_version": null, "update_available": false,
        "update_type": null, "force_update": false, "download_url": null, "file_size": null,
        "changelog": null, "release_date": null, "min_supported_version": null,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn check_offers_the_newest_release_for_the_channel_platform_and_arch() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    publish_with(&store, "1.2.0-beta.1", |r| {
        r.channel = "beta".parse().unwrap();
    });
    publish_with(&store, "1.1.0", |r| r.platform = "windows".parse().unwrap());
    let server = Running::start(config(&store)).await;

    let (status, stable) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=amd64"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stable["update_available"], true);
    assert_eq!(stable["latest_version"], "1.1.0");
    assert_eq!(stable["current_version"], "1.0.0");
    assert_eq!(stable["update_type"], "minor");
    assert_eq!(stable["force_update"], false);
    assert_eq!(stable["changelog"], "Notes for 1.1.0\n");
    assert!(stable["file_size"].as_u64().unwrap() > 100);
    assert!(stable["release_date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        stable["download_url"],
        server.url("/releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_full.tar.zst")
    );
    // The download URL really serves the package the metadata pins.
    let bytes = server
        .client
        .get(stable["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        updraft_protocol::Sha256Digest::of(&bytes).to_hex(),
        stable["sha256"]
    );

    let (_, beta) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&channel=beta"
        ))
        .await;
    assert_eq!(
        beta["latest_version"], "1.2.0-beta.1",
        "a beta client gets the newest of beta and stable"
    );
    let versions: Vec<&str> = beta["changelogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["1.2.0-beta.1", "1.1.0"],
        "notes for every version in between, newest first"
    );

    let (_, windows) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=win32&arch=x86_64"
        ))
        .await;
    assert_eq!(
        windows["download_url"],
        server.url("/releases/v1.1.0/kuzflow_v1.1.0_windows_x86_64_full.tar.zst")
    );
    for query in [
        "current_version=1.1.0&platform=linux&arch=x86_64",
        "current_version=1.0.0&platform=linux&arch=arm64",
        "current_version=1.0.0&platform=darwin&arch=x86_64",
        "current_version=2.0.0&platform=linux&arch=x86_64&channel=beta",
    ] {
        let (status, answer) = server.get_json(&format!("{CHECK}?{query}")).await;
        let current = query
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("current_version=");
        assert_eq!((status, answer), (200, no_update(current)), "{query}");
    }

    // POST with a JSON body, including user_id.
    let answer: serde_json::Value = server
        .client
        .post(server.url(CHECK))
        .json(&serde_json::json!({"current_version": "1.0.0", "platform": "linux", "arch": "x86_64", "app": "kuzflow", "user_id": "u-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["latest_version"], "1.1.0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_updates_and_the_minimum_supported_version() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |r| r.force = true);
    let server = Running::start(config(&store)).await;
    let (_, answer) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"
        ))
        .await;
    assert_eq!(answer["force_update"], true);
    server.stop().await;

    publish_with(&store, "2.0.0", |r| {
        r.min_supported_version = Some("1.1.0".parse().unwrap());
        r.rollout_percent = 0;
    });
    let server = Running::start(config(&store)).await;
    // Below the minimum: forced, even outside the (zero) rollout.
    let (_, answer) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&install_id=abc"
        ))
        .await;
    assert_eq!(
        (
            answer["latest_version"].as_str(),
            answer["force_update"].as_bool()
        ),
        (Some("2.0.0"), Some(true))
    );
    assert_eq!(answer["min_supported_version"], "1.1.0");
    assert_eq!(answer["update_type"], "major");
    // At the minimum: not forced, and the 0% rollout offers nothing.
    let (_, answer) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.1.0&platform=linux&arch=x86_64&install_id=abc"
        ))
        .await;
    assert_eq!(answer, no_update("1.1.0"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_is_deterministic_and_monotonic_over_many_installs() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |r| r.rollout_percent = 30);
    let server = Running::start(config(&store)).await;
    let ids: Vec<String> = (0..600).map(|i| format!("install-{i:04}")).collect();
    let offered = |server: &Running, ids: Vec<String>| {
        let client = server.client.clone();
        let url = server.url(CHECK);
        async move {
            let mut offered = std::collections::BTreeSet::new();
            for id in ids {
                let answer: serde_json::Value = client
                    .get(format!(
                        "{url}?current_version=1.0.0&platform=linux&arch=x86_64&install_id={id}"
                    ))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if answer["update_available"] == true {
                    offered.insert(id);
                }
            }
            offered
        }
    };
    let first = offered(&server, ids.clone()).await;
    let again = offered(&server, ids.clone()).await;
    assert_eq!(first, again, "the same install gets the same answer");
    assert!(
        (140..=220).contains(&first.len()),
        "30% of 600 offered to {}",
        first.len()
    );
    // Each id's answer matches the protocol crate's bucket function (static-feed clients agree).
    let (app, version) = ("kuzflow".parse().unwrap(), "1.1.0".parse().unwrap());
    for id in &ids {
        assert_eq!(
            first.contains(id),
            updraft_protocol::rollout::is_offered(30, &app, &version, Some(id))
        );
    }
    let (status, _) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/releases/kuzflow/1.1.0/rollout",
            Some(serde_json::json!({"percent": 60})),
        )
        .await;
    assert_eq!(status, 200);
    let raised = offered(&server, ids.clone()).await;
    assert!(
        raised.is_superset(&first),
        "raising the percentage only adds installs"
    );
    assert!(raised.len() > first.len() + 100);
    // No id: outside a partial rollout.
    let (_, answer) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"
        ))
        .await;
    assert_eq!(answer["update_available"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_rollout_changes_reach_the_running_server() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    let query = format!("{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64");
    assert_eq!(server.get_json(&query).await.1["latest_version"], "1.1.0");
    let report = updraft_publisher::rollout(
        &store.store,
        &store.keys,
        &"kuzflow".parse().unwrap(),
        &"1.1.0".parse().unwrap(),
        updraft_publisher::RolloutAction::Yank,
        time::OffsetDateTime::now_utc(),
        &updraft_publisher::ExpiryPolicy::default(),
    )
    .unwrap();
    wait_for_targets(&server, report.targets_version).await;
    assert_eq!(server.get_json(&query).await.1, no_update("1.0.0"));
    // A new publish shows up without a restart too.
    publish_with(&store, "1.2.0", |_| {});
    wait_for_targets(&server, report.targets_version + 1).await;
    assert_eq!(server.get_json(&query).await.1["latest_version"], "1.2.0");
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
        metrics.contains("updraft_store_reloads_total 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_4xx_json_error_naming_the_field() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.0.0", |r| r.app = "other".parse().unwrap());
    let server = Running::start(config(&store)).await;
    let cases = [
        (CHECK.to_owned(), 400, "`current_version` is required"),
        (
            format!("{CHECK}?current_version=1.0&platform=linux&arch=x86_64&app=kuzflow"),
            400,
            "`current_version`: `1.0` is not a valid version",
        ),
        (
            format!("{CHECK}?current_version=1.0.0&platform=beos&arch=x86_64&app=kuzflow"),
            400,
            "`platform`: `beos`",
        ),
        (
            format!("{CHECK}?current_version=1.0.0&platform=linux&arch=mips&app=kuzflow"),
            400,
            "`arch`: `mips`",
        ),
        (
            format!("{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"),
            400,
            "`app` is required: this server publishes kuzflow, other",
        ),
        (
            format!("{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&app=nope"),
            404,
            "no app `nope`",
        ),
        (
            format!("{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&app=a/b"),
            400,
            "`app`",
        ),
        (
            format!(
                "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&app=kuzflow&channel=BETA"
            ),
            400,
            "`channel`",
        ),
        (
            format!(
                "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64&app=kuzflow&install_id={}",
                "x".repeat(300)
            ),
            400,
            "`install_id`",
        ),
        (
            "/api/version/info?version=9.9.9&platform=linux&arch=x86_64&app=kuzflow".to_owned(),
            404,
            "kuzflow 9.9.9 is not published for linux/x86_64",
        ),
        (
            "/api/version/info?platform=linux&arch=x86_64&app=kuzflow".to_owned(),
            400,
            "`version` is required",
        ),
        (
            "/api/version/download?version=1.0.0&platform=linux&arch=x86_64".to_owned(),
            400,
            "`app` is required",
        ),
        (
            "/api/version/download?version=1.0.0&platform=linux&arch=x86_64&app=kuzflow&app=other"
                .to_owned(),
            400,
            "query string",
        ),
        (
            "/no/such/file".to_owned(),
            404,
            "is not a file of this store",
        ),
        (
            "/.updraft/server.sqlite".to_owned(),
            404,
            "is not a file of this store",
        ),
        (
            "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
            404,
            "is not a file of this store",
        ),
        ("/metadata".to_owned(), 404, "is not a file of this store"),
    ];
    for (path, status, words) in cases {
        let (got, body) = server.get_json(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(words)),
            "{path}: {body}"
        );
    }
    let post = |body: Vec<u8>| {
        server
            .client
            .post(server.url(CHECK))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post(b"{not json".to_vec()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.json::<serde_json::Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("JSON body")
    );
    let response = post(vec![b' '; 100_000]).await.unwrap();
    assert_eq!(response.status(), 413, "bodies are size-limited");
    let response = server.client.put(server.url(CHECK)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let response = server.client.post(server.url("/api/version/report")).json(&serde_json::json!({"version": "1.0.0", "platform": "linux", "arch": "x86_64", "app": "kuzflow", "outcome": "exploded"})).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.json::<serde_json::Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("`outcome`")
    );
    server.stop().await;
}

/// Property test: random query strings, paths and bodies never get a 5xx or
/// kill the server, and every error is JSON.
#[tokio::test(flavor = "multi_thread")]
async fn fuzzed_requests_never_get_a_5xx() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let field = prop_oneof![
        Just(String::new()),
        "[a-z0-9.+-]{0,12}",
        "\\PC{0,16}",
        Just("1.0.0".to_owned()),
        Just("linux".to_owned())
    ];
    let strategy = (
        prop::sample::select(vec![
            "/api/version/check",
            "/api/version/info",
            "/api/version/download",
            "/api/version/report",
            "/api/admin/releases",
            "/releases/v1.0.0/x",
            "/metadata/timestamp.json",
        ]),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "current_version",
                    "version",
                    "platform",
                    "arch",
                    "app",
                    "channel",
                    "install_id",
                    "x",
                ]),
                field,
            ),
            0..6,
        ),
        "\\PC{0,64}",
        prop::sample::select(vec![
            "",
            "bytes=0-1",
            "bytes=5-1",
            "bytes=-0",
            "bytes=99999999-",
            "bytes=0-1,3-4",
            "garbage",
        ]),
    );
    let mut runner = TestRunner::deterministic();
    for case in 0..400 {
        let (path, params, body, range) = strategy.new_tree(&mut runner).unwrap().current();
        let query = serde_urlencoded::to_string(&params).unwrap();
        let url = format!("{}?{query}", server.url(path));
        let request = if case % 2 == 0 {
            server.client.get(&url)
        } else {
            server.client.post(&url).body(body.clone())
        };
        let request = if range.is_empty() {
            request
        } else {
            request.header("range", range)
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(status < 500, "{path}?{query} body {body:?}: {status}");
        if status >= 400 && status != 408 && status != 413 {
            let text = response.text().await.unwrap();
            let value: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{path}?{query}: not JSON: {text}"));
            assert!(value["error"].is_string(), "{path}?{query}: {text}");
        }
    }
    assert_eq!(server.get_json("/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn urls_come_from_the_public_url_or_the_host_header() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0+build.7", |_| {});
    let mut with_url = config(&store);
    with_url.public_url = Some("https://updates.example.com/kuzflow/".into());
    let server = Running::start(with_url).await;
    let (_, answer) = server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"
        ))
        .await;
    assert_eq!(
        answer["download_url"],
        "https://updates.example.com/kuzflow/releases/v1.1.0%2Bbuild.7/kuzflow_v1.1.0%2Bbuild.7_linux_x86_64_full.tar.zst"
    );
    server.stop().await;
    let server = Running::start(config(&store)).await;
    let answer: serde_json::Value = server
        .client
        .get(server.url(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"
        )))
        .header("host", "cdn.example.net:8443")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["download_url"]
            .as_str()
            .unwrap()
            .starts_with("http://cdn.example.net:8443/releases/"),
        "{answer}"
    );
    // The encoded URL is served.
    let (status, _) = server
        .get_json("/releases/v1.1.0%2Bbuild.7/kuzflow_v1.1.0%2Bbuild.7_linux_x86_64_manifest.json")
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_and_reports_are_counted_and_survive_a_restart() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    let query = "version=1.1.0&platform=linux&arch=x86_64";
    let response = server
        .client
        .get(server.url(&format!("/api/version/download?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"kuzflow_v1.1.0_linux_x86_64.tar.zst\""
    );
    let length = response.bytes().await.unwrap().len() as u64;
    // A resumed download: the rest from byte 100.
    let response = server
        .client
        .get(server.url(&format!("/api/version/download?{query}")))
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap().len() as u64, length - 100);
    for outcome in ["installed", "installed", "rolled_back"] {
        let response = server
            .client
            .post(server.url("/api/version/report"))
            .json(&serde_json::json!({"version": "1.1.0", "platform": "linux", "arch": "x86_64", "outcome": outcome, "error": "health check timed out"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    server
        .get_json(&format!(
            "{CHECK}?current_version=1.0.0&platform=linux&arch=x86_64"
        ))
        .await;
    server.stop().await;

    // Counters were flushed at shutdown and are read back by a new server.
    let server = Running::start(config(&store)).await;
    let (_, list) = server
        .admin(reqwest::Method::GET, "/api/admin/releases", None)
        .await;
    let release = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.1.0")
        .unwrap();
    let counts = &release["counts"];
    assert_eq!(counts["download_started"], 1, "{counts}");
    assert_eq!(counts["download_completed"], 2, "{counts}");
    assert_eq!(
        counts["download_bytes"],
        length + (length - 100),
        "{counts}"
    );
    assert_eq!(
        (
            counts["installed"].as_u64(),
            counts["rolled_back"].as_u64(),
            counts["offer"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{counts}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_openapi() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let (status, health) = server.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    server
        .get_json(&format!(
            "{CHECK}?current_version=0.9.0&platform=linux&arch=x86_64"
        ))
        .await;
    server.get_json(&format!("{CHECK}?current_version=x")).await;
    server.get_json("/metadata/timestamp.json").await;
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "updraft_http_requests_total{route=\"check\",status=\"200\"} 1",
        "updraft_http_requests_total{route=\"check\",status=\"400\"} 1",
        "updraft_http_requests_total{route=\"static\",status=\"200\"} 1",
        "updraft_checks_total{outcome=\"update\"} 1",
        "updraft_checks_total{outcome=\"error\"} 1",
        "updraft_http_request_duration_seconds_count",
        "updraft_bytes_served_total",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/version/check",
        "/api/version/info",
        "/api/version/download",
        "/api/version/report",
        "/api/admin/releases",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_re_signs_the_timestamp_before_it_expires() {
    let (_dir, store) = temp();
    let short = updraft_publisher::ExpiryPolicy {
        timestamp: time::Duration::hours(2),
        ..Default::default()
    };
    publish_with_policy(&store, "1.0.0", &short, |_| {});
    let mut settings = config(&store);
    settings.keys = Some(store.keys.clone());
    settings.refresh_interval = Duration::from_millis(100);
    let server = Running::start(settings).await;
    let before = crate::support::targets_version(&store.store);
    let mut refreshed = None;
    for _ in 0..100 {
        let bytes = server
            .client
            .get(server.url("/metadata/timestamp.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let timestamp =
            updraft_protocol::tuf::Envelope::<updraft_protocol::tuf::Timestamp>::from_slice(
                "timestamp.json",
                &bytes,
            )
            .unwrap();
        if timestamp.signed.expires.instant() - time::OffsetDateTime::now_utc()
            > time::Duration::hours(20)
        {
            refreshed = Some(timestamp.signed.version);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refreshed,
        Some(3),
        "the 2-hour timestamp was re-signed for a day"
    );
    assert_eq!(crate::support::targets_version(&store.store), before);
    assert!(
        updraft_publisher::verify(&store.store, time::OffsetDateTime::now_utc())
            .unwrap()
            .problems
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn built_in_tls_serves_the_api() {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut settings = config(&store);
    settings.tls = Some((cert.clone(), key));
    let server = Running::start(settings).await;
    let output = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{}/api/version/check?current_version=0.1.0&platform=linux&arch=x86_64", server.addr.port()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["latest_version"], "1.0.0");
    assert!(
        answer["download_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    // The dashboard's session cookie is Secure over TLS.
    let output = std::process::Command::new("curl")
        .args(["-sS", "-i", "--cacert"])
        .arg(&cert)
        .args(["--data", &format!("token={}", crate::support::TOKEN)])
        .arg(format!(
            "https://127.0.0.1:{}/admin/sign-in",
            server.addr.port()
        ))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&output.stdout);
    let cookie = head
        .lines()
        .find(|line| {
            line.to_ascii_lowercase()
                .starts_with("set-cookie: updraft_admin=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    for part in ["; Secure", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    // Plain HTTP to the TLS port does not get an answer.
    let plain = server
        .client
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_patch_is_served_with_from_and_the_check_answer_names_it() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    let patch_path = "releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_from_v1.0.0_patch.delta";
    let patch = std::fs::read(store.store.join(patch_path)).unwrap();
    let query = "version=1.1.0&platform=linux&arch=x86_64";
    let response = server
        .client
        .get(server.url(&format!("/api/version/download?{query}&from=1.0.0")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"kuzflow_v1.1.0_linux_x86_64_from_v1.0.0_patch.delta\""
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), patch.as_slice());
    // No patch from a version that has none: 404 with a JSON error.
    let (status, body) = server
        .get_json(&format!("/api/version/download?{query}&from=0.9.0"))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no patch from 0.9.0")
    );
    // The check answer adds the patch and the size of the path taken.
    let (status, answer) = server
        .get_json("/api/version/check?current_version=1.0.0&platform=linux&arch=x86_64")
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["patch_size"], patch.len() as u64);
    assert_eq!(answer["patch_from"], "1.0.0");
    assert_eq!(answer["patch_target"], patch_path);
    assert_eq!(answer["download_path"], "delta");
    assert_eq!(answer["download_size"], patch.len() as u64);
    assert!(answer["file_size"].as_u64().unwrap() > patch.len() as u64);
    // An install with no patch gets the full package's size.
    let (_, answer) = server
        .get_json("/api/version/check?current_version=0.9.0&platform=linux&arch=x86_64")
        .await;
    assert_eq!(answer["download_path"], "full");
    assert!(answer.get("patch_url").is_none());
    server.stop().await;
}
