//! The signed store as static files: Range, If-Range, ETag, caching headers.

use crate::support::{Running, config, publish_with, temp};

#[tokio::test(flavor = "multi_thread")]
async fn store_files_support_ranges_validators_and_caching() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let path = "/releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst";
    let full = std::fs::read(store.store.join(&path[1..])).unwrap();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = server.client.get(server.url(path));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };

    let response = get(vec![]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    assert!(response.headers().contains_key("last-modified"));
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(response.bytes().await.unwrap(), full);

    let response = get(vec![("range", "bytes=10-19".into())]).await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 10-19/{}", full.len())
    );
    assert_eq!(response.bytes().await.unwrap(), &full[10..20]);

    let response = get(vec![("range", "bytes=-5".into())]).await.unwrap();
    assert_eq!(response.bytes().await.unwrap(), &full[full.len() - 5..]);

    // If-Range with the current ETag: the range; with a stale one: everything.
    let response = get(vec![
        ("range", "bytes=10-".into()),
        ("if-range", etag.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 206);
    let response = get(vec![
        ("range", "bytes=10-".into()),
        ("if-range", "\"stale\"".into()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), full.len());

    let response = get(vec![("if-none-match", etag.clone())]).await.unwrap();
    assert_eq!(response.status(), 304);

    let response = get(vec![("range", format!("bytes={}-", full.len()))])
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes */{}", full.len())
    );
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    let head = server.client.head(server.url(path)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], full.len().to_string());

    for (file, cache) in [
        ("/metadata/timestamp.json", "no-cache"),
        (
            "/metadata/2.targets.json",
            "public, max-age=31536000, immutable",
        ),
        ("/metadata/root.json", "public, max-age=60"),
        ("/metadata/versions.json", "public, max-age=60"),
        (
            "/releases/latest/kuzflow_stable_linux_x86_64.json",
            "public, max-age=60",
        ),
    ] {
        let response = server.client.get(server.url(file)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(response.headers()["cache-control"], cache, "{file}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{file}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tuf_client_can_use_the_server_as_its_repository() {
    // python-tuf's client against the running server: metadata and packages
    // come through the static routes with their hash-prefixed names.
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let server = Running::start(config(&store)).await;
    let script = r#"
import sys
from tuf.ngclient import Updater
root = open(sys.argv[1], "rb").read()
u = Updater(metadata_dir=sys.argv[2], metadata_base_url=sys.argv[3] + "/metadata/", target_base_url=sys.argv[3] + "/", target_dir=sys.argv[2], bootstrap=root)
u.refresh()
info = u.get_targetinfo("releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst")
print(u.download_target(info))
"#;
    let work = dir.path().join("tuf-client");
    std::fs::create_dir_all(&work).unwrap();
    let output = updraft_test_support::python_with_tuf()
        .args(["-c", script])
        .arg(store.store.join("metadata/1.root.json"))
        .arg(&work)
        .arg(format!("http://{}", server.addr))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}

/// THREATS.md "link out of the store": links planted in the store are never
/// followed (to a file outside, into `.updraft/`, or even inside), a FIFO
/// cannot hang the server, and `repo verify` names every link.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn links_planted_in_the_store_are_never_followed() {
    use std::os::unix::fs::symlink;
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let secret = store.dir.join("shadow");
    std::fs::write(&secret, "root:SECRET-HASH:19000::::::\n").unwrap();
    let root = &store.store;
    symlink(&secret, root.join("metadata/shadow.json")).unwrap();
    symlink("../.updraft", root.join("releases/upd")).unwrap();
    symlink("timestamp.json", root.join("metadata/alias.json")).unwrap();
    symlink("v1.0.0", root.join("releases/vlink")).unwrap();
    let fifo = root.join("metadata/pipe.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let server = Running::start(config(&store)).await;
    assert!(
        root.join(".updraft/server.sqlite").is_file(),
        "the database the link would expose"
    );
    for path in [
        "/metadata/shadow.json",
        "/releases/upd/server.sqlite",
        "/releases/upd/lock",
        "/metadata/alias.json",
        "/releases/vlink/kuzflow_v1.0.0_linux_x86_64_full.tar.zst",
        "/metadata/pipe.json",
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let response = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                server
                    .client
                    .request(method.clone(), server.url(path))
                    .send(),
            )
            .await
            .unwrap_or_else(|_| panic!("{method} {path} hung"))
            .unwrap();
            assert_eq!(response.status(), 404, "{method} {path}");
            let body = response.text().await.unwrap();
            assert!(!body.contains("SECRET"), "{path}: {body}");
            assert!(!body.contains("SQLite"), "{path}: {body}");
        }
    }
    // Real files are still served.
    assert_eq!(server.get_json("/metadata/timestamp.json").await.0, 200);
    // A package replaced by a link is not sent by the download API either.
    let package = root.join("releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst");
    std::fs::remove_file(&package).unwrap();
    symlink(&secret, &package).unwrap();
    let response = server
        .client
        .get(server.url("/api/version/download?version=1.0.0&platform=linux&arch=x86_64"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(!response.text().await.unwrap().contains("SECRET"));
    server.stop().await;

    let report = updraft_publisher::verify(root, time::OffsetDateTime::now_utc()).unwrap();
    for link in [
        "metadata/shadow.json",
        "releases/upd",
        "metadata/alias.json",
        "releases/vlink",
        "releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst",
    ] {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path == link && p.message.contains("symbolic link")),
            "{link} not reported: {:?}",
            report.problems
        );
    }
}
