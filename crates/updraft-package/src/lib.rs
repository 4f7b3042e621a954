//! Reading an updraft package (tar + zstd) against its signed manifest.
//!
//! [`walk`] is the one place that decides whether a package matches its
//! manifest: every path is checked before anything is done with it (no `..`,
//! absolute paths or drive prefixes), every entry must be listed with the same
//! type, size, SHA-256, mode or link target, nothing listed may be missing,
//! and hard links, devices and other special entries are refused. What happens
//! to the bytes is up to the [`Sink`]: `repo verify` only hashes them
//! ([`CheckOnly`]), the client writes them into a fresh folder ([`Unpack`]),
//! as they are downloaded ([`walk_reader`]).
//!
//! ```no_run
//! # fn demo(manifest: &updraft_protocol::ReleaseManifest) -> Result<(), String> {
//! updraft_package::walk(std::path::Path::new("app.tar.zst"), manifest, &mut updraft_package::CheckOnly)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{ReleaseManifest, Sha256Digest, TargetPath};

mod backlog;
mod os;
mod unpack;

pub use backlog::Backlog;
pub use unpack::{SAFE_MODE_MASK, Unpack, create_root};

/// Most entries a package may have.
pub const MAX_ENTRIES: usize = 1_000_000;

/// What to do with each checked entry. Errors are one sentence naming the entry.
pub trait Sink {
    /// A folder listed in the manifest.
    fn dir(&mut self, path: &TargetPath, mode: u32) -> Result<(), String>;
    /// Where a listed file's bytes go; they are hashed on the way.
    fn open_file(
        &mut self,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> Result<Box<dyn Write + '_>, String>;
    /// The file's bytes all arrived and matched the manifest.
    fn close_file(&mut self, path: &TargetPath, entry: &FileEntry) -> Result<(), String>;
    /// A symbolic link listed in the manifest with this target.
    fn symlink(&mut self, path: &TargetPath, target: &str) -> Result<(), String>;
    /// A walk that starts at a restart point keeps file `index` of the
    /// manifest (in package order), which lies before it: the sink must
    /// check that it is in place and intact (size and SHA-256), or fail. By
    /// default a sink cannot resume.
    fn kept_file(
        &mut self,
        index: usize,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> Result<(), String> {
        let _ = (index, entry);
        Err(format!(
            "cannot keep `{path}`: this walk cannot start at a restart point"
        ))
    }
}

/// A sink that only checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOnly;

impl Sink for CheckOnly {
    fn dir(&mut self, _: &TargetPath, _: u32) -> Result<(), String> {
        Ok(())
    }
    fn open_file(&mut self, _: &TargetPath, _: &FileEntry) -> Result<Box<dyn Write + '_>, String> {
        Ok(Box::new(io::sink()))
    }
    fn close_file(&mut self, _: &TargetPath, _: &FileEntry) -> Result<(), String> {
        Ok(())
    }
    fn symlink(&mut self, _: &TargetPath, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Streams `package` through `sink`, checking every entry against `manifest`.
pub fn walk(
    package: &Path,
    manifest: &ReleaseManifest,
    sink: &mut impl Sink,
) -> Result<(), String> {
    let file = std::fs::File::open(package).map_err(|e| format!("cannot read the package: {e}"))?;
    walk_reader(file, manifest, sink)
}

/// Streams the package bytes `package` yields through `sink`, checking every
/// entry against `manifest`, as they arrive: a reader that blocks until the
/// next bytes are downloaded lets unpacking overlap the download. Reads the
/// package to its end, so a reader that hashes what passes sees every byte.
pub fn walk_reader(
    package: impl Read,
    manifest: &ReleaseManifest,
    sink: &mut impl Sink,
) -> Result<(), String> {
    walk_reader_with(package, manifest, sink, FileDigests::Check)
}

/// Whether a walk hashes every file against the manifest's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDigests {
    /// Hash every file and compare: the package bytes are not yet trusted.
    Check,
    /// The package bytes were each checked against signed chunk digests
    /// before the walk read them (the manifest's `chunks`), so the files they
    /// hold are exactly what was signed: hashing them again would only cost
    /// time. Paths, types, sizes, modes and link targets are still checked.
    CoveredByChunks,
}

/// [`walk_reader`], saying whether the package's bytes are already
/// authenticated ([`FileDigests::CoveredByChunks`]).
pub fn walk_reader_with(
    package: impl Read,
    manifest: &ReleaseManifest,
    sink: &mut impl Sink,
    digests: FileDigests,
) -> Result<(), String> {
    walk_reader_from(package, manifest, sink, digests, None)
}

/// [`walk_reader_with`] from a restart point of the manifest (`from`), or
/// from the package's start (`None`). `package` yields the package's bytes
/// from the point's offset on. The files before the point are the sink's to
/// check ([`Sink::kept_file`]: [`Unpack`] hashes them unless
/// [`Unpack::verify_prefix`] did); the folders are made again before the
/// walk, and the links after it; every entry from the point on is checked
/// as in a whole walk, and nothing may be missing at the end.
pub fn walk_reader_from(
    package: impl Read,
    manifest: &ReleaseManifest,
    sink: &mut impl Sink,
    digests: FileDigests,
    from: Option<updraft_protocol::manifest::RestartPoint>,
) -> Result<(), String> {
    let kept = match from {
        Some(point) => {
            if !manifest.restarts.contains(&point) {
                return Err(format!(
                    "byte {} is not a restart point of the manifest",
                    point.offset
                ));
            }
            usize::try_from(point.file)
                .ok()
                .filter(|&n| n <= manifest.files.len())
                .ok_or_else(|| format!("restart point {} is past the last file", point.file))?
        }
        None => 0,
    };
    if from.is_some() {
        for dir in &manifest.dirs {
            sink.dir(&dir.path, dir.mode)?;
        }
        for (index, file) in manifest.files[..kept].iter().enumerate() {
            sink.kept_file(index, &file.path, file)?;
        }
    }
    let mut decoder = zstd::stream::read::Decoder::new(package)
        .map_err(|e| format!("the package is not zstd: {e}"))?;
    decoder.window_log_max(27).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(decoder);
    walk_archive(&mut archive, manifest, sink, digests, kept)?;
    if from.is_some() {
        for link in &manifest.symlinks {
            sink.symlink(&link.path, &link.target)?;
        }
    }
    // Whatever follows the tar's end (its zero blocks, the zstd checksum)
    // still belongs to the signed package.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| format!("the package is corrupt: {e}"))?;
    Ok(())
}

fn walk_archive<R: Read>(
    archive: &mut tar::Archive<R>,
    manifest: &ReleaseManifest,
    sink: &mut impl Sink,
    digests: FileDigests,
    kept: usize,
) -> Result<(), String> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut files: BTreeMap<&str, &FileEntry> = manifest.files[kept..]
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let links: BTreeMap<&str, &str> = manifest
        .symlinks
        .iter()
        .map(|l| (l.path.as_str(), l.target.as_str()))
        .collect();
    let dirs: BTreeMap<&str, u32> = manifest
        .dirs
        .iter()
        .map(|d| (d.path.as_str(), d.mode))
        .collect();
    let mut seen = 0usize;
    for entry in archive
        .entries()
        .map_err(|e| format!("the package is not a tar archive: {e}"))?
    {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Err("the package has too many entries".into());
        }
        let mut entry = entry.map_err(|e| format!("the package is corrupt: {e}"))?;
        let raw = entry
            .path()
            .map_err(|e| format!("an entry has a bad path: {e}"))?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let path = TargetPath::new(&raw).map_err(|e| format!("refusing entry `{raw}`: {e}"))?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                let mode = dirs
                    .get(path.as_str())
                    .ok_or_else(|| format!("refusing folder `{raw}`: not in the manifest"))?;
                sink.dir(&path, *mode)?;
            }
            tar::EntryType::Regular => {
                let expected = files
                    .remove(path.as_str())
                    .ok_or_else(|| format!("refusing file `{raw}`: not in the manifest"))?;
                let mode = entry.header().mode().unwrap_or(0) & 0o7777;
                if mode != expected.mode {
                    return Err(format!(
                        "`{raw}` has mode {mode:o} in the package but {:o} in the manifest",
                        expected.mode
                    ));
                }
                let out = sink.open_file(&path, expected)?;
                copy_checked(&raw, &mut entry, expected, out, digests, &mut buffer)?;
                sink.close_file(&path, expected)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if links.get(path.as_str()) != Some(&target.as_str()) {
                    return Err(format!(
                        "refusing link `{raw}` -> `{target}`: not in the manifest"
                    ));
                }
                sink.symlink(&path, &target)?;
            }
            other => {
                return Err(format!(
                    "refusing `{raw}`: entries of type {other:?} (hard links, devices) are never installed"
                ));
            }
        }
    }
    if let Some(missing) = files.keys().next() {
        return Err(format!(
            "the package lacks `{missing}`, which the manifest lists"
        ));
    }
    Ok(())
}

/// Copies one file's bytes to `out`, never more than the manifest's size, and
/// checks size and (unless the bytes are covered by chunk digests) SHA-256 at
/// the end.
fn copy_checked(
    raw: &str,
    entry: &mut impl Read,
    expected: &FileEntry,
    mut out: Box<dyn Write + '_>,
    digests: FileDigests,
    buffer: &mut [u8],
) -> Result<(), String> {
    let mut hasher = (digests == FileDigests::Check).then(Sha256::new);
    let mut written = 0u64;
    let mut limited = entry.take(expected.size + 1);
    loop {
        let n = limited
            .read(buffer)
            .map_err(|e| format!("cannot unpack `{raw}`: {e}"))?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > expected.size {
            return Err(format!("`{raw}` is larger than the manifest says"));
        }
        if let Some(hasher) = &mut hasher {
            hasher.update(&buffer[..n]);
        }
        out.write_all(&buffer[..n])
            .map_err(|e| format!("cannot write `{raw}`: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write `{raw}`: {e}"))?;
    if written != expected.size
        || hasher.is_some_and(|h| Sha256Digest::from_bytes(h.finalize().into()) != expected.sha256)
    {
        return Err(format!("`{raw}` differs from the signed manifest"));
    }
    Ok(())
}
