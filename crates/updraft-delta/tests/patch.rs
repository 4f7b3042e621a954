//! Tree patches end to end: made from two folders and their manifests,
//! applied into a fresh folder through `updraft_package::Unpack`.

use std::path::Path;

use proptest::prelude::*;
use updraft_delta::{Engine, Error, MakeOptions, Release};
use updraft_protocol::manifest::{DirEntry, FileEntry, SymlinkEntry};
use updraft_protocol::{ReleaseManifest, Sha256Digest, TargetPath};

/// Writes `files` (path, bytes) and `links` into `root` and returns its manifest.
fn release(
    root: &Path,
    version: &str,
    files: &[(&str, Vec<u8>)],
    links: &[(&str, &str)],
) -> ReleaseManifest {
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, bytes).unwrap();
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        entries.push(FileEntry {
            path: TargetPath::new(path).unwrap(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes),
            mode: 0o644,
        });
    }
    let mut symlinks = Vec::new();
    for (path, target) in links {
        std::os::unix::fs::symlink(target, root.join(path)).unwrap();
        symlinks.push(SymlinkEntry {
            path: TargetPath::new(path).unwrap(),
            target: (*target).to_owned(),
        });
    }
    entries.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    let dirs: Vec<DirEntry> = dirs
        .into_iter()
        .map(|d| DirEntry {
            path: TargetPath::new(&d).unwrap(),
            mode: 0o755,
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "format_version": 1, "app": "demo", "version": version, "channel": "stable",
        "platform": "linux", "arch": "x86_64", "main": "bin/app",
        "release_date": "2026-01-01T00:00:00Z", "files": entries, "dirs": dirs, "symlinks": symlinks,
    }))
    .unwrap()
}

fn digest(manifest: &ReleaseManifest) -> Sha256Digest {
    Sha256Digest::of(&serde_json::to_vec(manifest).unwrap())
}

struct Pair {
    _dir: tempfile::TempDir,
    old_root: std::path::PathBuf,
    new_root: std::path::PathBuf,
    out: std::path::PathBuf,
    old: ReleaseManifest,
    new: ReleaseManifest,
}

impl Pair {
    fn new(
        old_files: &[(&str, Vec<u8>)],
        new_files: &[(&str, Vec<u8>)],
        links: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (old_root, new_root, out) = (
            dir.path().join("old"),
            dir.path().join("new"),
            dir.path().join("out"),
        );
        let old = release(&old_root, "1.0.0", old_files, &[]);
        let new = release(&new_root, "1.1.0", new_files, links);
        Self {
            _dir: dir,
            old_root,
            new_root,
            out,
            old,
            new,
        }
    }

    fn old_release(&self) -> Release<'_> {
        Release {
            root: &self.old_root,
            manifest: &self.old,
            manifest_sha256: digest(&self.old),
        }
    }

    fn make(&self) -> (Vec<u8>, updraft_delta::MakeReport) {
        let mut patch = Vec::new();
        let new = Release {
            root: &self.new_root,
            manifest: &self.new,
            manifest_sha256: digest(&self.new),
        };
        let report = updraft_delta::make(
            &self.old_release(),
            &new,
            &MakeOptions {
                level: 3,
                ..MakeOptions::default()
            },
            &mut patch,
        )
        .unwrap();
        assert_eq!(report.length, patch.len() as u64);
        (patch, report)
    }

    fn apply(&self, patch: &[u8]) -> Result<updraft_delta::ApplyReport, Error> {
        let _ = std::fs::remove_dir_all(&self.out);
        updraft_package::create_root(&self.out).unwrap();
        let mut sink = updraft_package::Unpack::new(&self.out);
        updraft_delta::apply(
            patch,
            &self.old_release(),
            &self.new,
            digest(&self.new),
            &mut sink,
        )
    }

    /// The rebuilt folder holds exactly the new release.
    fn assert_rebuilt(&self) {
        for file in &self.new.files {
            assert_eq!(
                std::fs::read(self.out.join(file.path.as_str())).unwrap(),
                std::fs::read(self.new_root.join(file.path.as_str())).unwrap(),
                "{}",
                file.path
            );
        }
        for link in &self.new.symlinks {
            assert_eq!(
                std::fs::read_link(self.out.join(link.path.as_str())).unwrap(),
                Path::new(&link.target)
            );
        }
        let count = walk(&self.out);
        assert_eq!(
            count,
            self.new.files.len() + self.new.symlinks.len(),
            "nothing extra"
        );
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[allow(clippy::cast_possible_truncation)] // bytes on purpose
fn program(seed: u32, len: usize) -> Vec<u8> {
    // Code-like bytes: repeated instruction patterns with varying offsets.
    (0..len)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            if i % 16 < 4 {
                (i / 16).wrapping_mul(seed) as u8
            } else {
                (i % 16) as u8 ^ 0x48
            }
        })
        .collect()
}

#[test]
fn reuses_moves_patches_and_adds_files() {
    let big = program(7, 300_000);
    let mut big_new = big.clone();
    big_new[1000..1010].copy_from_slice(b"0123456789");
    big_new.extend_from_slice(b"a new tail");
    let pair = Pair::new(
        &[
            ("bin/app", big.clone()),
            ("lib/same.so", program(3, 50_000)),
            ("lib/moved.dat", b"moved without change".repeat(100)),
            ("gone.txt", b"removed in 1.1".to_vec()),
        ],
        &[
            ("bin/app", big_new),
            ("lib/same.so", program(3, 50_000)),
            ("share/moved.dat", b"moved without change".repeat(100)),
            ("share/new.txt", b"brand new".to_vec()),
            ("empty", Vec::new()),
        ],
        &[("bin/link", "app")],
    );
    let (patch, report) = pair.make();
    assert_eq!(report.files.get(&Engine::Reuse), Some(&2), "{report:?}");
    assert!(
        patch.len() < 2_000,
        "a 300 kB program with a small edit patches small: {} bytes",
        patch.len()
    );
    let applied = pair.apply(&patch).unwrap();
    assert_eq!(applied.reused_files, 2);
    pair.assert_rebuilt();
}

#[test]
fn a_corrupt_patch_is_an_error_never_a_wrong_file() {
    let old = program(5, 100_000);
    let mut new = old.clone();
    new[50_000] ^= 1;
    let pair = Pair::new(&[("bin/app", old)], &[("bin/app", new)], &[]);
    let (patch, _) = pair.make();
    // Every byte of the header and a sample of the body flipped, then truncations.
    for i in (0..patch.len()).step_by(7) {
        let mut bad = patch.clone();
        bad[i] ^= 0x5a;
        // A flip zstd and bsdiff cannot notice is still caught by the digests.
        assert!(
            pair.apply(&bad).is_err(),
            "a patch with byte {i} flipped applied"
        );
    }
    for cut in [0, 10, 20, patch.len() / 2, patch.len() - 1] {
        let error = pair.apply(&patch[..cut]).unwrap_err();
        assert!(
            matches!(error, Error::Corrupt(_) | Error::OutputMismatch { .. }),
            "{error}"
        );
    }
    let mut longer = patch.clone();
    longer.push(0);
    assert!(matches!(
        pair.apply(&longer).unwrap_err(),
        Error::Corrupt(_)
    ));
    pair.apply(&patch).unwrap();
    pair.assert_rebuilt();
}

#[test]
fn a_modified_installed_file_is_named() {
    let pair = Pair::new(
        &[
            ("bin/app", program(5, 20_000)),
            ("data/keep.txt", b"unchanged".to_vec()),
        ],
        &[
            ("bin/app", program(6, 20_000)),
            ("data/keep.txt", b"unchanged".to_vec()),
        ],
        &[],
    );
    let (patch, _) = pair.make();
    std::fs::write(pair.old_root.join("data/keep.txt"), b"changed by the user").unwrap();
    let error = pair.apply(&patch).unwrap_err();
    assert!(error.is_modified_install(), "{error}");
    assert!(error.to_string().contains("`data/keep.txt`"), "{error}");
    std::fs::write(pair.old_root.join("data/keep.txt"), b"unchanged").unwrap();
    let mut program_bytes = program(5, 20_000);
    program_bytes[0] ^= 1;
    std::fs::write(pair.old_root.join("bin/app"), program_bytes).unwrap();
    let error = pair.apply(&patch).unwrap_err();
    assert!(error.to_string().contains("`bin/app`"), "{error}");
}

#[test]
fn a_link_planted_in_the_install_is_not_followed() {
    let pair = Pair::new(
        &[("data/keep.txt", b"unchanged".to_vec())],
        &[("data/keep.txt", b"unchanged".to_vec())],
        &[],
    );
    let (patch, _) = pair.make();
    // The same bytes elsewhere, reached through a link: still refused.
    let outside = pair.old_root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), b"unchanged").unwrap();
    std::fs::remove_dir_all(pair.old_root.join("data")).unwrap();
    std::os::unix::fs::symlink(&outside, pair.old_root.join("data")).unwrap();
    let error = pair.apply(&patch).unwrap_err();
    assert!(error.is_modified_install(), "{error}");
}

#[test]
fn a_patch_for_other_releases_is_refused() {
    let pair = Pair::new(&[("a", b"one".to_vec())], &[("a", b"two".to_vec())], &[]);
    let (patch, _) = pair.make();
    let mut other = pair.new.clone();
    other.files[0].mode = 0o600;
    updraft_package::create_root(&pair.out).unwrap();
    let mut sink = updraft_package::Unpack::new(&pair.out);
    let error = updraft_delta::apply(
        patch.as_slice(),
        &pair.old_release(),
        &other,
        digest(&other),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(error, Error::WrongRelease(_)), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_pair_of_trees_round_trips(
        old in proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2})?", proptest::collection::vec(0u8..8, 0..3000), 0..6),
        changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..10),
        added in proptest::collection::btree_map("[d-e]{1,2}", proptest::collection::vec(any::<u8>(), 0..500), 0..3),
    ) {
        // Paths that are both a file and a folder cannot exist: keep the first.
        let mut old: Vec<(String, Vec<u8>)> = old.into_iter().collect();
        let names: Vec<String> = old.iter().map(|(p, _)| p.clone()).collect();
        old.retain(|(p, _)| !names.iter().any(|q| q.starts_with(&format!("{p}/")) ) && !names.iter().any(|q| p.starts_with(&format!("{q}/"))));
        let mut new = old.clone();
        for (at, byte) in changes {
            if new.is_empty() { break; }
            let n = at % new.len();
            let bytes = &mut new[n].1;
            if bytes.is_empty() { bytes.push(byte) } else { let i = at % bytes.len(); bytes[i] = byte; }
        }
        if new.len() > 1 { new.remove(0); }
        new.extend(added);
        let pair = Pair::new(&as_refs(&old), &as_refs(&new), &[]);
        let (patch, _) = pair.make();
        pair.apply(&patch).unwrap();
        pair.assert_rebuilt();
    }
}

fn as_refs(v: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    v.iter().map(|(p, b)| (p.as_str(), b.clone())).collect()
}
