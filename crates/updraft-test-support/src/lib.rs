//! Helpers shared by updraft's integration tests: demo app trees, byte-exact
//! snapshots of folders, and a ready-made signed store.
#![allow(clippy::missing_panics_doc)]

pub mod faulty;
pub mod postgres;
pub mod s3;

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
        Self::with_scheme(dir, updraft_protocol::tuf::Scheme::Ed25519)
    }

    /// Like [`TestStore::new`], with every key of `scheme`.
    pub fn with_scheme(dir: &Path, scheme: updraft_protocol::tuf::Scheme) -> Self {
        let keys = dir.join("keys");
        let store = dir.join("store");
        updraft_publisher::keys::generate(
            &keys,
            KeygenOptions {
                scheme,
                ..KeygenOptions::default()
            },
        )
        .unwrap();
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
            auto_halt: None,
            source: source.to_path_buf(),
            pack: PackOptions {
                level: 3,
                ..PackOptions::default()
            },
            deltas: updraft_publisher::DeltaPolicy::default(),
        }
    }

    /// Publishes `source` as `version` for this machine's platform and arch
    /// (zstd level 1: fast), so it can be installed here.
    pub fn publish_for_host(&self, version: &str, source: &Path) {
        self.publish_for_host_with(version, source, updraft_publisher::DeltaPolicy::default());
    }

    /// [`publish_for_host`](Self::publish_for_host) with delta packages as
    /// `deltas` says: with `DeltaPolicy::None` only the full package exists,
    /// so an update downloads it and unpacks it as it streams in.
    pub fn publish_for_host_with(
        &self,
        version: &str,
        source: &Path,
        deltas: updraft_publisher::DeltaPolicy,
    ) {
        let (platform, arch) = updraft_protocol::host();
        let mut request = Self::request(version, source);
        request.platform = platform;
        request.arch = arch;
        request.pack.level = 1;
        request.deltas = deltas;
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

    /// Rewrites the published `version` so that its package and its manifest
    /// give the entries named in `modes` (path, mode) those modes, and signs
    /// the store's targets, snapshot and timestamp again: what a publisher
    /// that kept any mode (setuid, world-writable) would have published,
    /// whatever the publisher of today refuses or normalises.
    pub fn set_published_modes(&self, version: &str, modes: &[(&str, u32)]) {
        use std::io::Read;
        use updraft_protocol::manifest::{FileRef, PackageChunks};
        use updraft_protocol::tuf::TargetFile;
        use updraft_protocol::{PackageCustom, ReleaseManifest, Sha256Digest, TargetPath};

        let mode_for = |path: &str| modes.iter().find(|(p, _)| *p == path).map(|(_, m)| *m);
        let current = updraft_publisher::store::load_chain(&self.store, None).unwrap();
        let mut targets = current.targets().signed.clone();
        let package_path = targets
            .targets
            .keys()
            .find(|k| k.contains(&format!("/v{version}/")) && k.ends_with("_full.tar.zst"))
            .cloned()
            .unwrap_or_else(|| panic!("{version} is not published"));
        let mut custom = PackageCustom::from_custom(
            &package_path,
            targets.targets[&package_path].custom.as_ref(),
        )
        .unwrap()
        .unwrap();
        let manifest_path = custom.manifest.path.to_string();

        // The package, every header of a named entry given its new mode.
        let old = fs::read(self.store.join(&package_path)).unwrap();
        let tar_bytes = zstd::decode_all(&old[..]).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut builder = tar::Builder::new(Vec::new());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut header = entry.header().clone();
            let path = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
            if let Some(mode) = mode_for(&path) {
                header.set_mode(mode);
                header.set_cksum();
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            builder.append(&header, &data[..]).unwrap();
        }
        let package = zstd::encode_all(&builder.into_inner().unwrap()[..], 1).unwrap();

        // The manifest, with the same modes and the new package's chunks.
        let mut manifest = ReleaseManifest::from_slice(
            &manifest_path,
            &fs::read(self.store.join(&manifest_path)).unwrap(),
        )
        .unwrap();
        for file in &mut manifest.files {
            file.mode = mode_for(file.path.as_str()).unwrap_or(file.mode);
        }
        for dir in &mut manifest.dirs {
            dir.mode = mode_for(dir.path.as_str()).unwrap_or(dir.mode);
        }
        if manifest.chunks.is_some() {
            let size = PackageChunks::size_for(package.len() as u64);
            manifest.chunks = Some(PackageChunks {
                size,
                sha256: package
                    .chunks(usize::try_from(size).unwrap())
                    .map(Sha256Digest::of)
                    .collect(),
            });
        }
        let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        manifest_bytes.push(b'\n');

        // Both files under their plain and their hash-prefixed names.
        let manifest_custom = targets.targets[&manifest_path].custom.clone();
        let mut place = |path: &str, bytes: &[u8], custom: Option<serde_json::Value>| {
            let digest = Sha256Digest::of(bytes);
            let target = TargetPath::new(path).unwrap();
            fs::write(self.store.join(path), bytes).unwrap();
            fs::write(self.store.join(target.with_hash_prefix(&digest)), bytes).unwrap();
            targets.targets.insert(
                path.to_owned(),
                TargetFile::new(bytes.len() as u64, &digest, custom),
            );
            FileRef {
                path: target,
                length: bytes.len() as u64,
                sha256: digest,
            }
        };
        custom.manifest = place(&manifest_path, &manifest_bytes, manifest_custom);
        place(&package_path, &package, Some(custom.to_custom()));

        self.sign_targets(&current, targets);
    }

    /// Signs `targets` (changed from the store's `current` ones) as the
    /// next targets version with the store's keys, with the snapshot and
    /// timestamp that pin it: what a publisher that wrote these targets
    /// would have published.
    pub fn sign_targets(
        &self,
        current: &updraft_publisher::store::Current,
        mut targets: updraft_protocol::tuf::Targets,
    ) {
        use updraft_protocol::tuf::{Envelope, MetaFile, RoleName};
        let keys = updraft_publisher::keys::KeyDir::open(&self.keys).unwrap();
        let key = |role| keys.role_key(role).unwrap().key;
        targets.version += 1;
        let targets = Envelope::sign(targets, &[&key(RoleName::Targets)]);
        let mut snapshot = current.snapshot().signed.clone();
        snapshot.version += 1;
        snapshot.meta.insert(
            "targets.json".into(),
            MetaFile::pinned(targets.signed.version, &targets.to_bytes()),
        );
        let snapshot = Envelope::sign(snapshot, &[&key(RoleName::Snapshot)]);
        let mut timestamp = current.timestamp().signed.clone();
        timestamp.version += 1;
        timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile::pinned(snapshot.signed.version, &snapshot.to_bytes()),
        );
        let timestamp = Envelope::sign(timestamp, &[&key(RoleName::Timestamp)]);
        let metadata = self.store.join("metadata");
        let name = updraft_publisher::store::metadata_name;
        fs::write(
            metadata.join(name("targets", targets.signed.version, true)),
            targets.to_bytes(),
        )
        .unwrap();
        fs::write(
            metadata.join(name("snapshot", snapshot.signed.version, true)),
            snapshot.to_bytes(),
        )
        .unwrap();
        fs::write(metadata.join("timestamp.json"), timestamp.to_bytes()).unwrap();
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
