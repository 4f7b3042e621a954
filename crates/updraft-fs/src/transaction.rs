//! Multi-file changes that survive a crash at any instant.
//!
//! A [`Transaction`] stages every new file in a private folder first. On
//! [`commit`](Transaction::commit) it keeps a hard link to each file it is
//! about to replace, writes an undo journal durably, and only then renames the
//! staged files into place. Removing the journal is the commit point. If the
//! process dies before that, [`recover`] puts every replaced file back and
//! removes every added one, so the tree is byte-identical to before.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::{AtomicFile, create_dir_all_durable, fsync_dir, fsync_parent, write_atomic};
use crate::error::{Error, Result};
use crate::fault;

const JOURNAL: &str = "journal.json";

/// A set of files to add or replace under `root`, all or nothing.
#[derive(Debug)]
pub struct Transaction {
    root: PathBuf,
    tx_dir: PathBuf,
    entries: Vec<Entry>,
    finished: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Destination relative to the root.
    dest: PathBuf,
    /// Where the new content waits, inside the transaction folder.
    staged: PathBuf,
    /// A hard link (or copy) of the destination's previous content, if it existed.
    backup: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    entries: Vec<Entry>,
    /// Folders the commit creates, outermost first.
    created_dirs: Vec<PathBuf>,
}

/// What [`recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No transaction was in progress.
    Clean,
    /// A transaction was still staging; its files were discarded.
    Discarded,
    /// A transaction was interrupted while applying; it was undone.
    RolledBack,
}

impl Transaction {
    /// Starts a transaction over `root`, staging in `tx_dir` (which must be on
    /// the same file system and must not exist: run [`recover`] first).
    pub fn begin(root: &Path, tx_dir: &Path) -> Result<Self> {
        let staged = tx_dir.join("staged");
        create_dir_all_durable(&staged)?;
        Ok(Self {
            root: root.to_path_buf(),
            tx_dir: tx_dir.to_path_buf(),
            entries: Vec::new(),
            finished: false,
        })
    }

    /// Starts a staged file that will land at `dest` (relative to the root).
    /// Write to it and [`commit`](AtomicFile::commit) it; the transaction's own
    /// commit then moves it into place.
    pub fn stage_file(&mut self, dest: &Path) -> Result<AtomicFile> {
        let staged = self.register(dest)?;
        AtomicFile::create(&staged)
    }

    /// Stages `bytes` for `dest`.
    pub fn stage_bytes(&mut self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let staged = self.register(dest)?;
        write_atomic(&staged, bytes)
    }

    /// Stages a second name, `dest`, for the file already staged at `existing`
    /// (a hard link where the file system allows, else a copy).
    pub fn stage_link(&mut self, dest: &Path, existing: &Path) -> Result<()> {
        let source = self
            .entries
            .iter()
            .find(|entry| entry.dest == existing)
            .map(|entry| entry.staged.clone())
            .ok_or_else(|| {
                Error::io(
                    "link",
                    existing,
                    io::Error::other("not staged in this transaction"),
                )
            })?;
        let staged = self.register(dest)?;
        link_or_copy(&source, &staged)
    }

    fn register(&mut self, dest: &Path) -> Result<PathBuf> {
        let relative = dest.components().all(|c| matches!(c, Component::Normal(_)));
        if !relative || dest.as_os_str().is_empty() {
            return Err(Error::io(
                "stage",
                dest,
                io::Error::other("destination must be a relative path"),
            ));
        }
        if self.entries.iter().any(|entry| entry.dest == dest) {
            return Err(Error::io(
                "stage",
                dest,
                io::Error::other("staged twice in one transaction"),
            ));
        }
        let staged = self
            .tx_dir
            .join("staged")
            .join(self.entries.len().to_string());
        self.entries.push(Entry {
            dest: dest.to_path_buf(),
            staged: staged.clone(),
            backup: None,
        });
        Ok(staged)
    }

    /// Applies every staged file. On error or crash before this returns, the
    /// tree under the root is unchanged once [`recover`] has run (an error
    /// returned from here runs it at once).
    pub fn commit(mut self) -> Result<()> {
        match self.apply() {
            Ok(()) => {
                self.finished = true;
                Ok(())
            }
            Err(error) => {
                // Undo now rather than at the next start; if even that fails the
                // journal stays and the next recover() retries.
                if recover(&self.root, &self.tx_dir).is_ok() {
                    self.finished = true;
                }
                Err(error)
            }
        }
    }

    fn apply(&mut self) -> Result<()> {
        fsync_dir(&self.tx_dir.join("staged"))?;
        let backups = self.tx_dir.join("backup");
        create_dir_all_durable(&backups)?;
        let mut created_dirs: Vec<PathBuf> = Vec::new();
        for (index, entry) in self.entries.iter_mut().enumerate() {
            let dest = self.root.join(&entry.dest);
            match fs::symlink_metadata(&dest) {
                Ok(meta) if meta.is_dir() => {
                    return Err(Error::io(
                        "replace",
                        &dest,
                        io::Error::other("a folder is in the way"),
                    ));
                }
                Ok(_) => {
                    let backup = backups.join(index.to_string());
                    link_or_copy(&dest, &backup)?;
                    entry.backup = Some(backup);
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::io("inspect", &dest, source)),
            }
            let mut missing = Vec::new();
            let mut cursor = dest.parent();
            while let Some(dir) = cursor {
                if dir.exists() || created_dirs.iter().any(|d| d == dir) {
                    break;
                }
                missing.push(dir.to_path_buf());
                cursor = dir.parent();
            }
            created_dirs.extend(missing.into_iter().rev());
        }
        fsync_dir(&backups)?;
        let journal = Journal {
            entries: std::mem::take(&mut self.entries),
            created_dirs,
        };
        let journal_path = self.tx_dir.join(JOURNAL);
        let encoded = serde_json::to_vec_pretty(&journal)
            .map_err(|e| Error::io("encode", &journal_path, e.into()))?;
        write_atomic(&journal_path, &encoded)?;
        self.entries = journal.entries;
        fault::point("tx.journaled");

        for dir in &journal.created_dirs {
            create_dir_all_durable(dir)?;
        }
        for (index, entry) in self.entries.iter().enumerate() {
            let dest = self.root.join(&entry.dest);
            fs::rename(&entry.staged, &dest)
                .map_err(|source| Error::io("move into place", &dest, source))?;
            fault::point(&format!("tx.applied.{index}"));
        }
        for dir in parents(&self.root, &self.entries) {
            fsync_dir(&dir)?;
        }
        fs::remove_file(&journal_path)
            .map_err(|source| Error::io("remove", &journal_path, source))?;
        fsync_dir(&self.tx_dir)?;
        fault::point("tx.committed");
        remove_tx_dir(&self.tx_dir)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            // Nothing was applied (commit undoes its own failures), so the staging can go.
            let _ = recover(&self.root, &self.tx_dir);
        }
    }
}

/// Finishes whatever a crashed [`Transaction`] left in `tx_dir`: undoes an
/// applied-but-uncommitted change, discards staging, and removes the folder.
pub fn recover(root: &Path, tx_dir: &Path) -> Result<Recovery> {
    if !tx_dir.exists() {
        return Ok(Recovery::Clean);
    }
    let journal_path = tx_dir.join(JOURNAL);
    let outcome = if journal_path.exists() {
        let bytes =
            fs::read(&journal_path).map_err(|source| Error::io("read", &journal_path, source))?;
        let journal: Journal =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptJournal {
                path: journal_path.clone(),
                reason: e.to_string(),
            })?;
        for entry in journal.entries.iter().rev() {
            let dest = root.join(&entry.dest);
            match &entry.backup {
                Some(backup) if backup.exists() => {
                    fs::rename(backup, &dest)
                        .map_err(|source| Error::io("restore", &dest, source))?;
                }
                None if !entry.staged.exists() => match fs::remove_file(&dest) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(Error::io("remove", &dest, source)),
                },
                // Either restored by an earlier, interrupted recovery, or never moved into place.
                Some(_) | None => {}
            }
        }
        for dir in parents(root, &journal.entries) {
            if dir.exists() {
                fsync_dir(&dir)?;
            }
        }
        for dir in journal.created_dirs.iter().rev() {
            if fs::remove_dir(dir).is_ok() {
                fsync_parent(dir)?;
            }
        }
        fs::remove_file(&journal_path)
            .map_err(|source| Error::io("remove", &journal_path, source))?;
        Recovery::RolledBack
    } else {
        Recovery::Discarded
    };
    remove_tx_dir(tx_dir)?;
    Ok(outcome)
}

fn remove_tx_dir(tx_dir: &Path) -> Result<()> {
    fs::remove_dir_all(tx_dir).map_err(|source| Error::io("remove", tx_dir, source))?;
    fsync_parent(tx_dir)
}

fn parents(root: &Path, entries: &[Entry]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = entries
        .iter()
        .filter_map(|entry| root.join(&entry.dest).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let mut reader = fs::File::open(from).map_err(|source| Error::io("open", from, source))?;
    let mut writer = AtomicFile::create(to)?;
    io::copy(&mut reader, &mut writer).map_err(|source| Error::io("copy", to, source))?;
    writer
        .flush()
        .map_err(|source| Error::io("write", to, source))?;
    writer.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with(".tx") {
                        stack.push(path.clone());
                    }
                    out.push((
                        path.strip_prefix(root).unwrap().display().to_string(),
                        Vec::new(),
                    ));
                } else {
                    out.push((
                        path.strip_prefix(root).unwrap().display().to_string(),
                        fs::read(&path).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn commit_adds_and_replaces_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("index.json"), b"v1").unwrap();
        let mut tx = Transaction::begin(root, &root.join(".tx")).unwrap();
        tx.stage_bytes(Path::new("index.json"), b"v2").unwrap();
        tx.stage_bytes(Path::new("a/b/new.bin"), b"data").unwrap();
        tx.stage_link(Path::new("a/b/copy.bin"), Path::new("a/b/new.bin"))
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(fs::read(root.join("index.json")).unwrap(), b"v2");
        assert_eq!(fs::read(root.join("a/b/copy.bin")).unwrap(), b"data");
        assert!(!root.join(".tx").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_store_written_under_a_wide_umask_gets_safe_modes() {
        use crate::test_umask::{Umask, mode_of};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let _umask = Umask::set(0);
        let mut tx = Transaction::begin(root, &root.join(".tx")).unwrap();
        tx.stage_bytes(Path::new("metadata/timestamp.json"), b"{}")
            .unwrap();
        let mut package = tx
            .stage_file(Path::new("releases/v1.0.0/app_full.tar.zst"))
            .unwrap();
        package.write_all(b"package").unwrap();
        package.commit().unwrap();
        tx.stage_link(
            Path::new("releases/v1.0.0/ab12.app_full.tar.zst"),
            Path::new("releases/v1.0.0/app_full.tar.zst"),
        )
        .unwrap();
        tx.commit().unwrap();
        for (path, expected) in [
            ("metadata", 0o755),
            ("releases", 0o755),
            ("releases/v1.0.0", 0o755),
            ("metadata/timestamp.json", 0o644),
            ("releases/v1.0.0/app_full.tar.zst", 0o644),
            ("releases/v1.0.0/ab12.app_full.tar.zst", 0o644),
        ] {
            assert_eq!(mode_of(&root.join(path)), expected, "{path}");
        }
    }

    #[test]
    fn a_dropped_transaction_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("index.json"), b"v1").unwrap();
        let before = tree(root);
        let mut tx = Transaction::begin(root, &root.join(".tx")).unwrap();
        tx.stage_bytes(Path::new("index.json"), b"v2").unwrap();
        drop(tx);
        assert_eq!(tree(root), before);
    }

    #[test]
    fn recovery_undoes_a_half_applied_journal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("index.json"), b"v1").unwrap();
        let before = tree(root);
        // Simulate a crash after the journal and the first rename.
        let mut tx = Transaction::begin(root, &root.join(".tx")).unwrap();
        tx.stage_bytes(Path::new("index.json"), b"v2").unwrap();
        tx.stage_bytes(Path::new("new/file"), b"x").unwrap();
        let backups = root.join(".tx/backup");
        fs::create_dir_all(&backups).unwrap();
        fs::hard_link(root.join("index.json"), backups.join("0")).unwrap();
        tx.entries[0].backup = Some(backups.join("0"));
        let journal = Journal {
            entries: std::mem::take(&mut tx.entries),
            created_dirs: vec![root.join("new")],
        };
        fs::write(
            root.join(".tx").join(JOURNAL),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        fs::rename(&journal.entries[0].staged, root.join("index.json")).unwrap();
        fs::create_dir(root.join("new")).unwrap();
        fs::rename(&journal.entries[1].staged, root.join("new/file")).unwrap();
        tx.finished = true;
        assert_eq!(fs::read(root.join("index.json")).unwrap(), b"v2");

        assert_eq!(
            recover(root, &root.join(".tx")).unwrap(),
            Recovery::RolledBack
        );
        assert_eq!(tree(root), before);
        assert_eq!(recover(root, &root.join(".tx")).unwrap(), Recovery::Clean);
    }
}
