//! The admin API: every auth case, changes applied at once, persisted, audited.

use reqwest::Method;

use crate::support::{Running, TOKEN, config, publish_with, temp};

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_auth_case() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let url = server.url("/api/admin/releases");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("empty bearer", Some("Bearer ".into())),
        (
            "wrong token",
            Some("Bearer wrong-token-0123456789abcdef".into()),
        ),
        (
            "one character short",
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ),
        ("one character more", Some(format!("Bearer {TOKEN}x"))),
        ("not bearer", Some(format!("Basic {TOKEN}"))),
        ("bare token", Some(TOKEN.to_owned())),
        (
            "case changed",
            Some(format!("Bearer {}", TOKEN.to_uppercase())),
        ),
    ];
    for (name, header) in cases {
        for (method, path) in [
            (Method::GET, url.clone()),
            (
                Method::POST,
                server.url("/api/admin/releases/kuzflow/1.0.0/halt"),
            ),
        ] {
            let mut request = server.client.request(method.clone(), &path);
            if let Some(header) = &header {
                request = request.header("authorization", header);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{name} {method} {path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("admin token"),
                "{name}"
            );
        }
    }
    // The halt above never happened.
    let (status, list) = server.admin(Method::GET, "/api/admin/releases", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["releases"][0]["halted"], false);
    server.stop().await;

    // Without a token file the admin API does not exist.
    let mut settings = config(&store);
    settings.admin_token_file = None;
    let server = Running::start(settings).await;
    let (status, _) = server.admin(Method::GET, "/api/admin/releases", None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_changes_apply_at_once_persist_and_are_audited() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let server = Running::start(config(&store)).await;
    let check =
        "/api/version/check?current_version=1.0.0&platform=linux&arch=x86_64&install_id=abc";
    let offered = |server: &Running| {
        let client = server.client.clone();
        let url = server.url(check);
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["update_available"]
                == true
        }
    };
    assert!(offered(&server).await);
    for (action, expected) in [
        ("halt", false),
        ("resume", true),
        ("yank", false),
        ("restore", true),
    ] {
        let (status, body) = server
            .admin(
                Method::POST,
                &format!("/api/admin/releases/kuzflow/1.1.0/{action}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{action}: {body}");
        assert_eq!(offered(&server).await, expected, "after {action}");
    }
    let (status, body) = server
        .admin(
            Method::POST,
            "/api/admin/releases/kuzflow/1.1.0/rollout",
            Some(serde_json::json!({"percent": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!offered(&server).await);
    for (body, words) in [
        (Some(serde_json::json!({"percent": 101})), "`percent`"),
        (Some(serde_json::json!({"percent": "ten"})), "`percent`"),
        (Some(serde_json::json!({"percent": -1})), "`percent`"),
        (None, "`percent` is required"),
    ] {
        let (status, answer) = server
            .admin(
                Method::POST,
                "/api/admin/releases/kuzflow/1.1.0/rollout",
                body.clone(),
            )
            .await;
        assert!((400..500).contains(&status), "{body:?}: {status} {answer}");
        if status == 400 {
            assert!(
                answer["error"].as_str().unwrap().contains(words),
                "{body:?}: {answer}"
            );
        }
    }
    let (status, answer) = server
        .admin(Method::POST, "/api/admin/releases/kuzflow/9.9.9/halt", None)
        .await;
    assert_eq!(status, 404, "{answer}");
    let (status, _) = server
        .admin(
            Method::POST,
            "/api/admin/releases/kuzflow/1.1.0/explode",
            None,
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;

    // A restart keeps the override (0%), and the audit log says who did what when.
    let server = Running::start(config(&store)).await;
    assert!(!offered(&server).await, "the override survived the restart");
    let (_, list) = server.admin(Method::GET, "/api/admin/releases", None).await;
    let release = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.1.0")
        .unwrap();
    assert_eq!(release["rollout_percent"], 0);
    assert_eq!(release["signed"]["rollout_percent"], 100);
    let (_, audit) = server.admin(Method::GET, "/api/admin/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["rollout 0", "restore", "yank", "resume", "halt"]);
    let entry = &audit["entries"][0];
    assert_eq!(
        (
            entry["who"].as_str(),
            entry["app"].as_str(),
            entry["version"].as_str()
        ),
        (Some("ci"), Some("kuzflow"), Some("1.1.0"))
    );
    assert!(entry["at"].as_str().unwrap().ends_with('Z'));
    // Clearing the override restores the signed settings.
    let (status, _) = server
        .admin(
            Method::DELETE,
            "/api/admin/releases/kuzflow/1.1.0/override",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(offered(&server).await);
    server.stop().await;
}
