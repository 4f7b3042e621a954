//! THREATS.md "local privilege escalation" and plain HTTP, end to end through
//! the CLI: an install never gets setuid or group/other-writable modes,
//! whatever the release or the umask says; `run` and `status` refuse an
//! install that no longer belongs to the user; plain `http://` is for
//! loopback unless the install says otherwise.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use updraft_test_support::faulty::FaultyServer;
use updraft_test_support::{TestStore, write_app};

fn updraft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
}

/// `program ARGS` with the umask at 000, as a careless shell would run it.
fn under_umask_000(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(program);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn assert_modes(install: &Path, expected: &[(impl AsRef<str>, u32)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(path, want)| {
            let path = path.as_ref();
            let got = mode(&install.join(path));
            (got != *want).then(|| format!("{path}: {got:04o}, not {want:04o}"))
        })
        .collect();
    assert!(wrong.is_empty(), "wrong modes: {wrong:#?}");
}

/// `updraft install` of 1.0.0 from `base` into `install` with `command`
/// (an `updraft`), and `extra` arguments.
fn install_with(
    mut command: Command,
    base: &str,
    store: &TestStore,
    install: &Path,
    extra: &[&str],
) -> Output {
    command
        .args([
            "install",
            "--server",
            base,
            "--app",
            "kuzflow",
            "--version",
            "1.0.0",
        ])
        .args(extra)
        .arg("--dir")
        .arg(install)
        .arg("--trusted-root")
        .arg(store.store.join("metadata/1.root.json"))
        .output()
        .unwrap()
}

fn succeeded(output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
}

/// A store with the demo app at each of `versions`, and a folder for an install.
fn store_with(versions: &[&str]) -> (tempfile::TempDir, TestStore, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for version in versions {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        store.publish_for_host(version, &source);
    }
    let install = dir.path().join("install");
    (dir, store, install)
}

fn file_url(store: &TestStore) -> String {
    format!("file://{}", store.store.display())
}

/// Issue 16 item 1: a signed release whose package and manifest carry
/// setuid, setgid and world-writable modes, installed by an `updraft` binary
/// that is itself setuid and world-writable, leaves nothing setuid, setgid or
/// writable by others: not the app's files, not the updater copied beside it.
#[test]
fn a_release_with_setuid_and_world_writable_modes_installs_with_safe_modes() {
    let (dir, store, install) = store_with(&["1.0.0"]);
    store.set_published_modes(
        "1.0.0",
        &[
            ("bin", 0o777),
            ("bin/app", 0o4755),
            ("lib", 0o2777),
            ("lib/libcore.so.1", 0o666),
            ("share", 0o1777),
        ],
    );
    let (platform, arch) = updraft_client::host();
    let manifest = std::fs::read_to_string(store.store.join(format!(
        "releases/v1.0.0/kuzflow_v1.0.0_{platform}_{arch}_manifest.json"
    )))
    .unwrap();
    let signed: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(
        signed["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "bin/app" && f["mode"] == 0o4755),
        "the signed manifest asks for a setuid bin/app: {manifest}"
    );
    let program = dir.path().join("updraft");
    std::fs::copy(env!("CARGO_BIN_EXE_updraft"), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o4777)).unwrap();

    succeeded(&install_with(
        Command::new(&program),
        &file_url(&store),
        &store,
        &install,
        &[],
    ));
    assert_modes(
        &install,
        &[
            ("versions/1.0.0", 0o755),
            ("versions/1.0.0/bin", 0o755),
            ("versions/1.0.0/bin/app", 0o755),
            ("versions/1.0.0/lib", 0o755),
            ("versions/1.0.0/lib/libcore.so.1", 0o644),
            ("versions/1.0.0/share", 0o755),
            (".updraft/bin/updraft", 0o755),
        ],
    );
    let run = updraft()
        .args(["run", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    succeeded(&run);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "app 1.0.0\n");
}

/// Issue 16 item 2: under `umask 000`, install, update and run create every
/// folder and file of the install with its explicit mode.
#[test]
fn an_install_updated_and_run_under_umask_000_gets_explicit_modes() {
    let (_dir, store, install) = store_with(&["1.0.0", "1.1.0"]);
    let server = FaultyServer::start(&store.store);
    let program = Path::new(env!("CARGO_BIN_EXE_updraft"));
    succeeded(&install_with(
        under_umask_000(program),
        &server.url(),
        &store,
        &install,
        &[],
    ));
    let mut update = under_umask_000(program);
    succeeded(
        &update
            .args(["update", "--yes", "--dir"])
            .arg(&install)
            .output()
            .unwrap(),
    );
    let mut run = under_umask_000(program);
    let run = run.args(["run", "--dir"]).arg(&install).output().unwrap();
    succeeded(&run);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "app 1.1.0\n");
    let mut expected: Vec<(String, u32)> = [
        ("", 0o755),
        ("update_config.json", 0o644),
        (".updraft", 0o755),
        (".updraft/bin", 0o755),
        (".updraft/bin/updraft", 0o755),
        (".updraft/metadata", 0o755),
        (".updraft/metadata/root.json", 0o644),
        (".updraft/metadata/timestamp.json", 0o644),
        (".updraft/staging", 0o700),
        (".updraft/state.json", 0o644),
        (".updraft/lock", 0o600),
        (".updraft/running", 0o755),
        (".updraft/running/1.1.0.lock", 0o600),
        ("versions", 0o755),
        ("data", 0o755),
    ]
    .map(|(path, want)| (path.to_owned(), want))
    .to_vec();
    for version in ["1.0.0", "1.1.0"] {
        for (path, want) in [
            ("", 0o755),
            ("/bin", 0o755),
            ("/bin/app", 0o755),
            ("/lib", 0o755),
            ("/lib/libcore.so.1", 0o644),
            ("/share/empty", 0o755),
        ] {
            expected.push((format!("versions/{version}{path}"), want));
        }
    }
    assert_modes(&install, &expected);
    let status = updraft()
        .args(["status", "--dir"])
        .arg(&install)
        .output()
        .unwrap();
    succeeded(&status);
}

fn refused(output: &Output, path: &Path, words: &str) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(
        message.contains(&format!(
            "Refusing to use the install: `{}`",
            path.display()
        )) && message.contains(words),
        "{message}"
    );
}

fn status_and_run(install: &Path) -> [Output; 2] {
    ["status", "run"].map(|command| {
        updraft()
            .args([command, "--dir"])
            .arg(install)
            .output()
            .unwrap()
    })
}

/// Issue 16 item 2: another user swaps `current` for a link to their program
/// (`ln -s evil .swap && mv -T .swap current`), or a folder of the install
/// is made writable by others, or a path is given to another user: `status`
/// and `run` refuse with the path and what to do, and nothing else runs.
#[test]
fn run_and_status_refuse_an_install_that_no_longer_belongs_to_it() {
    let (dir, store, install) = store_with(&["1.0.0"]);
    succeeded(&install_with(
        updraft(),
        &file_url(&store),
        &store,
        &install,
        &[],
    ));

    let evil = dir.path().join("evil");
    std::fs::create_dir_all(evil.join("bin")).unwrap();
    let marker = dir.path().join("evil-ran");
    std::fs::write(
        evil.join("bin/app"),
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(evil.join("bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let current = install.join("current");
    let swap = install.join(".swap");
    std::os::unix::fs::symlink(&evil, &swap).unwrap();
    std::fs::rename(&swap, &current).unwrap();
    for output in status_and_run(&install) {
        refused(
            &output,
            &current,
            &format!("points at `{}`, outside `versions/`", evil.display()),
        );
    }
    assert!(!marker.exists(), "the swapped-in program ran");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("versions/1.0.0", &current).unwrap();

    for path in [
        "versions",
        ".updraft",
        ".updraft/state.json",
        "versions/1.0.0/bin",
    ] {
        let target = install.join(path);
        let before = mode(&target);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        let [status, run] = status_and_run(&install);
        if path == "versions/1.0.0/bin" {
            // Only `run` starts the program inside it.
            succeeded(&status);
        } else {
            refused(&status, &target, "is writable by other users (mode 0777)");
        }
        refused(&run, &target, "chmod go-w");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(before)).unwrap();
    }
    succeeded(&status_and_run(&install)[1]);

    // Giving a path to another user needs root (as in CI); elsewhere the checks above stand.
    let given = Command::new("chown")
        .args(["-h", "54321"])
        .arg(&current)
        .status()
        .is_ok_and(|s| s.success());
    if given {
        for output in status_and_run(&install) {
            refused(&output, &current, "belongs to user 54321");
        }
    } else {
        eprintln!("skipped the ownership case: cannot chown here (needs root)");
    }
}

/// Issue 16 item 9: plain `http://` to a host that is not loopback is
/// refused with the URL and the setting (exit 2) unless
/// `update_server.allow_insecure_http` (`install --allow-insecure-http`)
/// says otherwise; `verify_ssl: false` warns on every run.
#[test]
fn plain_http_is_for_loopback_only_unless_the_install_allows_it() {
    let (_dir, store, install) = store_with(&["1.0.0"]);
    let server = FaultyServer::start(&store.store);
    // 0.0.0.0 reaches this machine's loopback listener, but is not a loopback address.
    let elsewhere = server.url().replace("127.0.0.1", "0.0.0.0");
    let output = install_with(updraft(), &elsewhere, &store, &install, &[]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!("`{elsewhere}` is plain HTTP"))
            && message.contains("--allow-insecure-http"),
        "{message}"
    );
    assert!(!install.exists(), "nothing is created");

    succeeded(&install_with(
        updraft(),
        &elsewhere,
        &store,
        &install,
        &["--allow-insecure-http"],
    ));
    let config = install.join("update_config.json");
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(value["update_server"]["allow_insecure_http"], true);
    let check = || {
        updraft()
            .args(["check", "--json", "--dir"])
            .arg(&install)
            .output()
            .unwrap()
    };
    succeeded(&check());

    let edit = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        change(&mut value);
        std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    };
    edit(&|value| value["update_server"]["allow_insecure_http"] = false.into());
    let output = check();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!("`{}`", config.display()))
            && message.contains(&format!(
                "`update_server.base_url`: `{elsewhere}` is plain HTTP"
            ))
            && message.contains("`update_server.allow_insecure_http: true`"),
        "{message}"
    );

    edit(&|value| {
        value["update_server"]["base_url"] = server.url().into();
        value["download_settings"]["verify_ssl"] = false.into();
    });
    for _ in 0..2 {
        let output = check();
        succeeded(&output);
        assert!(
            stderr(&output).contains("`download_settings.verify_ssl` is false"),
            "{}",
            stderr(&output)
        );
    }
}
