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
