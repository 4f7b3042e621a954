//! Helpers shared by updraft's integration tests: demo app trees, byte-exact
//! snapshots of folders, and a ready-made signed store.
#![allow(clippy::missing_panics_doc)]

pub mod faulty;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, KeygenOptions, PackOptions, PublishRequest};

/// What a folder holds, byte for byte: path -> description (`file <sha256> <mode>`,
/// `dir <mode>`, `link -> target`). Paths under any folder named in `skip` are left out.
pub fn snapshot_tree(root: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("readable folder").path();
        let relative = path
            .strip_prefix(root)
            .expect("inside root")
            .to_string_lossy()
            .into_owned();
        if skip
            .iter()
            .any(|s| relative == *s || relative.starts_with(&format!("{s}/")))
        {
            continue;
        }
        let meta = fs::symlink_metadata(&path).expect("stat");
        let mode = mode(&meta);
        if meta.file_type().is_symlink() {
            out.insert(
                relative,
                format!("link -> {}", fs::read_link(&path).expect("link").display()),
            );
        } else if meta.is_dir() {
            out.insert(relative, format!("dir {mode:o}"));
            walk(root, &path, skip, out);
        } else {
            let digest = hex::encode(Sha256::digest(fs::read(&path).expect("read")));
            out.insert(relative, format!("file {digest} {mode:o}"));
        }
    }
}

#[cfg(unix)]
fn mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_: &fs::Metadata) -> u32 {
    0
}

/// Writes a small app tree (`bin/app` executable, a library, a data file and
/// a relative symlink) whose content depends on `version`.
pub fn write_app(dir: &Path, version: &str) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("share/empty")).unwrap();
    fs::write(
        dir.join("bin/app"),
        format!("#!/bin/sh\necho app {version}\n"),
    )
    .unwrap();
    fs::write(
        dir.join("lib/libcore.so.1"),
        format!("core library {version}\n").repeat(500),
    )
    .unwrap();
    fs::write(
        dir.join("share/data.bin"),
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect::<Vec<_>>(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("libcore.so.1", dir.join("lib/libcore.so")).unwrap();
    }
}

/// A keys folder and an initialised store inside a temporary folder.
#[derive(Debug)]
pub struct TestStore {
    /// The temporary folder holding everything.
    pub dir: PathBuf,
    /// `dir/keys`.
    pub keys: PathBuf,
    /// `dir/store`.
    pub store: PathBuf,
}

impl TestStore {
    /// Creates keys and an empty store under `dir`.
    pub fn new(dir: &Path) -> Self {
        let keys = dir.join("keys");
        let store = dir.join("store");
        updraft_publisher::keys::generate(&keys, KeygenOptions::default()).unwrap();
        updraft_publisher::init(
            &store,
            &keys,
            OffsetDateTime::now_utc(),
            &ExpiryPolicy::default(),
        )
        .unwrap();
        Self {
            dir: dir.to_path_buf(),
            keys,
            store,
        }
    }

    /// A publish request for the demo app at `version` from `source`.
    pub fn request(version: &str, source: &Path) -> PublishRequest {
        PublishRequest {
            app: "kuzflow".parse().unwrap(),
            version: version.parse().unwrap(),
            platform: "linux".parse().unwrap(),
            arch: "x86_64".parse().unwrap(),
            channel: "stable".parse().unwrap(),
            main: "bin/app".parse().unwrap(),
            notes: None,
            rollout_percent: 100,
            force: false,
            min_supported_version: None,
            source: source.to_path_buf(),
            pack: PackOptions {
                level: 3,
                ..PackOptions::default()
            },
        }
    }

    /// Publishes `source` as `version` for this machine's platform and arch
    /// (zstd level 1: fast), so it can be installed here.
    pub fn publish_for_host(&self, version: &str, source: &Path) {
        let (platform, arch) = updraft_protocol::host();
        let mut request = Self::request(version, source);
        request.platform = platform;
        request.arch = arch;
        request.pack.level = 1;
        updraft_publisher::publish(
            &self.store,
            &self.keys,
            &request,
            OffsetDateTime::now_utc(),
            &ExpiryPolicy::default(),
        )
        .unwrap();
    }

    /// Writes the demo app at `version` and publishes it.
    pub fn publish(&self, version: &str) -> updraft_publisher::PublishReport {
        let source = self.dir.join(format!("src-{version}"));
        if !source.exists() {
            write_app(&source, version);
        }
        updraft_publisher::publish(
            &self.store,
            &self.keys,
            &Self::request(version, &source),
            OffsetDateTime::now_utc(),
            &ExpiryPolicy::default(),
        )
        .unwrap()
    }

    /// The store's content, excluding updraft's private `.updraft` folder.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot_tree(&self.store, &[".updraft"])
    }
}

/// The `python3` to run python-tuf with; panics with the install hint when
/// python-tuf is missing (CI installs it: `pip install tuf`).
pub fn python_with_tuf() -> Command {
    let probe = Command::new("python3")
        .args(["-c", "import tuf.ngclient"])
        .output();
    match probe {
        Ok(output) if output.status.success() => Command::new("python3"),
        _ => panic!(
            "python3 with python-tuf is required for the interop tests: run `pip install tuf`"
        ),
    }
}

/// Polls `done` every 10 ms until it holds, failing the test with `what`
/// after `timeout` (for processes the test does not own the clock of).
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Bytes no compressor can shrink (xorshift), the same for the same seed.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A small tmpfs for disk-full tests, unmounted when dropped. Mounting needs
/// root; [`Tmpfs::mount`] returns `None` (and the test says it skipped) elsewhere.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`"3m"`) on a fresh temporary folder.
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().to_path_buf();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        if !mounted.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self { path, _dir: dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
