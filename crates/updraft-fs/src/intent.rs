//! A one-file journal for a change made in several steps, and an atomic
//! symlink replace, the two primitives the installer's switch is built on.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::{fsync_parent, write_atomic};
use crate::error::{Error, Result};

/// A durable record of a change about to be made in several steps, written
/// before the first step and committed, by one rename over `target`, after
/// the last. A process killed in between leaves the record
/// [`pending`](Self::pending); its recovery decides from the record whether
/// the steps completed, then [`commit`](Self::commit)s or
/// [`discard`](Self::discard)s it.
///
/// The record and `target` must be in the same folder.
///
/// ```
/// # fn main() -> Result<(), updraft_fs::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let intent = updraft_fs::Intent::new(dir.path().join("state.next.json"), dir.path().join("state.json"));
/// intent.write(b"{\"version\": 2}")?;
/// // ... the steps the record describes ...
/// assert!(intent.pending()?.is_some());
/// intent.commit()?;
/// assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"{\"version\": 2}");
/// assert!(intent.pending()?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Intent {
    record: PathBuf,
    target: PathBuf,
}

impl Intent {
    /// An intent recorded at `record` that, once committed, replaces `target`.
    pub fn new(record: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Self {
            record: record.into(),
            target: target.into(),
        }
    }

    /// Writes the record durably (temp file, fsync, rename, fsync the folder).
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.record, bytes)
    }

    /// The record left by a change that was neither committed nor discarded.
    pub fn pending(&self) -> Result<Option<Vec<u8>>> {
        match fs::read(&self.record) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::io("read", &self.record, source)),
        }
    }

    /// Makes the record the new `target`, durably: the change is done.
    pub fn commit(&self) -> Result<()> {
        fs::rename(&self.record, &self.target)
            .map_err(|source| Error::io("commit", &self.target, source))?;
        fsync_parent(&self.target)
    }

    /// Removes the record, durably: the change never happened.
    pub fn discard(&self) -> Result<()> {
        fs::remove_file(&self.record)
            .map_err(|source| Error::io("remove", &self.record, source))?;
        fsync_parent(&self.record)
    }
}

/// The temporary name [`replace_symlink`] creates beside `link`:
/// `.{name}.new`. One left behind by a killed process is removed by the next
/// replace, or by [`discard_symlink_temp`].
pub fn symlink_temp(link: &Path) -> PathBuf {
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    link.with_file_name(format!(".{name}.new"))
}

/// Points the symlink `link` at `target` with one atomic rename, durably:
/// whoever follows `link` sees the old target or the new one, never
/// nothing. (Unix only: on Windows the equivalent is a directory junction
/// renamed with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)`.)
#[cfg(unix)]
pub fn replace_symlink(link: &Path, target: &Path) -> Result<()> {
    let temp = symlink_temp(link);
    let _ = fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)
        .map_err(|source| Error::io("create the link", &temp, source))?;
    fs::rename(&temp, link).map_err(|source| Error::io("switch", link, source))?;
    fsync_parent(link)
}

/// Removes the temporary link an interrupted [`replace_symlink`] left beside
/// `link`; returns true when there was one.
pub fn discard_symlink_temp(link: &Path) -> Result<bool> {
    let temp = symlink_temp(link);
    if fs::symlink_metadata(&temp).is_err() {
        return Ok(false);
    }
    fs::remove_file(&temp).map_err(|source| Error::io("remove", &temp, source))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_intent_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.json");
        write_atomic(&target, b"old").unwrap();
        let intent = Intent::new(dir.path().join("state.next.json"), &target);
        assert!(intent.pending().unwrap().is_none());
        intent.write(b"new").unwrap();
        assert_eq!(intent.pending().unwrap().as_deref(), Some(&b"new"[..]));
        intent.discard().unwrap();
        assert!(intent.pending().unwrap().is_none());
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_replaced_and_a_leftover_temp_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        replace_symlink(&link, Path::new("versions/1.0.0")).unwrap();
        replace_symlink(&link, Path::new("versions/1.1.0")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("versions/1.1.0"));
        assert_eq!(symlink_temp(&link), dir.path().join(".current.new"));
        assert!(!discard_symlink_temp(&link).unwrap());
        std::os::unix::fs::symlink("versions/2.0.0", symlink_temp(&link)).unwrap();
        assert!(discard_symlink_temp(&link).unwrap());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("versions/1.1.0"));
    }
}
