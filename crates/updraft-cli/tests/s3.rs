//! `--repo s3://BUCKET/PREFIX` against two real S3 servers on loopback,
//! moto_server and s3s-fs, each started by the test (docs/deploy-s3.md):
//! publish, serve and update through the bucket; concurrent publishers; a
//! publish killed at random instants; `repo verify` naming orphans and `repo
//! gc` removing them; plain HTTP refused off loopback; a tampered bucket
//! refused by the client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use updraft_publisher::{Location, layout};
use updraft_test_support::s3::{S3Kind, S3Server};
use updraft_test_support::{snapshot_tree, wait_until, write_app};

fn updraft(server: &S3Server) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
    command.envs(server.env());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeed(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({:?}): {}{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A bucket prefix with a store, its keys, and a scratch folder.
struct Setup {
    server: S3Server,
    dir: tempfile::TempDir,
    keys: PathBuf,
    url: String,
}

impl Setup {
    fn new(kind: S3Kind) -> Option<Self> {
        Self::with_prefix(kind, "stores/kuzflow")
    }

    fn with_prefix(kind: S3Kind, prefix: &str) -> Option<Self> {
        let server = S3Server::start(kind)?;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        updraft_publisher::keys::generate(&keys, updraft_publisher::KeygenOptions::default())
            .unwrap();
        let url = server.url(prefix);
        let setup = Self {
            server,
            dir,
            keys,
            url,
        };
        let output = setup
            .cmd()
            .args(["repo", "init", "--repo", &setup.url, "--keys"])
            .arg(&setup.keys)
            .output()
            .unwrap();
        let stdout = succeed(&output, "repo init");
        assert!(stdout.contains(&setup.url), "{stdout}");
        Some(setup)
    }

    fn cmd(&self) -> Command {
        updraft(&self.server)
    }

    fn location(&self) -> Location {
        Location::open_with(&self.url, &self.server.settings()).unwrap()
    }

    /// The versions the store's signed targets list, oldest first.
    fn signed_versions(&self) -> Vec<String> {
        let current = self.location().current().unwrap();
        let (releases, _) = layout::releases(&current.resolved());
        releases
            .iter()
            .map(|r| r.custom.release.version.to_string())
            .collect()
    }

    fn source(&self, version: &str, extra: usize) -> PathBuf {
        let source = self.dir.path().join(format!("src-{version}"));
        if !source.exists() {
            write_app(&source, version);
            std::fs::write(
                source.join("share/noise.bin"),
                updraft_test_support::noise(extra, 3),
            )
            .unwrap();
        }
        source
    }

    /// `updraft publish` of the demo app for this machine (not waited for).
    fn publish_command(&self, version: &str, extra: usize) -> Command {
        let (platform, arch) = updraft_protocol::host();
        let source = self.source(version, extra);
        let mut command = self.cmd();
        command
            .args(["publish", "--repo", &self.url, "--keys"])
            .arg(&self.keys)
            .args(["--app", "kuzflow", "--version", version])
            .args(["--platform", platform.as_str(), "--arch", arch.as_str()])
            .args(["--main", "bin/app", "--level", "1"])
            .arg(source);
        command
    }

    fn publish(&self, version: &str) -> String {
        let output = self.publish_command(version, 20_000).output().unwrap();
        succeed(&output, &format!("publish {version}"))
    }

    fn verify_json(&self) -> (Option<i32>, serde_json::Value) {
        let output = self
            .cmd()
            .args(["repo", "verify", "--json", "--repo", &self.url])
            .output()
            .unwrap();
        let value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("verify printed no JSON: {}", text(&output.stderr)));
        (output.status.code(), value)
    }
}

/// `updraft serve --repo s3://...` on a free port, killed when dropped.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(setup: &Setup, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let database = format!(
            "sqlite://{}",
            setup
                .dir
                .path()
                .join(format!("server-{port}.sqlite"))
                .display()
        );
        let child = setup
            .cmd()
            .args(["serve", "--repo", &setup.url, "--database", &database])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        wait_until("serve answers", Duration::from_secs(30), || {
            get(&serve.base, "/healthz", &[]).is_some_and(|r| r.status == 200)
        });
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

/// A plain HTTP/1.1 GET (no client library: the answer is read as sent).
fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Option<Answer> {
    request("GET", base, path, headers)
}

fn request(method: &str, base: &str, path: &str, headers: &[(&str, &str)]) -> Option<Answer> {
    let address = base.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = text(&raw[..split]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some(Answer { status, head, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(text(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn install(setup: &Setup, serve: &Serve, version: &str) -> PathBuf {
    let root = get(&serve.base, "/metadata/1.root.json", &[]).unwrap();
    assert_eq!(root.status, 200);
    let root_file = setup.dir.path().join("root.json");
    std::fs::write(&root_file, &root.body).unwrap();
    let install = setup.dir.path().join(format!("install-{version}"));
    let output = setup
        .cmd()
        .args(["install", "--server", &serve.base, "--app", "kuzflow"])
        .args(["--version", version, "--dir"])
        .arg(&install)
        .arg("--trusted-root")
        .arg(&root_file)
        .output()
        .unwrap();
    succeed(&output, "install");
    install
}

fn update(setup: &Setup, install: &Path) -> Output {
    setup
        .cmd()
        .args(["update", "--yes", "--json", "--dir"])
        .arg(install)
        .output()
        .unwrap()
}

fn installed_version(install: &Path) -> String {
    std::fs::read_to_string(install.join("current/bin/app"))
        .unwrap()
        .trim()
        .trim_start_matches("#!/bin/sh\necho app ")
        .to_owned()
}

fn publish_serve_and_update(kind: S3Kind) {
    let Some(setup) = Setup::new(kind) else {
        return;
    };
    setup.publish("1.0.0");
    let stdout = setup.publish("1.1.0");
    assert!(stdout.contains("Delta from 1.0.0"), "{stdout}");
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["packages_checked"], 2, "{report}");
    assert_eq!(
        report["orphans"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    let tokens = setup.dir.path().join("tokens");
    std::fs::write(&tokens, "ops:s3-test-admin-token\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let keys = setup.keys.to_string_lossy().into_owned();
    let tokens = tokens.to_string_lossy().into_owned();
    let serve = Serve::start(&setup, &["--keys", &keys, "--admin-token-file", &tokens]);
    let install = install(&setup, &serve, "1.0.0");
    assert_eq!(installed_version(&install), "1.0.0");
    let output = update(&setup, &install);
    succeed(&output, "update to 1.1.0");
    assert_eq!(installed_version(&install), "1.1.0");

    // Downloads are streamed from the bucket with Range and the bucket's ETag.
    let query = {
        let (platform, arch) = updraft_protocol::host();
        format!("/api/version/download?app=kuzflow&version=1.1.0&platform={platform}&arch={arch}")
    };
    let full = get(&serve.base, &query, &[]).unwrap();
    assert_eq!(full.status, 200, "{}", full.head);
    let etag = full.header("etag").unwrap().to_owned();
    let part = get(
        &serve.base,
        &query,
        &[("Range", "bytes=10-109"), ("If-Range", &etag)],
    )
    .unwrap();
    assert_eq!(part.status, 206, "{}", part.head);
    assert_eq!(part.body, full.body[10..110]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-109/{}", full.body.len()).as_str())
    );
    let stale = get(
        &serve.base,
        &query,
        &[("Range", "bytes=10-109"), ("If-Range", "\"other\"")],
    )
    .unwrap();
    assert_eq!((stale.status, stale.body.len()), (200, full.body.len()));
    let not_modified = get(&serve.base, &query, &[("If-None-Match", &etag)]).unwrap();
    assert_eq!(not_modified.status, 304);
    for hidden in [
        "/.updraft/taken.json",
        "/metadata/../metadata/timestamp.json",
        "/releases/%2e%2e/x",
    ] {
        let answer = get(&serve.base, hidden, &[]).unwrap();
        assert_eq!(answer.status, 404, "{hidden}: {}", answer.head);
    }

    // Polling an unchanged bucket reloads nothing.
    let reloads = || -> u64 {
        let metrics = text(&get(&serve.base, "/metrics", &[]).unwrap().body);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("updraft_store_reloads_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no reload counter in {metrics}"))
    };
    let before = reloads();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(), before, "the server reloaded an unchanged store");
    // A release published while the server runs is offered within seconds
    // (the server polls the bucket's timestamp.json).
    setup.publish("1.2.0");
    wait_until("the server sees 1.2.0", Duration::from_secs(20), || {
        get(&serve.base, "/healthz", &[])
            .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
            .is_some_and(|v| v["releases"] == 3)
    });
    let output = update(&setup, &install);
    succeed(&output, "update to 1.2.0");
    assert_eq!(installed_version(&install), "1.2.0");

    // `rollout` and `repo refresh` work on the bucket too.
    let output = setup
        .cmd()
        .args(["rollout", "--repo", &setup.url, "--keys"])
        .arg(&setup.keys)
        .args(["--app", "kuzflow", "--version", "1.2.0", "--halt"])
        .output()
        .unwrap();
    succeed(&output, "rollout --halt");
    let output = setup
        .cmd()
        .args(["repo", "refresh", "--repo", &setup.url, "--keys"])
        .arg(&setup.keys)
        .output()
        .unwrap();
    succeed(&output, "repo refresh");
    let current = setup.location().current().unwrap();
    let (releases, _) = layout::releases(&current.resolved());
    let halted = |releases: &[layout::PublishedRelease]| -> Vec<String> {
        releases
            .iter()
            .filter(|r| r.custom.release.halted)
            .map(|r| r.custom.release.version.to_string())
            .collect()
    };
    assert_eq!(halted(&releases), ["1.2.0"]);
    // An admin change through a server with the keys is signed into the bucket.
    let answer = request(
        "POST",
        &serve.base,
        "/api/admin/releases/kuzflow/1.1.0/halt",
        &[("Authorization", "Bearer s3-test-admin-token")],
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}{}", answer.head, text(&answer.body));
    assert!(
        text(&answer.body).contains("targets_version"),
        "{}",
        text(&answer.body)
    );
    let current = setup.location().current().unwrap();
    let (releases, _) = layout::releases(&current.resolved());
    assert_eq!(halted(&releases), ["1.1.0", "1.2.0"]);
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn publish_serve_and_update_through_moto() {
    publish_serve_and_update(S3Kind::Moto);
}

#[test]
fn publish_serve_and_update_through_s3s_fs() {
    publish_serve_and_update(S3Kind::S3sFs);
}

fn concurrent_publishers(kind: S3Kind) {
    let Some(setup) = Setup::new(kind) else {
        return;
    };
    setup.publish("1.0.0");
    let versions = ["1.1.0", "1.2.0", "1.3.0"];
    // Prepare the sources first so the publishers start together.
    for version in versions {
        setup.source(version, 20_000);
    }
    let children: Vec<(&str, Child)> = versions
        .iter()
        .map(|version| {
            let child = setup
                .publish_command(version, 20_000)
                .arg("--no-delta")
                .env("UPDRAFT_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (*version, child)
        })
        .collect();
    let mut succeeded = Vec::new();
    let mut retries = 0;
    for (version, child) in children {
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        retries += stderr
            .matches("another publisher changed the store first")
            .count();
        if output.status.success() {
            succeeded.push(version.to_owned());
        } else {
            // The only acceptable failure: it lost the race every time, said so, and exited 1.
            assert_eq!(output.status.code(), Some(1), "{version}: {stderr}");
            assert!(
                stderr.contains("Gave up after 5 attempts"),
                "{version}: {stderr}"
            );
        }
    }
    let signed = setup.signed_versions();
    for version in &succeeded {
        assert!(
            signed.contains(version),
            "{version} was published but is not signed: {signed:?}"
        );
    }
    for version in versions {
        if !succeeded.iter().any(|v| v == version) {
            assert!(
                !signed.iter().any(|v| v == version),
                "{version} failed but is signed"
            );
        }
    }
    assert!(!succeeded.is_empty(), "no concurrent publisher succeeded");
    eprintln!(
        "{kind:?}: {} of 3 concurrent publishers succeeded after {retries} retries",
        succeeded.len()
    );
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn concurrent_publishers_lose_no_release_on_moto() {
    concurrent_publishers(S3Kind::Moto);
}

#[test]
fn concurrent_publishers_lose_no_release_on_s3s_fs() {
    concurrent_publishers(S3Kind::S3sFs);
}

/// A pseudo-random delay from the clock (no dependency).
fn random_millis(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % max
}

fn killed_publishes(kind: S3Kind) {
    let Some(setup) = Setup::new(kind) else {
        return;
    };
    setup.publish("1.0.0");
    // Killed after the packages are up but before any metadata: orphans for sure.
    let output = setup
        .publish_command("1.1.0", 200_000)
        .env("UPDRAFT_FAULT_KILL_AT", "s3.object")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(setup.signed_versions(), ["1.0.0"]);
    // Killed after its first new metadata file (`N.targets.json`) is up: the
    // bucket now holds a version no timestamp leads to, and never overwrites
    // it, so the next publish must sign the versions after it.
    let output = setup
        .publish_command("1.1.1", 20_000)
        .env("UPDRAFT_FAULT_KILL_AT", "s3.metadata")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(setup.signed_versions(), ["1.0.0"]);
    let stdout = setup.publish("1.1.2");
    assert!(
        stdout.contains("targets metadata is now version 4"),
        "{stdout}"
    );
    // Then at random instants; each time the store is the old or the new one.
    let mut expected = vec!["1.0.0".to_owned(), "1.1.2".to_owned()];
    for (round, version) in ["1.2.0", "1.3.0", "1.4.0", "1.5.0"].into_iter().enumerate() {
        setup.source(version, 2_000_000);
        let mut child = setup
            .publish_command(version, 2_000_000)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = 100 + random_millis(1500) + 400 * round as u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(delay) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let signed = setup.signed_versions();
        let landed = signed.iter().any(|v| v == version);
        eprintln!(
            "{kind:?}: killed publish {version} after {delay} ms ({status}); landed: {landed}"
        );
        if landed {
            expected.push(version.to_owned());
        }
        assert_eq!(signed, expected, "old or new, nothing else");
        // The whole store verifies: every signed file present with its hash
        // (the unsigned browsing views may lag: they are reported apart).
        let (code, report) = setup.verify_json();
        assert_eq!(code, Some(0), "after killing {version}: {report}");
    }
    let output = setup
        .cmd()
        .args(["repo", "refresh", "--repo", &setup.url, "--keys"])
        .arg(&setup.keys)
        .output()
        .unwrap();
    succeed(&output, "repo refresh");
    let (_, report) = setup.verify_json();
    assert_eq!(
        report["stale_views"].as_array().map(Vec::len),
        Some(0),
        "refresh rewrites the views: {report}"
    );
    let (_, report) = setup.verify_json();
    let orphans: Vec<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        orphans.iter().any(|o| o.contains("kuzflow_v1.1.0_")),
        "verify names the orphans of the killed 1.1.0: {orphans:?}"
    );
    let text_output = setup
        .cmd()
        .args(["repo", "verify", "--repo", &setup.url])
        .output()
        .unwrap();
    assert!(
        text(&text_output.stdout).contains("orphan: `releases/v1.1.0/"),
        "{}",
        text(&text_output.stdout)
    );

    // gc keeps orphans younger than the grace period, removes older ones.
    let kept = setup
        .cmd()
        .args(["repo", "gc", "--repo", &setup.url])
        .output()
        .unwrap();
    let kept = succeed(&kept, "repo gc");
    assert!(kept.contains("Removed 0 orphan(s)"), "{kept}");
    std::thread::sleep(Duration::from_secs(2));
    let removed = setup
        .cmd()
        .args(["repo", "gc", "--grace", "1s", "--repo", &setup.url])
        .output()
        .unwrap();
    let removed = succeed(&removed, "repo gc --grace 1s");
    assert!(
        removed.contains(&format!("Removed {} orphan(s)", orphans.len())),
        "{removed}"
    );
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["orphans"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    // A further publish works, even of the version whose publish was killed.
    setup.publish("1.1.0");
    expected.push("1.1.0".into());
    expected.sort_by(|a, b| {
        a.parse::<updraft_protocol::Version>()
            .unwrap()
            .cmp(&b.parse().unwrap())
    });
    assert_eq!(setup.signed_versions(), expected);
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn a_killed_publish_leaves_the_old_or_the_new_release_on_moto() {
    killed_publishes(S3Kind::Moto);
}

#[test]
fn a_killed_publish_leaves_the_old_or_the_new_release_on_s3s_fs() {
    killed_publishes(S3Kind::S3sFs);
}

#[test]
fn bad_s3_settings_are_refused_with_exit_2() {
    let command = |endpoint: &str, url: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(["repo", "verify", "--repo", url])
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env_remove("UPDRAFT_S3_ALLOW_HTTP");
        command
    };
    // Plain HTTP to an address that is not loopback (TEST-NET-1: never contacted).
    let output = command("http://192.0.2.1:9000", "s3://updraft/store")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("`http://192.0.2.1:9000`")
            && stderr.contains("plain HTTP")
            && stderr.contains("UPDRAFT_S3_ALLOW_HTTP=1"),
        "{stderr}"
    );
    for (url, expected) in [
        ("s3://UPPER/x", "bucket name"),
        ("s3://updraft/../x", "prefix"),
    ] {
        let output = command("http://127.0.0.1:9", url).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{url}");
        assert!(
            text(&output.stderr).contains(expected),
            "{url}: {}",
            text(&output.stderr)
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["repo", "verify", "--repo", "s3://updraft/store"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("AWS_ACCESS_KEY_ID"),
        "{}",
        text(&output.stderr)
    );
    // A server on a bucket needs a database of its own.
    let output = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args([
            "serve",
            "--repo",
            "s3://updraft/store",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--database sqlite://PATH"),
        "{}",
        text(&output.stderr)
    );
    // Key rotation and offline signing are for stores in a folder (for now).
    let output = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args([
            "repo",
            "rotate-root",
            "--repo",
            "s3://updraft/store",
            "--keys",
            "k",
            "--new-keys",
            "n",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("works on a store in a folder"),
        "{}",
        text(&output.stderr)
    );
    // gc is for buckets; a local store never has orphans.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["repo", "gc", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("never keeps orphans"));
}

/// The bucket (or a CDN in front of it) is not trusted: bytes changed in it
/// are refused by the client, and the install stays as it was.
#[test]
fn a_tampered_bucket_is_refused_by_the_client() {
    let Some(setup) = Setup::new(S3Kind::S3sFs) else {
        return;
    };
    setup.publish("1.0.0");
    let serve = Serve::start(&setup, &[]);
    let install = install(&setup, &serve, "1.0.0");
    let output = setup
        .publish_command("1.1.0", 20_000)
        .arg("--no-delta")
        .output()
        .unwrap();
    succeed(&output, "publish 1.1.0");
    wait_until("the server sees 1.1.0", Duration::from_secs(20), || {
        get(&serve.base, "/healthz", &[])
            .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
            .is_some_and(|v| v["releases"] == 2)
    });
    let before = snapshot_tree(&install, &[".updraft", "update_config.json"]);
    // s3s-fs keeps each object as a file: flip a byte of every copy of the new package.
    let objects = setup
        .server
        .data_dir()
        .join("updraft/stores/kuzflow/releases/v1.1.0");
    let mut tampered = 0;
    for entry in std::fs::read_dir(&objects).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("_full.tar.zst") {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
            std::fs::write(&path, bytes).unwrap();
            tampered += 1;
        }
    }
    assert_eq!(tampered, 2, "the plain and the hash-prefixed copy");
    let output = update(&setup, &install);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(
        snapshot_tree(&install, &[".updraft", "update_config.json"]),
        before
    );
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(4), "{report}");
    assert!(
        report["problems"].to_string().contains("v1.1.0"),
        "{report}"
    );

    // Tampered metadata: a changed release note in the newest targets file.
    let metadata = setup
        .server
        .data_dir()
        .join("updraft/stores/kuzflow/metadata");
    let newest = std::fs::read_dir(&metadata)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let version: u64 = name.strip_suffix(".targets.json")?.parse().ok()?;
            Some((version, name))
        })
        .max()
        .unwrap()
        .1;
    let path = metadata.join(newest);
    let original = std::fs::read_to_string(&path).unwrap();
    let forged = original.replacen("\"force\": false", "\"force\": true", 1);
    assert_ne!(forged, original);
    std::fs::write(&path, forged).unwrap();
    let output = update(&setup, &install);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(
        snapshot_tree(&install, &[".updraft", "update_config.json"]),
        before
    );

    // An endless timestamp: refused before it is read, by the publisher and the server.
    std::fs::write(metadata.join("timestamp.json"), vec![b' '; 17 << 20]).unwrap();
    let output = setup
        .cmd()
        .args(["repo", "refresh", "--repo", &setup.url, "--keys"])
        .arg(&setup.keys)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("metadata larger than"),
        "{}",
        text(&output.stderr)
    );
    std::thread::sleep(Duration::from_secs(2));
    let health = get(&serve.base, "/healthz", &[]).unwrap();
    assert_eq!(health.status, 200, "the server keeps its last good view");
}

/// `serve --files-url`: downloads and store files are redirected to a CDN
/// in front of the bucket.
#[test]
fn downloads_can_be_redirected_to_a_cdn() {
    let Some(setup) = Setup::new(S3Kind::Moto) else {
        return;
    };
    setup.publish("1.0.0");
    let serve = Serve::start(&setup, &["--files-url", "https://cdn.example.com/kuzflow/"]);
    let (platform, arch) = updraft_protocol::host();
    let answer = get(
        &serve.base,
        &format!("/api/version/download?app=kuzflow&version=1.0.0&platform={platform}&arch={arch}"),
        &[],
    )
    .unwrap();
    assert_eq!(answer.status, 302, "{}", answer.head);
    assert_eq!(
        answer.header("location"),
        Some(format!("https://cdn.example.com/kuzflow/releases/v1.0.0/kuzflow_v1.0.0_{platform}_{arch}_full.tar.zst").as_str())
    );
    let answer = get(&serve.base, "/metadata/timestamp.json", &[]).unwrap();
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.header("location"),
        Some("https://cdn.example.com/kuzflow/metadata/timestamp.json")
    );
    // The check itself is still answered here.
    let check = get(
        &serve.base,
        &format!(
            "/api/version/check?app=kuzflow&current_version=0.9.0&platform={platform}&arch={arch}"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(check.status, 200);
    let check: serde_json::Value = serde_json::from_slice(&check.body).unwrap();
    assert_eq!(check["latest_version"], "1.0.0");
}

/// `repo delegate` and `publish --role` on a bucket: the delegated role's
/// metadata is fetched, signed and uploaded like the top-level targets.
#[test]
fn a_delegated_role_publishes_into_a_bucket() {
    let Some(setup) = Setup::new(S3Kind::Moto) else {
        return;
    };
    setup.publish("1.0.0");
    let ci = setup.dir.path().join("ci");
    let output = setup
        .cmd()
        .args(["keygen", "--role", "beta", "--out"])
        .arg(&ci)
        .output()
        .unwrap();
    succeed(&output, "keygen --role beta");
    let output = setup
        .cmd()
        .args(["repo", "delegate", "--repo", &setup.url, "--keys"])
        .arg(&setup.keys)
        .args(["--name", "beta", "--paths", "releases/*-beta*/*", "--key"])
        .arg(ci.join("beta.key"))
        .arg("--terminating")
        .output()
        .unwrap();
    succeed(&output, "repo delegate");
    for key in ["snapshot.key", "timestamp.key"] {
        std::fs::copy(setup.keys.join(key), ci.join(key)).unwrap();
    }
    for version in ["1.1.0-beta.1", "1.1.0-beta.2"] {
        let command = setup.publish_command(version, 20_000);
        let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
        let mut command = setup.cmd();
        for arg in &args {
            if arg == setup.keys.as_os_str() {
                command.arg(&ci);
            } else {
                command.arg(arg);
            }
        }
        command.args(["--role", "beta", "--channel", "beta"]);
        let output = command.output().unwrap();
        let stdout = succeed(&output, &format!("publish --role beta {version}"));
        assert!(stdout.contains("beta metadata is now version"), "{stdout}");
    }
    assert_eq!(
        setup.signed_versions(),
        ["1.0.0", "1.1.0-beta.1", "1.1.0-beta.2"]
    );
    let current = setup.location().current().unwrap();
    assert_eq!(current.delegated("beta").map(|e| e.signed.version), Some(2));
    let (code, report) = setup.verify_json();
    assert_eq!(code, Some(0), "{report}");
}

/// Writes `mib` MiB of incompressible bytes from a seeded xorshift64 into
/// `count` files under `dir/share/big/`, a megabyte at a time.
fn write_incompressible(dir: &Path, mib: usize, count: usize) {
    let big = dir.join("share/big");
    std::fs::create_dir_all(&big).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1024 * 1024];
    for index in 0..count {
        let mut file = std::fs::File::create(big.join(format!("part-{index}.bin"))).unwrap();
        for _ in 0..mib / count {
            for word in block.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            file.write_all(&block).unwrap();
        }
    }
}

/// Runs `command` under `/usr/bin/time -f %M`: its output and peak RSS in KiB.
fn with_peak_rss(command: &Command) -> (Output, u64) {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "peak-rss-kib=%M"])
        .arg(command.get_program());
    timed.args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    let output = timed.output().unwrap();
    let stderr = text(&output.stderr);
    let peak = stderr
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("peak-rss-kib="))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("/usr/bin/time printed no peak RSS: {stderr}"));
    (output, peak)
}

/// The product's rule: memory stays flat as packages grow. A publish of a
/// 96 MiB package to a bucket (objects streamed with multipart upload,
/// existing ones hashed as streamed) and `repo verify` of that bucket (each
/// object streamed to disk) peak at no more than 32 MiB above what the same
/// publish to a folder takes (an upload holds at most 24 MiB of a file); the
/// old code held the whole package, 73 MiB above the folder publish.
fn large_packages_stream(kind: S3Kind) {
    const PACKAGE_MIB: usize = 96;
    const BOUND_KIB: u64 = 32 * 1024;
    if !Path::new("/usr/bin/time").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "/usr/bin/time is missing (Debian package `time`)"
        );
        eprintln!("skipped: /usr/bin/time is missing");
        return;
    }
    // A short prefix: s3s-fs keeps a multipart upload's state in a file
    // named after the base64 of bucket and key, which must fit in 255 bytes.
    let Some(setup) = Setup::with_prefix(kind, "s") else {
        return;
    };
    let source = setup.source("1.0.0", 1000);
    write_incompressible(&source, PACKAGE_MIB, 3);

    let folder = setup.dir.path().join("folder-store");
    let output = setup
        .cmd()
        .args(["repo", "init", "--repo"])
        .arg(&folder)
        .arg("--keys")
        .arg(&setup.keys)
        .output()
        .unwrap();
    succeed(&output, "repo init (folder)");
    let mut to_folder = setup.publish_command("1.0.0", 1000);
    let args: Vec<_> = to_folder.get_args().map(ToOwned::to_owned).collect();
    to_folder = setup.cmd();
    for arg in &args {
        if arg.to_str() == Some(setup.url.as_str()) {
            to_folder.arg(&folder);
        } else {
            to_folder.arg(arg);
        }
    }
    let (output, folder_peak) = with_peak_rss(&to_folder);
    succeed(&output, "publish to a folder");

    let (output, bucket_peak) = with_peak_rss(&setup.publish_command("1.0.0", 1000));
    succeed(&output, "publish to the bucket");
    let largest = setup
        .location()
        .current()
        .unwrap()
        .resolved()
        .targets
        .values()
        .map(|target| target.length)
        .max()
        .unwrap_or(0);
    assert!(
        largest >= (PACKAGE_MIB as u64 - 1) * 1024 * 1024,
        "the package is {largest} bytes, not incompressible"
    );
    eprintln!(
        "{kind:?}: publish of a {largest}-byte package: folder {folder_peak} KiB, bucket {bucket_peak} KiB peak RSS"
    );
    assert!(
        bucket_peak < folder_peak + BOUND_KIB,
        "publish to the bucket peaked at {bucket_peak} KiB, the folder publish at {folder_peak} KiB: the bucket publish buffers the package"
    );

    let verify = {
        let mut command = setup.cmd();
        command.args(["repo", "verify", "--json", "--repo", &setup.url]);
        command
    };
    let (output, verify_peak) = with_peak_rss(&verify);
    succeed(&output, "repo verify");
    eprintln!("{kind:?}: repo verify: {verify_peak} KiB peak RSS");
    assert!(
        verify_peak < folder_peak + BOUND_KIB,
        "repo verify peaked at {verify_peak} KiB: it buffers the package"
    );
}

#[test]
fn a_large_package_is_streamed_to_moto() {
    large_packages_stream(S3Kind::Moto);
}

#[test]
fn a_large_package_is_streamed_to_s3s_fs() {
    large_packages_stream(S3Kind::S3sFs);
}
