//! [`Unpack`]: the sink that writes a checked package into a folder.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{Sha256Digest, TargetPath};

use crate::{Backlog, Sink};
use std::sync::Arc;

/// Permission bits an unpacked entry may have: never setuid, setgid or
/// sticky, never writable by group or others, whatever the manifest says. A
/// release folder that another user can write to, or a setuid program in it,
/// would let them run code as whoever runs the app (often root).
pub const SAFE_MODE_MASK: u32 = 0o755;

/// Writes a checked package into `into`: folders and links as listed, files
/// created new (an existing path is removed first, never written through),
/// modes limited to [`SAFE_MODE_MASK`].
///
/// With [`reuse_verified`](Self::reuse_verified), a file already in `into`
/// whose size and SHA-256 match the manifest is kept as it is instead of
/// being written again: resuming an interrupted unpack redoes only what is
/// missing or wrong. Whatever is reused is hashed first, so nothing on disk
/// is trusted unverified.
#[derive(Debug)]
pub struct Unpack {
    into: PathBuf,
    reuse: bool,
    reused: u64,
    written: u64,
    /// Files closed, for the background thread that syncs them.
    syncer: Option<Syncer>,
    /// Where [`durable`](Self::durable) records how many files are synced.
    record: Option<PathBuf>,
    /// Files closed or kept so far: the next one's number in package order.
    next: u64,
    /// The first this many files of the manifest were found intact
    /// ([`verify_prefix`](Self::verify_prefix)).
    verified: usize,
    /// Told of every file closed and synced ([`backlog`](Self::backlog)).
    backlog: Option<Arc<Backlog>>,
}

/// Syncs closed files on threads of their own, so their bytes reach the disk
/// while the rest of the package is still being written. A flush waits for
/// the disk; a few at once keep it busy.
#[derive(Debug)]
struct Syncer {
    /// A closed file's number, path, and the input position at its close.
    files: std::sync::mpsc::Sender<(u64, PathBuf, u64)>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

/// Files synced at once.
const SYNC_THREADS: usize = 4;

/// Which files (numbered in package order) are synced, for the record and
/// the backlog.
#[derive(Debug)]
struct Progress {
    /// Where `{"files": N}` is written: the first N files in package order
    /// are on disk, and so are their folders' entries.
    record: Option<fs::File>,
    /// Synced, beyond `low`, with the input position at their close.
    done: std::collections::BTreeMap<u64, u64>,
    /// Every file numbered below it is synced.
    low: u64,
    /// A sync failed: nothing more is recorded (the unpack fails).
    failed: bool,
    /// Told how far the synced prefix reaches in the input.
    backlog: Option<Arc<Backlog>>,
}

impl Progress {
    /// File `seq`, closed at input position `at`, was synced (`ok`) or its
    /// sync failed (it still stops counting as waiting, so a producer paced
    /// by the backlog never waits for it; `finish` reports the error).
    fn synced(&mut self, seq: u64, at: u64, ok: bool) {
        self.failed |= !ok;
        self.done.insert(seq, at);
        let mut prefix_end = None;
        while let Some(at) = self.done.remove(&self.low) {
            self.low += 1;
            prefix_end = Some(at);
        }
        if let Some(backlog) = &self.backlog {
            backlog.synced(prefix_end);
        }
        if prefix_end.is_some() && !self.failed {
            self.write();
        }
    }

    /// Records how many files are durable. The record is not synced: it
    /// tells a power-loss simulation, which reads it before it drops the
    /// page cache, what a real power loss would have kept, and nothing else
    /// reads it (a resumed install hashes what it keeps). Written in place at
    /// a fixed width, so a kill never leaves half a record.
    fn write(&mut self) {
        use std::io::{Seek, SeekFrom};
        let Some(record) = &mut self.record else {
            return;
        };
        let line = format!("{{\"files\": {:>20}}}\n", self.low);
        let length = line.len() as u64;
        if record
            .seek(SeekFrom::Start(0))
            .and_then(|_| record.write_all(line.as_bytes()))
            // What an older, longer record left beyond the line goes.
            .and_then(|()| {
                if record.metadata()?.len() == length {
                    Ok(())
                } else {
                    record.set_len(length)
                }
            })
            .is_err()
        {
            self.record = None;
        }
    }
}

/// Syncs the folder holding `path`, so its entry is durable, and once each
/// the folders above it up to `root` (their entries are made once, when they
/// are created); `linked` holds the folders whose entry is synced.
fn sync_parents(
    path: &Path,
    root: &Path,
    linked: &std::sync::Mutex<std::collections::HashSet<PathBuf>>,
) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    fs::File::open(parent)?.sync_all()?;
    let mut dir = parent;
    while dir != root {
        let Some(up) = dir.parent() else { break };
        let known = linked.lock().map_or(true, |set| set.contains(dir));
        if known {
            break;
        }
        fs::File::open(up)?.sync_all()?;
        // Only once synced: another thread that finds it meanwhile syncs it too.
        if let Ok(mut set) = linked.lock() {
            set.insert(dir.to_path_buf());
        }
        dir = up;
    }
    Ok(())
}

impl Syncer {
    /// With a record, each file's folders are synced with it, so that
    /// what the record counts is durable with its name.
    fn start(progress: Progress, root: PathBuf) -> Self {
        let (files, queue) = std::sync::mpsc::channel::<(u64, PathBuf, u64)>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let with_folders = progress.record.is_some();
        let progress = Arc::new(std::sync::Mutex::new(progress));
        let linked = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let root = Arc::new(root);
        let threads = (0..SYNC_THREADS)
            .map(|_| {
                let (queue, progress, linked, root) = (
                    Arc::clone(&queue),
                    Arc::clone(&progress),
                    Arc::clone(&linked),
                    Arc::clone(&root),
                );
                std::thread::spawn(move || {
                    let mut first_error = None;
                    loop {
                        let next = queue
                            .lock()
                            .map_err(|_| "the sync queue failed".to_owned())?
                            .recv();
                        let Ok((seq, path, at)) = next else { break };
                        let synced = fs::File::open(&path)
                            .and_then(|file| file.sync_data())
                            .and_then(|()| {
                                if with_folders {
                                    sync_parents(&path, &root, &linked)
                                } else {
                                    Ok(())
                                }
                            });
                        if let Err(error) = &synced {
                            first_error.get_or_insert_with(|| {
                                format!("cannot sync `{}`: {error}", path.display())
                            });
                        }
                        progress
                            .lock()
                            .map_err(|_| "the sync record failed".to_owned())?
                            .synced(seq, at, synced.is_ok());
                    }
                    first_error.map_or(Ok(()), Err)
                })
            })
            .collect();
        Self { files, threads }
    }
}

/// Creates `into`, the folder a release is unpacked into (and that becomes
/// the version's folder), with mode `0755` whatever the umask: a version
/// folder another user could write to would let them change the app.
pub fn create_root(into: &Path) -> io::Result<()> {
    create_dirs(into)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(into, fs::Permissions::from_mode(SAFE_MODE_MASK))?;
    }
    Ok(())
}

impl Unpack {
    /// A sink writing into `into` (which must exist: [`create_root`]).
    pub fn new(into: &Path) -> Self {
        Self {
            into: into.to_path_buf(),
            reuse: false,
            reused: 0,
            written: 0,
            syncer: None,
            record: None,
            next: 0,
            verified: 0,
            backlog: None,
        }
    }

    /// With [`durable`](Self::durable) (called after this): tells `backlog`
    /// of every file closed and synced, with the input position
    /// ([`Backlog::read_position`]) at its close, so the input's producer can
    /// keep within reach of the disk ([`Backlog::held_from`]).
    #[must_use]
    pub fn backlog(mut self, backlog: Arc<Backlog>) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// With [`durable`](Self::durable) (called after this): records in `record`
    /// `{"files": N}` as soon as the first N files in package order and their
    /// folders are synced (each file's folder is synced with it). The record
    /// itself is not synced, and nothing trusts it (a
    /// resumed install hashes what it keeps); it tells a power-loss
    /// simulation (`bench/powerloss.py`) what a real one would have kept.
    #[must_use]
    pub fn record_synced(mut self, record: &Path) -> Self {
        self.record = Some(record.to_path_buf());
        self
    }

    /// How many of `files` (the manifest's, in package order) are already
    /// in place, counted from the first and stopping at the first that is
    /// missing or differs in size or SHA-256 (each is hashed). A resumed
    /// walk may keep them ([`crate::walk_reader_from`]).
    pub fn verify_prefix(&mut self, files: &[FileEntry]) -> usize {
        self.verified = files
            .iter()
            .take_while(|entry| matches(&self.path(&entry.path), entry))
            .count();
        self.verified
    }

    /// Makes every file durable as soon as it is complete, on a thread of
    /// its own; [`finish`](Self::finish) waits for the last ones and syncs
    /// the folders. Without it, nothing is synced.
    #[must_use]
    pub fn durable(mut self) -> Self {
        // Not truncated: until this run records more, what an earlier run
        // recorded still holds (a resumed walk keeps those files). One that
        // cannot be opened costs the simulation its guide, never the unpack.
        let record = self.record.as_ref().and_then(|path| {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .ok()
        });
        self.syncer = Some(Syncer::start(
            Progress {
                record,
                done: std::collections::BTreeMap::new(),
                low: 0,
                failed: false,
                backlog: self.backlog.clone(),
            },
            self.into.clone(),
        ));
        self
    }

    /// Waits until every file written is on disk, then syncs every folder
    /// (so their entries are too). Only with [`durable`](Self::durable).
    pub fn finish(mut self) -> Result<(), String> {
        let Some(syncer) = self.syncer.take() else {
            return Ok(());
        };
        drop(syncer.files);
        for thread in syncer.threads {
            thread
                .join()
                .map_err(|_| "a sync thread failed".to_owned())??;
        }
        sync_dirs(&self.into).map_err(|e| format!("cannot sync `{}`: {e}", self.into.display()))
    }

    /// Keeps files already in place that match the manifest.
    #[must_use]
    pub fn reuse_verified(mut self, reuse: bool) -> Self {
        self.reuse = reuse;
        self
    }

    /// Bytes of files kept from an earlier, interrupted unpack.
    pub fn reused_bytes(&self) -> u64 {
        self.reused
    }

    /// Bytes of files written.
    pub fn written_bytes(&self) -> u64 {
        self.written
    }

    fn path(&self, path: &TargetPath) -> PathBuf {
        self.into.join(path.as_str())
    }

    fn parent_of(dest: &Path) -> Result<(), String> {
        if let Some(parent) = dest.parent() {
            create_dirs(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        Ok(())
    }
}

/// Creates `dir` and its missing parents, never wider than `0755` whatever
/// the umask.
fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, SAFE_MODE_MASK);
    builder.create(dir)
}

/// True when `path` is a regular file (not a link) of `entry`'s size and SHA-256.
fn matches(path: &Path, entry: &FileEntry) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() || meta.len() != entry.size {
        return false;
    }
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(_) => return false,
        }
    }
    Sha256Digest::from_bytes(hasher.finalize().into()) == entry.sha256
}

/// Removes whatever is at `path` (a file, a link, a folder), if anything.
fn clear(path: &Path) -> Result<(), String> {
    let removed = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.file_type().is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(|e| format!("cannot replace `{}`: {e}", path.display()))
}

impl Sink for Unpack {
    fn dir(&mut self, path: &TargetPath, mode: u32) -> Result<(), String> {
        let dest = self.path(path);
        if !fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_dir()) {
            clear(&dest)?;
        }
        create_dirs(&dest).map_err(|e| format!("cannot create `{path}`: {e}"))?;
        set_mode(&dest, mode)
    }

    fn open_file(
        &mut self,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> Result<Box<dyn Write + '_>, String> {
        let dest = self.path(path);
        if self.reuse && matches(&dest, entry) {
            self.reused += entry.size;
            return Ok(Box::new(io::sink()));
        }
        Self::parent_of(&dest)?;
        clear(&dest)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| format!("cannot write `{path}`: {e}"))?;
        self.written += entry.size;
        // The walk hands over what the decoder gives, up to 256 KiB at a
        // time: a buffer here would only copy it once more.
        Ok(Box::new(file))
    }

    fn close_file(&mut self, path: &TargetPath, entry: &FileEntry) -> Result<(), String> {
        let dest = self.path(path);
        set_mode(&dest, entry.mode)?;
        let seq = self.next;
        self.next += 1;
        if let Some(syncer) = &self.syncer {
            // Its bytes leave for the disk now, while the next files are
            // written; the sync thread then only waits for them (a 200 MB
            // update: 0.59-0.73 s -> 0.52-0.63 s, bench/update.sh).
            if let Ok(file) = fs::File::open(&dest) {
                crate::os::start_writeback(&file);
            }
            let at = self.backlog.as_ref().map_or(0, |backlog| {
                backlog.closed();
                backlog.read_position()
            });
            // A closed channel means the threads stopped on an error; `finish`
            // reports it. The file will not be synced: it no longer waits.
            if syncer.files.send((seq, dest, at)).is_err()
                && let Some(backlog) = &self.backlog
            {
                backlog.synced(None);
            }
        }
        Ok(())
    }

    fn kept_file(
        &mut self,
        index: usize,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> Result<(), String> {
        if index >= self.verified && !matches(&self.path(path), entry) {
            return Err(format!(
                "`{path}` lies before the restart point but is not intact; unpack from the start"
            ));
        }
        self.reused += entry.size;
        // A file kept from a killed run may not be on disk yet: sync it too.
        self.close_file(path, entry)
    }

    fn symlink(&mut self, path: &TargetPath, target: &str) -> Result<(), String> {
        let dest = self.path(path);
        Self::parent_of(&dest)?;
        clear(&dest)?;
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, &dest)
            .map_err(|e| format!("cannot create link `{path}`: {e}"))?;
        #[cfg(not(unix))]
        let _ = target;
        Ok(())
    }
}

/// Syncs `dir` and every folder below it (not following links).
fn sync_dirs(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    fs::File::open(dir)?.sync_all()
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode & SAFE_MODE_MASK))
            .map_err(|e| format!("cannot set the mode of `{}`: {e}", path.display()))?;
    }
    let _ = (path, mode);
    Ok(())
}
