//! The whole product, as real processes on loopback: `updraft` publishes the
//! demo as 1.0.0 and 1.1.0 and serves them; the demo runs at 1.0.0 in
//! headless mode, finds the update, downloads it, hands off to the updater
//! and exits; the updater swaps versions and restarts it; 1.1.0 starts and
//! confirms its healthy start.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use updraft_test_support::wait_until;

/// A workspace binary built beside this test (`target/debug/NAME`).
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "`{}` is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

fn updraft(args: &[&str]) -> Command {
    let mut command = Command::new(workspace_bin("updraft"));
    command.args(args);
    command
}

fn ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The demo's release tree at `version`: the demo program and its version file.
fn release_tree(root: &Path, version: &str) -> PathBuf {
    let tree = root.join(format!("src-{version}"));
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::create_dir_all(tree.join("share")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_kuzflow-demo"),
        tree.join("bin/kuzflow-demo"),
    )
    .unwrap();
    std::fs::write(tree.join("share/version.txt"), format!("{version}\n")).unwrap();
    tree
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_updates_itself_through_the_updater_and_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (keys, store) = (root.join("keys"), root.join("store"));
    let (platform, arch) = updraft_client::host();
    ok(updraft(&["keygen", "--out"]).arg(&keys));
    ok(updraft(&["repo", "init", "--repo"])
        .arg(&store)
        .arg("--keys")
        .arg(&keys));
    for version in ["1.0.0", "1.1.0"] {
        let tree = release_tree(root, version);
        let notes = root.join(format!("notes-{version}.md"));
        std::fs::write(&notes, format!("- Kuzflow demo {version}\n")).unwrap();
        ok(updraft(&[
            "publish",
            "--app",
            "kuzflow-demo",
            "--main",
            "bin/kuzflow-demo",
            "--level",
            "1",
        ])
        .args([
            "--version",
            version,
            "--platform",
            &platform.to_string(),
            "--arch",
            &arch.to_string(),
        ])
        .arg("--notes")
        .arg(&notes)
        .arg("--repo")
        .arg(&store)
        .arg("--keys")
        .arg(&keys)
        .arg(&tree));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let _server = Server(
        updraft(&["serve", "--listen", &address.to_string(), "--repo"])
            .arg(&store)
            .spawn()
            .unwrap(),
    );
    wait_until("the server", Duration::from_secs(30), || {
        TcpStream::connect(address).is_ok()
    });
    let app = root.join("app");
    ok(updraft(&[
        "install",
        "--app",
        "kuzflow-demo",
        "--version",
        "1.0.0",
        "--server",
    ])
    .arg(format!("http://{address}"))
    .arg("--dir")
    .arg(&app)
    .arg("--trusted-root")
    .arg(store.join("metadata/root.json")));

    // 1.0.0 starts, finds 1.1.0, hands off and exits; the updater restarts it.
    ok(updraft(&["run", "--dir"])
        .arg(&app)
        .args(["--", "--headless", "--auto-update"]));
    let log = app.join("data/demo.log");
    wait_until(
        "1.1.0 to check after its restart",
        Duration::from_mins(1),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("1.1.0 is up to date")),
    );
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "Kuzflow demo 1.0.0 started",
            "Version 1.1.0 is available",
            "1.0.0 handed 1.1.0 to the updater and exits",
            "Kuzflow demo 1.1.0 started",
            "1.1.0 confirmed",
            "1.1.0 is up to date",
        ]
    );
    let status = updraft(&["status", "--json", "--dir"])
        .arg(&app)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["current_version"], "1.1.0");
    assert_eq!(status["pending_confirm"], false);
    assert_eq!(status["previous_versions"], serde_json::json!(["1.0.0"]));
    let updater_log = std::fs::read_to_string(app.join(".updraft/updater.log")).unwrap();
    assert!(
        updater_log.contains("Switched from 1.0.0 to 1.1.0"),
        "{updater_log}"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("current/share/version.txt")).unwrap(),
        "1.1.0\n"
    );
}

/// Issue 17: started where there is no display, the demo says so in plain
/// words (no source paths) and runs as with `--headless`, exiting 0, so a
/// new version started this way is not counted as failing its health check.
#[test]
fn without_a_display_the_demo_runs_headless_and_says_so() {
    let output = Command::new(env!("CARGO_BIN_EXE_kuzflow-demo"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("UPDRAFT_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("No display to open a window on"),
        "{stdout}"
    );
    assert!(!stdout.contains(".rs:"), "a source path leaked: {stdout}");
}
