//! The delta engine on two folders, for `bench/delta.sh`:
//!
//! ```text
//! delta make OLD_DIR NEW_DIR PATCH [LEVEL]   writes PATCH and PATCH.manifests.json
//! delta apply OLD_DIR PATCH OUT_DIR          rebuilds the new folder into OUT_DIR
//! ```
//!
//! The manifests are made by scanning the folders (the publisher's are
//! signed; here they are only written beside the patch).

use std::path::Path;
use std::time::Instant;

use updraft_protocol::manifest::{DirEntry, FileEntry, SymlinkEntry};
use updraft_protocol::{ReleaseManifest, Sha256Digest, TargetPath};

fn scan(root: &Path, version: &str) -> ReleaseManifest {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut symlinks = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let target_path = TargetPath::new(&relative).unwrap();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                symlinks.push(SymlinkEntry {
                    path: target_path,
                    target,
                });
            } else if meta.is_dir() {
                dirs.push(DirEntry {
                    path: target_path,
                    mode: meta.permissions().mode() & 0o755,
                });
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push(FileEntry {
                    path: target_path,
                    size: bytes.len() as u64,
                    sha256: Sha256Digest::of(&bytes),
                    mode: meta.permissions().mode() & 0o755,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    dirs.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    symlinks.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    let manifest = serde_json::json!({
        "format_version": 1, "app": "bench", "version": version, "channel": "stable",
        "platform": "linux", "arch": "x86_64", "main": files.first().map_or("x", |f| f.path.as_str()),
        "release_date": "2026-01-01T00:00:00Z", "files": files, "dirs": dirs, "symlinks": symlinks,
    });
    serde_json::from_value(manifest).unwrap()
}

fn digest(manifest: &ReleaseManifest) -> Sha256Digest {
    Sha256Digest::of(&serde_json::to_vec(manifest).unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("make") => {
            let (old_dir, new_dir, patch) = (Path::new(&args[1]), Path::new(&args[2]), &args[3]);
            let level = args.get(4).map_or(19, |l| l.parse().unwrap());
            let (old, new) = (scan(old_dir, "1.0.0"), scan(new_dir, "1.0.1"));
            let started = Instant::now();
            let mut out = std::io::BufWriter::new(std::fs::File::create(patch).unwrap());
            let report = updraft_delta::make(
                &updraft_delta::Release {
                    root: old_dir,
                    manifest: &old,
                    manifest_sha256: digest(&old),
                },
                &updraft_delta::Release {
                    root: new_dir,
                    manifest: &new,
                    manifest_sha256: digest(&new),
                },
                &updraft_delta::MakeOptions {
                    level,
                    ..Default::default()
                },
                &mut out,
            )
            .unwrap();
            std::fs::write(
                format!("{patch}.manifests.json"),
                serde_json::to_vec(&(&old, &new)).unwrap(),
            )
            .unwrap();
            eprintln!(
                "{} bytes, {} segments, files {:?}, bytes {:?}, {:.2} s",
                report.length,
                report.segments,
                report.files,
                report.bytes,
                started.elapsed().as_secs_f64()
            );
        }
        Some("apply") => {
            let (old_dir, patch, out_dir) = (Path::new(&args[1]), &args[2], Path::new(&args[3]));
            let (old, new): (ReleaseManifest, ReleaseManifest) =
                serde_json::from_slice(&std::fs::read(format!("{patch}.manifests.json")).unwrap())
                    .unwrap();
            updraft_package::create_root(out_dir).unwrap();
            let mut sink = updraft_package::Unpack::new(out_dir);
            let report = updraft_delta::apply(
                std::fs::File::open(patch).unwrap(),
                &updraft_delta::Release {
                    root: old_dir,
                    manifest: &old,
                    manifest_sha256: digest(&old),
                },
                &new,
                digest(&new),
                &mut sink,
            )
            .unwrap();
            eprintln!("{report:?}");
        }
        _ => {
            eprintln!("usage: delta make OLD NEW PATCH [LEVEL] | delta apply OLD PATCH OUT");
            std::process::exit(2);
        }
    }
}
