//! Release announcements: the changelog page and the Atom feeds, served live
//! and written into the store by `publish`, parsed by Python's `feedparser`.

use std::path::Path;
use std::process::Command;

use crate::support::{Running, config, publish_with, temp};

const HOSTILE: &str = "Fixes <script>alert('x')</script> & [a link](javascript:alert(1)) \
                       <img src=x onerror=alert(2)>\n\n* faster start\n";

/// Parses `feed` with feedparser and returns what it read, as JSON.
fn feedparser(feed: &Path, base: &str) -> serde_json::Value {
    let script = r"
import feedparser, json, sys
with open(sys.argv[1], 'rb') as f:
    d = feedparser.parse(f.read(), response_headers={'content-location': sys.argv[2], 'content-type': 'application/atom+xml'})
print(json.dumps({
    'bozo': bool(d.bozo), 'bozo_exception': str(d.get('bozo_exception', '')), 'version': d.version,
    'id': d.feed.get('id'), 'title': d.feed.get('title'), 'updated': d.feed.get('updated'),
    'self': [l['href'] for l in d.feed.get('links', []) if l.get('rel') == 'self'],
    'entries': [{'id': e.get('id'), 'title': e.get('title'), 'updated': e.get('updated'),
                 'link': e.get('link'), 'content': e.content[0]['value'] if e.get('content') else None}
                for e in d.entries],
}))
";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(feed)
        .arg(base)
        .output()
        .expect("python3 runs (pip install feedparser: scripts/requirements-test.txt)");
    assert!(
        output.status.success(),
        "feedparser failed (pip install -r scripts/requirements-test.txt): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_valid_feed(parsed: &serde_json::Value, versions: &[&str]) {
    assert_eq!(
        parsed["bozo"], false,
        "feedparser found a problem: {parsed}"
    );
    assert_eq!(parsed["version"], "atom10", "{parsed}");
    assert!(
        parsed["id"].as_str().unwrap().starts_with("urn:uuid:"),
        "{parsed}"
    );
    assert!(parsed["updated"].as_str().is_some(), "{parsed}");
    let entries = parsed["entries"].as_array().unwrap();
    let titles: Vec<&str> = entries
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = versions.iter().map(|v| format!("kuzflow {v}")).collect();
    assert_eq!(titles, expected, "newest first: {parsed}");
    for entry in entries {
        assert!(entry["id"].as_str().unwrap().starts_with("urn:uuid:"));
        assert!(entry["updated"].as_str().is_some());
        assert!(
            entry["link"]
                .as_str()
                .unwrap()
                .contains("/changelog/kuzflow"),
            "{entry}"
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), entries.len(), "entry ids are unique");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_changelog_and_feeds_escape_hostile_notes_and_parse_as_atom() {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let hostile = dir.path().join("hostile.md");
    std::fs::write(&hostile, HOSTILE).unwrap();
    publish_with(&store, "1.1.0", |r| r.notes = Some(hostile.clone()));
    publish_with(&store, "1.2.0-beta.1", |r| {
        r.channel = "beta".parse().unwrap();
    });
    publish_with(&store, "1.0.1", |_| {});
    let server = Running::start(config(&store)).await;

    let response = server
        .client
        .get(server.url("/changelog/kuzflow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    for page in [
        page,
        std::fs::read_to_string(store.store.join("changelog/kuzflow/index.html")).unwrap(),
    ] {
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img src"), "{page}");
        assert!(!page.contains("javascript:"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(page.contains("<li>faster start</li>"), "{page}");
        let position = |text: &str| page.find(text).unwrap_or_else(|| panic!("{text}: {page}"));
        assert!(position("kuzflow 1.1.0") < position("kuzflow 1.0.1"));
        assert!(
            position("kuzflow 1.0.1") < position("kuzflow 1.0.0"),
            "newest first"
        );
        assert!(position("<section id=\"beta\">") < position("<section id=\"stable\">"));
    }

    // Live, with absolute links.
    let response = server
        .client
        .get(server.url("/feeds/kuzflow/stable.atom"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml")
    );
    let live = dir.path().join("live.atom");
    std::fs::write(&live, response.bytes().await.unwrap()).unwrap();
    let parsed = feedparser(&live, &server.url("/feeds/kuzflow/stable.atom"));
    assert_valid_feed(&parsed, &["1.1.0", "1.0.1", "1.0.0"]);
    assert_eq!(parsed["self"][0], server.url("/feeds/kuzflow/stable.atom"));
    let content = parsed["entries"][0]["content"].as_str().unwrap();
    assert!(!content.contains("<script"), "{content}");

    // Static, in the store, with links relative to where a host serves it.
    let base = "https://static.example.com/store/feeds/kuzflow/stable.atom";
    let parsed = feedparser(&store.store.join("feeds/kuzflow/stable.atom"), base);
    assert_valid_feed(&parsed, &["1.1.0", "1.0.1", "1.0.0"]);
    assert_eq!(
        parsed["entries"][0]["link"],
        "https://static.example.com/store/changelog/kuzflow/index.html#stable-v1.1.0"
    );
    let parsed = feedparser(&store.store.join("feeds/kuzflow/beta.atom"), base);
    assert_valid_feed(&parsed, &["1.2.0-beta.1"]);

    let (status, body) = server.get_json("/feeds/kuzflow/stable.rss").await;
    assert_eq!(status, 404, "{body}");
    // The notes files of the store under changelog/ are still served.
    let notes = server
        .client
        .get(server.url("/changelog/kuzflow_v1.1.0.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(notes.status(), 200);
    assert_eq!(notes.text().await.unwrap(), HOSTILE);
    let (status, body) = server.get_json("/changelog/nope").await;
    assert_eq!(status, 404, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_yank_takes_the_release_out_of_the_static_feed() {
    let (_dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |_| {});
    updraft_publisher::rollout(
        &store.store,
        &store.keys,
        &"kuzflow".parse().unwrap(),
        &"1.1.0".parse().unwrap(),
        updraft_publisher::RolloutAction::Yank,
        time::OffsetDateTime::now_utc(),
        &updraft_publisher::ExpiryPolicy::default(),
    )
    .unwrap();
    let parsed = feedparser(
        &store.store.join("feeds/kuzflow/stable.atom"),
        "https://example.com/feeds/kuzflow/stable.atom",
    );
    assert_valid_feed(&parsed, &["1.0.0"]);
}
