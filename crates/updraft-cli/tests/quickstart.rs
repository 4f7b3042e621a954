//! The README's first command as a newcomer meets it: `target/debug/updraft
//! quickstart` from the checkout, with a PATH that has no `updraft` on it,
//! and then every command of its closing "Next:" lines, exactly as printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A PATH a fresh shell has: system tools, no `updraft`.
const FRESH_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `command` run by `sh` in `cwd` with nothing but a fresh PATH and HOME.
fn shell(cwd: &Path, command: &str) -> Command {
    let mut shell = Command::new("/bin/sh");
    shell
        .args(["-c", command])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", FRESH_PATH)
        .env("HOME", cwd);
    shell
}

fn checked(cwd: &Path, command: &str) -> String {
    let output: Output = shell(cwd, command).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "`{command}` failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout + &stderr
}

/// `target/debug/` below `checkout` holding this build's `updraft` and the
/// demo program beside it, as `cargo build --workspace` leaves them.
fn checkout_with_build(checkout: &Path) {
    let built = Path::new(env!("CARGO_BIN_EXE_updraft"));
    let debug = checkout.join("target/debug");
    std::fs::create_dir_all(&debug).unwrap();
    for name in ["updraft", "kuzflow-demo"] {
        let from = built.with_file_name(name);
        if from.exists() {
            let to = debug.join(name);
            std::fs::hard_link(&from, &to)
                .or_else(|_| std::fs::copy(&from, &to).map(drop))
                .unwrap();
        }
    }
}

/// The commands of the closing lines: every indented line after `Next:`,
/// without its `# comment`.
fn next_commands(stdout: &str) -> Vec<String> {
    let (_, next) = stdout
        .split_once("\nNext:\n")
        .unwrap_or_else(|| panic!("no Next: lines in\n{stdout}"));
    next.lines()
        .filter_map(|line| line.strip_prefix("  "))
        .map(|line| line.split(" #").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn every_next_command_works_as_printed_with_a_fresh_path() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path();
    checkout_with_build(checkout);
    assert!(
        !shell(checkout, "command -v updraft")
            .status()
            .unwrap()
            .success(),
        "the fresh PATH has no updraft on it"
    );
    let stdout = checked(checkout, "target/debug/updraft quickstart");
    let commands = next_commands(&stdout);
    assert!(
        commands
            .iter()
            .all(|c| c.starts_with("target/debug/updraft ")),
        "each command names the updraft that runs from here: {commands:#?}"
    );
    let names: Vec<&str> = commands
        .iter()
        .map(|c| c.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "status",
            "check",
            "run",
            "publish",
            "update",
            "serve",
            "quickstart"
        ],
        "{stdout}"
    );
    let app = checkout.join("updraft-quickstart/app");
    for command in &commands {
        if command.contains(" serve ") {
            serve_answers_at_the_installs_address(checkout, command, &app);
            continue;
        }
        if command.contains(" update ") {
            no_display_means_no_dialog(checkout, &command.replace("--yes", "--gui"));
        }
        let said = checked(checkout, command);
        match command.split(' ').nth(1).unwrap() {
            // The quickstart's server is gone: the check reads the store folder.
            "check" => assert!(said.contains("1.1.0 is the newest version"), "{said}"),
            "run" => assert!(
                said.contains("Kuzflow demo 1.1.0 started") && !said.contains("failed"),
                "{said}"
            ),
            "update" => assert_eq!(
                std::fs::read_link(app.join("current")).unwrap(),
                Path::new("versions/1.2.0"),
                "{said}"
            ),
            "quickstart" => assert!(said.contains("[10/10]"), "{said}"),
            _ => {}
        }
    }
}

/// Starts the printed `serve`, checks that it listens where the install's
/// `update_server.base_url` points and answers a check there, then stops it.
fn serve_answers_at_the_installs_address(cwd: &Path, command: &str, app: &Path) {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.join("update_config.json")).unwrap()).unwrap();
    let base = config["update_server"]["base_url"].as_str().unwrap();
    let mut child = shell(cwd, &format!("exec {command}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let stop = |child: &mut std::process::Child| {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    };
    if !line.starts_with(&format!("updraft serving on {base}")) {
        stop(&mut child);
        panic!("`{command}` does not serve at {base}: {line}");
    }
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET /api/version/check?current_version=1.0.0&platform={}&arch={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        updraft_client::host().0,
        updraft_client::host().1
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = stop(&mut child);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        status.success(),
        "Ctrl-C (SIGTERM) stops it cleanly: {status}"
    );
}

/// Without X11 or Wayland the dialog cannot open: a usage error (exit 2)
/// that says so and what to do, with none of winit's source paths, and the
/// install untouched.
fn no_display_means_no_dialog(cwd: &Path, command: &str) {
    let output = shell(cwd, command).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "`{command}`: {stderr}");
    assert!(
        stderr.contains("no display")
            && stderr.contains("leave out --gui")
            && !stderr.contains(".rs:"),
        "{stderr}"
    );
    let app = cwd.join("updraft-quickstart/app");
    assert_eq!(
        std::fs::read_link(app.join("current")).unwrap(),
        Path::new("versions/1.1.0")
    );
}
