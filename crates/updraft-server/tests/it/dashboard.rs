//! The /admin dashboard in a real headless browser (Debian's chromium via
//! Playwright's Python library, `tests/dashboard_browser.py`) against a real
//! server fed with real install reports; plus the HTTP-level refusals.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Running, TOKEN, config, publish_with, temp};

async fn report(server: &Running, version: &str, outcome: &str, count: usize) {
    for _ in 0..count {
        let response = server
            .client
            .post(server.url("/api/version/report"))
            .json(&serde_json::json!({"version": version, "platform": "linux", "arch": "x86_64", "outcome": outcome}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |r| r.rollout_percent = 20);
    let server = Running::start(config(&store)).await;
    report(&server, "1.0.0", "installed", 4).await;
    report(&server, "1.1.0", "installed", 6).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    report(&server, "1.1.0", "installed", 3).await;
    report(&server, "1.1.0", "failed", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let shots = std::env::var_os("UPDRAFT_SCREENSHOTS")
        .map_or_else(|| dir.path().join("shots"), std::path::PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_browser.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}", server.addr))
        .arg(TOKEN)
        .arg(&shots)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the browser test failed (needs `apt-get install chromium` and `pip install playwright`, see scripts/requirements-test.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    for (path, status) in seen["anonymous"].as_object().unwrap() {
        assert_eq!(status, 200, "{path} went to the sign-in page");
    }
    assert_eq!(seen["anonymous_change"], 401);
    assert_eq!(seen["wrong_token_alert"], "That token is not valid.");
    assert_eq!(seen["cookie"]["httpOnly"], true);
    assert_eq!(seen["cookie"]["sameSite"], "Strict");
    assert_eq!(seen["cookie"]["path"], "/admin");
    assert!(
        seen["cookie"]["expires"].as_f64().unwrap() > 0.0,
        "the session expires"
    );
    assert_eq!(seen["home_rows"], 2);
    assert_eq!(seen["chart_series"], 2, "a line per version: {seen}");
    assert_eq!(seen["chart_canvas"], 1);
    let legend = seen["chart_legend"].as_str().unwrap();
    assert!(
        legend.contains("1.0.0") && legend.contains("1.1.0"),
        "{legend}"
    );
    assert_eq!(seen["installs"], "9");
    assert_eq!(seen["failure_rate"], "10.0 %");
    assert_eq!(seen["no_csrf"], 403);
    assert_eq!(seen["wrong_csrf"], 403);
    assert_eq!(seen["after_halt"], "halted");
    assert_eq!(seen["after_resume"], "live");
    assert_eq!(seen["percent"], "40 %");
    let audit: Vec<&str> = seen["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_str().unwrap())
        .collect();
    assert!(audit.len() >= 3, "{audit:?}");
    assert!(
        audit[0].contains("ci") && audit[0].contains("rollout 40"),
        "{audit:?}"
    );
    assert!(
        audit[1].contains("resume") && audit[2].contains("halt"),
        "{audit:?}"
    );
    assert_eq!(seen["zh_heading"], "升级趋势");
    assert_eq!(seen["zh_controls"], 1);
    assert_eq!(
        seen["zh_sticks"], "审计日志",
        "the language choice is remembered"
    );
    assert_eq!(seen["nojs_halt"], "halted");
    assert_eq!(seen["nojs_resume"], "live");

    // The halts and resumes reached the server's rollout state.
    let (_, releases) = server
        .admin(reqwest::Method::GET, "/api/admin/releases", None)
        .await;
    let release = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.1.0")
        .unwrap();
    assert_eq!(release["halted"], false);
    assert_eq!(release["rollout_percent"], 40);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_session_pages_redirect_and_changes_are_refused() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/admin",
        "/admin/audit",
        "/admin/releases/kuzflow/1.0.0",
        "/admin/releases/kuzflow/1.0.0/confirm?action=halt",
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/admin/sign-in", "{path}");
    }
    for path in ["/admin/releases/kuzflow/1.0.0/halt", "/admin/sign-out"] {
        let response = client
            .post(server.url(path))
            .header("cookie", "updraft_admin=forged")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    // A wrong sign-in is counted with the API's wrong tokens.
    let response = client
        .post(server.url("/admin/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("That token is not valid.")
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("updraft_admin_sign_in_failures_total 1\n"),
        "{metrics}"
    );
    // A good one sets the cookie.
    let response = client
        .post(server.url("/admin/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    server.stop().await;
}
