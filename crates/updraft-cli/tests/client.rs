//! `updraft install / check / update / status` against real local servers,
//! with every network fault and attack of THREATS.md injected: each case
//! checks the exit code, the message, and that the install is unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use time::OffsetDateTime;
use updraft_publisher::ExpiryPolicy;
use updraft_test_support::faulty::{Fault, FaultyServer};
use updraft_test_support::{TestStore, snapshot_tree, wait_until, write_app};

fn updraft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `updraft install --version 1.0.0` from `base` into `install`.
fn install_1_0(base: &str, store: &TestStore, install: &Path) {
    let output = updraft()
        .args([
            "install",
            "--server",
            base,
            "--app",
            "kuzflow",
            "--version",
            "1.0.0",
            "--dir",
        ])
        .arg(install)
        .arg("--trusted-root")
        .arg(store.store.join("metadata/1.root.json"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "install failed: {}",
        stderr(&output)
    );
}

/// Changes the install's `update_config.json`.
fn edit_config(install: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let config = install.join("update_config.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    store: TestStore,
    install: PathBuf,
    server: FaultyServer,
}

const PACKAGE_1_1: &str = "full.tar.zst";

/// A store with 1.0.0 and 1.1.0 (about 6 MB, so it downloads on three
/// ranged connections), served by a fault-injecting server, and an install
/// of 1.0.0 made through it.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for (version, extra) in [("1.0.0", 10_000), ("1.1.0", 6_000_000)] {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        std::fs::write(
            source.join("share/noise.bin"),
            updraft_test_support::noise(extra, 7),
        )
        .unwrap();
        // These tests inject faults into the full package's transport: no
        // delta package, so it is what the client fetches.
        store.publish_for_host_with(version, &source, updraft_publisher::DeltaPolicy::None);
    }
    let server = FaultyServer::start(&store.store);
    let install = dir.path().join("install");
    install_1_0(&server.url(), &store, &install);
    // Fast failure settings for the tests: two retries, a 1 s stall window.
    edit_config(&install, |value| {
        value["download_settings"]["retry_count"] = 2.into();
        value["download_settings"]["stall_timeout"] = 1.into();
        value["download_settings"]["min_rate"] = 50_000.into();
    });
    Setup {
        _dir: dir,
        store,
        install,
        server,
    }
}

fn install_state(install: &Path) -> std::collections::BTreeMap<String, String> {
    // The app's files and which version is current; updraft's own state aside.
    snapshot_tree(install, &[".updraft", "update_config.json"])
}

fn update(setup: &Setup) -> Output {
    updraft()
        .args(["update", "--yes", "--json", "--dir"])
        .arg(&setup.install)
        .output()
        .unwrap()
}

fn result_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"event\":\"result\""))
        .unwrap_or_else(|| panic!("no result in {stdout}"));
    serde_json::from_str(line).unwrap()
}

fn assert_updated(setup: &Setup, output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
    assert_eq!(result_line(output)["version"], "1.1.0");
    let current = std::fs::read_link(setup.install.join("current")).unwrap();
    assert_eq!(current, Path::new("versions/1.1.0"));
    let staging = setup.install.join(".updraft/staging");
    let leftovers: Vec<_> = std::fs::read_dir(&staging)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
}

fn assert_refused(
    setup: &Setup,
    before: &std::collections::BTreeMap<String, String>,
    output: &Output,
    code: i32,
    words: &str,
) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert!(
        stderr(output).contains(words),
        "expected `{words}` in: {}",
        stderr(output)
    );
    assert_eq!(
        &install_state(&setup.install),
        before,
        "the install changed"
    );
    assert_eq!(
        std::fs::read_link(setup.install.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
}

#[test]
fn install_check_update_and_status_work_end_to_end() {
    let setup = setup();
    let status = updraft()
        .args(["status", "--json", "--dir"])
        .arg(&setup.install)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (
            status["app"].as_str(),
            status["current_version"].as_str(),
            status["pending_confirm"].as_bool()
        ),
        (Some("kuzflow"), Some("1.0.0"), Some(false))
    );
    for key in ["channel", "install_dir", "previous_versions"] {
        assert!(!status[key].is_null(), "status lacks {key}");
    }
    let check = updraft()
        .args(["check", "--json", "--dir"])
        .arg(&setup.install)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        (
            check["update_available"].as_bool(),
            check["latest_version"].as_str(),
            check["update_type"].as_str()
        ),
        (Some(true), Some("1.1.0"), Some("minor"))
    );
    let output = update(&setup);
    assert_updated(&setup, &output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"event\":\"progress\""));
    let app = setup.install.join("current/bin/app");
    assert_eq!(
        std::fs::read_to_string(app).unwrap(),
        "#!/bin/sh\necho app 1.1.0\n"
    );
    let again = update(&setup);
    assert_eq!(result_line(&again)["updated"], false);
}

#[test]
fn transient_faults_are_retried_and_resumed() {
    for (name, fault, times) in [
        ("drop after 100 kB", Fault::DropAfter(100_000), Some(4)),
        ("503 twice", Fault::Unavailable, Some(2)),
        ("changed ETag", Fault::ChangingEtag, Some(2)),
    ] {
        let setup = setup();
        setup.server.add(PACKAGE_1_1, fault, times);
        let output = update(&setup);
        assert_updated(&setup, &output);
        eprintln!("{name}: ok");
    }
}

#[test]
fn a_server_that_mishandles_ranges_gets_the_partial_discarded() {
    for fault in [Fault::IgnoreRange, Fault::WrongContentRange] {
        let setup = setup();
        // Interrupt first, so the resume meets the broken range handling.
        setup
            .server
            .add(PACKAGE_1_1, Fault::DropAfter(200_000), Some(3));
        setup.server.add(PACKAGE_1_1, fault.clone(), None);
        let output = update(&setup);
        assert_updated(&setup, &output);
    }
}

#[test]
fn permanent_faults_are_refused_and_the_install_is_unchanged() {
    let cases: Vec<(Fault, i32, &str)> = vec![
        (Fault::Unavailable, 3, "the server answered 503"),
        (Fault::Throttle(1000), 3, "too slow"),
        (Fault::LyingLength, 3, "bytes where"),
        (Fault::Tamper, 4, "failed verification"),
        (Fault::Missing, 3, "404"),
    ];
    for (fault, code, words) in cases {
        let setup = setup();
        let before = install_state(&setup.install);
        setup.server.add(PACKAGE_1_1, fault.clone(), None);
        let output = update(&setup);
        assert_refused(&setup, &before, &output, code, words);
        assert!(
            stderr(&output).contains("kuzflow_v1.1.0"),
            "{fault:?}: the message names the file: {}",
            stderr(&output)
        );
    }
}

#[test]
fn an_endless_body_is_cut_at_the_signed_length() {
    let setup = setup();
    let before = install_state(&setup.install);
    setup.server.add(PACKAGE_1_1, Fault::Endless, None);
    let output = update(&setup);
    // Each range stops at its signed end: either a read ends exactly there
    // (and the verified package installs) or it overshoots and is refused.
    if output.status.success() {
        assert_updated(&setup, &output);
    } else {
        assert_refused(&setup, &before, &output, 3, "more than the");
    }
}

#[test]
fn metadata_attacks_are_refused() {
    // Replayed metadata: an older timestamp than the one the install trusts.
    let setup = setup();
    let before = install_state(&setup.install);
    let old_timestamp = std::fs::read(setup.store.store.join("metadata/timestamp.json")).unwrap();
    updraft_publisher::refresh(
        &setup.store.store,
        &setup.store.keys,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
    let check = updraft()
        .args(["check", "--dir"])
        .arg(&setup.install)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    std::fs::write(
        setup.store.store.join("metadata/timestamp.json"),
        &old_timestamp,
    )
    .unwrap();
    let output = update(&setup);
    eprintln!("replayed timestamp");
    assert_refused(
        &setup,
        &before,
        &output,
        4,
        "older than the trusted version",
    );

    // Expired metadata: a timestamp that expired a minute ago.
    let setup = self::setup();
    let before = install_state(&setup.install);
    let expired = ExpiryPolicy {
        timestamp: time::Duration::minutes(-1),
        ..ExpiryPolicy::default()
    };
    updraft_publisher::refresh(
        &setup.store.store,
        &setup.store.keys,
        OffsetDateTime::now_utc(),
        &expired,
    )
    .unwrap();
    let output = update(&setup);
    eprintln!("expired timestamp");
    assert_refused(&setup, &before, &output, 4, "expired");

    // Tampered metadata: a flipped byte in new targets the snapshot pins.
    let setup = self::setup();
    let before = install_state(&setup.install);
    let source = setup.install.parent().unwrap().join("src-1.2.0");
    write_app(&source, "1.2.0");
    let (platform, arch) = updraft_client::host();
    let mut request = TestStore::request("1.2.0", &source);
    request.platform = platform;
    request.arch = arch;
    updraft_publisher::publish(
        &setup.store.store,
        &setup.store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
    setup.server.add("targets.json", Fault::Tamper, None);
    let output = update(&setup);
    assert_refused(&setup, &before, &output, 4, "failed verification");
}

#[test]
fn an_offer_that_is_not_a_signed_target_of_this_app_is_refused() {
    let setup = setup();
    // Another app, validly signed in the same store.
    let (platform, arch) = updraft_client::host();
    let source = setup.install.parent().unwrap().join("other");
    write_app(&source, "9.0.0");
    let mut request = TestStore::request("9.0.0", &source);
    request.app = "other".parse().unwrap();
    request.platform = platform;
    request.arch = arch;
    updraft_publisher::publish(
        &setup.store.store,
        &setup.store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
    let before = install_state(&setup.install);
    let wrong = format!("releases/v9.0.0/other_v9.0.0_{platform}_{arch}_full.tar.zst");
    let answer =
        serde_json::json!({"update_available": true, "latest_version": "9.0.0", "target": wrong})
            .to_string();
    setup
        .server
        .add("/api/version/check", Fault::Json(answer), None);
    let output = update(&setup);
    assert_refused(
        &setup,
        &before,
        &output,
        4,
        "which is not a signed kuzflow package",
    );
    // And a target that is not signed at all.
    setup.server.clear();
    let answer = serde_json::json!({"update_available": true, "latest_version": "6.6.6", "target": "releases/evil.tar.zst"}).to_string();
    setup
        .server
        .add("/api/version/check", Fault::Json(answer), None);
    let output = update(&setup);
    assert_refused(&setup, &before, &output, 4, "`releases/evil.tar.zst`");
}

#[test]
fn a_bad_mirror_is_skipped() {
    let setup = setup();
    let good = FaultyServer::start(&setup.store.store);
    // The primary serves tampered packages; the mirror is fine.
    setup.server.add(PACKAGE_1_1, Fault::Missing, None);
    let config = setup.install.join("update_config.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["update_server"]["mirrors"] = serde_json::json!([good.url()]);
    std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let output = update(&setup);
    assert_updated(&setup, &output);
    assert!(good.sent(PACKAGE_1_1) > 0, "the mirror served the package");
}

#[test]
fn a_killed_update_resumes_where_it_stopped() {
    let setup = setup();
    // Let about half the package arrive, then kill -9.
    let length = package_length(&setup);
    let first = kill_half_way(&setup, 600_000);
    assert!(
        first > length / 4 && first < length,
        "killed after {first} of {length} bytes"
    );
    setup.server.clear();
    let output = update(&setup);
    assert_updated(&setup, &output);
    let result = result_line(&output);
    let fetched = result["downloaded_bytes"].as_u64().unwrap();
    let resumed = result["resumed_bytes"].as_u64().unwrap();
    assert!(resumed > length / 5, "resumed only {resumed} bytes");
    assert!(
        fetched + resumed <= length + 64 * 1024,
        "fetched {fetched} + resumed {resumed} for {length}"
    );
    assert!(
        fetched < length - length / 5,
        "the second run fetched {fetched} of {length}"
    );
}

/// The signed length of the 1.1.0 package.
fn package_length(setup: &Setup) -> u64 {
    std::fs::read_dir(setup.store.store.join("releases/v1.1.0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_full.tar.zst"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

/// Starts an update from a server throttled to `rate` bytes/s per answer,
/// SIGKILLs it once half the package has been sent (or after 10 s), and
/// returns the bytes sent by then.
fn kill_half_way(setup: &Setup, rate: u64) -> u64 {
    let length = package_length(setup);
    setup.server.add(PACKAGE_1_1, Fault::Throttle(rate), None);
    let mut child = updraft()
        .args(["update", "--yes", "--json", "--dir"])
        .arg(&setup.install)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if setup.server.sent(PACKAGE_1_1) > length / 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    setup.server.sent(PACKAGE_1_1)
}

/// Kills an update once half the package has been sent, optionally
/// simulates a power loss (`bench/powerloss.py`: unsynced bytes and unpacked
/// files lost), resumes it, and returns the bytes sent in all and the length.
fn interrupted_update_bytes(power_loss: bool) -> (u64, u64) {
    let setup = setup();
    let length = package_length(&setup);
    let first = kill_half_way(&setup, 300_000);
    assert!(
        first < length,
        "killed only after {first} of {length} bytes"
    );
    if power_loss {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/powerloss.py");
        let status = Command::new("python3")
            .arg(script)
            .arg(setup.install.join(".updraft/staging"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    setup.server.clear();
    let output = update(&setup);
    assert_updated(&setup, &output);
    let sent = setup.server.sent(PACKAGE_1_1);
    eprintln!("power loss: {power_loss}: {sent} bytes sent for {length} ({first} before the kill)");
    (sent, length)
}

/// Issue 10's exact resume: a killed download keeps every chunk it verified,
/// so the package crosses the wire little more than once in all.
#[test]
fn a_killed_update_costs_at_most_a_few_chunks_more_than_the_package() {
    let (sent, length) = interrupted_update_bytes(false);
    assert!(
        sent <= length + 4 * 64 * 1024,
        "{sent} bytes sent for a {length}-byte package"
    );
}

/// After a power loss only what was synced survives; the partial file is
/// synced every quarter second, so little is fetched twice, and nothing
/// that did not survive intact is used.
#[test]
fn a_power_loss_during_an_update_costs_little_more_than_the_package() {
    let (sent, length) = interrupted_update_bytes(true);
    assert!(
        sent <= length + length / 10,
        "{sent} bytes sent for a {length}-byte package"
    );
}

#[test]
fn client_errors_exit_2_with_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = updraft()
        .args(["check", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not an updraft install"),
        "{}",
        stderr(&output)
    );
    let setup = setup();
    std::fs::write(
        setup.install.join("update_config.json"),
        br#"{"download_settings": {"retry_count": "lots"}}"#,
    )
    .unwrap();
    let output = updraft()
        .args(["check", "--dir"])
        .arg(&setup.install)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("`download_settings.retry_count`"),
        "{}",
        stderr(&output)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_refused_before_the_app_is_touched() {
    let setup = setup();
    let Some(tmpfs) = updraft_test_support::Tmpfs::mount("2m") else {
        return;
    };
    // The 1.0.0 install fits in 2 MB (without its updater); the 6 MB update does not.
    std::fs::remove_dir_all(setup.install.join(".updraft/bin")).unwrap();
    let install = tmpfs.path().join("install");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&setup.install)
            .arg(&install)
            .status()
            .unwrap()
            .success()
    );
    let before = install_state(&install);
    let output = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Not enough free space"),
        "{}",
        stderr(&output)
    );
    assert_eq!(install_state(&install), before);
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
}

/// 1.0.0 installed and updated to a 1.1.0 whose `bin/app` is `script`.
fn updated_to(script: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, install) = installed_with(script);
    let output = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    (dir, install)
}

/// 1.0.0 installed from a static store that also holds a 1.1.0 whose
/// `bin/app` is `script` (and a delta package from 1.0.0 to it).
fn installed_with(script: &str) -> (tempfile::TempDir, PathBuf) {
    installed_from(script, &updraft_publisher::DeltaPolicy::default())
}

/// [`installed_with`], the store's packages made as `deltas` says
/// (`DeltaPolicy::None`: the update streams the full package).
fn installed_from(
    script: &str,
    deltas: &updraft_publisher::DeltaPolicy,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for version in ["1.0.0", "1.1.0"] {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        if version == "1.1.0" {
            std::fs::write(source.join("bin/app"), script).unwrap();
        }
        store.publish_for_host_with(version, &source, deltas.clone());
    }
    let install = dir.path().join("install");
    let base = format!("file://{}", store.store.display());
    install_1_0(&base, &store, &install);
    edit_config(&install, |value| {
        value["install_settings"]["health_launches"] = 2.into();
    });
    (dir, install)
}

fn status(install: &Path) -> serde_json::Value {
    let output = updraft()
        .args(["status", "--json", "--dir"])
        .arg(install)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

fn run_app(install: &Path) -> Output {
    updraft()
        .args(["run", "--dir"])
        .arg(install)
        .env("UPDRAFT_BIN", env!("CARGO_BIN_EXE_updraft"))
        .output()
        .unwrap()
}

#[test]
fn a_new_version_that_exits_1_is_rolled_back_and_never_offered_again() {
    let (_dir, install) = updated_to("#!/bin/sh\necho crashing\nexit 1\n");
    assert_eq!(status(&install)["pending_confirm"], true);
    let output = run_app(&install);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the app's exit code is passed through"
    );
    assert!(
        stderr(&output).contains("1.1.0 did not confirm a healthy start"),
        "{}",
        stderr(&output)
    );
    let state = status(&install);
    assert_eq!(
        (
            state["current_version"].as_str(),
            state["pending_confirm"].as_bool()
        ),
        (Some("1.0.0"), Some(false))
    );
    assert_eq!(state["bad_versions"], serde_json::json!(["1.1.0"]));
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        Path::new("versions/1.0.0")
    );
    assert!(!install.join("versions/1.1.0").exists());
    let check = updraft()
        .args(["check", "--json", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        check["update_available"], false,
        "the bad version is not offered again"
    );
    let output = run_app(&install);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "app 1.0.0\n");
}

#[test]
fn a_new_version_that_never_confirms_is_rolled_back_after_its_launches() {
    let (_dir, install) = updated_to("#!/bin/sh\necho app 1.1.0 without confirming\n");
    for _ in 0..2 {
        let output = run_app(&install);
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "app 1.1.0 without confirming\n"
        );
    }
    let output = run_app(&install);
    assert!(
        stderr(&output).contains("did not confirm"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "app 1.0.0\n",
        "the third launch runs the restored version"
    );
    assert_eq!(
        status(&install)["bad_versions"],
        serde_json::json!(["1.1.0"])
    );
}

#[test]
fn a_new_version_that_confirms_stays_and_rollback_returns_on_request() {
    let (_dir, install) = updated_to(
        "#!/bin/sh\n\"$UPDRAFT_BIN\" confirm --dir \"$UPDRAFT_DIR\" >/dev/null\necho app 1.1.0\n",
    );
    for _ in 0..4 {
        let output = run_app(&install);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "app 1.1.0\n",
            "{}",
            stderr(&output)
        );
    }
    let state = status(&install);
    assert_eq!(
        (
            state["current_version"].as_str(),
            state["pending_confirm"].as_bool()
        ),
        (Some("1.1.0"), Some(false))
    );
    let output = updraft()
        .args(["rollback", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let state = status(&install);
    assert_eq!(state["current_version"], "1.0.0");
    assert_eq!(
        state["previous_versions"],
        serde_json::json!(["1.1.0"]),
        "a requested rollback keeps the newer version"
    );
    assert_eq!(state["bad_versions"], serde_json::json!([]));
    let output = updraft()
        .args(["rollback", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(status(&install)["current_version"], "1.1.0");
}

/// A 1.1.0 that confirms its healthy start and records how it was started.
const CONFIRMING_1_1: &str = "#!/bin/sh\n\"$UPDRAFT_BIN\" confirm --dir \"$UPDRAFT_DIR\" >/dev/null\necho \"1.1.0 $*\" >> \"$UPDRAFT_DATA_DIR/started\"\necho app 1.1.0 new\n";

/// After any interruption and the next start's recovery, the install's
/// `current` folder is byte for byte the old or the new release, its state
/// agrees, and nothing half-made is left. Returns the current version.
fn assert_recovered(dir: &Path, install: &Path) -> String {
    let state = status(install);
    let version = state["current_version"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        Path::new(&format!("versions/{version}"))
    );
    assert_eq!(
        snapshot_tree(&install.join("current"), &[]),
        snapshot_tree(&dir.join(format!("src-{version}")), &[]),
        "`current` is not byte-identical to the {version} release"
    );
    assert!(
        !install.join(".updraft/state.next.json").exists(),
        "the interrupted switch was resolved"
    );
    let mut named: Vec<String> = vec![version.clone()];
    for list in ["previous_versions"] {
        for v in state[list].as_array().unwrap() {
            named.push(v.as_str().unwrap().to_owned());
        }
    }
    if let Some(prepared) = state["prepared"].as_str() {
        named.push(prepared.to_owned());
    }
    named.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(install.join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk, named,
        "half-made or unnamed version folders were left"
    );
    version
}

/// Runs the app through `updraft run` and checks it is exactly `expected`.
fn assert_runs(install: &Path, expected: &str) {
    let output = run_app(install);
    let line = if expected == "1.1.0" {
        "app 1.1.0 new\n"
    } else {
        "app 1.0.0\n"
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        line,
        "{}",
        stderr(&output)
    );
}

/// `updraft update` handing off to itself as the updater: prepare, wait for
/// `wait_for` (an already-exited process), switch, restart.
fn handoff_update(install: &Path, wait_for: u32) -> Command {
    let mut command = updraft();
    command
        .args(["update", "--yes", "--json", "--restart", "--wait-pid"])
        .arg(wait_for.to_string())
        .arg("--dir")
        .arg(install)
        .env("UPDRAFT_BIN", env!("CARGO_BIN_EXE_updraft"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// The pid of a process that has exited.
fn exited_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

/// An install of 1.0.0 for a journal scenario: `plain` updates straight away
/// and keeps no backups (so old versions are pruned), through a delta
/// package; `full` is `plain` with only the full package published, so the
/// update downloads it and unpacks it as it streams in; `kept` has already
/// been at 1.1.0 and returned to 1.0.0 on request (so 1.1.0 is replaced).
fn journal_scenario(kind: &str) -> (tempfile::TempDir, PathBuf) {
    let deltas = if kind == "full" {
        updraft_publisher::DeltaPolicy::None
    } else {
        updraft_publisher::DeltaPolicy::default()
    };
    let (dir, install) = installed_from(CONFIRMING_1_1, &deltas);
    if kind == "plain" || kind == "full" {
        edit_config(&install, |value| {
            value["install_settings"]["backup_count"] = 0.into();
        });
    } else {
        let output = handoff_update(&install, exited_pid()).output().unwrap();
        assert!(output.status.success());
        let output = updraft()
            .args(["rollback", "--dir"])
            .arg(&install)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    (dir, install)
}

#[test]
fn the_updater_killed_at_every_journal_step_leaves_exactly_old_or_new() {
    for kind in ["plain", "full", "kept"] {
        // Enumerate the steps of a whole hand-off update.
        let (dir, install) = journal_scenario(kind);
        let trace = dir.path().join("trace");
        let status = handoff_update(&install, exited_pid())
            .env("UPDRAFT_FAULT_TRACE", &trace)
            .status()
            .unwrap();
        assert!(status.success());
        let points: Vec<String> = std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        // 1.1.0 comes as a delta package, or (`full`) as the full package,
        // unpacked as it streams in: either path is killed at every step too.
        let fetched: &[&str] = if kind == "full" {
            &[
                "download.checked",
                "download.halfway",
                "download.unpacked",
                "download.staged",
            ]
        } else {
            &["delta.applying", "delta.applied"]
        };
        for expected in fetched.iter().copied().chain([
            "prepare.placed",
            "prepare.recorded",
            "apply.waited",
            "switch.intent",
            "switch.switched",
            "switch.committed",
            "apply.restarted",
        ]) {
            assert!(
                points.iter().any(|p| p == expected),
                "{kind}: no `{expected}` in {points:?}"
            );
        }
        let special = if kind == "plain" || kind == "full" {
            "prune.removed"
        } else {
            "prepare.forgotten"
        };
        assert!(
            points.iter().any(|p| p == special),
            "{kind}: no `{special}` in {points:?}"
        );
        let mut outcomes = std::collections::BTreeSet::new();
        for point in &points {
            let (dir, install) = journal_scenario(kind);
            let status = handoff_update(&install, exited_pid())
                .env("UPDRAFT_FAULT_KILL_AT", point)
                .status()
                .unwrap();
            assert!(!status.success(), "the update survived a kill at {point}");
            let version = assert_recovered(dir.path(), &install);
            outcomes.insert(version.clone());
            let before_commit = [
                "delta.applying",
                "delta.applied",
                "download.checked",
                "download.halfway",
                "download.unpacked",
                "download.staged",
                "prepare.checked",
                "prepare.forgotten",
                "prepare.unpacked",
                "prepare.placed",
                "prepare.recorded",
                "apply.waited",
                "switch.intent",
            ];
            let expected = if before_commit.contains(&point.as_str()) {
                "1.0.0"
            } else {
                "1.1.0"
            };
            assert_eq!(version, expected, "{kind}: after a kill at {point}");
            // The next update (or start) completes the job.
            let status = handoff_update(&install, exited_pid()).status().unwrap();
            assert!(
                status.success(),
                "{kind}: the update after a kill at {point} failed"
            );
            assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
            assert_runs(&install, "1.1.0");
        }
        assert_eq!(
            outcomes.len(),
            2,
            "{kind}: both outcomes occur: {outcomes:?}"
        );
    }
}

#[test]
fn an_update_killed_at_random_instants_runs_exactly_old_or_new() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut seed = u64::from(nanos) | 1;
    eprintln!("random kill seed {seed:#x}");
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Half the rounds through a delta package, half through the full
        // package unpacked as it streams in.
        let deltas = if round % 2 == 0 {
            updraft_publisher::DeltaPolicy::None
        } else {
            updraft_publisher::DeltaPolicy::default()
        };
        let (dir, install) = installed_from(CONFIRMING_1_1, &deltas);
        let mut child = handoff_update(&install, exited_pid()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(seed % 80_000));
        let _ = child.kill();
        child.wait().unwrap();
        seen.insert(assert_recovered(dir.path(), &install));
        // Whatever was prepared is applied by the next start.
        let prepared = status(&install)["prepared"].as_str().map(str::to_owned);
        let running = prepared.unwrap_or_else(|| {
            status(&install)["current_version"]
                .as_str()
                .unwrap()
                .to_owned()
        });
        assert_runs(&install, &running);
    }
    eprintln!("versions after random kills: {seen:?}");
}

#[test]
fn the_app_hands_off_and_the_updater_waits_switches_and_restarts() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    // The running app (1.0.0) stands in as a process that exits when told to.
    let mut app = Command::new("sleep").arg("30").spawn().unwrap();
    let mut updater = updraft()
        .args(["update", "--yes", "--json", "--restart", "--wait-pid"])
        .arg(app.id().to_string())
        .arg("--dir")
        .arg(&install)
        .args(["--", "--after-update", "two words"])
        .env("UPDRAFT_BIN", env!("CARGO_BIN_EXE_updraft"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(updater.stdout.take().unwrap()));
    let ready = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("\"event\":\"ready\""))
        .expect("the updater says when the update is ready");
    assert!(ready.contains("\"version\":\"1.1.0\""), "{ready}");
    // Prepared beside the running version, which is untouched until the app exits.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        updater.try_wait().unwrap().is_none(),
        "the updater waits for the app"
    );
    assert_eq!(status(&install)["prepared"], "1.1.0");
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    app.kill().unwrap();
    app.wait().unwrap();
    let result: serde_json::Value = serde_json::from_str(
        &lines
            .map(Result::unwrap)
            .find(|l| l.contains("\"event\":\"result\""))
            .unwrap(),
    )
    .unwrap();
    assert!(updater.wait().unwrap().success());
    assert_eq!(
        (result["version"].as_str(), result["restarted"].as_bool()),
        (Some("1.1.0"), Some(true)),
        "{result}"
    );
    // The restarted 1.1.0 got the arguments and confirmed its healthy start.
    let started = install.join("data/started");
    // Wait for the whole line: the file exists a moment before it is written.
    wait_until("the restarted app", WAIT, || {
        std::fs::read_to_string(&started).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(
        std::fs::read_to_string(&started).unwrap(),
        "1.1.0 --after-update two words\n"
    );
    assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
    wait_until("the confirmation", WAIT, || {
        status(&install)["pending_confirm"] == false
    });
    assert_eq!(status(&install)["pending_confirm"], false);
    assert_eq!(
        status(&install)["previous_versions"],
        serde_json::json!(["1.0.0"])
    );
}

#[test]
fn an_app_that_does_not_exit_leaves_the_update_prepared_for_the_next_start() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    let (output, app) = update_while_the_app_never_exits(&install, &["--restart"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("the app (pid {app}) did not exit within 1 s")),
        "{}",
        stderr(&output)
    );
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    assert_eq!(status(&install)["prepared"], "1.1.0");
    // The next start applies it before anything runs.
    assert_runs(&install, "1.1.0");
    assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
}

#[test]
fn the_library_hands_off_in_one_call() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    let mut app = Command::new("sleep").arg("30").spawn().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let updater = runtime.block_on(async {
        let manager = updraft_client::UpdateManager::builder(&install)
            .build()
            .unwrap();
        let updraft_client::CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
            panic!("1.1.0 is offered")
        };
        let cancel = updraft_client::CancellationToken::new();
        let downloaded = manager.download(&offer, None, &cancel).await.unwrap();
        let handoff = updraft_client::Handoff {
            wait_pid: Some(app.id()),
            restart_args: Some(vec!["--restarted".into()]),
            ..updraft_client::Handoff::default()
        };
        manager
            .install_on_exit(&offer, &downloaded, &handoff)
            .await
            .unwrap()
    });
    assert!(updater > 0);
    // The install's own updater (put there by `updraft install`) is waiting.
    assert!(install.join(".updraft/bin/updraft").is_file());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    app.kill().unwrap();
    app.wait().unwrap();
    let started = install.join("data/started");
    // Wait for the whole line: the file exists a moment before it is written.
    wait_until("the restarted app", WAIT, || {
        std::fs::read_to_string(&started).is_ok_and(|s| s.ends_with('\n'))
    });
    let log = std::fs::read_to_string(install.join(".updraft/updater.log")).unwrap_or_default();
    assert_eq!(
        std::fs::read_to_string(&started).unwrap_or_default(),
        "1.1.0 --restarted\n",
        "updater log: {log}"
    );
    assert!(log.contains("Switched from 1.0.0 to 1.1.0"), "{log}");
    assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
}

#[cfg(target_os = "linux")]
#[test]
fn a_disk_that_fills_up_during_the_unpack_aborts_cleanly() {
    let Some(tmpfs) = updraft_test_support::Tmpfs::mount("3m") else {
        return;
    };
    let (dir, source_install) = installed_with(CONFIRMING_1_1);
    std::fs::remove_dir_all(source_install.join(".updraft/bin")).unwrap();
    let install = tmpfs.path().join("install");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&source_install)
            .arg(&install)
            .status()
            .unwrap()
            .success()
    );
    let before = install_state(&install);
    let trace = dir.path().join("trace");
    // The free-space check passes; then something else fills the disk
    // while the streaming unpack writes the new version's files.
    let updater = paused_update(&install, &trace, "download.halfway", 1000);
    let filler = tmpfs.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let output = updater.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("No space left"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(install_state(&install), before, "the install changed");
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    assert_runs(&install, "1.0.0");
}

#[test]
fn two_updaters_started_at_once_never_interleave() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    let trace = dir.path().join("trace");
    // The first updater stops for a while half way through unpacking, holding its locks.
    let first = paused_update(&install, &trace, "prepare.unpacked", 2000);
    let second = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    // An updater switching versions waits for the lock instead (and finds
    // the work done, or does the switch itself, never half of it).
    let apply = updraft()
        .args(["apply", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(5), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("locked by another updraft process"),
        "{}",
        stderr(&second)
    );
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
    assert_runs(&install, "1.1.0");
}

#[test]
fn start_up_cleans_half_made_versions_stray_links_and_stale_downloads() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    let versions = install.join("versions");
    std::fs::create_dir_all(versions.join(".1.1.0.partial/bin")).unwrap();
    std::fs::create_dir_all(versions.join("0.9.0/bin")).unwrap();
    std::os::unix::fs::symlink("versions/0.9.0", install.join(".current.new")).unwrap();
    let staging = install.join(".updraft/staging");
    std::fs::create_dir_all(&staging).unwrap();
    let old = staging.join("abandoned.tar.zst.part");
    let fresh = staging.join("resumable.tar.zst.part");
    std::fs::write(&old, b"old").unwrap();
    std::fs::write(&fresh, b"fresh").unwrap();
    let file = std::fs::File::options().write(true).open(&old).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_hours(8 * 24))
        .unwrap();
    drop(file);
    assert_eq!(status(&install)["current_version"], "1.0.0");
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    assert!(std::fs::symlink_metadata(install.join(".current.new")).is_err());
    assert!(!old.exists(), "a download untouched for 8 days is removed");
    assert!(
        fresh.exists(),
        "a recent partial download is kept for resuming"
    );
}

#[test]
fn a_rollback_killed_half_way_finishes_on_the_next_start() {
    for (point, expected) in [("switch.intent", "1.1.0"), ("switch.switched", "1.0.0")] {
        let (_dir, install) = updated_to("#!/bin/sh\nexit 1\n");
        let output = updraft()
            .args(["run", "--dir"])
            .arg(&install)
            .env("UPDRAFT_BIN", env!("CARGO_BIN_EXE_updraft"))
            .env("UPDRAFT_FAULT_KILL_AT", point)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let state = status(&install);
        assert_eq!(
            state["current_version"], expected,
            "after a kill at {point}"
        );
        assert_eq!(
            std::fs::read_link(install.join("current")).unwrap(),
            Path::new(&format!("versions/{expected}"))
        );
        // The next start finishes the job: the failing version is rolled back.
        let output = run_app(&install);
        if expected == "1.1.0" {
            assert_eq!(output.status.code(), Some(1));
        }
        let state = status(&install);
        assert_eq!(state["current_version"], "1.0.0", "after a kill at {point}");
        assert_eq!(
            String::from_utf8_lossy(&run_app(&install).stdout),
            "app 1.0.0\n"
        );
    }
}

#[test]
fn a_rollback_cancels_an_update_waiting_to_be_applied() {
    let (dir, install) = updated_to(CONFIRMING_1_1);
    let store = TestStore {
        dir: dir.path().to_path_buf(),
        keys: dir.path().join("keys"),
        store: dir.path().join("store"),
    };
    let source = dir.path().join("src-1.2.0");
    write_app(&source, "1.2.0");
    store.publish_for_host("1.2.0", &source);
    // 1.2.0 is prepared while the app runs; the app does not exit in time.
    let (output, _) = update_while_the_app_never_exits(&install, &[]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert_eq!(status(&install)["prepared"], "1.2.0");
    // "Revert to previous version" goes back, and 1.2.0 is not applied behind the user's back.
    let output = updraft()
        .args(["rollback", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let state = status(&install);
    assert_eq!(state["current_version"], "1.0.0");
    assert!(state["prepared"].is_null(), "{state}");
    assert_runs(&install, "1.0.0");
    assert_eq!(assert_recovered(dir.path(), &install), "1.0.0");
    assert!(!install.join("versions/1.2.0").exists());
}

#[test]
fn a_choice_saved_by_a_long_lived_manager_keeps_what_others_changed() {
    let (dir, install) = installed_with(CONFIRMING_1_1);
    // An app builds its manager at start-up, while 1.0.0 is current...
    let manager = updraft_client::UpdateManager::builder(&install)
        .build()
        .unwrap();
    // ...then an updater switches to 1.1.0...
    let output = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // ...and the user's "Remind me later" must not bring back the old state.
    manager.remind_later().unwrap();
    let state = status(&install);
    assert_eq!(state["current_version"], "1.1.0");
    assert_eq!(state["previous_versions"], serde_json::json!(["1.0.0"]));
    assert!(state["remind_after"].is_string(), "{state}");
    assert_eq!(assert_recovered(dir.path(), &install), "1.1.0");
    assert_runs(&install, "1.1.0");
}

#[test]
fn the_old_app_killed_at_the_hand_off_does_not_count_against_the_new_version() {
    let (_dir, install) = long_running_1_0();
    // `updraft run` watches 1.0.0; after the app exits it pauses, so the
    // updater switches first (the order that used to blame 1.1.0).
    let mut wrapper = updraft()
        .args(["run", "--dir"])
        .arg(&install)
        .env("UPDRAFT_FAULT_PAUSE_AT", "run.exited:1500")
        .spawn()
        .unwrap();
    let pid = app_pid(&install);
    let updater = updraft()
        .args(["update", "--yes", "--wait-pid", &pid, "--dir"])
        .arg(&install)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("1.1.0 to be prepared", WAIT, || {
        status(&install)["prepared"] == "1.1.0"
    });
    // The old app dies by a signal: a failure exit.
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(updater.wait_with_output().unwrap().status.success());
    assert!(!wrapper.wait().unwrap().success());
    let state = status(&install);
    assert_eq!(state["current_version"], "1.1.0", "{state}");
    assert_eq!(state["bad_versions"], serde_json::json!([]), "{state}");
    assert_eq!(state["pending_confirm"], true, "1.1.0 has not run yet");
}

#[test]
fn a_version_still_running_is_not_removed_under_it() {
    let (_dir, install) = long_running_1_0();
    // No backups: the switch to 1.1.0 prunes 1.0.0, which is running.
    edit_config(&install, |value| {
        value["install_settings"]["backup_count"] = 0.into();
    });
    let mut wrapper = updraft()
        .args(["run", "--dir"])
        .arg(&install)
        .spawn()
        .unwrap();
    let pid = app_pid(&install);
    let output = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(status(&install)["current_version"], "1.1.0");
    assert!(
        install.join("versions/1.0.0/bin/app").exists(),
        "the running version's files were removed under it"
    );
    assert!(Command::new("kill").arg(&pid).status().unwrap().success());
    wrapper.wait().unwrap();
    // Once it has exited, the next start removes it.
    assert_eq!(status(&install)["current_version"], "1.1.0");
    assert!(!install.join("versions/1.0.0").exists());
}

/// How long the tests wait for another process.
const WAIT: Duration = Duration::from_secs(20);

/// `updraft update` stopped for `millis` at the fault point `point`, started
/// once it has got there (`trace` records the points it reached).
fn paused_update(install: &Path, trace: &Path, point: &str, millis: u32) -> std::process::Child {
    let child = updraft()
        .args(["update", "--yes", "--dir"])
        .arg(install)
        .env("UPDRAFT_FAULT_TRACE", trace)
        .env("UPDRAFT_FAULT_PAUSE_AT", format!("{point}:{millis}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&format!("the updater to reach {point}"), WAIT, || {
        std::fs::read_to_string(trace)
            .unwrap_or_default()
            .contains(point)
    });
    child
}

/// 1.0.0 installed from a local store that also holds 1.1.0 (which
/// confirms); 1.0.0 runs until killed and writes its pid to `data/pid`.
fn long_running_1_0() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for version in ["1.0.0", "1.1.0"] {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        let script = if version == "1.0.0" {
            "#!/bin/sh\necho $$ > \"$UPDRAFT_DATA_DIR/pid\"\nexec sleep 30\n"
        } else {
            CONFIRMING_1_1
        };
        std::fs::write(source.join("bin/app"), script).unwrap();
        store.publish_for_host(version, &source);
    }
    let install = dir.path().join("install");
    install_1_0(
        &format!("file://{}", store.store.display()),
        &store,
        &install,
    );
    (dir, install)
}

/// The pid the running 1.0.0 of [`long_running_1_0`] wrote, once it has.
fn app_pid(install: &Path) -> String {
    let pid_file = install.join("data/pid");
    wait_until("the app to start", WAIT, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    });
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned()
}

/// `updraft update --wait-timeout 1 --wait-pid APP` (plus `extra`) for an
/// "app" that does not exit in time; returns the output and the app's pid.
fn update_while_the_app_never_exits(install: &Path, extra: &[&str]) -> (Output, u32) {
    let mut app = Command::new("sleep").arg("30").spawn().unwrap();
    let output = updraft()
        .args(["update", "--yes", "--wait-timeout", "1", "--wait-pid"])
        .arg(app.id().to_string())
        .args(extra)
        .arg("--dir")
        .arg(install)
        .output()
        .unwrap();
    app.kill().unwrap();
    app.wait().unwrap();
    (output, app.id())
}

/// `check --json` carries every field of the seed's check answer, `null`
/// where there is no release, whether an update is available or not.
#[test]
fn check_json_carries_every_seed_field() {
    let setup = setup();
    let seed = [
        "current_version",
        "latest_version",
        "update_available",
        "update_type",
        "force_update",
        "download_url",
        "file_size",
        "changelog",
        "release_date",
        "min_supported_version",
    ];
    let check = || {
        let output = updraft()
            .args(["check", "--json", "--dir"])
            .arg(&setup.install)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let available = check();
    assert_eq!(available["update_available"], true);
    assert!(
        available["download_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("_full.tar.zst"))
    );
    assert_updated(&setup, &update(&setup));
    let newest = check();
    assert_eq!(newest["update_available"], false);
    for answer in [&available, &newest] {
        for field in seed {
            assert!(answer.get(field).is_some(), "no `{field}` in {answer}");
        }
    }
    assert!(newest["latest_version"].is_null() && newest["file_size"].is_null());
}

/// Issue 17: `install` is all or nothing. With another store's root it is
/// refused with a hint, and leaves nothing behind, so the retry with the
/// right root simply works; a folder that existed keeps what it had.
#[test]
fn an_install_with_the_wrong_root_leaves_nothing_behind() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let other = TestStore::new(&dir.path().join("other"));
    for existed in [false, true] {
        let install = dir.path().join(format!("fresh-{existed}"));
        if existed {
            std::fs::create_dir_all(install.join("keep")).unwrap();
        }
        let output = updraft()
            .args([
                "install",
                "--server",
                &setup.server.url(),
                "--app",
                "kuzflow",
                "--dir",
            ])
            .arg(&install)
            .arg("--trusted-root")
            .arg(other.store.join("metadata/1.root.json"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("does not seem to belong to the store"),
            "{}",
            stderr(&output)
        );
        if existed {
            let left: Vec<_> = std::fs::read_dir(&install)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert_eq!(left, ["keep"], "only what was there before");
        } else {
            assert!(!install.exists(), "a half-made install was left");
        }
        install_1_0(&setup.server.url(), &setup.store, &install);
    }
}

/// Issue 17: an error about the trusted root names the file given.
#[test]
fn a_bad_trusted_root_is_named_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my-root.json");
    std::fs::write(&root, "{\"signed\": {}}").unwrap();
    let install = dir.path().join("install");
    let output = updraft()
        .args([
            "install",
            "--server",
            "http://127.0.0.1:9",
            "--app",
            "kuzflow",
            "--dir",
        ])
        .arg(&install)
        .arg("--trusted-root")
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("`{}`", root.display())) && !text.contains("`root.json`"),
        "{text}"
    );
    assert!(!install.exists(), "nothing is left behind");
}

/// A store with `versions` of an app whose big file never changes, each
/// published with a delta package from the version before it only (so the
/// way from the first to the last is a chain), and an install of the first.
fn delta_setup(versions: &[&str]) -> (tempfile::TempDir, TestStore, FaultyServer, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let (platform, arch) = updraft_protocol::host();
    for (i, version) in versions.iter().enumerate() {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        std::fs::write(
            source.join("share/noise.bin"),
            updraft_test_support::noise(400_000, 3),
        )
        .unwrap();
        let mut request = TestStore::request(version, &source);
        request.platform = platform;
        request.arch = arch;
        request.pack.level = 1;
        request.deltas = match i {
            0 => updraft_publisher::DeltaPolicy::None,
            _ => updraft_publisher::DeltaPolicy::From(vec![versions[i - 1].parse().unwrap()]),
        };
        let report = updraft_publisher::publish(
            &store.store,
            &store.keys,
            &request,
            OffsetDateTime::now_utc(),
            &ExpiryPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            report.patches.len(),
            usize::from(i > 0),
            "{:?}",
            report.skipped_patches
        );
    }
    let server = FaultyServer::start(&store.store);
    let install = dir.path().join("install");
    install_1_0(&server.url(), &store, &install);
    (dir, store, server, install)
}

/// `update --json` on `install`; asserts it ended on `version`, byte for
/// byte, and returns the path it took and the bytes it fetched.
fn delta_update(dir: &Path, install: &Path, version: &str) -> (String, u64) {
    let output = updraft()
        .args(["update", "--yes", "--json", "--dir"])
        .arg(install)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let result = result_line(&output);
    assert_eq!(result["version"], version);
    assert_eq!(
        snapshot_tree(&install.join("current"), &[]),
        snapshot_tree(&dir.join(format!("src-{version}")), &[]),
        "`current` is not byte-identical to {version}"
    );
    (
        result["path"].as_str().unwrap().to_owned(),
        result["downloaded_bytes"].as_u64().unwrap(),
    )
}

fn patch_file(store: &TestStore, from: &str, to: &str) -> PathBuf {
    let (platform, arch) = updraft_protocol::host();
    store.store.join(format!(
        "releases/v{to}/kuzflow_v{to}_{platform}_{arch}_from_v{from}_patch.delta"
    ))
}

fn full_length(store: &TestStore, version: &str) -> u64 {
    let (platform, arch) = updraft_protocol::host();
    std::fs::metadata(store.store.join(format!(
        "releases/v{version}/kuzflow_v{version}_{platform}_{arch}_full.tar.zst"
    )))
    .unwrap()
    .len()
}

#[test]
fn a_chain_of_three_deltas_is_taken_when_it_is_the_cheapest() {
    let (dir, store, _server, install) = delta_setup(&["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    let check = updraft()
        .args(["check", "--json", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check["download_path"], "chain", "{check}");
    let chain: u64 = [("1.0.0", "1.1.0"), ("1.1.0", "1.2.0"), ("1.2.0", "1.3.0")]
        .iter()
        .map(|(from, to)| {
            std::fs::metadata(patch_file(&store, from, to))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(check["download_size"], chain);
    let (path, fetched) = delta_update(dir.path(), &install, "1.3.0");
    assert_eq!(path, "chain");
    assert!(
        fetched < full_length(&store, "1.3.0") / 4,
        "{fetched} bytes fetched, the full package is {}",
        full_length(&store, "1.3.0")
    );
    // No intermediate tree is left behind.
    let trees = std::fs::read_dir(install.join(".updraft/staging"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tree"))
        .count();
    assert_eq!(trees, 0);
}

#[test]
fn a_corrupt_or_missing_patch_falls_back_to_the_full_package() {
    // Corrupt on the server: every chunk of it fails its signed digest.
    let (dir, store, _server, install) = delta_setup(&["1.0.0", "1.1.0"]);
    let patch = patch_file(&store, "1.0.0", "1.1.0");
    let mut bytes = std::fs::read(&patch).unwrap();
    for byte in bytes.iter_mut().skip(40).step_by(97) {
        *byte ^= 0x55;
    }
    // Written in place: the hash-named hard link sees it too.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&patch)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    let (path, fetched) = delta_update(dir.path(), &install, "1.1.0");
    assert_eq!(path, "full");
    assert!(fetched >= full_length(&store, "1.1.0"));

    // Missing (404) on the server.
    let (dir, store, _server, install) = delta_setup(&["1.0.0", "1.1.0"]);
    let patch = patch_file(&store, "1.0.0", "1.1.0");
    for entry in std::fs::read_dir(patch.parent().unwrap())
        .unwrap()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with("_patch.delta")
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let (path, _) = delta_update(dir.path(), &install, "1.1.0");
    assert_eq!(path, "full");
}

#[test]
fn a_locally_modified_install_falls_back_to_the_full_package() {
    let (dir, _store, _server, install) = delta_setup(&["1.0.0", "1.1.0"]);
    // The big file is reused by the patch: changing it must not reach 1.1.0.
    let changed = install.join("versions/1.0.0/share/noise.bin");
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    let (path, _) = delta_update(dir.path(), &install, "1.1.0");
    assert_eq!(path, "full");
}

#[test]
fn a_delta_update_killed_while_patching_ends_on_exactly_old_or_new() {
    for point in ["delta.applying", "delta.applied"] {
        let (dir, _store, _server, install) = delta_setup(&["1.0.0", "1.1.0"]);
        let status = updraft()
            .args(["update", "--yes", "--json", "--dir"])
            .arg(&install)
            .env("UPDRAFT_FAULT_KILL_AT", point)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the update survived a kill at {point}");
        assert_eq!(
            snapshot_tree(&install.join("current"), &[]),
            snapshot_tree(&dir.path().join("src-1.0.0"), &[]),
            "1.0.0 intact after a kill at {point}"
        );
        let (path, _) = delta_update(dir.path(), &install, "1.1.0");
        assert_eq!(
            path, "delta",
            "the patch is resumed after a kill at {point}"
        );
    }
    // And at random instants during the patch path.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    eprintln!("random kill seed {nanos}");
    for round in 0..4u32 {
        let (dir, _store, _server, install) = delta_setup(&["1.0.0", "1.1.0"]);
        let mut child = updraft()
            .args(["update", "--yes", "--json", "--dir"])
            .arg(&install)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(u64::from(
            nanos.wrapping_mul(round + 1) % 150_000,
        )));
        let _ = child.kill();
        child.wait().unwrap();
        let current = std::fs::read_link(install.join("current")).unwrap();
        let version = current.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            snapshot_tree(&install.join("current"), &[]),
            snapshot_tree(&dir.path().join(format!("src-{version}")), &[]),
            "after a kill {round}: `current` is exactly {version}"
        );
        // The next run finishes the job (or has nothing left to do).
        let output = updraft()
            .args(["update", "--yes", "--json", "--dir"])
            .arg(&install)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(
            snapshot_tree(&install.join("current"), &[]),
            snapshot_tree(&dir.path().join("src-1.1.0"), &[]),
        );
    }
}
