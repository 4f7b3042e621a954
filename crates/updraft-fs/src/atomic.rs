use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::fault;

/// A file being written next to its destination; it replaces the destination
/// only when [`commit`](Self::commit) succeeds, and is removed if dropped
/// before that.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    temp_path: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing a new version of `path` (its folder must exist).
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_with_mode(path, 0o644)
    }

    /// Like [`create`](Self::create), with Unix permission bits for the new file
    /// (`0o600` for secrets). The mode is set at creation, so the content is
    /// never readable with wider permissions.
    pub fn create_with_mode(path: &Path, mode: u32) -> Result<Self> {
        let temp_path = temp_sibling(path);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let file = options
            .open(&temp_path)
            .map_err(|source| Error::io("create", &temp_path, source))?;
        Ok(Self {
            file: Some(file),
            temp_path,
            path: path.to_path_buf(),
        })
    }

    /// The destination this file will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the content to disk, renames it over the destination and makes
    /// the rename durable.
    pub fn commit(mut self) -> Result<()> {
        let file = self
            .file
            .take()
            .expect("file is present until commit or drop");
        file.sync_all()
            .map_err(|source| Error::io("fsync", &self.temp_path, source))?;
        drop(file);
        fs::rename(&self.temp_path, &self.path)
            .map_err(|source| Error::io("rename into place", &self.path, source))?;
        fsync_parent(&self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fault::charge_write(buf.len())?;
        self.file
            .as_mut()
            .expect("file is present until commit or drop")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("file is present until commit or drop")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover temp file is harmless and cleaned by its owner's recovery.
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|source| Error::io("write", path, source))?;
    file.commit()
}

/// Renames `from` to `to` (a file or a whole folder, in one folder of one
/// file system) and makes the rename durable.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| Error::io("move into place", to, source))?;
    fsync_parent(to)
}

/// Puts `from` at `to` atomically and durably: a hard link under a
/// temporary name where the file system allows, else a copy (with `from`'s
/// permission bits) through [`AtomicFile`]; then one rename over `to`.
pub fn link_or_copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let temp = temp_sibling(to);
    if fs::hard_link(from, &temp).is_ok() {
        if let Err(source) = fs::rename(&temp, to) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io("rename into place", to, source));
        }
        return fsync_parent(to);
    }
    let mut reader = File::open(from).map_err(|source| Error::io("open", from, source))?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        reader
            .metadata()
            .map_err(|source| Error::io("inspect", from, source))?
            .permissions()
            .mode()
    };
    #[cfg(not(unix))]
    let mode = 0o755;
    let mut writer = AtomicFile::create_with_mode(to, mode & 0o7777)?;
    io::copy(&mut reader, &mut writer).map_err(|source| Error::io("copy", to, source))?;
    writer.commit()
}

/// Makes the entries of folder `dir` (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|source| Error::io("open folder", dir, source))?;
        handle
            .sync_all()
            .map_err(|source| Error::io("fsync folder", dir, source))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

pub(crate) fn fsync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent),
        _ => fsync_dir(Path::new(".")),
    }
}

/// Creates `dir` and any missing parents, fsyncing each parent that gained an
/// entry. Returns the folders it created, outermost first.
pub fn create_dir_all_durable(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(current) = cursor {
        if current.as_os_str().is_empty() || current.exists() {
            break;
        }
        missing.push(current.to_path_buf());
        cursor = current.parent();
    }
    missing.reverse();
    for folder in &missing {
        match fs::create_dir(folder) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Error::io("create folder", folder, source)),
        }
        fsync_parent(folder)?;
    }
    Ok(missing)
}

fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_file_leaves_the_destination_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        {
            let mut file = AtomicFile::create(&path).unwrap();
            file.write_all(b"new").unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temp file is removed"
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let mut file = AtomicFile::create_with_mode(&path, 0o600).unwrap();
        file.write_all(b"secret").unwrap();
        file.commit().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_placed_copy_keeps_the_content_and_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("updraft");
        fs::write(&program, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let dest = dir.path().join("bin");
        fs::create_dir(&dest).unwrap();
        let dest = dest.join("updraft");
        write_atomic(&dest, b"old").unwrap();
        link_or_copy_atomic(&program, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn create_dir_all_reports_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let made = create_dir_all_durable(&dir.path().join("a/b/c")).unwrap();
        assert_eq!(
            made,
            vec![
                dir.path().join("a"),
                dir.path().join("a/b"),
                dir.path().join("a/b/c")
            ]
        );
        assert!(
            create_dir_all_durable(&dir.path().join("a/b"))
                .unwrap()
                .is_empty()
        );
    }
}
