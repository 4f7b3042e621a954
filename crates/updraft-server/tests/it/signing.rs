//! HMAC-SHA256 signed requests against a real server: the admin API and
//! install reports, two keys at once (rotation), each kind of refusal, and
//! the Python signer printed in docs/server.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::support::{Running, config, publish_with, temp};

const OLD: (&str, &str) = ("ci-2025", "old-secret-0123456789abcdef0123456789ab");
const NEW: (&str, &str) = ("ci-2026", "new-secret-0123456789abcdef0123456789ab");

fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("signing-keys");
    std::fs::write(
        &path,
        format!(
            "# rotation: both keys valid\n{}:{}\n{}:{}\n",
            OLD.0, OLD.1, NEW.0, NEW.1
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Signed<'a> {
    method: &'a str,
    path_and_query: &'a str,
    body: &'a [u8],
    key: (&'a str, &'a str),
    timestamp: i64,
    nonce: String,
}

impl Signed<'_> {
    fn request(&self, server: &Running, sent_body: &[u8]) -> reqwest::RequestBuilder {
        let (path, query) = self
            .path_and_query
            .split_once('?')
            .unwrap_or((self.path_and_query, ""));
        let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        let canonical = [
            "UPDRAFT-HMAC-SHA256",
            self.method,
            path,
            &pairs.join("&"),
            &self.timestamp.to_string(),
            &self.nonce,
            &hex::encode(Sha256::digest(self.body)),
        ]
        .join("\n");
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.1.as_bytes()).unwrap();
        mac.update(canonical.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        server
            .client
            .request(
                self.method.parse().unwrap(),
                server.url(self.path_and_query),
            )
            .header("X-Updraft-Key-Id", self.key.0)
            .header("X-Updraft-Timestamp", self.timestamp.to_string())
            .header("X-Updraft-Nonce", &self.nonce)
            .header("X-Updraft-Signature", signature)
            .header("content-type", "application/json")
            .body(sent_body.to_vec())
    }
}

fn fresh_nonce(n: u32) -> String {
    format!("nonce-{n:04}-{}", now())
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let json = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json");
    assert!(json, "every answer is JSON");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_requests_pass_and_each_kind_of_tampering_gets_401() {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    let mut server_config = config(&store);
    server_config.signing_key_file = Some(key_file(dir.path()));
    server_config.require_signed_reports = true;
    let server = Running::start(server_config).await;
    let report =
        br#"{"version": "1.1.0", "platform": "linux", "arch": "x86_64", "outcome": "installed"}"#;
    let rollout = br#"{"percent": 25}"#;
    let signed = |n: u32, method: &'static str, path: &'static str, body: &'static [u8]| Signed {
        method,
        path_and_query: path,
        body,
        key: NEW,
        timestamp: now(),
        nonce: fresh_nonce(n),
    };

    // A correct signature passes, with either key during a rotation.
    for (n, key) in [(1, NEW), (2, OLD)] {
        let mut request = signed(n, "GET", "/api/admin/releases?b=2&a=1", b"");
        request.key = key;
        let (status, body) = answer(request.request(&server, b"")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["releases"].is_array());
    }
    let request = signed(
        3,
        "POST",
        "/api/admin/releases/kuzflow/1.1.0/rollout",
        rollout,
    );
    let (status, body) = answer(request.request(&server, rollout)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["audit"]["who"], NEW.0, "the key id is the actor");
    let request = signed(4, "POST", "/api/version/report", report);
    let (status, body) = answer(request.request(&server, report)).await;
    assert_eq!(status, 202, "{body}");

    // A replayed nonce: the very same request again.
    let (status, body) = answer(request.request(&server, report)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // A wrong key: the right id with another secret.
    let mut request = signed(5, "GET", "/api/admin/releases", b"");
    request.key = (NEW.0, "wrong-secret-0123456789abcdef0123456789");
    let (status, body) = answer(request.request(&server, b"")).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let mut request = signed(6, "GET", "/api/admin/releases", b"");
    request.key = ("nobody", NEW.1);
    let (status, body) = answer(request.request(&server, b"")).await;
    assert_eq!(status, 401, "{body}");

    // A changed body: signed for 25 %, sent with 100 %.
    let request = signed(
        7,
        "POST",
        "/api/admin/releases/kuzflow/1.1.0/rollout",
        rollout,
    );
    let (status, body) = answer(request.request(&server, br#"{"percent": 100}"#)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let request = signed(8, "POST", "/api/version/report", report);
    let (status, body) = answer(request.request(&server, &report[1..])).await;
    assert_eq!(status, 401, "{body}");

    // An old timestamp, and one from the future.
    for offset in [-600, 600] {
        let mut request = signed(9, "GET", "/api/admin/releases", b"");
        request.timestamp += offset;
        let (status, body) = answer(request.request(&server, b"")).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].as_str().unwrap().contains("300 s"), "{body}");
    }

    // Reports must be signed here; the percentage did not change to 100.
    let response = server
        .client
        .post(server.url("/api/version/report"))
        .header("content-type", "application/json")
        .body(report.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (_, releases) = server
        .admin(reqwest::Method::GET, "/api/admin/releases", None)
        .await;
    let release = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.1.0")
        .unwrap();
    assert_eq!(release["rollout_percent"], 25);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_signer_in_the_docs_works_against_a_real_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = std::fs::read_to_string(root.join("docs/examples/updraft_sign.py")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/server.md")).unwrap();
    let signer = script
        .split("\nif __name__")
        .next()
        .unwrap()
        .split("\"\"\"\n")
        .nth(1)
        .unwrap();
    assert!(
        docs.contains(signer.trim()),
        "docs/server.md prints the signer of docs/examples/updraft_sign.py"
    );

    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let mut server_config = config(&store);
    server_config.admin_token_file = None;
    server_config.signing_key_file = Some(key_file(dir.path()));
    let server = Running::start(server_config).await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, NEW.1).unwrap();
    let run = |args: &[&str]| {
        let output = Command::new("python3")
            .arg(root.join("docs/examples/updraft_sign.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let secret = secret.display().to_string();
    let out = run(&[
        "GET",
        &server.url("/api/admin/audit?limit=5&a=1"),
        NEW.0,
        &secret,
    ]);
    assert!(out.starts_with("200 "), "{out}");
    let body =
        r#"{"version": "1.0.0", "platform": "linux", "arch": "x86_64", "outcome": "failed"}"#;
    let out = run(&[
        "POST",
        &server.url("/api/version/report"),
        NEW.0,
        &secret,
        body,
    ]);
    assert!(out.starts_with("202 "), "{out}");
    let out = run(&[
        "POST",
        &server.url("/api/admin/releases/kuzflow/1.0.0/halt"),
        NEW.0,
        &secret,
    ]);
    assert!(out.starts_with("200 "), "{out}");
    let (status, body) = server.get_json("/api/admin/releases").await;
    assert_eq!(
        status, 401,
        "without a token file, bearer tokens are refused: {body}"
    );
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_key_file_others_can_read_stops_the_server_from_starting() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = temp();
    let path = key_file(dir.path());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut server_config = config(&store);
    server_config.signing_key_file = Some(path);
    let error = updraft_server::Server::bind(server_config)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("chmod 600"), "{error}");
}
