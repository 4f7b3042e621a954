//! A power loss half way through a streaming install, then a resume: the
//! unpacked files that were synced are the durable record, the package's
//! zstd frames let the next run decode from the last restart point before
//! the first file it lacks, and it fetches only the bytes from there on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use time::OffsetDateTime;
use updraft_client::{CancellationToken, CheckOutcome, InstallRequest, Offer, UpdateManager};
use updraft_protocol::{ReleaseManifest, Version};
use updraft_publisher::{DeltaPolicy, ExpiryPolicy};
use updraft_test_support::faulty::{Fault, FaultyServer};
use updraft_test_support::{TestStore, noise, write_app};

const FILES: usize = 128;
const FILE_SIZE: usize = 128 * 1024;

/// Publishes `version`: the demo app plus `FILES` files of random bytes,
/// a zstd frame every `restart_every` tar bytes (0: one frame).
fn publish(store: &TestStore, version: &str, restart_every: u64) -> PathBuf {
    let (platform, arch) = updraft_client::host();
    let source = store.dir.join(format!("src-{version}"));
    write_app(&source, version);
    std::fs::create_dir_all(source.join("data")).unwrap();
    for i in 0..FILES {
        let seed = u32::try_from(i).unwrap() + if version == "1.0.0" { 0 } else { 1000 };
        std::fs::write(
            source.join(format!("data/{i:03}.bin")),
            noise(FILE_SIZE, seed),
        )
        .unwrap();
    }
    let mut request = TestStore::request(version, &source);
    request.platform = platform;
    request.arch = arch;
    request.pack.level = 1;
    request.pack.restart_every = restart_every;
    request.deltas = DeltaPolicy::None;
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
    source
}

struct Setup {
    _dir: tempfile::TempDir,
    server: FaultyServer,
    target: PathBuf,
    source: PathBuf,
}

/// 1.0.0 installed from a throttled server (4 MB/s per connection, one
/// connection), 1.1.0 published.
async fn setup(restart_every: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    publish(&store, "1.0.0", restart_every);
    let source = publish(&store, "1.1.0", restart_every);
    let server = FaultyServer::start(&store.store);
    let target = dir.path().join("install");
    let (platform, arch) = updraft_client::host();
    let root = std::fs::read(store.store.join("metadata/1.root.json")).unwrap();
    let version: Version = "1.0.0".parse().unwrap();
    let base = server.url();
    updraft_client::bootstrap(
        &InstallRequest {
            install_dir: &target,
            base_url: &base,
            mirrors: &[],
            app: &"kuzflow".parse().unwrap(),
            channel: &"stable".parse().unwrap(),
            trusted_root: &root,
            version: Some(&version),
            platform,
            arch,
            allow_insecure_http: true,
        },
        None,
    )
    .await
    .unwrap();
    let config_path = target.join("update_config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["download_settings"]["parallel_downloads"] = 1.into();
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    server.add("_full.tar.zst", Fault::Throttle(4_000_000), None);
    Setup {
        _dir: dir,
        server,
        target,
        source,
    }
}

async fn offer(manager: &UpdateManager) -> Offer {
    let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
        panic!("no offer")
    };
    offer
}

/// Downloads until half of the package has arrived, then stops (as a kill
/// would: the partial download and the files unpacked so far stay).
async fn interrupt_at_half(manager: &UpdateManager, offer: &Offer) {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let fired = Arc::new(AtomicBool::new(false));
    let progress: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |done, total| {
        if done * 2 >= total && !fired.swap(true, Ordering::Relaxed) {
            stop.cancel();
        }
    });
    let error = manager
        .download(offer, Some(progress), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, updraft_client::Error::Cancelled), "{error}");
}

/// What a power loss leaves: the partial download was never synced (a
/// download this short never syncs it), and of the unpacked files only those
/// the unpacker recorded as synced survive. Returns how many files survived.
fn lose_power(staging: &Path, sha256: &str) -> (usize, ReleaseManifest) {
    let _ = std::fs::remove_file(staging.join(format!("{sha256}.tar.zst.part")));
    let _ = std::fs::remove_file(staging.join(format!("{sha256}.tar.zst.part.json")));
    let manifest = ReleaseManifest::from_slice(
        "manifest",
        &std::fs::read(staging.join(format!("{sha256}.manifest.json"))).unwrap(),
    )
    .unwrap();
    let record: serde_json::Value =
        std::fs::read(staging.join(format!("{sha256}.tree.synced.json")))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| serde_json::json!({"files": 0}));
    let synced = usize::try_from(record["files"].as_u64().unwrap()).unwrap();
    let tree = staging.join(format!("{sha256}.tree"));
    for (index, file) in manifest.files.iter().enumerate() {
        if index >= synced {
            let _ = std::fs::remove_file(tree.join(file.path.as_str()));
        }
    }
    (synced, manifest)
}

/// The package bytes the server sent, once it has stopped sending (a
/// dropped connection's last bytes are still counted for a moment).
fn quiet(server: &FaultyServer) -> u64 {
    let mut last = server.sent("_full.tar.zst");
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = server.sent("_full.tar.zst");
        if now == last {
            return now;
        }
        last = now;
    }
}

fn package_length(offer: &Offer) -> u64 {
    offer.file_size
}

/// An update of `setup` stopped at half of the package, then a power loss.
struct PowerLost {
    manager: UpdateManager,
    offer: Offer,
    /// The package's length.
    length: u64,
    /// Package bytes the server had sent before the update.
    before: u64,
    /// Package bytes the stopped run fetched.
    first: u64,
    staging: PathBuf,
    /// Files (in package order) that survived the power loss.
    synced: usize,
    manifest: ReleaseManifest,
}

async fn stop_half_way_and_lose_power(setup: &Setup) -> PowerLost {
    let manager = UpdateManager::builder(&setup.target).build().unwrap();
    let offer = offer(&manager).await;
    let length = package_length(&offer);
    let before = setup.server.sent("_full.tar.zst");
    interrupt_at_half(&manager, &offer).await;
    let first = quiet(&setup.server) - before;
    let staging = setup.target.join(".updraft/staging");
    let (synced, manifest) = lose_power(&staging, &offer.sha256);
    PowerLost {
        manager,
        offer,
        length,
        before,
        first,
        staging,
        synced,
        manifest,
    }
}

/// Finishes the update and checks that exactly 1.1.0 is current, byte for byte.
async fn finish_and_check(manager: &UpdateManager, offer: &Offer, setup: &Setup) {
    let downloaded = manager
        .download(offer, None, &CancellationToken::new())
        .await
        .unwrap();
    manager.install(offer, &downloaded).await.unwrap();
    assert_eq!(
        std::fs::read_link(setup.target.join("current")).unwrap(),
        Path::new("versions/1.1.0")
    );
    let installed = setup.target.join("versions/1.1.0");
    for i in 0..FILES {
        let name = format!("data/{i:03}.bin");
        assert_eq!(
            std::fs::read(installed.join(&name)).unwrap(),
            std::fs::read(setup.source.join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_power_loss_resumes_from_the_last_restart_point_and_fetches_little_again() {
    // A frame per file: the resume decodes from the first file it lacks.
    let setup = setup(128 * 1024).await;
    // What the throttled link and the synced record allow: ~1.03x on a quiet
    // disk (the bytes in flight at the kill, and the files not yet synced,
    // are what is fetched twice).
    let PowerLost {
        manager,
        offer,
        length,
        before,
        first,
        synced,
        manifest,
        ..
    } = stop_half_way_and_lose_power(&setup).await;
    assert!(
        manifest.restarts.len() > FILES / 2,
        "{:?}",
        manifest.restarts
    );
    assert!(
        synced > FILES / 4,
        "only {synced} files were recorded as synced"
    );
    let point = manifest.restart_before(synced).expect("a restart point");
    finish_and_check(&manager, &offer, &setup).await;
    let second = setup.server.sent("_full.tar.zst") - before - first;
    let total = first + second;
    #[allow(clippy::cast_precision_loss)]
    let ratio = total as f64 / length as f64;
    eprintln!(
        "package {length} bytes; first run {first}, second run {second}: {ratio:.3}x; {synced} files synced, restart at {} (file {})",
        point.offset, point.file
    );
    // The second run fetched only from the restart point's chunk on.
    let chunk = manifest.chunks.as_ref().unwrap().size;
    assert!(
        second <= length - point.offset + chunk,
        "the second run fetched {second} bytes, more than the {} from byte {} on",
        length - point.offset,
        point.offset
    );
    // How much that saves depends on how far the disk had synced when the
    // power went (a busy disk lags): at least a quarter of the package here.
    assert!(
        point.offset >= length / 4,
        "the resume restarted at byte {} of {length}",
        point.offset
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_file_kept_after_the_restart_point_is_written_again() {
    // Two files per frame, so a file after the restart point can be kept.
    let setup = setup(256 * 1024).await;
    let PowerLost {
        manager,
        offer,
        length,
        before,
        first,
        staging,
        synced,
        manifest,
    } = stop_half_way_and_lose_power(&setup).await;
    // When the point falls just after the last synced file, the power loss
    // took that one too, so that a file after the point is kept.
    let tree = staging.join(format!("{}.tree", offer.sha256));
    let mut intact = synced;
    let point = loop {
        let point = manifest.restart_before(intact).expect("a restart point");
        if usize::try_from(point.file).unwrap() < intact {
            break point;
        }
        intact -= 1;
        std::fs::remove_file(tree.join(manifest.files[intact].path.as_str())).unwrap();
    };
    let tampered = tree.join(
        manifest.files[usize::try_from(point.file).unwrap()]
            .path
            .as_str(),
    );
    let mut bytes = std::fs::read(&tampered).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    // Same size, one bit off: it is written again (checked byte for byte).
    finish_and_check(&manager, &offer, &setup).await;
    let second = setup.server.sent("_full.tar.zst") - before - first;
    let chunk = manifest.chunks.as_ref().unwrap().size;
    assert!(
        second <= length - point.offset + chunk,
        "the second run fetched {second} bytes, more than the {} from byte {} on",
        length - point.offset,
        point.offset
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_file_before_the_restart_point_makes_the_resume_start_over() {
    let setup = setup(256 * 1024).await;
    let PowerLost {
        manager,
        offer,
        length,
        before,
        first,
        staging,
        synced,
        manifest,
    } = stop_half_way_and_lose_power(&setup).await;
    assert!(synced > 1);
    let tree = staging.join(format!("{}.tree", offer.sha256));
    let path = tree.join(manifest.files[0].path.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    finish_and_check(&manager, &offer, &setup).await;
    let second = setup.server.sent("_full.tar.zst") - before - first;
    assert_eq!(
        second, length,
        "the whole package is fetched and decoded again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_without_restart_points_still_installs_and_resumes() {
    let setup = setup(0).await;
    let manager = UpdateManager::builder(&setup.target).build().unwrap();
    let offer = offer(&manager).await;
    interrupt_at_half(&manager, &offer).await;
    let staging = setup.target.join(".updraft/staging");
    let (_, manifest) = lose_power(&staging, &offer.sha256);
    assert!(manifest.restarts.is_empty());
    finish_and_check(&manager, &offer, &setup).await;
}
