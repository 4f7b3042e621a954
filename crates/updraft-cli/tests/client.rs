//! `updraft install / check / update / status` against real local servers,
//! with every network fault and attack of THREATS.md injected: each case
//! checks the exit code, the message, and that the install is unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use time::OffsetDateTime;
use updraft_publisher::ExpiryPolicy;
use updraft_test_support::faulty::{Fault, FaultyServer};
use updraft_test_support::{TestStore, snapshot_tree, write_app};

fn updraft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Publishes `version` from `source` for this machine (level 1: fast).
fn publish_for_host(store: &TestStore, version: &str, source: &Path) {
    let (platform, arch) = updraft_client::host();
    let mut request = TestStore::request(version, source);
    request.platform = platform;
    request.arch = arch;
    request.pack.level = 1;
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
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
        publish_for_host(&store, version, &source);
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
        (Fault::Endless, 3, "more than the"),
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
    setup
        .server
        .add(PACKAGE_1_1, Fault::Throttle(600_000), None);
    let mut child = updraft()
        .args(["update", "--yes", "--json", "--dir"])
        .arg(&setup.install)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let about half the package arrive, then kill -9.
    let length = std::fs::metadata(
        std::fs::read_dir(setup.store.store.join("releases/v1.1.0"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.to_string_lossy().ends_with("_full.tar.zst")
                    && !p
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(char::is_numeric)
            })
            .unwrap(),
    )
    .unwrap()
    .len();
    for _ in 0..200 {
        if setup.server.sent(PACKAGE_1_1) > length / 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = setup.server.sent(PACKAGE_1_1);
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
    // The 1.0.0 install fits in 2 MB; the 6 MB update does not.
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

/// 1.0.0 installed from a static store that also holds a 1.1.0 whose `bin/app` is `script`.
fn installed_with(script: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for version in ["1.0.0", "1.1.0"] {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        if version == "1.1.0" {
            std::fs::write(source.join("bin/app"), script).unwrap();
        }
        publish_for_host(&store, version, &source);
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

/// After any interruption the install runs exactly one version, and its
/// state agrees with what runs.
fn assert_consistent(install: &Path) -> String {
    let state = status(install);
    let version = state["current_version"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        Path::new(&format!("versions/{version}"))
    );
    let output = run_app(install);
    let expected = if version == "1.1.0" {
        "app 1.1.0 new\n"
    } else {
        "app 1.0.0\n"
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected,
        "{}",
        stderr(&output)
    );
    assert!(
        !install.join(".updraft/state.next.json").exists(),
        "the interrupted switch was resolved"
    );
    version
}

#[test]
fn an_update_killed_at_every_switch_step_runs_exactly_old_or_new() {
    let script = "#!/bin/sh\n\"$UPDRAFT_BIN\" confirm --dir \"$UPDRAFT_DIR\" >/dev/null\necho app 1.1.0 new\n";
    for (point, expected) in [
        ("switch.intent", "1.0.0"),
        ("switch.switched", "1.1.0"),
        ("switch.committed", "1.1.0"),
    ] {
        let (_dir, install) = installed_with(script);
        let output = updraft()
            .args(["update", "--yes", "--dir"])
            .arg(&install)
            .env("UPDRAFT_FAULT_KILL_AT", point)
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "the update survived a kill at {point}: {} {}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        assert_eq!(
            assert_consistent(&install),
            expected,
            "after a kill at {point}"
        );
    }
}

#[test]
fn an_update_killed_at_random_instants_runs_exactly_old_or_new() {
    let script = "#!/bin/sh\n\"$UPDRAFT_BIN\" confirm --dir \"$UPDRAFT_DIR\" >/dev/null\necho app 1.1.0 new\n";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut seed = u64::from(nanos) | 1;
    eprintln!("random kill seed {seed:#x}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (_dir, install) = installed_with(script);
        let mut child = updraft()
            .args(["update", "--yes", "--dir"])
            .arg(&install)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % 80_000));
        let _ = child.kill();
        child.wait().unwrap();
        seen.insert(assert_consistent(&install));
    }
    eprintln!("versions after random kills: {seen:?}");
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
