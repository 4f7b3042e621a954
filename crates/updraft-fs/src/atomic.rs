use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::fault;

/// The mode of every file updraft writes ([`AtomicFile::create`],
/// [`write_atomic`]): readable by all, writable by its owner only.
pub const FILE_MODE: u32 = 0o644;
/// The mode of every folder [`create_dir_all_durable`] makes.
pub const DIR_MODE: u32 = 0o755;
/// The most a copied or installed file may have: never setuid, setgid or
/// sticky, never writable by group or others.
pub const SAFE_MODE_MASK: u32 = 0o755;

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
    /// Starts writing a new version of `path` (its folder must exist), with
    /// mode [`FILE_MODE`] whatever the umask.
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_with_mode(path, FILE_MODE)
    }

    /// Like [`create`](Self::create), with Unix permission bits for the new file
    /// (`0o600` for secrets). The mode is set at creation, so the content is
    /// never readable with wider permissions, and set again on the open file,
    /// so it is exactly `mode` whatever the umask.
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(source) = file.set_permissions(fs::Permissions::from_mode(mode)) {
                drop(file);
                let _ = fs::remove_file(&temp_path);
                return Err(Error::io("set the mode of", &temp_path, source));
            }
        }
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
/// temporary name where that is safe, else a copy through [`AtomicFile`];
/// then one rename over `to`.
///
/// A hard link shares `from`'s owner and mode, so it is made only when
/// `from` belongs to whoever owns `to`'s folder and is neither setuid,
/// setgid, sticky nor writable by group or others. The copy gets `from`'s
/// permission bits limited to [`SAFE_MODE_MASK`].
pub fn link_or_copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let temp = temp_sibling(to);
    if linking_is_safe(from, to) && fs::hard_link(from, &temp).is_ok() {
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
    let mut writer = AtomicFile::create_with_mode(to, mode & SAFE_MODE_MASK)?;
    io::copy(&mut reader, &mut writer).map_err(|source| Error::io("copy", to, source))?;
    writer.commit()
}

/// `from` may be hard-linked into `to`'s folder without giving anyone more
/// than a copy would: same owner as the folder, and a safe mode.
#[cfg(unix)]
fn linking_is_safe(from: &Path, to: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let folder = match to.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (fs::symlink_metadata(from), fs::metadata(folder)) {
        (Ok(file), Ok(folder)) => {
            file.is_file()
                && file.uid() == folder.uid()
                && file.mode() & 0o7777 & !SAFE_MODE_MASK == 0
        }
        _ => false,
    }
}

#[cfg(not(unix))]
fn linking_is_safe(_: &Path, _: &Path) -> bool {
    true
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

/// Creates `dir` and any missing parents, each with mode [`DIR_MODE`]
/// whatever the umask, fsyncing each parent that gained an entry. Returns the
/// folders it created, outermost first.
pub fn create_dir_all_durable(dir: &Path) -> Result<Vec<PathBuf>> {
    create_dir_all_durable_with_mode(dir, DIR_MODE)
}

/// Like [`create_dir_all_durable`], with Unix permission bits for the
/// folders it creates (`0o700` for private ones), exactly, whatever the
/// umask. Folders that already exist are left as they are.
pub fn create_dir_all_durable_with_mode(dir: &Path, mode: u32) -> Result<Vec<PathBuf>> {
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
        match create_dir(folder, mode) {
            Ok(()) => set_dir_mode(folder, mode)?,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Error::io("create folder", folder, source)),
        }
        fsync_parent(folder)?;
    }
    Ok(missing)
}

fn create_dir(folder: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(folder)
}

/// Sets a folder just created to exactly `mode`: `mkdir`'s mode is narrowed
/// by the umask, and a wide umask must not widen it.
fn set_dir_mode(folder: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(folder, fs::Permissions::from_mode(mode))
            .map_err(|source| Error::io("set the mode of", folder, source))?;
    }
    #[cfg(not(unix))]
    let _ = (folder, mode);
    Ok(())
}

/// Removes the temporary siblings that [`write_atomic`] (and
/// [`AtomicFile`]) leave beside `path` when their process is killed before
/// the rename (`.{name}.{pid}.{n}.tmp`), except this process's own, which
/// may be in flight. Call it only where no other live process writes `path`
/// (under the lock that guards it).
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let own = format!("{prefix}{}.", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") && !file.starts_with(&own) {
            let _ = fs::remove_file(entry.path());
        }
    }
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
    #[cfg(unix)]
    use crate::test_umask::{Umask, mode_of};

    #[test]
    fn stale_temps_of_dead_writers_are_removed_and_our_own_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"done").unwrap();
        let dead = dir.path().join(".a.json.999999999.3.tmp");
        let own = dir
            .path()
            .join(format!(".a.json.{}.7.tmp", std::process::id()));
        let other = dir.path().join(".b.json.999999999.3.tmp");
        for file in [&dead, &own, &other] {
            fs::write(file, b"half").unwrap();
        }
        remove_stale_temps(&path);
        assert!(!dead.exists(), "a killed writer's temp is removed");
        assert!(own.exists(), "this process's own may be in flight");
        assert!(
            other.exists(),
            "another file's temps are not ours to remove"
        );
        assert_eq!(fs::read(&path).unwrap(), b"done");
    }

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

    #[cfg(unix)]
    #[test]
    fn folders_and_files_get_their_modes_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for mask in [0o000, 0o077] {
            let _umask = Umask::set(mask);
            let base = root.join(format!("umask-{mask:o}"));
            create_dir_all_durable(&base.join("a/b")).unwrap();
            create_dir_all_durable_with_mode(&base.join("private"), 0o700).unwrap();
            write_atomic(&base.join("a/state.json"), b"{}").unwrap();
            let mut secret = AtomicFile::create_with_mode(&base.join("key"), 0o600).unwrap();
            secret.write_all(b"secret").unwrap();
            secret.commit().unwrap();
            drop(crate::StoreLock::try_acquire(&base.join("lock")).unwrap());
            for (path, expected) in [
                (base.clone(), 0o755),
                (base.join("a"), 0o755),
                (base.join("a/b"), 0o755),
                (base.join("private"), 0o700),
                (base.join("a/state.json"), 0o644),
                (base.join("key"), 0o600),
                (base.join("lock"), 0o600),
            ] {
                assert_eq!(
                    mode_of(&path),
                    expected,
                    "{} under umask {mask:o}",
                    path.display()
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_setuid_or_world_writable_program_is_copied_with_a_safe_mode_never_linked() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        for mode in [0o4755, 0o2755, 0o777, 0o1775] {
            let program = dir.path().join(format!("updraft-{mode:o}"));
            fs::write(&program, b"#!/bin/sh\n").unwrap();
            fs::set_permissions(&program, fs::Permissions::from_mode(mode)).unwrap();
            let dest = dir.path().join("bin/updraft");
            link_or_copy_atomic(&program, &dest).unwrap();
            assert_eq!(mode_of(&dest), mode & 0o755, "from {mode:o}");
            assert_ne!(
                fs::metadata(&dest).unwrap().ino(),
                fs::metadata(&program).unwrap().ino(),
                "a {mode:o} program is copied, not linked"
            );
            assert_eq!(mode_of(&program), mode, "the original is untouched");
        }
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
