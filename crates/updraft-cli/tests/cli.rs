//! The `updraft` binary: exit codes, error sentences, and crash safety of
//! `publish` under kills at every step, at random instants, and on a full disk.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use updraft_test_support::{snapshot_tree, write_app};

fn updraft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
}

fn run(args: &[&str]) -> Output {
    updraft().args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Setup {
    _dir: tempfile::TempDir,
    keys: String,
    store: String,
    source: String,
}

/// keys + a store with 1.0.0 published, and the 1.1.0 tree ready to publish.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (keys, store) = (path("keys"), path("store"));
    assert!(run(&["keygen", "--out", &keys]).status.success());
    assert!(
        run(&["repo", "init", "--repo", &store, "--keys", &keys])
            .status
            .success()
    );
    write_app(&dir.path().join("v1"), "1.0.0");
    write_app(&dir.path().join("v2"), "1.1.0");
    let output = run(&publish_args(&store, &keys, "1.0.0", &path("v1")));
    assert!(output.status.success(), "{}", stderr(&output));
    Setup {
        keys,
        store,
        source: path("v2"),
        _dir: dir,
    }
}

fn publish_args<'a>(
    store: &'a str,
    keys: &'a str,
    version: &'a str,
    source: &'a str,
) -> Vec<&'a str> {
    vec![
        "publish",
        "--repo",
        store,
        "--keys",
        keys,
        "--app",
        "kuzflow",
        "--version",
        version,
        "--platform",
        "linux",
        "--arch",
        "amd64",
        "--main",
        "bin/app",
        "--level",
        "3",
        source,
    ]
}

fn restore(pristine: &str, store: &str) {
    std::fs::remove_dir_all(store).unwrap();
    assert!(
        Command::new("cp")
            .args(["-a", pristine, store])
            .status()
            .unwrap()
            .success()
    );
}

fn store_state(store: &str) -> std::collections::BTreeMap<String, String> {
    snapshot_tree(Path::new(store), &[".updraft"])
}

#[test]
fn usage_errors_exit_2_and_name_the_value() {
    let setup = setup();
    let mut args = publish_args(&setup.store, &setup.keys, "1.1", &setup.source);
    let output = run(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`1.1` is not a valid version"),
        "{}",
        stderr(&output)
    );

    args = publish_args(&setup.store, &setup.keys, "1.1.0", &setup.source);
    args[10] = "beos";
    let output = run(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`beos` is not a valid platform"),
        "{}",
        stderr(&output)
    );

    let output = run(&publish_args(
        &setup.store,
        "/nonexistent/keys",
        "1.1.0",
        &setup.source,
    ));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("/nonexistent/keys"),
        "{}",
        stderr(&output)
    );

    let output = run(&["repo", "verify", "--repo", "/nonexistent/store"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`/nonexistent/store` is not an updraft release store"),
        "{}",
        stderr(&output)
    );

    let output = run(&["keygen", "--out", &setup.keys]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
}

/// The signed `auto_halt` rule of every package of `version`.
fn signed_rules(store: &str, version: &str) -> Vec<serde_json::Value> {
    let targets = Path::new(store).join("metadata");
    let newest = std::fs::read_dir(&targets)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let number: u64 = name.strip_suffix(".targets.json")?.parse().ok()?;
            Some((number, name))
        })
        .max()
        .unwrap()
        .1;
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(targets.join(newest)).unwrap()).unwrap();
    targets["signed"]["targets"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|t| t["custom"].get("updraft"))
        .filter(|u| u["version"] == version)
        .map(|u| u["auto_halt"].clone())
        .collect()
}

#[test]
fn publish_and_rollout_sign_the_auto_halt_rule() {
    let setup = setup();
    let mut args = publish_args(&setup.store, &setup.keys, "1.1.0", &setup.source);
    let source = args.pop().unwrap();
    args.extend(["--rollout", "10", "--halt-failure-rate", "2.5"]);
    args.push(source);
    let output = run(&args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "the rule needs --halt-min-reports"
    );
    assert!(
        stderr(&output).contains("--halt-min-reports"),
        "{}",
        stderr(&output)
    );
    args.pop();
    args.extend(["--halt-min-reports", "50", source]);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        signed_rules(&setup.store, "1.1.0"),
        [serde_json::json!({"max_failure_basis_points": 250, "min_reports": 50})]
    );

    let rollout = |extra: &[&str]| {
        let mut args = vec![
            "rollout",
            "--repo",
            &setup.store,
            "--keys",
            &setup.keys,
            "--app",
            "kuzflow",
            "--version",
            "1.1.0",
        ];
        args.extend(extra);
        run(&args)
    };
    let output = rollout(&[
        "--percent",
        "30",
        "--halt-failure-rate",
        "5",
        "--halt-min-reports",
        "20",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("halts by itself once more than 5% of at least 20"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        signed_rules(&setup.store, "1.1.0"),
        [serde_json::json!({"max_failure_basis_points": 500, "min_reports": 20})]
    );
    let output = rollout(&["--halt-failure-rate", "101", "--halt-min-reports", "20"]);
    assert_eq!(output.status.code(), Some(2));
    let output = rollout(&["--no-auto-halt"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        signed_rules(&setup.store, "1.1.0"),
        [serde_json::Value::Null]
    );
}

#[test]
fn verify_exits_4_on_a_tampered_store_and_0_on_a_good_one() {
    let setup = setup();
    let output = run(&["repo", "verify", "--repo", &setup.store, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let package =
        Path::new(&setup.store).join("releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst");
    std::fs::remove_file(&package).unwrap();
    std::fs::write(&package, b"evil").unwrap();
    let output = run(&["repo", "verify", "--repo", &setup.store]);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output).contains("kuzflow_v1.0.0_linux_x86_64_full.tar.zst"),
        "{}",
        stderr(&output)
    );
}

/// Runs a publish that dies at fault point `point`, then lets `repo verify`
/// recover the store.
fn publish_killed_at(setup: &Setup, point: &str) -> Output {
    let output = updraft()
        .args(publish_args(
            &setup.store,
            &setup.keys,
            "1.1.0",
            &setup.source,
        ))
        .env("UPDRAFT_FAULT_KILL_AT", point)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "publish survived the kill at {point}"
    );
    output
}

fn fault_points(setup: &Setup) -> Vec<String> {
    // Trace a publish in a copy of the store to learn every step.
    let copy = format!("{}-trace", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &copy])
            .status()
            .unwrap()
            .success()
    );
    let trace = format!("{copy}.trace");
    let output = updraft()
        .args(publish_args(&copy, &setup.keys, "1.1.0", &setup.source))
        .env("UPDRAFT_FAULT_TRACE", &trace)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_publish_killed_at_any_step_leaves_the_store_as_it_was_or_complete() {
    let setup = setup();
    let points = fault_points(&setup);
    assert!(points.len() >= 8, "too few steps traced: {points:?}");
    assert!(
        points.contains(&"tx.journaled".to_owned()) && points.contains(&"tx.committed".to_owned())
    );
    let before = store_state(&setup.store);
    let pristine = format!("{}-pristine", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &pristine])
            .status()
            .unwrap()
            .success()
    );
    for point in &points {
        publish_killed_at(&setup, point);
        let verify = run(&["repo", "verify", "--repo", &setup.store]);
        assert!(
            verify.status.success(),
            "after a kill at {point}: {}",
            stderr(&verify)
        );
        if point == "tx.committed" {
            // Past the commit point the publish is complete.
            assert_ne!(store_state(&setup.store), before);
            assert!(String::from_utf8_lossy(&verify.stdout).contains("2 packages checked"));
            // Start the next step from the old store again.
            restore(&pristine, &setup.store);
            continue;
        }
        assert_eq!(
            store_state(&setup.store),
            before,
            "a kill at {point} changed the store"
        );
        assert!(
            !Path::new(&setup.store).join(".updraft/tx").exists(),
            "staging left after {point}"
        );
    }
}

#[test]
fn a_publish_killed_at_random_instants_is_all_or_nothing() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut seed = (u64::from(std::process::id()) << 32 | u64::from(nanos)) ^ 0x9e37_79b9_7f4a_7c15;
    eprintln!("random kill seed {seed:#x}");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Time one publish to spread the kills over its whole run.
    let setup = setup();
    let copy = format!("{}-timing", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &copy])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    assert!(
        run(&publish_args(&copy, &setup.keys, "1.1.0", &setup.source))
            .status
            .success()
    );
    let duration = u64::try_from(started.elapsed().as_micros())
        .unwrap()
        .max(1000);

    let before = store_state(&setup.store);
    let pristine = format!("{}-pristine", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &pristine])
            .status()
            .unwrap()
            .success()
    );
    let (mut untouched, mut complete) = (0, 0);
    for round in 0..12 {
        let delay = Duration::from_micros(next() % (duration + duration / 4));
        let mut child = updraft()
            .args(publish_args(
                &setup.store,
                &setup.keys,
                "1.1.0",
                &setup.source,
            ))
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let verify = run(&["repo", "verify", "--repo", &setup.store]);
        assert!(
            verify.status.success(),
            "round {round} (kill after {delay:?}, {status}): {}",
            stderr(&verify)
        );
        if store_state(&setup.store) == before {
            untouched += 1;
        } else {
            assert!(
                String::from_utf8_lossy(&verify.stdout).contains("2 packages checked"),
                "round {round}: a partial publish"
            );
            complete += 1;
            restore(&pristine, &setup.store);
        }
    }
    eprintln!("random kills: {untouched} left the store untouched, {complete} completed");
}

#[test]
fn a_full_disk_aborts_cleanly_at_any_byte() {
    let setup = setup();
    // 300 kB that zstd cannot shrink, so the budgets below fall inside the package.
    std::fs::write(
        Path::new(&setup.source).join("share/noise.bin"),
        updraft_test_support::noise(300_000, 7),
    )
    .unwrap();
    let before = store_state(&setup.store);
    for budget in ["0", "1000", "100000", "290000"] {
        let output = updraft()
            .args(publish_args(
                &setup.store,
                &setup.keys,
                "1.1.0",
                &setup.source,
            ))
            .env("UPDRAFT_FAULT_ENOSPC_AFTER", budget)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "budget {budget}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("no storage space"),
            "budget {budget}: {}",
            stderr(&output)
        );
        assert_eq!(
            store_state(&setup.store),
            before,
            "budget {budget} changed the store"
        );
        assert!(!Path::new(&setup.store).join(".updraft/tx").exists());
    }
    assert!(
        run(&publish_args(
            &setup.store,
            &setup.keys,
            "1.1.0",
            &setup.source
        ))
        .status
        .success()
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_real_full_tmpfs_aborts_cleanly() {
    let setup = setup();
    let Some(tmpfs) = updraft_test_support::Tmpfs::mount("3m") else {
        return;
    };
    let target = tmpfs.path().display().to_string();
    let store = format!("{target}/store");
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &store])
            .status()
            .unwrap()
            .success()
    );
    // 4 MB of incompressible data cannot fit in what is left of 3 MB.
    std::fs::write(
        Path::new(&setup.source).join("share/big.bin"),
        updraft_test_support::noise(4_000_000, 7),
    )
    .unwrap();
    let before = store_state(&store);
    let output = run(&publish_args(&store, &setup.keys, "1.1.0", &setup.source));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("No space left on device"),
        "{}",
        stderr(&output)
    );
    assert_eq!(store_state(&store), before);
    assert!(!Path::new(&store).join(".updraft/tx").exists());
}

#[test]
fn quickstart_runs_twice_and_never_deletes_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("qs").display().to_string();
    for _ in 0..2 {
        let output = run(&["quickstart", "--dir", &target]);
        assert!(output.status.success(), "{}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("[6/10] updraft repo verify") && stdout.contains("2 packages checked"),
            "{stdout}"
        );
        assert!(
            stdout.contains("[8/10] updraft install") && stdout.contains("-> Kuzflow demo 1.0.0"),
            "{stdout}"
        );
        assert!(
            stdout.contains("[10/10]") && stdout.contains("-> Kuzflow demo 1.1.0"),
            "{stdout}"
        );
    }
    let verify = run(&["repo", "verify", "--repo", &format!("{target}/store")]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    // The update dialog calls the demo by its name, not its id.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{target}/app/update_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["ui"]["display_name"], "Kuzflow", "{config}");

    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("thesis.txt"), b"precious").unwrap();
    let output = run(&["quickstart", "--dir", &foreign.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("was not made by `updraft quickstart`"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(foreign.join("thesis.txt")).unwrap(),
        b"precious"
    );
}

#[test]
fn serve_answers_checks_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let setup = setup();
    let mut child = updraft()
        .args([
            "serve",
            "--repo",
            &setup.store,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("updraft serving on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(stream, "GET /api/version/check?current_version=0.9.0&platform=linux&arch=x86_64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"latest_version\":\"1.0.0\""),
        "{answer}"
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).unwrap();
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"stopped\"")),
        "{logs}"
    );
}

#[test]
fn serve_refuses_bad_settings_with_exit_2() {
    let setup = setup();
    let output = run(&["serve", "--repo", "/nonexistent/store"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("/nonexistent/store"),
        "{}",
        stderr(&output)
    );
    let tokens = format!("{}/../tokens", setup.store);
    std::fs::write(&tokens, "short\n").unwrap();
    let output = run(&[
        "serve",
        "--repo",
        &setup.store,
        "--listen",
        "127.0.0.1:0",
        "--admin-token-file",
        &tokens,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("shorter than 16 characters"),
        "{}",
        stderr(&output)
    );
    let output = run(&[
        "serve",
        "--repo",
        &setup.store,
        "--listen",
        "127.0.0.1:0",
        "--database",
        "mysql://db/updraft",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        "{}",
        stderr(&output)
    );
    // A PostgreSQL that does not answer: exit 3 (network), and the password
    // in the URL is never printed, neither from the flag nor the variable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://updraft:hunter2-secret@127.0.0.1:{port}/updraft");
    for from_env in [false, true] {
        let mut command = updraft();
        command.args(["serve", "--repo", &setup.store, "--listen", "127.0.0.1:0"]);
        if from_env {
            command.env("UPDRAFT_DATABASE", &url);
        } else {
            command.args(["--database", &url]);
        }
        let output = command.output().unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{text}");
        assert!(
            text.contains(&format!("postgres://updraft:***@127.0.0.1:{port}/updraft")),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// Issue 17: a port already in use is named, with `--listen` to get round it.
#[test]
fn serve_on_a_busy_port_suggests_another_address() {
    let setup = setup();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let output = run(&["serve", "--repo", &setup.store, "--listen", &address]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&address) && text.contains("--listen 127.0.0.1:PORT"),
        "{text}"
    );
}

/// `repo rotate-root`, `repo sign` and `repo import-signed` through the
/// binary: too few old root keys exit 2 and write nothing; an import short
/// of its threshold exits 4; a rotation killed at every step it takes
/// leaves the old store or the complete new one, and `repo verify` passes.
#[test]
fn key_management_exit_codes_and_kills_at_every_step() {
    let setup = setup();
    let dir = Path::new(&setup.store).parent().unwrap().to_path_buf();
    let path = |name: &str| dir.join(name).display().to_string();
    let new_keys = path("new-keys");
    assert!(
        run(&[
            "keygen",
            "--out",
            &new_keys,
            "--root-keys",
            "2",
            "--root-threshold",
            "2"
        ])
        .status
        .success()
    );
    let before = store_state(&setup.store);
    let empty = path("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = run(&[
        "repo",
        "rotate-root",
        "--repo",
        &setup.store,
        "--keys",
        &empty,
        "--new-keys",
        &new_keys,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("0 of the root keys"),
        "{}",
        stderr(&output)
    );
    assert_eq!(store_state(&setup.store), before);

    // Offline signing with a key short of the threshold: exit 4.
    let file = path("root.unsigned.json");
    let output = run(&[
        "repo",
        "export-unsigned",
        "--repo",
        &setup.store,
        "--role",
        "root",
        "--out",
        &file,
        "--new-keys",
        &new_keys,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = format!("{}/root-1.key", setup.keys);
    let output = run(&["repo", "sign", "--file", &file, "--key", &key]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("More signatures are needed"));
    let output = run(&[
        "repo",
        "import-signed",
        "--repo",
        &setup.store,
        "--file",
        &file,
        "--keys",
        &new_keys,
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(store_state(&setup.store), before);
    let wrong = format!("{}/targets.key", setup.keys);
    let output = run(&["repo", "sign", "--file", &file, "--key", &wrong]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // Every step of a full rotation, killed in turn.
    let rotate = |store: &str, envs: &[(&str, &str)]| {
        let mut command = updraft();
        command.args([
            "repo",
            "rotate-root",
            "--repo",
            store,
            "--keys",
            &setup.keys,
            "--new-keys",
            &new_keys,
        ]);
        for (name, value) in envs {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let copy = format!("{}-trace", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &copy])
            .status()
            .unwrap()
            .success()
    );
    let trace = format!("{copy}.trace");
    let output = rotate(&copy, &[("UPDRAFT_FAULT_TRACE", &trace)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let after = store_state(&copy);
    let points: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(points.contains(&"rotate.staged".to_owned()), "{points:?}");
    let pristine = format!("{}-pristine", setup.store);
    assert!(
        Command::new("cp")
            .args(["-a", &setup.store, &pristine])
            .status()
            .unwrap()
            .success()
    );
    for point in &points {
        let output = rotate(&setup.store, &[("UPDRAFT_FAULT_KILL_AT", point)]);
        assert!(
            !output.status.success(),
            "rotate-root survived a kill at {point}"
        );
        let verify = run(&["repo", "verify", "--repo", &setup.store]);
        assert!(
            verify.status.success(),
            "after a kill at {point}: {}",
            stderr(&verify)
        );
        let state = store_state(&setup.store);
        if point == "tx.committed" {
            assert!(String::from_utf8_lossy(&verify.stdout).contains("root version 2"));
        } else {
            assert_eq!(state, before, "a kill at {point} changed the store");
        }
        restore(&pristine, &setup.store);
    }
    assert_ne!(after, before);

    // The offline rotation exported above, completed by the new root keys
    // and imported with kills at every step.
    for key in ["root-1.key", "root-2.key"] {
        let key = format!("{new_keys}/{key}");
        assert!(
            run(&["repo", "sign", "--file", &file, "--key", &key])
                .status
                .success()
        );
    }
    let import = |envs: &[(&str, &str)]| {
        let mut command = updraft();
        command.args([
            "repo",
            "import-signed",
            "--repo",
            &setup.store,
            "--file",
            &file,
            "--keys",
            &new_keys,
        ]);
        for (name, value) in envs {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let trace = format!("{}.import-trace", setup.store);
    let output = import(&[("UPDRAFT_FAULT_TRACE", &trace)]);
    assert!(output.status.success(), "{}", stderr(&output));
    restore(&pristine, &setup.store);
    let points: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(points.contains(&"tx.journaled".to_owned()), "{points:?}");
    for point in &points {
        let output = import(&[("UPDRAFT_FAULT_KILL_AT", point)]);
        assert!(
            !output.status.success(),
            "import survived a kill at {point}"
        );
        let verify = run(&["repo", "verify", "--repo", &setup.store]);
        assert!(
            verify.status.success(),
            "after a kill at {point}: {}",
            stderr(&verify)
        );
        if point == "tx.committed" {
            assert!(String::from_utf8_lossy(&verify.stdout).contains("root version 2"));
        } else {
            assert_eq!(
                store_state(&setup.store),
                before,
                "a kill at {point} changed the store"
            );
        }
        restore(&pristine, &setup.store);
    }

    // One online key, through keygen --role and repo rotate.
    let role_dir = path("new-timestamp");
    let output = run(&["keygen", "--out", &role_dir, "--role", "timestamp"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("repo rotate --role timestamp"));
    let new_key = format!("{role_dir}/timestamp.key");
    let rotate_role = || {
        run(&[
            "repo",
            "rotate",
            "--repo",
            &setup.store,
            "--role",
            "timestamp",
            "--keys",
            &setup.keys,
            "--new-key",
            &new_key,
        ])
    };
    let output = rotate_role();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Re-signed: timestamp"));
    let output = run(&["repo", "verify", "--repo", &setup.store]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("root version 2"));
    // The old timestamp key is refused from now on.
    let output = run(&[
        "repo",
        "refresh",
        "--repo",
        &setup.store,
        "--keys",
        &setup.keys,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = rotate_role();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("already the timestamp key"),
        "{}",
        stderr(&output)
    );
    let output = run(&[
        "repo",
        "rotate",
        "--repo",
        &setup.store,
        "--role",
        "root",
        "--keys",
        &setup.keys,
        "--new-key",
        &new_key,
    ]);
    assert_eq!(output.status.code(), Some(2), "clap refuses --role root");

    // A release with the targets key offline, through the binary.
    let release = path("release.json");
    let mut args = publish_args(&setup.store, &setup.keys, "1.1.0", &setup.source);
    args.splice(1..1, ["--export-unsigned", release.as_str()]);
    let mut with_role = args.clone();
    with_role.splice(1..1, ["--role", "beta"]);
    assert_eq!(run(&with_role).status.code(), Some(2), "--role conflicts");
    // The timestamp key in `keys` is the old one now: pass the new one.
    std::fs::copy(&new_key, format!("{}/timestamp.key", setup.keys)).unwrap();
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("unsigned"));
    let verify = run(&["repo", "verify", "--repo", &setup.store]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("1 packages checked"));
    let targets_key = format!("{}/targets.key", setup.keys);
    assert!(
        run(&["repo", "sign", "--file", &release, "--key", &targets_key])
            .status
            .success()
    );
    let output = run(&[
        "repo",
        "import-signed",
        "--repo",
        &setup.store,
        "--file",
        &release,
        "--keys",
        &setup.keys,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let verify = run(&["repo", "verify", "--repo", &setup.store]);
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("2 packages checked"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
