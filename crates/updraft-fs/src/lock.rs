use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An exclusive advisory lock on a file, held until dropped.
///
/// The operating system releases it when the process dies, so a crashed
/// holder never leaves a stale lock behind.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Takes the lock at `path` (creating the file), failing at once with
    /// [`Error::Locked`] when another process holds it.
    pub fn try_acquire(path: &Path) -> Result<Self> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                _file: file,
                path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => Err(Error::io("lock", path, source)),
        }
    }

    /// Takes the lock at `path`, waiting for another holder to release it.
    pub fn acquire(path: &Path) -> Result<Self> {
        let file = open(path)?;
        file.lock()
            .map_err(|source| Error::io("lock", path, source))?;
        Ok(Self {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock at `path`, waiting at most `timeout` for another
    /// holder (checking every 20 ms), then failing with [`Error::Locked`].
    pub fn acquire_within(path: &Path, timeout: std::time::Duration) -> Result<Self> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match Self::try_acquire(path) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating, mode 0600) the lock file. Only its owner may open it:
/// anyone who can open a file can `flock` it, and so hold the lock forever.
fn open(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Only ever narrowed by the umask, which never takes the owner's bits.
        options.mode(LOCK_MODE);
    }
    options
        .open(path)
        .map_err(|source| Error::io("open the lock file", path, source))
}

/// The mode of a new lock file.
pub const LOCK_MODE: u32 = 0o600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = StoreLock::try_acquire(&path).unwrap();
        assert!(matches!(
            StoreLock::try_acquire(&path),
            Err(Error::Locked { .. })
        ));
        drop(first);
        StoreLock::try_acquire(&path).unwrap();
    }
}
