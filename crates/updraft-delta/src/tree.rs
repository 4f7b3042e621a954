//! Reading a release's files from a folder without following links out of
//! it, each checked against its signed manifest entry before it is used.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{Sha256Digest, TargetPath};

use crate::error::{Error, Result};

/// Opens `relative` inside `root` for reading without following any
/// symbolic link on the way (each folder is opened relative to the one
/// before, with `O_NOFOLLOW`), and only if it is a regular file: a link
/// planted in an install cannot make the patch read a file from elsewhere.
pub(crate) fn open_beneath(root: &Path, relative: &TargetPath) -> io::Result<File> {
    let file = open_components(root, relative)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ))
    }
}

#[cfg(unix)]
fn open_components(root: &Path, relative: &TargetPath) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, open, openat};
    let folder = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let components: Vec<&str> = relative.components().collect();
    let (last, folders) = components.split_last().ok_or(io::ErrorKind::NotFound)?;
    for name in folders {
        dir = openat(&dir, *name, folder, Mode::empty())?;
    }
    // NONBLOCK: a FIFO planted in the install cannot hang the open.
    let file = openat(
        &dir,
        *last,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    Ok(File::from(file))
}

#[cfg(not(unix))]
fn open_components(root: &Path, relative: &TargetPath) -> io::Result<File> {
    let mut path = root.to_path_buf();
    for name in relative.components() {
        path.push(name);
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
    }
    File::open(path)
}

/// Reads the whole of `entry` from `root` and checks it against the entry:
/// `Err(ModifiedOldFile)` when it is missing, a link, or differs.
pub(crate) fn read_verified(root: &Path, entry: &FileEntry, version: &str) -> Result<Vec<u8>> {
    let modified = || Error::ModifiedOldFile {
        path: entry.path.to_string(),
        version: version.to_owned(),
    };
    let mut file = open_beneath(root, &entry.path).map_err(|_| modified())?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    (&mut file)
        .take(entry.size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", root.join(entry.path.as_str()), e))?;
    if bytes.len() as u64 != entry.size || Sha256Digest::of(&bytes) != entry.sha256 {
        return Err(modified());
    }
    Ok(bytes)
}

/// A writer that hashes and counts what passes and refuses more than `limit` bytes.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    hasher: Sha256,
    pub(crate) written: u64,
    limit: u64,
    /// Why writing to `inner` failed (a full disk), to tell it from a bad patch.
    pub(crate) failed: Option<String>,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W, limit: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
            limit,
            failed: None,
        }
    }

    /// True when exactly `entry`'s bytes passed.
    pub(crate) fn matches(self, entry: &FileEntry) -> bool {
        self.written == entry.size
            && Sha256Digest::from_bytes(self.hasher.finalize().into()) == entry.sha256
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if self.written + buffer.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the manifest lists",
            ));
        }
        let n = self.inner.write(buffer).inspect_err(|e| {
            self.failed.get_or_insert_with(|| e.to_string());
        })?;
        self.hasher.update(&buffer[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
