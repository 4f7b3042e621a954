//! The library as an app embeds it: static feeds from a local folder
//! (no server), skip and remind-later, forced updates, the scheduler, and
//! install reports reaching a real server.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use updraft_client::{CancellationToken, CheckOutcome, Event, InstallRequest, UpdateManager};
use updraft_protocol::Version;
use updraft_publisher::ExpiryPolicy;
use updraft_test_support::{TestStore, write_app};

fn publish(
    store: &TestStore,
    version: &str,
    tweak: impl FnOnce(&mut updraft_publisher::PublishRequest),
) {
    let (platform, arch) = updraft_client::host();
    let source = store.dir.join(format!("src-{version}"));
    write_app(&source, version);
    let notes = store.dir.join(format!("notes-{version}.md"));
    std::fs::write(&notes, format!("What is new in {version}\n")).unwrap();
    let mut request = TestStore::request(version, &source);
    request.platform = platform;
    request.arch = arch;
    request.notes = Some(notes);
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

async fn install(store: &TestStore, base: &str, dir: &Path, version: &str) {
    let (platform, arch) = updraft_client::host();
    let root = std::fs::read(store.store.join("metadata/1.root.json")).unwrap();
    let version: Version = version.parse().unwrap();
    let request = InstallRequest {
        install_dir: dir,
        base_url: base,
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

/// The install at `target` and the update its check offers.
async fn offered(target: &Path) -> (UpdateManager, updraft_client::Offer) {
    let manager = UpdateManager::builder(target).build().unwrap();
    let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
        panic!("no offer")
    };
    (manager, offer)
}

/// A store with 1.0.0 and 1.1.0 in a local folder, and an install of 1.0.0
/// from it (no server).
async fn folder_feed_at_1_0() -> (tempfile::TempDir, TestStore, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", |_| {});
    publish(&store, "1.1.0", |_| {});
    let base = format!("file://{}", store.store.display());
    let target = dir.path().join("install");
    install(&store, &base, &target, "1.0.0").await;
    (dir, store, target)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_feed_from_a_local_folder_updates_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", |_| {});
    publish(&store, "1.1.0", |_| {});
    publish(&store, "1.2.0", |r| r.rollout_percent = 0);
    let base = format!("file://{}", store.store.display());
    let target = dir.path().join("install");
    install(&store, &base, &target, "1.0.0").await;
    let (manager, offer) = offered(&target).await;
    assert_eq!(offer.version, "1.1.0", "1.2.0 is at 0 % rollout");
    let notes: Vec<&str> = offer.changelogs.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(notes, ["1.1.0"]);
    let package = manager
        .download(&offer, None, &CancellationToken::new())
        .await
        .unwrap();
    manager.install(&offer, &package).await.unwrap();
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.1.0")
    );
    assert_eq!(manager.state().previous_versions, ["1.0.0"]);
    assert!(matches!(
        manager.check().await.unwrap(),
        CheckOutcome::UpToDate { .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_and_remind_later_persist_but_never_hide_a_forced_update() {
    let (_dir, store, target) = folder_feed_at_1_0().await;

    let manager = UpdateManager::builder(&target).build().unwrap();
    manager.skip("1.1.0").unwrap();
    // A new process sees the choice.
    let manager = UpdateManager::builder(&target).build().unwrap();
    assert!(matches!(
        manager.check().await.unwrap(),
        CheckOutcome::Skipped(_)
    ));
    publish(&store, "1.2.0", |_| {});
    let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
        panic!("a newer version is offered")
    };
    assert_eq!(offer.version, "1.2.0");
    manager.remind_later().unwrap();
    let manager = UpdateManager::builder(&target).build().unwrap();
    assert!(matches!(
        manager.check().await.unwrap(),
        CheckOutcome::Snoozed(_)
    ));
    manager.skip("1.3.0").unwrap();
    publish(&store, "1.3.0", |r| r.force = true);
    let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
        panic!("forced updates ignore skip and remind-later")
    };
    assert!(offer.force_update);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_checks_on_start_up() {
    let (_dir, _store, target) = folder_feed_at_1_0().await;
    let manager = Arc::new(UpdateManager::builder(&target).build().unwrap());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let task = manager.spawn_scheduler(move |event| sink.lock().unwrap().push(event));
    for _ in 0..100 {
        if !events.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let events = events.lock().unwrap();
    assert!(
        matches!(events.first(), Some(Event::UpdateAvailable(offer)) if offer.version == "1.1.0"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn install_reports_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", |_| {});
    publish(&store, "1.1.0", |_| {});
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "ci:0123456789abcdef0123456789\n").unwrap();
    let mut config = updraft_server::ServerConfig::new(store.store.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token_file = Some(tokens);
    let server = updraft_server::Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let target = dir.path().join("install");
    install(&store, &base, &target, "1.0.0").await;
    let (manager, offer) = offered(&target).await;
    let package = manager
        .download(&offer, None, &CancellationToken::new())
        .await
        .unwrap();
    manager.install(&offer, &package).await.unwrap();
    manager.report(&offer.version, "installed", None).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    // Restart to read what was flushed.
    let mut config = updraft_server::ServerConfig::new(store.store.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token_file = Some(dir.path().join("tokens"));
    let server = updraft_server::Server::bind(config).await.unwrap();
    let url = format!("http://{}/api/admin/releases", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let list: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth("0123456789abcdef0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let release = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.1.0")
        .unwrap()
        .clone();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(release["counts"]["installed"], 1, "{release}");
    assert_eq!(release["counts"]["offer"], 1, "{release}");
}

/// The events of one workflow run, as `update --json` prints them: the
/// event name, with the phase for phases.
fn story(events: &[updraft_client::UpdateEvent]) -> Vec<String> {
    let mut story: Vec<String> = Vec::new();
    for event in events {
        let value = serde_json::to_value(event).unwrap();
        let name = match value["phase"].as_str() {
            Some(phase) if value["event"] == "phase" => format!("phase:{phase}"),
            _ => value["event"].as_str().unwrap().to_owned(),
        };
        // Progress comes as often as the bytes allow: one entry per run of them.
        if name != "progress" || story.last().is_none_or(|last| last != "progress") {
            story.push(name);
        }
    }
    story
}

/// Issue 10: the one update workflow, driven in process over a local folder
/// and over HTTP, tells its subscriber the same story and installs the same
/// release.
#[tokio::test(flavor = "multi_thread")]
async fn the_workflow_tells_the_same_events_over_a_folder_and_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", |_| {});
    publish(&store, "1.1.0", |_| {});
    let mut config = updraft_server::ServerConfig::new(store.store.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = updraft_server::Server::bind(config).await.unwrap();
    let http = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let mut stories = Vec::new();
    for (name, base) in [
        ("folder", format!("file://{}", store.store.display())),
        ("http", http),
    ] {
        let target = dir.path().join(format!("install-{name}"));
        install(&store, &base, &target, "1.0.0").await;
        let manager = UpdateManager::builder(&target).build().unwrap();
        let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
            panic!("{name}: no offer")
        };
        // A closure subscribes from sync code, a channel from async code.
        let collected = Mutex::new(Vec::new());
        let closure =
            |event: &updraft_client::UpdateEvent| collected.lock().unwrap().push(event.clone());
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let sink: &dyn updraft_client::EventSink =
            if name == "folder" { &closure } else { &sender };
        let finish = updraft_client::Finish::Now { restart: None };
        let outcome = manager
            .update(&offer, &finish, sink, &CancellationToken::new())
            .await
            .unwrap();
        drop(sender);
        let mut events = collected.into_inner().unwrap();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        assert!(outcome.updated && outcome.switched, "{name}: {outcome:?}");
        assert_eq!(outcome.version, "1.1.0");
        assert_eq!(
            std::fs::read_link(target.join("current")).unwrap(),
            Path::new("versions/1.1.0")
        );
        let fractions: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                updraft_client::UpdateEvent::Progress(p) => Some(p.overall_fraction),
                _ => None,
            })
            .collect();
        assert!(
            fractions.windows(2).all(|w| w[0] <= w[1]),
            "{name}: overall progress only grows: {fractions:?}"
        );
        let downloaded = events.iter().rev().find_map(|e| match e {
            updraft_client::UpdateEvent::Progress(p)
                if p.phase == updraft_client::Phase::Downloading =>
            {
                Some(p)
            }
            _ => None,
        });
        assert_eq!(
            downloaded.map(|p| (p.downloaded, p.total)),
            Some((offer.file_size, offer.file_size)),
            "{name}: the download ends at the signed length"
        );
        let Some(updraft_client::UpdateEvent::Result(result)) = events.last() else {
            panic!("{name}: the last event is not the result: {events:?}");
        };
        assert_eq!(result, &outcome);
        stories.push(story(&events));
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(
        stories[0],
        [
            "phase:downloading",
            "progress",
            "phase:installing",
            "progress",
            "phase:switching",
            "progress",
            "result"
        ]
    );
    assert_eq!(
        stories[0], stories[1],
        "the same story over both transports"
    );
}

/// Cancelled, the workflow stops, says so in its result, leaves the install
/// as it was and keeps what it fetched for the next run.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_update_changes_nothing_and_resumes_later() {
    let (_dir, _store, target) = folder_feed_at_1_0().await;
    let (manager, offer) = offered(&target).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let results = Mutex::new(Vec::new());
    let sink = |event: &updraft_client::UpdateEvent| {
        if let updraft_client::UpdateEvent::Result(outcome) = event {
            results.lock().unwrap().push(outcome.clone());
        }
    };
    let finish = updraft_client::Finish::Now { restart: None };
    let error = manager
        .update(&offer, &finish, &sink, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, updraft_client::Error::Cancelled), "{error}");
    let results = results.lock().unwrap().clone();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].error_kind,
        Some(updraft_client::FailureKind::Cancelled)
    );
    assert!(!results[0].updated);
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
    // The next run completes the job.
    let outcome = manager
        .update(&offer, &finish, &sink, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.switched);
}

fn trusted_root_version(install: &Path) -> u64 {
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(install.join(".updraft/metadata/root.json")).unwrap(),
    )
    .unwrap();
    root["signed"]["version"].as_u64().unwrap()
}

/// An install pinned to root 1 keeps updating across `repo rotate-root`
/// (every key new: root, targets, snapshot and timestamp; its cached
/// timestamp, signed by the old key, must be dropped) and `repo rotate
/// --role targets`: it walks root 1 → 2 → 3 and installs a release signed
/// only by the newest keys.
#[tokio::test(flavor = "multi_thread")]
async fn an_install_follows_root_and_targets_key_rotations() {
    use updraft_protocol::tuf::{RoleName, Scheme, SigningKey};
    let (dir, store, target) = folder_feed_at_1_0().await;
    let (manager, offer) = offered(&target).await;
    assert_eq!(offer.version, "1.1.0");
    assert_eq!(trusted_root_version(&target), 1);

    let new_keys = dir.path().join("new-keys");
    updraft_publisher::keys::generate(
        &new_keys,
        updraft_publisher::KeygenOptions {
            root_keys: 2,
            root_threshold: 2,
            scheme: Scheme::EcdsaP256,
        },
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    updraft_publisher::rotate_root(
        &store.store,
        &store.keys,
        &new_keys,
        now,
        &ExpiryPolicy::default(),
    )
    .unwrap();
    let targets_key = dir.path().join("targets-3.key");
    updraft_publisher::keys::write_key_file(
        &targets_key,
        &SigningKey::generate(Scheme::RsaPssSha256).unwrap(),
    )
    .unwrap();
    updraft_publisher::rotate_role(
        &store.store,
        &new_keys,
        RoleName::Targets,
        &targets_key,
        now,
        &ExpiryPolicy::default(),
    )
    .unwrap();
    std::fs::copy(&targets_key, new_keys.join("targets.key")).unwrap();
    let keys_after = TestStore {
        dir: store.dir.clone(),
        keys: new_keys,
        store: store.store.clone(),
    };
    publish(&keys_after, "1.2.0", |_| {});

    let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
        panic!("no offer after the rotations")
    };
    assert_eq!(offer.version, "1.2.0");
    assert_eq!(trusted_root_version(&target), 3, "walked 1 -> 2 -> 3");
    let package = manager
        .download(&offer, None, &CancellationToken::new())
        .await
        .unwrap();
    manager.install(&offer, &package).await.unwrap();
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.2.0")
    );

    // A fresh install trusting the store's current root.json starts at 3.
    let fresh = dir.path().join("fresh");
    let (platform, arch) = updraft_client::host();
    let root = std::fs::read(store.store.join("metadata/root.json")).unwrap();
    let base = format!("file://{}", store.store.display());
    updraft_client::bootstrap(
        &InstallRequest {
            install_dir: &fresh,
            base_url: &base,
            mirrors: &[],
            app: &"kuzflow".parse().unwrap(),
            channel: &"stable".parse().unwrap(),
            trusted_root: &root,
            version: None,
            platform,
            arch,
            allow_insecure_http: false,
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(trusted_root_version(&fresh), 3);
}

/// Cancelled half way through the download, the workflow leaves the install
/// as it was and only that release's resumable staging behind; the next run
/// keeps what arrived and fetches only the rest.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_cancelled_half_way_keeps_what_arrived_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", |_| {});
    // 4 MB that does not compress, and no delta: the full package streams in.
    publish(&store, "1.1.0", |request| {
        std::fs::write(
            request.source.join("share/noise.bin"),
            updraft_test_support::noise(4_000_000, 11),
        )
        .unwrap();
        request.deltas = updraft_publisher::DeltaPolicy::None;
    });
    let server = updraft_test_support::faulty::FaultyServer::start(&store.store);
    // A slow link (per connection), so the download is still running when cancelled.
    server.add(
        "full.tar.zst",
        updraft_test_support::faulty::Fault::Throttle(1_000_000),
        None,
    );
    let target = dir.path().join("install");
    install(&store, &server.url(), &target, "1.0.0").await;
    let (manager, offer) = offered(&target).await;
    let staging = target.join(".updraft/staging");
    let listed = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = listed(&staging);
    let cancel = CancellationToken::new();
    let cancelled_at = Mutex::new(None);
    let sink = |event: &updraft_client::UpdateEvent| {
        if let updraft_client::UpdateEvent::Progress(progress) = event
            && progress.phase == updraft_client::Phase::Downloading
            && progress.downloaded * 2 >= progress.total
            && !cancel.is_cancelled()
        {
            *cancelled_at.lock().unwrap() = Some(progress.downloaded);
            cancel.cancel();
        }
    };
    let finish = updraft_client::Finish::Now { restart: None };
    let error = manager
        .update(&offer, &finish, &sink, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, updraft_client::Error::Cancelled), "{error}");
    let cancelled_at = cancelled_at.lock().unwrap().expect("cancelled half way");
    assert!(cancelled_at < offer.file_size, "cancelled before the end");
    // The install is as it was: 1.0.0 current, no other version folder.
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
    let versions: Vec<String> = std::fs::read_dir(target.join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(versions, ["1.0.0"]);
    // What the update added to staging is this release's partial download
    // and tree, nothing else.
    let staged: Vec<String> = listed(&staging)
        .into_iter()
        .filter(|name| !before.contains(name))
        .collect();
    assert!(
        staged.iter().all(|name| name.starts_with(&offer.sha256)),
        "only the offer's staging is left: {staged:?}"
    );
    assert!(
        staged.iter().any(|name| name.ends_with(".part")),
        "the partial download is kept: {staged:?}"
    );
    // The next run keeps what arrived.
    server.clear();
    let outcome = manager
        .update(&offer, &finish, &sink, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.switched, "{outcome:?}");
    assert!(
        outcome.resumed_bytes > 0 && outcome.downloaded_bytes < offer.file_size,
        "the resumed run fetches only what was missing: {outcome:?}"
    );
}

/// Cancelled while it waits for the app to exit, the workflow stops at once
/// with the update prepared; the next `apply` switches to it.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_cancelled_while_it_waits_for_the_app_stays_prepared() {
    let (_dir, _store, target) = folder_feed_at_1_0().await;
    let (manager, offer) = offered(&target).await;
    let mut app = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let cancel = CancellationToken::new();
    let sink = |event: &updraft_client::UpdateEvent| {
        if matches!(event, updraft_client::UpdateEvent::Ready { .. }) {
            cancel.cancel();
        }
    };
    let finish = updraft_client::Finish::AfterExit {
        pid: app.id(),
        timeout: Duration::from_mins(1),
        restart: None,
    };
    // Without the cancellation this would wait for the app's 60 s.
    let error = tokio::time::timeout(
        Duration::from_secs(20),
        manager.update(&offer, &finish, &sink, &cancel),
    )
    .await
    .expect("the wait stops when cancelled")
    .unwrap_err();
    assert!(matches!(error, updraft_client::Error::Cancelled), "{error}");
    assert!(app.try_wait().unwrap().is_none(), "the app still runs");
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
    let state = manager.reload_state().unwrap();
    assert_eq!(state.prepared.as_deref(), Some("1.1.0"));
    app.kill().unwrap();
    app.wait().unwrap();
    let outcome = manager
        .apply(
            &updraft_client::Finish::Now { restart: None },
            &|_: &updraft_client::UpdateEvent| {},
        )
        .await
        .unwrap();
    assert!(outcome.switched, "{outcome:?}");
    assert_eq!(
        std::fs::read_link(target.join("current")).unwrap(),
        Path::new("versions/1.1.0")
    );
}
