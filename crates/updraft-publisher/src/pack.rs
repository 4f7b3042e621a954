//! Packing an app folder into a full package: one streaming pass that reads
//! each file once, hashes it for the manifest, and feeds it to tar + zstd.
//! Memory stays flat however large the app is.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use updraft_protocol::manifest::{DirEntry, FileEntry, PackageChunks, RestartPoint, SymlinkEntry};
use updraft_protocol::{Sha256Digest, TargetPath};

use crate::error::{Error, Result};

/// zstd settings for packages. The choice is measured in `docs/package-format.md`.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    /// zstd level (1–22). 19 by default.
    pub level: i32,
    /// Long-distance matching window, as a power of two. 24 (16 MiB) by
    /// default: packages are 0.7 % larger than with 27 (what `zstd --long`
    /// uses) on the PyQt5 tree, and the client's decoder needs 16 MiB instead
    /// of 128 (`docs/package-format.md`).
    pub window_log: u32,
    /// Compression threads. 1 by default: zstd's multi-threaded mode buffers
    /// whole jobs (up to 512 MiB each with a long window), so memory grows with
    /// the app; single-threaded streaming stays flat (`docs/package-format.md`).
    pub threads: u32,
    /// Modification time written for every entry (reproducible packages).
    pub mtime: u64,
    /// A new zstd frame starts at the first tar entry boundary after this
    /// many bytes of tar went into the current one ([`DEFAULT_RESTART_EVERY`]);
    /// the manifest lists where (`restarts`), so a resumed install decodes
    /// from the last one before the first file it lacks. 0: one frame.
    pub restart_every: u64,
    /// A new frame also starts once the current one holds about this many
    /// package bytes ([`DEFAULT_RESTART_OUTPUT`]; 0: no such limit): the
    /// package bytes a resume after a power loss fetches again are those
    /// from the frame's start, and data that hardly compresses would
    /// otherwise make every frame [`restart_every`](Self::restart_every)
    /// long. zstd holds its output back, so the frame's tar budget is
    /// estimated from the previous frame's ratio: data that compresses well
    /// keeps frames of `restart_every`.
    pub restart_output: u64,
}

/// Tar bytes per zstd frame, by default: 8 MiB. A resume after a power loss
/// fetches again at most about one frame's package bytes that it no longer
/// holds; each frame starts without the previous one's history, which costs
/// a little compression (`docs/package-format.md`).
pub const DEFAULT_RESTART_EVERY: u64 = 8 << 20;

/// Package bytes per zstd frame, at most about: 2 MiB. On data that does not
/// compress (media, already compressed archives) frames then hold 2 MiB of
/// tar, which costs nothing in size, and a resume after a power loss fetches
/// again on average 1 MiB of the frame it was in instead of 4
/// (`docs/package-format.md`).
pub const DEFAULT_RESTART_OUTPUT: u64 = 2 << 20;

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            level: 19,
            window_log: 24,
            threads: 1,
            mtime: 0,
            restart_every: DEFAULT_RESTART_EVERY,
            restart_output: DEFAULT_RESTART_OUTPUT,
        }
    }
}

/// One entry of a source folder, in the order it is packed.
#[derive(Debug, Clone)]
enum SourceEntry {
    Dir {
        path: TargetPath,
        mode: u32,
    },
    File {
        path: TargetPath,
        source: PathBuf,
        size: u64,
        mode: u32,
    },
    Symlink {
        path: TargetPath,
        target: String,
    },
}

/// A mode a release must not carry, and what was published instead: no
/// setuid, setgid or sticky bit, and nothing writable by group or others
/// (another user could otherwise replace a program that root runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// The entry, relative to the source folder.
    pub path: TargetPath,
    /// Its mode in the source folder.
    pub from: u32,
    /// The mode published.
    pub to: u32,
}

/// Bits a published mode never has.
const UNSAFE_MODE_BITS: u32 = 0o7022;

impl ModeChange {
    fn of(path: &TargetPath, mode: u32) -> Option<Self> {
        (mode & UNSAFE_MODE_BITS != 0).then(|| Self {
            path: path.clone(),
            from: mode,
            to: mode & !UNSAFE_MODE_BITS,
        })
    }

    /// What was wrong, in words (`setuid`, `writable by others`, ...).
    pub fn reasons(&self) -> Vec<&'static str> {
        [
            (0o4000, "setuid"),
            (0o2000, "setgid"),
            (0o1000, "sticky"),
            (0o020, "writable by its group"),
            (0o002, "writable by others"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.from & bit != 0)
        .map(|(_, reason)| reason)
        .collect()
    }
}

impl std::fmt::Display for ModeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` has mode {:04o} ({}); published as {:04o}",
            self.path,
            self.from,
            self.reasons().join(", "),
            self.to
        )
    }
}

/// A scanned app folder: validated, sorted, ready to pack.
#[derive(Debug, Clone)]
pub struct SourceTree {
    root: PathBuf,
    entries: Vec<SourceEntry>,
    mode_changes: Vec<ModeChange>,
}

impl SourceTree {
    /// Walks `root`, refusing anything a release cannot contain: a missing or
    /// empty folder, special files, names that are not portable UTF-8, and
    /// symbolic links that are absolute or lead outside the folder.
    pub fn scan(root: &Path) -> Result<Self> {
        let meta = fs::metadata(root).map_err(|_| Error::BadSource {
            path: root.to_path_buf(),
            reason: "does not exist".into(),
        })?;
        if !meta.is_dir() {
            return Err(Error::BadSource {
                path: root.to_path_buf(),
                reason: "is not a folder".into(),
            });
        }
        let mut tree = Self {
            root: root.to_path_buf(),
            entries: Vec::new(),
            mode_changes: Vec::new(),
        };
        tree.walk(root, "")?;
        if !tree
            .entries
            .iter()
            .any(|e| matches!(e, SourceEntry::File { .. }))
        {
            return Err(Error::BadSource {
                path: root.to_path_buf(),
                reason: "is empty (it holds no files)".into(),
            });
        }
        Ok(tree)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("read the folder", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read the folder", dir, e))?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| Error::BadName {
                path: entry.path(),
                reason: "its name is not valid UTF-8".into(),
            })?;
            names.push(name.to_owned());
        }
        names.sort();
        for name in names {
            let source = dir.join(&name);
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = TargetPath::new(&relative).map_err(|e| Error::BadName {
                path: source.clone(),
                reason: e.to_string(),
            })?;
            let meta =
                fs::symlink_metadata(&source).map_err(|e| Error::io("inspect", &source, e))?;
            let file_type = meta.file_type();
            if file_type.is_symlink() {
                let target =
                    fs::read_link(&source).map_err(|e| Error::io("read the link", &source, e))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| Error::BadName {
                        path: source.clone(),
                        reason: "its link target is not valid UTF-8".into(),
                    })?
                    .to_owned();
                if !link_stays_inside(&relative, &target) {
                    return Err(Error::SymlinkOutside {
                        path: source,
                        target,
                    });
                }
                self.entries.push(SourceEntry::Symlink { path, target });
            } else if file_type.is_dir() {
                let mode = self.safe_mode(&path, mode_of(&meta, 0o755));
                self.entries.push(SourceEntry::Dir { path, mode });
                self.walk(&source, &relative)?;
            } else if file_type.is_file() {
                let mode = self.safe_mode(&path, mode_of(&meta, 0o644));
                self.entries.push(SourceEntry::File {
                    path,
                    source,
                    size: meta.len(),
                    mode,
                });
            } else {
                return Err(Error::SpecialFile {
                    path: source,
                    kind: special_kind(file_type),
                });
            }
        }
        Ok(())
    }

    /// `mode` without the bits a release never carries, noting the change.
    fn safe_mode(&mut self, path: &TargetPath, mode: u32) -> u32 {
        match ModeChange::of(path, mode) {
            Some(change) => {
                let safe = change.to;
                self.mode_changes.push(change);
                safe
            }
            None => mode,
        }
    }

    /// Entries whose mode was made safe (see [`ModeChange`]), in tree order.
    pub fn mode_changes(&self) -> &[ModeChange] {
        &self.mode_changes
    }

    /// Size and (normalised) mode of the regular file `path`.
    pub fn file(&self, path: &TargetPath) -> Option<(u64, u32)> {
        self.entries.iter().find_map(|e| match e {
            SourceEntry::File {
                path: p,
                size,
                mode,
                ..
            } if p == path => Some((*size, *mode)),
            _ => None,
        })
    }

    /// The folder that was scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when `path` is a regular file of the tree.
    pub fn has_file(&self, path: &TargetPath) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, SourceEntry::File { path: p, .. } if p == path))
    }

    /// Sum of the file sizes.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                if let SourceEntry::File { size, .. } = e {
                    *size
                } else {
                    0
                }
            })
            .sum()
    }
}

/// What packing produced: the manifest entries and the package's digest.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Regular files with sizes and digests.
    pub files: Vec<FileEntry>,
    /// Folders.
    pub dirs: Vec<DirEntry>,
    /// Symbolic links.
    pub symlinks: Vec<SymlinkEntry>,
    /// Package length.
    pub length: u64,
    /// Package digest.
    pub sha256: Sha256Digest,
    /// Digests of the package's chunks.
    pub chunks: PackageChunks,
    /// Where its zstd frames start (the first, at 0, included).
    pub restarts: Vec<RestartPoint>,
}

/// The zstd side of a package: a sequence of independent frames, the next
/// one started (at a tar entry boundary) by [`restart`](Self::restart).
struct Frames<'a, W: Write> {
    encoder: Option<zstd::stream::write::Encoder<'static, &'a mut HashingWriter<W>>>,
    options: PackOptions,
    /// Tar bytes in the current frame.
    input: u64,
    /// Tar bytes the current frame may hold before the next entry starts a new one.
    budget: u64,
    /// Where the current frame starts in the package.
    start: u64,
}

impl<'a, W: Write> Frames<'a, W> {
    fn new(out: &'a mut HashingWriter<W>, options: PackOptions) -> io::Result<Self> {
        Ok(Self {
            encoder: Some(Self::encoder(out, &options)?),
            budget: Self::budget(&options, None),
            options,
            input: 0,
            start: 0,
        })
    }

    /// The tar bytes a frame may hold, given the previous frame's tar and
    /// package bytes: [`PackOptions::restart_every`], or less when the
    /// previous frame's ratio says that many tar bytes would make more than
    /// [`PackOptions::restart_output`] package bytes (the first frame is
    /// sized as if it did not compress). 0: no restarts.
    fn budget(options: &PackOptions, previous: Option<(u64, u64)>) -> u64 {
        if options.restart_every == 0 || options.restart_output == 0 {
            return options.restart_every;
        }
        let (tar, package) = previous.unwrap_or((1, 1));
        let estimate = u128::from(options.restart_output) * u128::from(tar.max(1))
            / u128::from(package.max(1));
        u64::try_from(estimate)
            .unwrap_or(u64::MAX)
            .clamp(1, options.restart_every)
    }

    fn encoder(
        out: &'a mut HashingWriter<W>,
        options: &PackOptions,
    ) -> io::Result<zstd::stream::write::Encoder<'static, &'a mut HashingWriter<W>>> {
        let mut encoder = zstd::stream::write::Encoder::new(out, options.level)?;
        encoder.include_checksum(true)?;
        encoder.long_distance_matching(true)?;
        encoder.window_log(options.window_log)?;
        if options.threads > 1 {
            encoder.multithread(options.threads)?;
        }
        Ok(encoder)
    }

    /// Ends the current frame and starts the next one when the current one
    /// holds its budget of tar bytes or more ([`Self::budget`]); returns the
    /// new frame's offset in the package.
    fn restart_if_due(&mut self) -> io::Result<Option<u64>> {
        if self.budget == 0 || self.input < self.budget {
            return Ok(None);
        }
        let out = self.take()?.finish()?;
        let offset = out.length;
        self.budget = Self::budget(&self.options, Some((self.input, offset - self.start)));
        self.encoder = Some(Self::encoder(out, &self.options)?);
        self.input = 0;
        self.start = offset;
        Ok(Some(offset))
    }

    fn take(
        &mut self,
    ) -> io::Result<zstd::stream::write::Encoder<'static, &'a mut HashingWriter<W>>> {
        self.encoder
            .take()
            .ok_or_else(|| io::Error::other("the package's encoder failed earlier"))
    }

    fn finish(mut self) -> io::Result<()> {
        self.take()?.finish().map(drop)
    }
}

impl<W: Write> Write for Frames<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| io::Error::other("the package's encoder failed earlier"))?;
        let n = encoder.write(buf)?;
        self.input += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Some(encoder) => encoder.flush(),
            None => Ok(()),
        }
    }
}

/// Streams `tree` as tar + zstd into `out`.
pub fn pack(tree: &SourceTree, out: impl Write, options: &PackOptions) -> Result<Packed> {
    let package = |e: io::Error| Error::io("write the package for", tree.root(), e);
    // Sized from the unpacked size: packages are rarely much smaller.
    let mut counted = HashingWriter::new(out, PackageChunks::size_for(tree.total_size()));
    let frames = Frames::new(&mut counted, *options).map_err(package)?;
    let mut builder = tar::Builder::new(frames);
    builder.mode(tar::HeaderMode::Deterministic);
    let (mut files, mut dirs, mut symlinks) = (Vec::new(), Vec::new(), Vec::new());
    let mut restarts = vec![RestartPoint { offset: 0, file: 0 }];
    for entry in &tree.entries {
        // Every entry's bytes (header, data, padding) are written by now.
        if let Some(offset) = builder.get_mut().restart_if_due().map_err(package)? {
            restarts.push(RestartPoint {
                offset,
                file: files.len() as u64,
            });
        }
        let mut header = tar::Header::new_gnu();
        header.set_mtime(options.mtime);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            SourceEntry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, path.as_str(), io::empty())
                    .map_err(package)?;
                dirs.push(DirEntry {
                    path: path.clone(),
                    mode: *mode,
                });
            }
            SourceEntry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path.as_str(), target)
                    .map_err(package)?;
                symlinks.push(SymlinkEntry {
                    path: path.clone(),
                    target: target.clone(),
                });
            }
            SourceEntry::File {
                path,
                source,
                size,
                mode,
            } => {
                let file = File::open(source).map_err(|e| Error::io("read", source, e))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(*size);
                let mut reader = HashingReader {
                    inner: file.take(*size),
                    hasher: Sha256::new(),
                    length: 0,
                    error: None,
                };
                let result = builder.append_data(&mut header, path.as_str(), &mut reader);
                if let Some(error) = reader.error.take() {
                    return Err(Error::io("read", source, error));
                }
                result.map_err(package)?;
                if reader.length != *size {
                    return Err(Error::ChangedWhilePacking {
                        path: source.clone(),
                        reason: format!("it shrank from {size} to {} bytes", reader.length),
                    });
                }
                let now = fs::metadata(source)
                    .map_err(|e| Error::io("inspect", source, e))?
                    .len();
                if now != *size {
                    return Err(Error::ChangedWhilePacking {
                        path: source.clone(),
                        reason: format!("its size went from {size} to {now} bytes"),
                    });
                }
                files.push(FileEntry {
                    path: path.clone(),
                    size: *size,
                    sha256: Sha256Digest::from_bytes(reader.hasher.finalize().into()),
                    mode: *mode,
                });
            }
        }
    }
    let frames = builder.into_inner().map_err(package)?;
    frames.finish().map_err(package)?;
    counted.flush().map_err(package)?;
    let (length, sha256, chunks) = counted.finish();
    Ok(Packed {
        files,
        dirs,
        symlinks,
        length,
        sha256,
        chunks,
        restarts,
    })
}

/// True when a link at `link_path` (store-relative, `/`-separated) pointing
/// to `target` resolves inside the release.
fn link_stays_inside(link_path: &str, target: &str) -> bool {
    if target.is_empty()
        || target.starts_with('/')
        || target.contains('\\')
        || target.as_bytes().get(1) == Some(&b':')
    {
        return false;
    }
    let mut stack: Vec<&str> = link_path.split('/').collect();
    stack.pop();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            other => stack.push(other),
        }
    }
    !stack.is_empty()
}

fn mode_of(meta: &fs::Metadata, fallback: u32) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fallback;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        fallback
    }
}

fn special_kind(file_type: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "named pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "device";
        }
    }
    let _ = file_type;
    "special file"
}

/// Hashes the package as a whole and in chunks of `chunk_size` bytes.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    length: u64,
    chunk_size: u64,
    chunk: Sha256,
    chunk_length: u64,
    chunks: Vec<Sha256Digest>,
}

impl<W> HashingWriter<W> {
    fn new(inner: W, chunk_size: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            length: 0,
            chunk_size,
            chunk: Sha256::new(),
            chunk_length: 0,
            chunks: Vec::new(),
        }
    }

    /// The whole digest and the chunks' digests (the last chunk closed).
    fn finish(mut self) -> (u64, Sha256Digest, PackageChunks) {
        if self.chunk_length > 0 {
            self.chunks
                .push(Sha256Digest::from_bytes(self.chunk.finalize().into()));
        }
        let chunks = PackageChunks {
            size: self.chunk_size,
            sha256: self.chunks,
        };
        (
            self.length,
            Sha256Digest::from_bytes(self.hasher.finalize().into()),
            chunks,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.length += written as u64;
        let mut rest = &buf[..written];
        while !rest.is_empty() {
            let room = usize::try_from(self.chunk_size - self.chunk_length).unwrap_or(usize::MAX);
            let (part, tail) = rest.split_at(room.min(rest.len()));
            self.chunk.update(part);
            self.chunk_length += part.len() as u64;
            if self.chunk_length == self.chunk_size {
                let done = std::mem::replace(&mut self.chunk, Sha256::new());
                self.chunks
                    .push(Sha256Digest::from_bytes(done.finalize().into()));
                self.chunk_length = 0;
            }
            rest = tail;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what passes through; remembers a read error so it can be reported
/// against the source file rather than the package.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    length: u64,
    error: Option<io::Error>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.length += n as u64;
                Ok(n)
            }
            Err(error) => {
                let copy = io::Error::new(error.kind(), error.to_string());
                self.error = Some(error);
                Err(copy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_resolve_inside() {
        assert!(link_stays_inside("bin/app", "../lib/libx.so"));
        assert!(link_stays_inside("a", "b/c"));
        assert!(!link_stays_inside("bin/app", "../../etc/passwd"));
        assert!(!link_stays_inside("app", "/etc/passwd"));
        assert!(!link_stays_inside("app", ".."));
        assert!(!link_stays_inside("lib/x", "C:/Windows"));
    }

    #[test]
    fn packing_is_reproducible_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("bin/app"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::write(src.join("data.txt"), vec![b'x'; 100_000]).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("bin/app", src.join("link")).unwrap();
        let tree = SourceTree::scan(&src).unwrap();
        let mut first = Vec::new();
        let packed = pack(
            &tree,
            &mut first,
            &PackOptions {
                level: 3,
                ..PackOptions::default()
            },
        )
        .unwrap();
        let mut second = Vec::new();
        pack(
            &tree,
            &mut second,
            &PackOptions {
                level: 3,
                ..PackOptions::default()
            },
        )
        .unwrap();
        assert_eq!(first, second, "same tree, same bytes");
        assert_eq!(packed.sha256, Sha256Digest::of(&first));
        assert_eq!(packed.length, first.len() as u64);
        packed.chunks.check("package", packed.length).unwrap();
        for (index, digest) in packed.chunks.sha256.iter().enumerate() {
            let range = packed.chunks.range(index, packed.length);
            let bytes =
                &first[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()];
            assert_eq!(*digest, Sha256Digest::of(bytes), "chunk {index}");
        }
        assert_eq!(packed.files.len(), 2);
        assert_eq!(packed.dirs.len(), 2);

        let decoder = zstd::stream::read::Decoder::new(&first[..]).unwrap();
        let mut archive = tar::Archive::new(decoder);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.contains(&"data.txt".to_string()) && names.contains(&"empty".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn frames_start_at_entry_boundaries_listed_as_restart_points() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app");
        fs::create_dir_all(src.join("a/b")).unwrap();
        for i in 0..12u8 {
            let bytes: Vec<u8> = (0..40_000u32)
                .map(|n| (n * 7 + u32::from(i)).to_le_bytes()[0])
                .collect();
            let folder = if i % 2 == 0 { "a" } else { "a/b" };
            fs::write(src.join(format!("{folder}/{i:02}")), bytes).unwrap();
        }
        let tree = SourceTree::scan(&src).unwrap();
        let options = PackOptions {
            level: 3,
            restart_every: 64 * 1024,
            ..PackOptions::default()
        };
        let mut bytes = Vec::new();
        let packed = pack(&tree, &mut bytes, &options).unwrap();
        assert!(packed.restarts.len() > 3, "{:?}", packed.restarts);
        assert_eq!(packed.restarts[0], RestartPoint { offset: 0, file: 0 });
        updraft_protocol::manifest::check_restarts(
            "package",
            &packed.restarts,
            packed.length,
            packed.files.len(),
        )
        .unwrap();
        for point in &packed.restarts {
            // Decoding from the point yields whole entries, starting with a
            // header, and the first file is the one the point names.
            let at = usize::try_from(point.offset).unwrap();
            let decoder = zstd::stream::read::Decoder::new(&bytes[at..]).unwrap();
            let mut archive = tar::Archive::new(decoder);
            let first_file = archive
                .entries()
                .unwrap()
                .map(Result::unwrap)
                .find(|e| e.header().entry_type() == tar::EntryType::Regular)
                .map(|e| e.path().unwrap().display().to_string());
            let expected = packed
                .files
                .get(usize::try_from(point.file).unwrap())
                .map(|f| f.path.as_str().to_owned());
            assert_eq!(first_file, expected, "restart at {}", point.offset);
        }
        // Without restarts: one frame, and the same files.
        let mut single = Vec::new();
        let one = pack(
            &tree,
            &mut single,
            &PackOptions {
                restart_every: 0,
                ..options
            },
        )
        .unwrap();
        assert_eq!(one.restarts.len(), 1);
        assert_eq!(one.files, packed.files);
    }

    #[test]
    fn frames_of_data_that_does_not_compress_are_cut_by_their_package_bytes() {
        const FILE: usize = 16 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let (random, repetitive) = (dir.path().join("random"), dir.path().join("repetitive"));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for (root, noisy) in [(&random, true), (&repetitive, false)] {
            fs::create_dir_all(root).unwrap();
            for i in 0..64 {
                let bytes: Vec<u8> = (0..FILE)
                    .map(|n| {
                        if noisy {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            state.to_le_bytes()[0]
                        } else {
                            b"updraft "[n % 8]
                        }
                    })
                    .collect();
                fs::write(root.join(format!("{i:02}.bin")), bytes).unwrap();
            }
        }
        let options = PackOptions {
            level: 3,
            restart_every: 256 * 1024,
            restart_output: 64 * 1024,
            ..PackOptions::default()
        };
        let frames = |root: &Path, options: &PackOptions| {
            let mut bytes = Vec::new();
            let packed = pack(&SourceTree::scan(root).unwrap(), &mut bytes, options).unwrap();
            let mut offsets: Vec<u64> = packed.restarts.iter().map(|p| p.offset).collect();
            offsets.push(packed.length);
            offsets
                .windows(2)
                .map(|w| w[1] - w[0])
                .collect::<Vec<u64>>()
        };
        // 1 MiB that does not compress: frames of about 64 KiB of package
        // (the entry that crosses the budget ends the frame), not 256 KiB.
        let noisy = frames(&random, &options);
        assert!(noisy.len() >= 12, "{noisy:?}");
        assert!(
            noisy
                .iter()
                .all(|&len| len <= 64 * 1024 + 2 * (FILE as u64 + 512)),
            "{noisy:?}"
        );
        // Without the limit the same data makes frames of 256 KiB of tar.
        let unlimited = frames(
            &random,
            &PackOptions {
                restart_output: 0,
                ..options
            },
        );
        assert!(unlimited.len() <= 5, "{unlimited:?}");
        // Data that compresses well keeps frames of `restart_every` tar bytes.
        let compressed = frames(&repetitive, &options);
        assert!(compressed.len() <= 5, "{compressed:?}");
    }
}
