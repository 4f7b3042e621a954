//! Issue 16 (hardening): each test injects what the attack run found and
//! checks that it now holds. THREATS.md rows: resource exhaustion, lost
//! writes, admin abuse, log forgery.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::support::{
    Running, TOKEN, captured_logs, client_from, config, connect_from, publish_with, read_answer,
    read_until_closed, serving_one_release, temp, text,
};

async fn metrics(server: &Running) -> String {
    text(&server.client, &server.url("/metrics")).await
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// What the server says to a new connection from `from` once the
/// connections already open have settled, when it refuses it.
async fn refused_answer(server: &Running, from: [u8; 4]) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = connect_from(server, from).await;
    let answer = read_until_closed(&mut refused, Duration::from_secs(2))
        .await
        .expect("the refused connection was closed");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Slowloris: a connection that dribbles header lines, or sits idle after
/// an answer, is closed after the head deadline; the connections one
/// address may hold are capped (503 beyond), and so is the total, while
/// other addresses are still served.
#[tokio::test(flavor = "multi_thread")]
async fn slow_idle_and_excess_connections_are_closed_and_counted() {
    // The caps below are checked while silent connections are held open, so
    // the head deadline must outlast a few requests on a loaded machine.
    let (_dir, _store, server) = serving_one_release(|settings| {
        settings.header_timeout = Duration::from_secs(2);
        settings.max_connections_per_address = 3;
        settings.max_connections = 5;
    })
    .await;

    // Half-sent head: one header line every 300 ms never completes it.
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for n in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow
            .write_all(format!("X-Drip-{n}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut slow, Duration::from_secs(3))
            .await
            .is_some();
    }
    assert!(closed, "a dribbling client was still connected");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );

    // Idle keep-alive: one full request, then nothing.
    let mut idle = connect_from(&server, [127, 0, 0, 1]).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // Per-address cap: three silent connections from 127.0.0.1, the fourth is refused.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&server, [127, 0, 0, 1]).await);
    }
    let answer = refused_answer(&server, [127, 0, 0, 1]).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"too many open connections from your address"#),
        "{answer}"
    );
    // Another address is still served, and the refusal is counted.
    // One request with `Connection: close`, read until the server closed it:
    // a pooled client's idle connection would still count against the total
    // cap below for as long as the server takes to notice it went away.
    let mut other = connect_from(&server, [127, 0, 0, 2]).await;
    other
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut other, Duration::from_secs(4))
        .await
        .expect("the metrics answer ended");
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        metric(
            &text,
            "updraft_connections_refused_total{limit=\"per_address\"}"
        ) >= 1,
        "{text}"
    );
    assert!(metric(&text, "updraft_connections_open") >= 4, "{text}");
    assert!(
        metric(&text, "updraft_connections_timed_out_total") >= 2,
        "{text}"
    );
    drop(other);
    // The server drops its count of that connection once its task ends.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Total cap: 3 from .1 and 2 from .2 fill it; .3 is refused.
    held.push(connect_from(&server, [127, 0, 0, 2]).await);
    held.push(connect_from(&server, [127, 0, 0, 2]).await);
    let answer = refused_answer(&server, [127, 0, 0, 3]).await;
    assert!(
        answer.contains("the server has too many open connections"),
        "{answer}"
    );
    // The silent ones time out, and the server serves everyone again.
    for mut stream in held {
        assert!(
            read_until_closed(&mut stream, Duration::from_secs(4))
                .await
                .is_some(),
            "a silent connection stayed open"
        );
    }
    assert_eq!(server.get_json("/healthz").await.0, 200);
    server.stop().await;
}

/// Lost writes: a clear, a halt and a rollout fired at the same instant, many
/// times over. After each round the running server, the database and the
/// audit log (replayed in order) agree, and the check follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admin_changes_agree_in_memory_database_and_audit() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    let base = "/api/admin/releases/kuzflow/1.1.0";
    let database = store.store.join(".updraft/server.sqlite");
    // An install inside the 37 % rollout, so only the halt decides the offer.
    let (app, version) = ("kuzflow".parse().unwrap(), "1.1.0".parse().unwrap());
    let install = (0..1000)
        .map(|n| format!("install-{n}"))
        .find(|id| updraft_protocol::rollout::bucket(&app, &version, id) < 37)
        .unwrap();
    let check = format!(
        "/api/version/check?current_version=1.0.0&platform=linux&arch=x86_64&install_id={install}"
    );
    for round in 0..30 {
        let (override_path, halt_path, rollout_path) = (
            format!("{base}/override"),
            format!("{base}/halt"),
            format!("{base}/rollout"),
        );
        let (clear, halt, rollout) = tokio::join!(
            server.admin(Method::DELETE, &override_path, None),
            server.admin(Method::POST, &halt_path, None),
            server.admin(
                Method::POST,
                &rollout_path,
                Some(serde_json::json!({"percent": 37}))
            ),
        );
        assert_eq!(
            (clear.0, halt.0, rollout.0),
            (200, 200, 200),
            "round {round}"
        );
        let (_, audit) = server.admin(Method::GET, "/api/admin/audit", None).await;
        let mut expected = serde_json::Value::Null;
        for entry in audit["entries"].as_array().unwrap()[..3].iter().rev() {
            match entry["action"].as_str().unwrap() {
                "clear override" => expected = serde_json::Value::Null,
                "halt" => {
                    if expected.is_null() {
                        expected = serde_json::json!({});
                    }
                    expected["halted"] = true.into();
                }
                "rollout 37" => {
                    if expected.is_null() {
                        expected = serde_json::json!({});
                    }
                    expected["rollout_percent"] = 37.into();
                }
                other => panic!("unexpected audit entry {other}"),
            }
        }
        let (_, list) = server.admin(Method::GET, "/api/admin/releases", None).await;
        let in_memory = list["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == "1.1.0")
            .unwrap()["override"]
            .clone();
        let stored = updraft_server::SqliteStorage::open(&database).unwrap();
        let in_database = updraft_server::Storage::overrides(&stored)
            .unwrap()
            .get(&updraft_server::ReleaseKey {
                app: "kuzflow".into(),
                version: "1.1.0".into(),
            })
            .map_or(serde_json::Value::Null, |o| {
                serde_json::to_value(o).unwrap()
            });
        assert_eq!(
            in_memory, expected,
            "round {round}: memory against the audit log"
        );
        assert_eq!(
            in_database, expected,
            "round {round}: database against the audit log"
        );
        let offered = server.get_json(&check).await.1["update_available"] == true;
        assert_eq!(
            offered,
            expected["halted"] != true,
            "round {round}: the check against {expected}"
        );
    }
    server.stop().await;
}

/// Admin abuse: failed sign-ins are logged with the peer address (and the
/// claimed token name, never the secret), at a bounded rate, and repeated
/// wrong tokens from one address are answered ever more slowly while other
/// addresses and the right token are not slowed.
#[tokio::test(flavor = "multi_thread")]
async fn failed_admin_sign_ins_are_logged_and_slowed_down() {
    captured_logs();
    let (_dir, _store, server) = serving_one_release(|_| {}).await;
    let url = server.url("/api/admin/releases");
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let mut slowest = Duration::ZERO;
    for attempt in 1..=23 {
        let started = Instant::now();
        let response = server
            .client
            .get(&url)
            .header("authorization", "Bearer mallory:guess-0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let took = started.elapsed();
        if attempt <= 20 {
            assert!(
                took < Duration::from_millis(200),
                "guess {attempt} took {took:?}"
            );
        }
        slowest = slowest.max(took);
    }
    assert!(
        slowest >= Duration::from_millis(700),
        "the 23rd guess took {slowest:?}"
    );
    // Another address is not slowed down, and the right token still works at once.
    let other = client_from([127, 0, 0, 2]);
    let started = Instant::now();
    let response = other
        .get(&url)
        .header("authorization", "Bearer wrong-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(started.elapsed() < Duration::from_millis(200));
    let (status, _) = server.admin(Method::GET, "/api/admin/releases", None).await;
    assert_eq!(status, 200);

    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "updraft_admin_sign_in_failures_total"),
        25,
        "{text}"
    );
    let logs = captured_logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("admin sign-in refused") && l.contains("token_name=mallory"))
        .collect();
    assert!(
        logs.lines().any(|l| l.contains("admin sign-in refused")
            && l.contains("reason=no Authorization header")
            && l.contains("peer=127.0.0.1:")),
        "{logs}"
    );
    // 20 lines a minute: the first failure and 19 of the 23 guesses.
    assert_eq!(lines.len(), 19, "{logs}");
    assert!(lines.iter().all(|l| l.contains("peer=127.0.0.1:")));
    assert!(
        !logs.contains("guess-0123456789abcdef"),
        "the secret was logged"
    );
    assert!(!logs.contains(TOKEN));
    server.stop().await;
}

/// Log forgery: an unauthenticated report whose error holds a newline, a
/// forged admin line and an ANSI escape stays on its own line, escaped.
#[tokio::test(flavor = "multi_thread")]
async fn reported_text_cannot_forge_log_lines() {
    captured_logs();
    let (_dir, _store, server) = serving_one_release(|_| {}).await;
    let forged = "2026-12-01T00:00:00.000000Z  INFO updraft_server::admin: admin change who=alice action=yank";
    let response = server
        .client
        .post(server.url("/api/version/report"))
        .json(&serde_json::json!({
            "version": "1.0.0", "platform": "linux", "arch": "x86_64", "outcome": "failed",
            "error": format!("boom-forgery-test\n{forged}\u{1b}[31m\r\u{1b}[2K"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let logs = captured_logs();
    assert!(!logs.contains('\u{1b}'), "a raw escape reached the log");
    assert!(
        !logs.contains('\r'),
        "a raw carriage return reached the log"
    );
    assert!(
        !logs
            .lines()
            .any(|line| line.starts_with("2026-12-01T00:00:00")),
        "a forged line: {logs}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("boom-forgery-test"))
        .expect("the report was logged");
    assert!(
        line.contains(r"boom-forgery-test\n2026-12-01") && line.contains(r"\u{1b}[31m"),
        "{line}"
    );
    server.stop().await;
}

/// A token file others can read is warned about, naming it and the fix.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_token_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    captured_logs();
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let settings = config(&store);
    let tokens = settings.admin_token_file.clone().unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    Running::start(settings.clone()).await.stop().await;
    let warning = format!("chmod 600 {}", tokens.display());
    assert!(
        !captured_logs().contains(&warning),
        "a private file was warned about"
    );
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    Running::start(settings).await.stop().await;
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&warning))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(
        line.contains("WARN") && line.contains("mode=0644"),
        "{line}"
    );
}

/// Contract gaps: 405 names the allowed methods, every error body (408,
/// 413, admin bodies) is JSON, `halt` needs no body, the Bearer scheme is
/// case-insensitive, and a suffix range never counts as a completed download.
#[tokio::test(flavor = "multi_thread")]
async fn contract_gaps_are_closed() {
    let (_dir, store, server) = serving_one_release(|settings| {
        settings.request_timeout = Duration::from_millis(500);
    })
    .await;
    let json_error = |status: u16, text: &str| {
        let value: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        assert!(
            value["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{status}: {text}"
        );
        value["error"].as_str().unwrap().to_owned()
    };

    for (method, path, allowed) in [
        (Method::PUT, "/api/version/check", "GET,HEAD,POST"),
        (Method::DELETE, "/api/version/report", "POST"),
        (Method::POST, "/metadata/timestamp.json", "GET,HEAD"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response.headers()["allow"]
            .to_str()
            .unwrap()
            .replace(' ', "");
        assert_eq!(allow, allowed, "{method} {path}");
        json_error(405, &response.text().await.unwrap());
    }

    // 413 and the admin body errors.
    let big = "x".repeat(70 * 1024);
    let response = server
        .client
        .post(server.url("/api/version/check"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    json_error(413, &response.text().await.unwrap());
    let rollout = server.url("/api/admin/releases/kuzflow/1.0.0/rollout");
    for (body, content_type, status) in [
        (big.as_str(), "application/json", 413),
        ("{\"percent\":", "application/json", 400),
        ("{\"percent\": 5}", "text/plain", 200),
        ("[1, 2]", "application/json", 400),
    ] {
        let response = server
            .client
            .post(&rollout)
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body:.20}");
        let text = response.text().await.unwrap();
        if status != 200 {
            json_error(status, &text);
        }
    }
    // `halt` with `{}` (or anything) needs no percent.
    let response = server
        .client
        .post(server.url("/api/admin/releases/kuzflow/1.0.0/halt"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // RFC 7235: the scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = server
            .client
            .get(server.url("/api/admin/audit"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }

    // 408 as JSON: a body announced and never sent.
    let mut stalled = connect_from(&server, [127, 0, 0, 1]).await;
    stalled
        .write_all(b"POST /api/version/check HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{")
        .await
        .unwrap();
    let answer = read_answer(&mut stalled).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    json_error(408, body);

    // The last bytes of a package are not a completed download; a resume is.
    let download = server.url("/api/version/download?version=1.0.0&platform=linux&arch=x86_64");
    for range in ["bytes=-1", "bytes=-100", "bytes=10-"] {
        let response = server
            .client
            .get(&download)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206);
        response.bytes().await.unwrap();
    }
    server.stop().await;
    let server = Running::start(config(&store)).await;
    let (_, list) = server.admin(Method::GET, "/api/admin/releases", None).await;
    let counts = &list["releases"][0]["counts"];
    assert_eq!(counts["download_completed"], 1, "{counts}");
    server.stop().await;
}
