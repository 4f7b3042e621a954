//! The download manager: resumable, parallel ranged downloads that never
//! write more than the signed length, never trust a partial file, give up on
//! a slow drip, fail over across mirrors, and hand the bytes, in order and
//! verified, to a consumer while the rest is still arriving.
//!
//! A download of `F` keeps `F.part` (the bytes, at their offsets) and
//! `F.part.json` (the pieces planned, the ETag, the ranges last synced) in a
//! private staging folder.
//!
//! **Chunked packages** (the manifest signs a digest per chunk, see
//! [`PackageChunks`]): every chunk is verified as it arrives, and only
//! verified chunks are handed on. After a kill or a power loss, the next run
//! hashes what the partial file holds and keeps every chunk that matches its
//! signed digest, whatever the sidecar says: nothing on disk is trusted, and
//! at most one chunk per connection is fetched again. The partial file is
//! synced in the background (every [`SYNC_INTERVAL`] once the download has
//! run for [`SYNC_AFTER`]), so a power loss loses little, unless the request
//! says the consumer's output is the durable record
//! ([`DownloadRequest::sync_partial`]).
//!
//! **Packages without chunk digests** (published before them) resume from
//! the byte counts in the sidecar, and are verified as a whole at the end; a
//! server that ignores the Range, answers a wrong Content-Range or a changed
//! ETag makes that partial worthless: it is discarded and the download starts
//! over.
//!
//! Either way the consumer (the streaming unpacker, or a plain copy) reads the
//! package in order through a [`PackageReader`], which waits for bytes that
//! have not arrived yet. Before the download counts as done, the package is
//! checked against its signed length and hash: every chunk against its signed
//! digest, or (without chunk digests) the whole file's SHA-256. Hashing a
//! chunked package a second time as a whole would only repeat that check (the
//! chunk digests are signed with the package's digest, in the manifest the
//! targets metadata pins), and it would cost a third of the update's CPU.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use updraft_package::Backlog;
use updraft_protocol::Sha256Digest;
use updraft_protocol::manifest::PackageChunks;

use crate::error::{Error, Result};
use crate::transport::Fetcher;

/// How often the partial file is synced to disk while a download runs, once
/// it has run for [`SYNC_AFTER`]: a power loss costs at most about this much
/// transfer time.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// A download shorter than this never syncs its partial file: fetching it
/// again after a power loss costs less than writing it to disk twice (the
/// unpacked files are what must reach the disk).
pub const SYNC_AFTER: Duration = Duration::from_secs(1);

/// How to download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Ranged connections at once (packages of 4 MiB or more).
    pub parallel: u32,
    /// Retries per connection, with exponential backoff and jitter.
    pub retry_count: u32,
    /// Slowest acceptable rate in bytes per second, averaged over `rate_window`.
    pub min_rate: u64,
    /// Window for the rate check.
    pub rate_window: Duration,
    /// Overall deadline; by default 60 s plus the time `min_rate` allows.
    pub deadline: Option<Duration>,
    /// First backoff delay (doubles each retry, plus up to 50 % jitter).
    pub backoff: Duration,
    /// How many bytes the download may hold beyond the first one its
    /// consumer has not made durable ([`PackageReader::backlog`]), on top of
    /// what the connections need in flight: 32 MiB by default. A disk slower
    /// than the link then makes the download wait instead of filling memory
    /// with bytes a power loss would take (a 20 MB/s disk behind a 100 MB/s
    /// link would otherwise hold most of the package).
    pub ahead_of_durable: u64,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            parallel: 3,
            retry_count: 3,
            min_rate: 1024,
            rate_window: Duration::from_secs(10),
            deadline: None,
            backoff: Duration::from_millis(250),
            ahead_of_durable: 32 << 20,
        }
    }
}

/// What a download did, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadStats {
    /// Bytes received over the network in this run.
    pub fetched: u64,
    /// Bytes already on disk (and verified, for chunked packages) from an
    /// earlier, interrupted run.
    pub resumed: u64,
    /// True when the file was already complete and verified.
    pub already_complete: bool,
}

/// Progress callback: bytes done, total.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// What reads the package as it arrives; called again from the start when a
/// download has to start over. Runs on a blocking thread.
pub type ConsumeFn<T> = Arc<dyn Fn(&mut PackageReader) -> Result<T> + Send + Sync>;

/// One file to download.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The same file on every mirror, tried in order.
    pub urls: Vec<String>,
    /// The signed length.
    pub length: u64,
    /// The signed digest.
    pub sha256: Sha256Digest,
    /// The signed digests of its chunks, when the manifest has them (checked
    /// against `length` by the caller).
    pub chunks: Option<PackageChunks>,
    /// A name for messages (the target path).
    pub what: String,
    /// Where the verified file goes (its folder must be private to updraft).
    pub dest: PathBuf,
    /// The first byte the consumer reads: 0 for the whole package, or (for
    /// a chunked package only) the offset of a restart point of its
    /// manifest, when what lies before it is already unpacked and verified.
    /// Bytes before it (from its chunk's start) are neither fetched nor read.
    pub from: u64,
    /// Whether the partial file is synced while the download runs (see
    /// [`SYNC_INTERVAL`]). Off when what the consumer writes is itself the
    /// durable record a resume starts from (a package with restart points,
    /// unpacked into synced files): syncing the partial too would write
    /// every byte to the disk twice.
    pub sync_partial: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Segment {
    start: u64,
    end: u64,
    done: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartState {
    length: u64,
    sha256: String,
    etag: Option<String>,
    segments: Vec<Segment>,
    /// Byte ranges that were on disk (synced) when this was saved.
    #[serde(default)]
    synced: Vec<(u64, u64)>,
}

/// Why one attempt failed, and what to do about it.
enum Failure {
    /// Try again (same or next mirror) after a backoff.
    Retry(String),
    /// This mirror does not have the file.
    Missing(String),
    /// The partial cannot be trusted: discard it and start over on one connection.
    Restart(String),
    /// Give up now.
    Fatal(Error),
}

/// Which bytes of the partial file a [`PackageReader`] may read.
#[derive(Debug, Default)]
struct Board {
    state: Mutex<BoardState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct BoardState {
    /// Sorted, disjoint, merged.
    ready: Vec<Range<u64>>,
    failed: Option<String>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark(&self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        insert(&mut self.lock().ready, range);
        self.changed.notify_all();
    }

    fn fail(&self, reason: &str) {
        self.lock().failed.get_or_insert_with(|| reason.to_owned());
        self.changed.notify_all();
    }

    fn ready(&self) -> Vec<Range<u64>> {
        self.lock().ready.clone()
    }

    /// Blocks until `position` is ready; returns the end of its ready range.
    fn wait(&self, position: u64) -> io::Result<u64> {
        let mut state = self.lock();
        loop {
            if let Some(range) = state.ready.iter().find(|r| r.contains(&position)) {
                return Ok(range.end);
            }
            if let Some(reason) = &state.failed {
                return Err(io::Error::other(reason.clone()));
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Adds `new` to sorted, disjoint `ranges`, merging neighbours.
fn insert(ranges: &mut Vec<Range<u64>>, new: Range<u64>) {
    ranges.push(new);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges.drain(..) {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    *ranges = merged;
}

/// The package's bytes in order, as they become available: a read blocks
/// until the next bytes have arrived (and, for a chunked package, passed
/// their chunk's signed digest). A package without chunk digests is hashed
/// as it is read, so it is checked once the consumer has read it to its end.
#[derive(Debug)]
pub struct PackageReader {
    file: std::fs::File,
    position: u64,
    length: u64,
    board: Arc<Board>,
    /// The whole package's digest, for a package without chunk digests
    /// (a chunked one is verified chunk by chunk as it arrives).
    hasher: Option<Sha256>,
    /// How far it has read, and how far what it read is on disk.
    backlog: Arc<Backlog>,
}

impl PackageReader {
    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The package's signed length.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The consumer's side of the pacing: a consumer that makes what it
    /// reads durable (an [`updraft_package::Unpack`] given this backlog)
    /// reports its synced files to it, and the download then holds at most
    /// a few requests' worth of bytes beyond the last synced file
    /// ([`Backlog::held_from`]): bytes held ahead of the disk are what a
    /// power loss takes, and arriving earlier would not finish the update
    /// sooner. Any other consumer paces the download by what it has read.
    pub fn backlog(&self) -> Arc<Backlog> {
        Arc::clone(&self.backlog)
    }
}

impl Read for PackageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.position >= self.length {
            return Ok(0);
        }
        let end = self.board.wait(self.position)?.min(self.length);
        let want = usize::try_from(end - self.position)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the partial download is shorter than recorded",
            ));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.position += n as u64;
        self.backlog.read_to(self.position);
        Ok(n)
    }
}

struct Shared {
    state: Mutex<PartState>,
    board: Arc<Board>,
    sidecar: PathBuf,
    chunks: Option<PackageChunks>,
    done: AtomicU64,
    fetched: AtomicU64,
    total: u64,
    progress: Option<ProgressFn>,
    restart: AtomicBool,
    /// Chunks that failed their digest in this run, and how many may.
    bad_chunks: AtomicU32,
    max_bad_chunks: u32,
    /// The target path, for messages.
    what: String,
    /// The next segment a worker takes.
    next: AtomicUsize,
    /// How far the consumer has read and made durable.
    backlog: Arc<Backlog>,
    /// Woken when `backlog` moves or the consumer returns.
    room: Arc<tokio::sync::Notify>,
    /// The consumer returned: nothing paces the workers any more.
    consumer_done: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PartState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `n` more bytes received and tells the progress callback.
    fn advance(&self, n: u64) {
        self.fetched.fetch_add(n, Ordering::Relaxed);
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(progress) = &self.progress {
            progress(done.min(self.total), self.total);
        }
    }

    /// Records the progress for the next run. Best effort: a sidecar that
    /// cannot be written (a full disk) costs resumed bytes, never the download.
    fn save(&self) {
        let state = self.lock().clone();
        let bytes = serde_json::to_vec(&state).expect("state serialises");
        if let Err(error) = updraft_fs::write_atomic(&self.sidecar, &bytes) {
            tracing::debug!(%error, "could not save the download's progress");
        }
    }
}

fn with_suffix(dest: &Path, suffix: &str) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(suffix);
    dest.with_file_name(name)
}

/// The partial file of a download of `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part")
}

/// The sidecar (state) file of a download of `dest`.
pub fn sidecar_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part.json")
}

/// Removes the partial file and sidecar of a download of `dest`, and the
/// temporary sidecars that killed runs left.
pub fn discard_partial(dest: &Path) {
    let _ = std::fs::remove_file(part_path(dest));
    let sidecar = sidecar_path(dest);
    let _ = std::fs::remove_file(&sidecar);
    // A run killed while it saved the sidecar left its temporary file.
    updraft_fs::remove_stale_temps(&sidecar);
}

/// Bytes free on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64> {
    let stat =
        rustix::fs::statvfs(dir).map_err(|e| Error::io("measure free space in", dir, e.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Fails with a clear error unless `needed` bytes are free in `dir`.
pub fn ensure_space(dir: &Path, needed: u64) -> Result<()> {
    let available = free_space(dir)?;
    if available < needed {
        return Err(Error::DiskSpace {
            path: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

fn file_digest(path: &Path) -> io::Result<(u64, Sha256Digest)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let total = io::copy(&mut file, &mut HashWriter(&mut hasher))?;
    Ok((total, Sha256Digest::from_bytes(hasher.finalize().into())))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Downloads and verifies `request.dest`. Returns at once when it already
/// holds the signed bytes.
pub async fn download(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    progress: Option<ProgressFn>,
    cancel: &CancellationToken,
) -> Result<DownloadStats> {
    let dest = request.dest.clone();
    if tokio::task::spawn_blocking(move || file_digest(&dest))
        .await
        .ok()
        .and_then(io::Result::ok)
        .is_some_and(|(length, digest)| length == request.length && digest == request.sha256)
    {
        return Ok(DownloadStats {
            already_complete: true,
            ..DownloadStats::default()
        });
    }
    if let Some(dir) = request.dest.parent() {
        ensure_space(dir, request.length)?;
    }
    let drain: ConsumeFn<()> = Arc::new(|reader| {
        io::copy(reader, &mut io::sink())
            .map(drop)
            .map_err(|e| Error::io("read", Path::new("the download"), e))
    });
    let ((), stats) =
        download_streaming(fetcher, request, options, progress, cancel, drain).await?;
    // No fsync of the bytes: whatever a power loss leaves behind fails the
    // hash check on the next run and is fetched again; it is never installed.
    let part = part_path(&request.dest);
    std::fs::rename(&part, &request.dest).map_err(|e| Error::io("rename", &request.dest, e))?;
    if let Some(dir) = request.dest.parent() {
        updraft_fs::fsync_dir(dir)?;
    }
    let _ = std::fs::remove_file(sidecar_path(&request.dest));
    Ok(stats)
}

/// Downloads `request` into its partial file while `consume` reads it, in
/// order, on a blocking thread ([`PackageReader`]). Returns what `consume`
/// returned once the whole package has arrived and matched its signed length
/// and hash (each chunk's, or the whole file's). The partial file stays (complete) for the caller to
/// remove ([`discard_partial`]) or keep; after a failure it stays for the
/// next run to resume. The caller checks for free space first
/// ([`ensure_space`]): the partial file claims the package's length at once.
pub async fn download_streaming<T: Send + 'static>(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    progress: Option<ProgressFn>,
    cancel: &CancellationToken,
    consume: ConsumeFn<T>,
) -> Result<(T, DownloadStats)> {
    let deadline = options.deadline.unwrap_or_else(|| {
        Duration::from_mins(1) + Duration::from_secs(request.length / options.min_rate.max(1))
    });
    let url = request.urls.first().cloned().unwrap_or_default();
    match tokio::time::timeout(
        deadline,
        download_inner(fetcher, request, options, progress, cancel, consume),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Error::Network {
            url,
            reason: format!(
                "the download did not finish within {} s",
                deadline.as_secs()
            ),
        }),
    }
}

/// What one pass of the workers ended with.
struct Pass<T> {
    first_error: Option<Error>,
    /// What the consumer returned, how far it read, and the whole digest
    /// (for packages without chunk digests).
    consumed: Option<(Result<T>, u64, Option<Sha256Digest>)>,
    consumer_failed: bool,
}

async fn download_inner<T: Send + 'static>(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    progress: Option<ProgressFn>,
    cancel: &CancellationToken,
    consume: ConsumeFn<T>,
) -> Result<(T, DownloadStats)> {
    let part = part_path(&request.dest);
    let sidecar = sidecar_path(&request.dest);
    if request.from > 0 && (request.chunks.is_none() || request.from >= request.length) {
        return Err(Error::Verification(format!(
            "`{}` cannot be read from byte {}: only a chunked package can, from inside it",
            request.what, request.from
        )));
    }
    let mut verification_failures = 0;
    let mut restarts = 0u32;
    loop {
        // After a restart the server's ranges cannot be trusted: one plain connection.
        let single = restarts > 0;
        let (state, ready) = {
            let (request, part_file, sidecar) = (request.clone(), part.clone(), sidecar.clone());
            tokio::task::spawn_blocking(move || load_state(&request, &part_file, &sidecar, single))
                .await
                .map_err(|e| Error::io("prepare", &part, io::Error::other(e.to_string())))?
        };
        let resumed: u64 = ready.iter().map(|r| r.end - r.start).sum();
        // Bytes before the first one needed that are not held are never
        // fetched: they count as done for the progress.
        let skip_to = first_needed(request);
        let skipped = skip_to
            - ready
                .iter()
                .map(|r| r.end.min(skip_to).saturating_sub(r.start))
                .sum::<u64>();
        let board = Arc::new(Board::default());
        for range in ready {
            board.mark(range);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            board: Arc::clone(&board),
            sidecar: sidecar.clone(),
            chunks: request.chunks.clone(),
            done: AtomicU64::new(resumed + skipped),
            fetched: AtomicU64::new(0),
            total: request.length,
            progress: progress.clone(),
            restart: AtomicBool::new(false),
            bad_chunks: AtomicU32::new(0),
            max_bad_chunks: options.retry_count.min(2),
            what: request.what.clone(),
            next: AtomicUsize::new(0),
            backlog: Arc::new(Backlog::starting_at(request.from)),
            room: Arc::new(tokio::sync::Notify::new()),
            consumer_done: AtomicBool::new(false),
        });
        {
            let room = Arc::clone(&shared.room);
            shared.backlog.on_change(move || room.notify_waiters());
        }
        shared.save();
        let pass = run_pass(fetcher, request, options, &shared, &part, cancel, &consume).await?;
        let fetched = shared.fetched.load(Ordering::Relaxed);
        if shared.restart.load(Ordering::Relaxed) && pass.first_error.is_none() {
            discard_partial(&request.dest);
            restarts += 1;
            if restarts > options.retry_count + 1 {
                return Err(Error::Network {
                    url: request.urls.join(", "),
                    reason: "the server's answers to range requests cannot be trusted (started over too many times)".into(),
                });
            }
            continue;
        }
        if let Some(error) = pass.first_error {
            if shared.restart.load(Ordering::Relaxed) {
                discard_partial(&request.dest);
            }
            // A consumer that failed on its own (a full disk, a package that
            // does not match its manifest) stopped the download: its error is
            // the one that counts.
            if pass.consumer_failed
                && let Some((Err(consumer_error), ..)) = pass.consumed
            {
                return Err(consumer_error);
            }
            return Err(error);
        }
        let Some((outcome, length, digest)) = pass.consumed else {
            return Err(Error::io(
                "read",
                &part,
                io::Error::other("the unpacker stopped unexpectedly"),
            ));
        };
        let complete = length == request.length;
        let stats = DownloadStats {
            fetched,
            resumed,
            already_complete: false,
        };
        let Some(digest) = digest else {
            // Chunked: every byte read passed its chunk's signed digest, so
            // the package is the signed one once all of it was read, and a
            // consumer's failure is its own.
            let value = outcome?;
            if !complete {
                return Err(Error::Verification(format!(
                    "`{}` was read only to byte {length} of its {} signed bytes",
                    request.what, request.length
                )));
            }
            return Ok((value, stats));
        };
        // A consumer may stop early (an entry that does not match): the
        // whole file decides whether the download or the package is at fault.
        let (length, digest) = if outcome.is_err() && !complete {
            let part = part.clone();
            tokio::task::spawn_blocking(move || file_digest(&part))
                .await
                .ok()
                .and_then(io::Result::ok)
                .unwrap_or((length, digest))
        } else {
            (length, digest)
        };
        if length != request.length || digest != request.sha256 {
            // Never trust it: throw the bytes away, and try once more from scratch.
            discard_partial(&request.dest);
            verification_failures += 1;
            if verification_failures > options.retry_count.min(2) {
                return Err(Error::Verification(format!(
                    "`{}` failed verification: expected {} bytes with sha256 `{}`, got {length} bytes with sha256 `{digest}`",
                    request.what, request.length, request.sha256
                )));
            }
            continue;
        }
        return outcome.map(|value| (value, stats));
    }
}

/// Runs the workers, the syncer and the consumer once, until the workers end.
async fn run_pass<T: Send + 'static>(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    shared: &Arc<Shared>,
    part: &Path,
    cancel: &CancellationToken,
    consume: &ConsumeFn<T>,
) -> Result<Pass<T>> {
    {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(part)
            .map_err(|e| Error::io("create", part, e))?;
        if file.metadata().map_or(0, |m| m.len()) != request.length {
            file.set_len(request.length)
                .map_err(|e| Error::io("create", part, e))?;
        }
        // Claim the space now, so the disk filling up meanwhile can only stop
        // the unpacking, with a clear error, never a write half way.
        #[cfg(target_os = "linux")]
        if request.length > 0
            && let Err(error) = rustix::fs::fallocate(
                &file,
                rustix::fs::FallocateFlags::empty(),
                0,
                request.length,
            )
            && error == rustix::io::Errno::NOSPC
        {
            return Err(Error::io("make room for", part, error.into()));
        }
    }
    // The workers stop when the user cancels, or when the consumer fails.
    let stop = cancel.child_token();
    let consumer_failed = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (consume, board, part, stop, failed, shared) = (
            Arc::clone(consume),
            Arc::clone(&shared.board),
            part.to_path_buf(),
            stop.clone(),
            Arc::clone(&consumer_failed),
            Arc::clone(shared),
        );
        let (length, chunked, from) = (request.length, request.chunks.is_some(), request.from);
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&part).map_err(|e| Error::io("read", &part, e))?;
            file.seek(SeekFrom::Start(from))
                .map_err(|e| Error::io("read", &part, e))?;
            let mut reader = PackageReader {
                file,
                position: from,
                length,
                board,
                hasher: (!chunked).then(Sha256::new),
                backlog: Arc::clone(&shared.backlog),
            };
            let outcome = consume(&mut reader);
            // A consumer that stopped early no longer reads: let the workers
            // finish (an unchecked package is judged by its whole digest).
            shared.consumer_done.store(true, Ordering::Release);
            shared.room.notify_waiters();
            // Verified bytes cannot explain a failure: stop downloading. An
            // unverified package may be at fault instead: let it finish.
            if outcome.is_err() && chunked && !stop.is_cancelled() {
                failed.store(true, Ordering::Relaxed);
                stop.cancel();
            }
            let digest = reader
                .hasher
                .map(|hasher| Sha256Digest::from_bytes(hasher.finalize().into()));
            Ok::<_, Error>((outcome, reader.position, digest))
        })
    };
    let syncer = {
        let (shared, part, stop) = (Arc::clone(shared), part.to_path_buf(), stop.child_token());
        let sync_partial = request.sync_partial;
        tokio::spawn(async move {
            if !sync_partial {
                return;
            }
            let mut wait = SYNC_AFTER;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => break,
                }
                wait = SYNC_INTERVAL;
                let (shared, part) = (Arc::clone(&shared), part.clone());
                let _ = tokio::task::spawn_blocking(move || sync_part(&shared, &part)).await;
            }
        })
    };
    let parallel = if request.length >= 4 << 20 && !shared.lock().segments.is_empty() {
        usize::try_from(options.parallel.max(1)).unwrap_or(1)
    } else {
        1
    };
    let (count, piece) = {
        let state = shared.lock();
        let piece = state.segments.iter().map(|s| s.end - s.start).max();
        (state.segments.len(), piece.unwrap_or(1))
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (shared, fetcher, request, options, stop, part) = (
            Arc::clone(shared),
            fetcher.clone(),
            request.clone(),
            options.clone(),
            stop.clone(),
            part.to_path_buf(),
        );
        tasks.spawn(async move {
            let mut pace = Pace::default();
            loop {
                let take = pace.pieces(piece);
                let first = shared.next.fetch_add(take, Ordering::Relaxed);
                if first >= count || shared.restart.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let span = {
                    let state = shared.lock();
                    state.segments[first].start..state.segments[(first + take).min(count) - 1].end
                };
                let margin = options.ahead_of_durable;
                wait_for_room(&shared, span, parallel, pace, margin, &stop).await?;
                let taken = runs(&shared.lock(), first..(first + take).min(count));
                for run in taken {
                    let timing =
                        run_segment(&fetcher, &request, &options, &shared, run, &part, &stop)
                            .await?;
                    pace.learn(timing);
                }
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(Error::Network {
                url: request.what.clone(),
                reason: format!("a download task failed: {e}"),
            })
        });
        if let Err(error) = outcome
            && first_error.is_none()
        {
            first_error = Some(error);
            stop.cancel();
            tasks.abort_all();
        }
    }
    if cancel.is_cancelled() && first_error.is_none() {
        first_error = Some(Error::Cancelled);
    }
    syncer.abort();
    let restart = shared.restart.load(Ordering::Relaxed);
    if let Some(error) = &first_error {
        shared.board.fail(&error.to_string());
    } else if restart {
        shared.board.fail("the download starts over");
    }
    let consumed = consumer.await.ok().and_then(Result::ok);
    if first_error.is_some() || restart {
        // Keep what arrived for the next run, durably.
        let (shared, part) = (Arc::clone(shared), part.to_path_buf());
        let _ = tokio::task::spawn_blocking(move || sync_part(&shared, &part)).await;
    }
    Ok(Pass {
        first_error,
        consumed,
        consumer_failed: consumer_failed.load(Ordering::Relaxed),
    })
}

/// Waits until a request for the bytes `span` keeps within reach of its
/// consumer. A request that holds the next byte the consumer reads is held
/// back only by the disk, and at most until everything before its start is
/// synced: a package below 4 MiB, or one fetched again on one connection, is
/// a single piece longer than the room below, and waiting for its end to
/// fit would deadlock with a consumer waiting for its bytes. For any other request:
/// what the `parallel` connections need in flight to keep the
/// link busy (their requests) is always allowed; beyond it, the download
/// runs at most a piece ahead of what the consumer has read (bytes it has
/// not read are the first a power loss takes, and arriving sooner than it
/// reads does not finish sooner), and at most `margin`
/// ([`DownloadOptions::ahead_of_durable`]) ahead of the first byte whose
/// output may not be durable yet ([`Backlog::held_from`]). On a link slower
/// than the disk this never waits.
async fn wait_for_room(
    shared: &Shared,
    span: Range<u64>,
    parallel: usize,
    pace: Pace,
    margin: u64,
    stop: &CancellationToken,
) -> Result<()> {
    let in_flight = (parallel as u64).saturating_mul(pace.request.max(PIECE));
    loop {
        // Registered before the check, so a move in between still wakes it.
        let moved = shared.room.notified();
        let backlog = &shared.backlog;
        let room = (backlog.read_position().saturating_add(PIECE))
            .min(backlog.held_from().saturating_add(margin))
            .saturating_add(in_flight);
        let go = if span.start <= backlog.read_position() {
            // The consumer waits for this request: only the disk may hold it
            // back, and only until everything before its start is synced
            // (which always comes: once nothing closed waits for a sync, the
            // durable frontier is the read position).
            let held = backlog.held_from();
            span.end <= held.saturating_add(margin).saturating_add(in_flight) || held >= span.start
        } else {
            span.end <= room
        };
        if go || shared.consumer_done.load(Ordering::Acquire) {
            return Ok(());
        }
        tokio::select! {
            () = moved => {}
            () = stop.cancelled() => return Err(Error::Cancelled),
        }
    }
}

/// The first byte to fetch: the start of the chunk holding `request.from`.
fn first_needed(request: &DownloadRequest) -> u64 {
    match &request.chunks {
        Some(chunks) if chunks.size > 0 => request.from / chunks.size * chunks.size,
        _ => 0,
    }
}

/// Syncs the partial file, then records what it holds as synced.
fn sync_part(shared: &Shared, part: &Path) {
    let ready = shared.board.ready();
    let synced = std::fs::File::open(part).and_then(|file| file.sync_data());
    if synced.is_ok() {
        shared.lock().synced = ready.iter().map(|r| (r.start, r.end)).collect();
    }
    shared.save();
}

/// The plan for this run and the bytes already there. A chunked package
/// keeps every chunk on disk that matches its signed digest; one without
/// chunks keeps the byte counts of a sidecar that belongs to this file.
fn load_state(
    request: &DownloadRequest,
    part: &Path,
    sidecar: &Path,
    single: bool,
) -> (PartState, Vec<Range<u64>>) {
    let saved = std::fs::read(sidecar)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<PartState>(&bytes).ok())
        .filter(|state| state.length == request.length && state.sha256 == request.sha256.to_hex());
    let pieces = |ranges: &[Range<u64>], align: u64| plan(ranges, request.length, align, single);
    if let Some(chunks) = &request.chunks {
        let verified = if part.exists() {
            verified_chunks(part, chunks, request.length)
        } else {
            Vec::new()
        };
        let mut missing = Vec::new();
        let mut cursor = first_needed(request);
        for range in &verified {
            if range.start > cursor {
                missing.push(cursor..range.start);
            }
            cursor = cursor.max(range.end);
        }
        if cursor < request.length || request.length == 0 {
            missing.push(cursor..request.length);
        }
        let state = PartState {
            length: request.length,
            sha256: request.sha256.to_hex(),
            etag: saved.and_then(|s| s.etag),
            segments: pieces(&missing, chunks.size),
            synced: Vec::new(),
        };
        return (state, verified);
    }
    if let Some(state) = saved
        && part.exists()
        && state
            .segments
            .iter()
            .all(|s| s.start + s.done <= s.end && s.end <= request.length)
    {
        let ready = state
            .segments
            .iter()
            .map(|s| s.start..s.start + s.done)
            .collect();
        return (state, ready);
    }
    discard_partial(&request.dest);
    let state = PartState {
        length: request.length,
        sha256: request.sha256.to_hex(),
        etag: None,
        segments: pieces(std::slice::from_ref(&(0..request.length)), 1),
        synced: Vec::new(),
    };
    (state, Vec::new())
}

/// The smallest piece a download is cut into.
const PIECE: u64 = 1 << 20;
/// The most a worker asks for in one request, and what it asks for first,
/// before it knows the link.
const MAX_REQUEST: u64 = 8 << 20;
const FIRST_REQUEST: u64 = 2 << 20;

/// Splits the byte ranges still missing into pieces that workers take in
/// order, so the bytes arrive roughly in the order the unpacker reads them.
/// Pieces are small ([`PIECE`], or a chunk, or 1/4096 of the package): the
/// connections ahead of the unpacker hold little that a power loss would
/// take. A worker takes as many consecutive pieces in one request as its
/// connection's round trip asks for ([`Pace`]). Piece boundaries fall on
/// chunk boundaries (`align`).
fn plan(missing: &[Range<u64>], length: u64, align: u64, single: bool) -> Vec<Segment> {
    let piece = if single || length < 4 << 20 {
        u64::MAX
    } else {
        PIECE.max(length / 4096).div_ceil(align.max(1)) * align.max(1)
    };
    let mut segments = Vec::new();
    for range in missing {
        let mut start = range.start;
        loop {
            let end = start.saturating_add(piece).min(range.end);
            segments.push(Segment {
                start,
                end,
                done: 0,
            });
            start = end;
            if start >= range.end {
                break;
            }
        }
    }
    segments
}

/// The chunks of `part` that match their signed digests, as merged ranges.
fn verified_chunks(part: &Path, chunks: &PackageChunks, length: u64) -> Vec<Range<u64>> {
    let Ok(mut file) = std::fs::File::open(part) else {
        return Vec::new();
    };
    let mut ready = Vec::new();
    let mut buffer = vec![0u8; usize::try_from(chunks.size).unwrap_or(1 << 20)];
    for (index, expected) in chunks.sha256.iter().enumerate() {
        let range = chunks.range(index, length);
        let want = usize::try_from(range.end - range.start).unwrap_or(0);
        if file.read_exact(&mut buffer[..want]).is_err() {
            break;
        }
        if Sha256Digest::of(&buffer[..want]) == *expected {
            insert(&mut ready, range);
        }
    }
    ready
}

fn backoff(options: &DownloadOptions, attempt: u32) -> Duration {
    let base = options
        .backoff
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(10));
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let jitter = u64::from(u16::from_le_bytes(random)) % 500; // up to 50 % of the base, in thousandths
    base + base.mul_f64(f64::from(u32::try_from(jitter).unwrap_or(0)) / 1000.0)
}

/// How many pieces a worker asks for in one request: enough that the idle
/// round trip before each answer costs its connection little (the request
/// lasts [`ROUND_TRIPS`] of them), and no more, so the bytes it holds ahead
/// of the unpacker stay few: a power loss takes what a connection holds
/// ahead of the unpacker. Learned from each answer: the round trip (the
/// shortest wait for a first byte) times the rate of the body. Starts at
/// [`FIRST_REQUEST`].
#[derive(Debug, Clone, Copy)]
struct Pace {
    request: u64,
    /// The shortest time to a first byte seen: the round trip, without the
    /// time a busy server or proxy kept a request waiting.
    round_trip: Option<Duration>,
}

/// A request's body lasts this many round trips, so waiting for its first
/// byte costs at most about 6 % of the connection's time.
const ROUND_TRIPS: f64 = 16.0;

impl Default for Pace {
    fn default() -> Self {
        Self {
            request: FIRST_REQUEST,
            round_trip: None,
        }
    }
}

/// What one answered request took.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// Bytes of its body.
    bytes: u64,
    /// From sending it to its headers.
    first_byte: Duration,
    /// From its headers to its last byte.
    body: Duration,
}

impl Pace {
    fn pieces(self, piece: u64) -> usize {
        usize::try_from(self.request.div_ceil(piece.max(1)).max(1)).unwrap_or(1)
    }

    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn learn(&mut self, timing: Option<Timing>) {
        let Some(timing) = timing else { return };
        // Too short a body says nothing about the rate.
        if timing.bytes < PIECE / 2 || timing.body.is_zero() {
            return;
        }
        let round_trip = self
            .round_trip
            .map_or(timing.first_byte, |r| r.min(timing.first_byte));
        self.round_trip = Some(round_trip);
        let rate = timing.bytes as f64 / timing.body.as_secs_f64();
        let wanted = rate * round_trip.as_secs_f64() * ROUND_TRIPS;
        self.request = (wanted as u64).clamp(PIECE, MAX_REQUEST);
    }
}

/// Splits the pieces `taken` into runs one request can fetch: consecutive
/// in the file, and none but the first already begun (its bytes are kept).
fn runs(state: &PartState, taken: Range<usize>) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for index in taken {
        let segment = &state.segments[index];
        match runs.last_mut() {
            Some(run) if state.segments[run.end - 1].end == segment.start && segment.done == 0 => {
                run.end = index + 1;
            }
            _ => runs.push(index..index + 1),
        }
    }
    runs
}

/// The bytes the pieces `run` still miss: from the first piece not complete
/// to the run's end (pieces after it have not begun). `None` when complete.
fn still_missing(state: &PartState, run: &Range<usize>) -> Option<Range<u64>> {
    let segments = &state.segments[run.clone()];
    let first = segments.iter().find(|s| s.start + s.done < s.end)?;
    Some(first.start + first.done..segments.last()?.end)
}

async fn run_segment(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    shared: &Shared,
    run: Range<usize>,
    part: &Path,
    cancel: &CancellationToken,
) -> Result<Option<Timing>> {
    let mut last = String::from("no mirror answered");
    let mut missing = 0;
    for url in &request.urls {
        for attempt in 0..=options.retry_count {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if still_missing(&shared.lock(), &run).is_none() {
                return Ok(None);
            }
            match attempt_segment(fetcher, url, options, shared, run.clone(), part, cancel).await {
                Ok(timing) => return Ok(Some(timing)),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Restart(reason)) => {
                    tracing::warn!(%url, %reason, "discarding the partial download");
                    shared.restart.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                Err(Failure::Missing(reason)) => {
                    last = reason;
                    missing += 1;
                    break;
                }
                Err(Failure::Retry(reason)) => {
                    tracing::debug!(%url, %reason, attempt, "retrying");
                    last = reason;
                    if attempt < options.retry_count {
                        tokio::select! {
                            () = tokio::time::sleep(backoff(options, attempt)) => {}
                            () = cancel.cancelled() => return Err(Error::Cancelled),
                        }
                    }
                }
            }
        }
    }
    let url = request.urls.join(", ");
    if missing == request.urls.len() {
        return Err(Error::Network { url, reason: last });
    }
    Err(Error::Network {
        url,
        reason: format!(
            "{last} (after {} attempts per server)",
            options.retry_count + 1
        ),
    })
}

/// Writes one segment's bytes at their offsets and decides when they may be
/// read: a chunked package's bytes once their chunk matched its signed
/// digest, other packages' bytes as they are written.
struct SegmentWriter<'a> {
    shared: &'a Shared,
    /// The pieces this request fetches.
    run: Range<usize>,
    file: std::fs::File,
    part: &'a Path,
    /// Where the next byte goes.
    position: u64,
    /// Bytes before this are ready (verified, for chunks) and recorded.
    settled: u64,
    chunk: Sha256,
}

impl<'a> SegmentWriter<'a> {
    fn open(
        shared: &'a Shared,
        run: Range<usize>,
        part: &'a Path,
        from: u64,
    ) -> std::result::Result<Self, Failure> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(part)
            .map_err(|e| Failure::Fatal(Error::io("open", part, e)))?;
        file.seek(SeekFrom::Start(from))
            .map_err(|e| Failure::Fatal(Error::io("seek in", part, e)))?;
        Ok(Self {
            shared,
            run,
            file,
            part,
            position: from,
            settled: from,
            chunk: Sha256::new(),
        })
    }

    /// Writes `bytes` (which never pass the segment's end).
    fn write(&mut self, mut bytes: &[u8]) -> std::result::Result<(), Failure> {
        self.file
            .write_all(bytes)
            .map_err(|e| Failure::Fatal(Error::io("write", self.part, e)))?;
        self.shared.advance(bytes.len() as u64);
        let Some(chunks) = &self.shared.chunks else {
            self.position += bytes.len() as u64;
            // Unverified bytes may be unpacked now; the whole-file check decides later.
            if self.position - self.settled >= 256 * 1024 {
                self.settle(self.position);
            }
            return Ok(());
        };
        while !bytes.is_empty() {
            let chunk_index = usize::try_from(self.position / chunks.size).unwrap_or(usize::MAX);
            let range = chunks.range(chunk_index, self.shared.total);
            let take = usize::try_from(range.end - self.position)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.chunk.update(&bytes[..take]);
            self.position += take as u64;
            bytes = &bytes[take..];
            if self.position == range.end {
                let digest =
                    Sha256Digest::from_bytes(std::mem::take(&mut self.chunk).finalize().into());
                let expected = chunks.sha256.get(chunk_index);
                if expected != Some(&digest) {
                    let failures = self.shared.bad_chunks.fetch_add(1, Ordering::Relaxed) + 1;
                    let reason = format!(
                        "`{}` failed verification: bytes {}–{} (chunk {chunk_index}) have sha256 `{digest}`, the signed manifest says `{}`",
                        self.shared.what,
                        range.start,
                        range.end,
                        expected.map(ToString::to_string).unwrap_or_default()
                    );
                    // The bad chunk is fetched again from its start, a bounded number of times.
                    self.position = range.start;
                    if failures > self.shared.max_bad_chunks {
                        return Err(Failure::Fatal(Error::Verification(reason)));
                    }
                    return Err(Failure::Retry(reason));
                }
                self.settle(range.end);
            }
        }
        Ok(())
    }

    /// Marks the bytes up to `to` ready and records them as done.
    fn settle(&mut self, to: u64) {
        if to <= self.settled {
            return;
        }
        let half = self.shared.total / 2;
        if self.settled <= half && to > half {
            // Crash tests kill here: half downloaded, part unpacked.
            updraft_fs::fault::point("download.halfway");
        }
        self.shared.board.mark(self.settled..to);
        let mut state = self.shared.lock();
        for segment in &mut state.segments[self.run.clone()] {
            let done = to.clamp(segment.start, segment.end) - segment.start;
            segment.done = segment.done.max(done);
        }
        self.settled = to;
    }

    /// Ends the attempt: unverified bytes written so far become ready (they
    /// are checked as a whole at the end); a partial chunk's are not.
    fn finish(&mut self) {
        if self.shared.chunks.is_none() {
            self.settle(self.position);
        }
    }
}

async fn attempt_segment(
    fetcher: &Fetcher,
    url: &str,
    options: &DownloadOptions,
    shared: &Shared,
    run: Range<usize>,
    part: &Path,
    cancel: &CancellationToken,
) -> std::result::Result<Timing, Failure> {
    let (wanted, etag) = {
        let state = shared.lock();
        (still_missing(&state, &run), state.etag.clone())
    };
    let Some(Range { start: from, end }) = wanted else {
        return Ok(Timing::default());
    };
    let ranged = !(from == 0 && end == shared.total);
    let request =
        fetcher
            .transport(url)
            .get(url, ranged.then_some(from..end), etag.as_deref(), None);
    let sent = Instant::now();
    let mut response = tokio::select! {
        response = request => response.map_err(Failure::Retry)?,
        () = cancel.cancelled() => return Err(Failure::Fatal(Error::Cancelled)),
    };
    let status = response.status;
    match status {
        404 | 403 | 410 => return Err(Failure::Missing(format!("the server answered {status}"))),
        408 | 425 | 429 | 500..=599 => {
            return Err(Failure::Retry(format!("the server answered {status}")));
        }
        200 | 206 => {}
        other => return Err(Failure::Missing(format!("the server answered {other}"))),
    }
    let new_etag = response.etag.clone();
    if ranged {
        if status == 200 {
            return Err(Failure::Restart(
                "the server ignored the Range request (200 instead of 206)".into(),
            ));
        }
        let range = response.content_range;
        if let Some((_, _, total)) = range
            && total != shared.total
        {
            // Another file altogether: this mirror does not have the signed one.
            return Err(Failure::Missing(format!(
                "it has {total} bytes, not the {} signed ones",
                shared.total
            )));
        }
        if range != Some((from, end - 1, shared.total)) {
            return Err(Failure::Restart(format!(
                "the server answered a different range than asked ({range:?})"
            )));
        }
        if let (Some(old), Some(new)) = (&etag, &new_etag)
            && old != new
        {
            return Err(Failure::Restart(
                "the file changed on the server (its ETag differs)".into(),
            ));
        }
    } else if status != 200 {
        return Err(Failure::Restart(format!(
            "the server answered {status} to a request without Range"
        )));
    }
    if let Some(length) = response.content_length {
        if length > end - from {
            return Err(Failure::Retry(format!(
                "the server announced {length} bytes where {} were asked",
                end - from
            )));
        }
        if !ranged && length < shared.total {
            return Err(Failure::Missing(format!(
                "it has {length} bytes, not the {} signed ones",
                shared.total
            )));
        }
    }
    if etag.is_none() && new_etag.is_some() {
        shared.lock().etag.clone_from(&new_etag);
    }

    let first_byte = sent.elapsed();
    let mut writer = SegmentWriter::open(shared, run, part, from)?;
    let body_start = Instant::now();
    let mut window_start = Instant::now();
    let mut window_bytes = 0u64;
    let outcome = loop {
        let chunk = tokio::select! {
            chunk = response.body.chunk() => chunk,
            () = cancel.cancelled() => break Err(Failure::Fatal(Error::Cancelled)),
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break Ok(()),
            Err(reason) => break Err(Failure::Retry(reason)),
        };
        if writer.position + chunk.len() as u64 > end {
            // Never more than the signed length: an endless or lying body stops here.
            break Err(Failure::Retry(format!(
                "the server sent more than the {} signed bytes",
                shared.total
            )));
        }
        if let Err(failure) = writer.write(&chunk) {
            break Err(failure);
        }
        window_bytes += chunk.len() as u64;
        let elapsed = window_start.elapsed();
        if elapsed >= options.rate_window {
            #[allow(clippy::cast_precision_loss)] // rates far below 2^52 bytes per second
            let (rate, minimum) = (
                window_bytes as f64 / elapsed.as_secs_f64(),
                options.min_rate as f64,
            );
            if rate < minimum {
                break Err(Failure::Retry(format!(
                    "the transfer is too slow ({rate:.0} B/s, the minimum is {} B/s)",
                    options.min_rate
                )));
            }
            window_start = Instant::now();
            window_bytes = 0;
        }
    };
    writer.finish();
    outcome?;
    if writer.position < end {
        return Err(Failure::Retry(format!(
            "the connection closed after {} of {} bytes",
            writer.position - from,
            end - from
        )));
    }
    Ok(Timing {
        bytes: end - from,
        first_byte,
        body: body_start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let options = DownloadOptions::default();
        let first = backoff(&options, 0);
        assert!(
            first >= Duration::from_millis(250) && first <= Duration::from_millis(375),
            "{first:?}"
        );
        let late = backoff(&options, 20);
        assert!(late <= Duration::from_secs(15), "{late:?}");
    }

    /// A package of 5 MiB with chunk digests (or not), served from a folder.
    fn package(dir: &Path, chunked: bool) -> (DownloadRequest, Vec<u8>) {
        package_of(dir, chunked, 5 << 20)
    }

    fn package_of(dir: &Path, chunked: bool, length: u32) -> (DownloadRequest, Vec<u8>) {
        let bytes: Vec<u8> = (0..length)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let source = dir.join("package.bin");
        std::fs::write(&source, &bytes).unwrap();
        let size = updraft_protocol::manifest::MIN_CHUNK_SIZE;
        let chunks = chunked.then(|| PackageChunks {
            size,
            sha256: bytes
                .chunks(usize::try_from(size).unwrap())
                .map(Sha256Digest::of)
                .collect(),
        });
        let request = DownloadRequest {
            from: 0,
            sync_partial: true,
            urls: vec![format!("file://{}", source.display())],
            length: bytes.len() as u64,
            sha256: Sha256Digest::of(&bytes),
            chunks,
            what: "package.bin".into(),
            dest: dir.join("staging").join("p"),
        };
        std::fs::create_dir_all(dir.join("staging")).unwrap();
        (request, bytes)
    }

    fn collect() -> ConsumeFn<Vec<u8>> {
        Arc::new(|reader| {
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .map_err(|e| Error::io("read", Path::new("p"), e))?;
            Ok(out)
        })
    }

    /// Downloads a package of `length` bytes (with chunk digests or not) from
    /// a folder, read in order by a consumer; fails if it takes a minute.
    async fn stream_package(chunked: bool, length: u32) -> (Vec<u8>, Vec<u8>, DownloadStats) {
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (request, bytes) = package_of(dir.path(), chunked, length);
        let (read, stats) = tokio::time::timeout(
            Duration::from_mins(1),
            download_streaming(
                &fetcher,
                &request,
                &DownloadOptions::default(),
                None,
                &CancellationToken::new(),
                collect(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{length} bytes, chunked {chunked}: stuck"))
        .unwrap();
        (read, bytes, stats)
    }

    /// Packages with and without chunk digests (releases published before
    /// them) stream in order to the consumer and verify.
    #[tokio::test(flavor = "multi_thread")]
    async fn packages_with_and_without_chunks_stream_and_verify() {
        for chunked in [true, false] {
            let (read, bytes, stats) = stream_package(chunked, 5 << 20).await;
            assert!(read == bytes, "chunked {chunked}: the bytes in order");
            assert_eq!(stats.fetched, bytes.len() as u64);
        }
    }

    /// A package fetched as one piece (below 4 MiB, on one connection) that
    /// is longer than the pacing's room still downloads: the request holding
    /// the consumer's next byte always goes. It used to wait for room from a
    /// consumer that was waiting for its bytes, for ever.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_single_piece_longer_than_the_pacing_room_still_downloads() {
        for length in [(3 << 20) + 1, (4 << 20) - 1] {
            for chunked in [true, false] {
                let (read, bytes, stats) = stream_package(chunked, length).await;
                assert!(
                    read == bytes,
                    "{length} bytes, chunked {chunked}: the bytes in order"
                );
                assert_eq!(stats.fetched, bytes.len() as u64);
            }
        }
    }

    /// A chunk that does not match its signed digest is never handed on, and
    /// a package without chunks that fails its whole digest is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn tampered_packages_are_refused_with_or_without_chunks() {
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        for chunked in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (request, mut bytes) = package(dir.path(), chunked);
            bytes[3 << 20] ^= 1;
            std::fs::write(dir.path().join("package.bin"), &bytes).unwrap();
            let options = DownloadOptions {
                backoff: Duration::from_millis(1),
                ..DownloadOptions::default()
            };
            let error = download_streaming(
                &fetcher,
                &request,
                &options,
                None,
                &CancellationToken::new(),
                collect(),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(error, Error::Verification(_))
                    && error.to_string().contains("failed verification"),
                "chunked {chunked}: {error}"
            );
        }
    }

    /// A partial file left by a killed run: every chunk that still matches
    /// is kept, a corrupted one is fetched again.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_resumed_download_keeps_exactly_the_chunks_that_verify() {
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (request, bytes) = package(dir.path(), true);
        let mut partial = bytes.clone();
        let half = partial.len() / 2;
        partial[half..].fill(0);
        partial[1000] ^= 1; // chunk 0 went bad on disk
        std::fs::write(part_path(&request.dest), &partial).unwrap();
        let (read, stats) = download_streaming(
            &fetcher,
            &request,
            &DownloadOptions::default(),
            None,
            &CancellationToken::new(),
            collect(),
        )
        .await
        .unwrap();
        assert!(read == bytes);
        let chunk = updraft_protocol::manifest::MIN_CHUNK_SIZE;
        assert_eq!(
            stats.resumed,
            half as u64 - chunk,
            "all but the bad chunk kept"
        );
        assert_eq!(stats.fetched, bytes.len() as u64 - stats.resumed);
    }

    /// A connection that drops in the middle of a request spanning several
    /// pieces resumes from the last verified chunk, not from the request's
    /// or the piece's start.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_cut_inside_its_second_piece_resumes_at_the_last_verified_chunk() {
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut request, bytes) = package(dir.path(), true);
        let server = updraft_test_support::faulty::FaultyServer::start(dir.path());
        request.urls = vec![format!("{}/package.bin", server.url())];
        // First requests ask for FIRST_REQUEST (2 MiB, two pieces): 1.5 MB
        // is past the first piece and inside a chunk of the second. A
        // request of one piece (1 MiB) would never be cut.
        server.add(
            "package.bin",
            updraft_test_support::faulty::Fault::DropAfter(1_500_000),
            Some(3),
        );
        let options = DownloadOptions {
            backoff: Duration::from_millis(1),
            ..DownloadOptions::default()
        };
        let (read, _) = download_streaming(
            &fetcher,
            &request,
            &options,
            None,
            &CancellationToken::new(),
            collect(),
        )
        .await
        .unwrap();
        assert!(read == bytes);
        let sent = server.sent("package.bin");
        let chunk = updraft_protocol::manifest::MIN_CHUNK_SIZE;
        let length = bytes.len() as u64;
        assert!(sent > length, "the cuts fell inside bodies: {sent}");
        assert!(
            sent <= length + 3 * chunk,
            "each cut costs at most the chunk it fell in: {sent} for {length}"
        );
    }

    /// Downloads a 40 MiB package over one connection into a consumer that
    /// closes a file per MiB it reads, waits `read_pause` after each, and
    /// syncs each `sync_pause` after the last (`None`: never reports files).
    /// Returns how far, at most, the download got beyond the consumer's
    /// first byte not durable ([`Backlog::held_from`]) and beyond what it had read.
    async fn paced(margin: u64, read_pause: Duration, sync_pause: Option<Duration>) -> (u64, u64) {
        const MIB: u64 = 1 << 20;
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (request, bytes) = package_of(dir.path(), true, 40 << 20);
        let backlog: Arc<std::sync::OnceLock<Arc<Backlog>>> = Arc::default();
        let lags = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let progress: ProgressFn = {
            let (backlog, lags) = (Arc::clone(&backlog), Arc::clone(&lags));
            Arc::new(move |done, _| {
                if let Some(backlog) = backlog.get() {
                    let durable = done.saturating_sub(backlog.held_from());
                    lags.0.fetch_max(durable, Ordering::Relaxed);
                    let read = done.saturating_sub(backlog.read_position());
                    lags.1.fetch_max(read, Ordering::Relaxed);
                }
            })
        };
        let consume: ConsumeFn<u64> = {
            let seen = Arc::clone(&backlog);
            Arc::new(move |reader| {
                let backlog = reader.backlog();
                let _ = seen.set(Arc::clone(&backlog));
                let (closed, disk) = std::sync::mpsc::channel::<u64>();
                let syncer = {
                    let backlog = Arc::clone(&backlog);
                    std::thread::spawn(move || {
                        for at in disk {
                            std::thread::sleep(sync_pause.unwrap_or_default());
                            backlog.synced(Some(at));
                        }
                    })
                };
                let mut file = vec![0u8; usize::try_from(MIB).unwrap()];
                let mut total = 0;
                loop {
                    let n = std::io::Read::read(&mut reader.take(MIB), &mut file)
                        .map_err(|e| Error::io("read", Path::new("p"), e))?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    if total % MIB == 0 || total == reader.length() {
                        std::thread::sleep(read_pause);
                        if sync_pause.is_some() {
                            backlog.closed();
                            let _ = closed.send(reader.position());
                        }
                    }
                }
                drop(closed);
                let _ = syncer.join();
                Ok(total)
            })
        };
        let options = DownloadOptions {
            parallel: 1,
            ahead_of_durable: margin,
            ..DownloadOptions::default()
        };
        let (read, _) = download_streaming(
            &fetcher,
            &request,
            &options,
            Some(progress),
            &CancellationToken::new(),
            consume,
        )
        .await
        .unwrap();
        assert_eq!(read, bytes.len() as u64);
        (
            lags.0.load(Ordering::Relaxed),
            lags.1.load(Ordering::Relaxed),
        )
    }

    /// Behind a consumer whose disk is slower than the source (a file
    /// synced every 30 ms: 35 MB/s), the download holds no more than its
    /// margin and its request beyond the consumer's last durable byte; with
    /// no margin to speak of it runs far ahead.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_download_keeps_within_reach_of_what_its_consumer_made_durable() {
        const MIB: u64 = 1 << 20;
        let fast = Duration::ZERO;
        let slow_disk = Some(Duration::from_millis(30));
        let (held, _) = paced(MIB, fast, slow_disk).await;
        assert!(held <= MIB + MAX_REQUEST, "held {} MiB ahead", held / MIB);
        let (unpaced, _) = paced(u64::MAX / 2, fast, slow_disk).await;
        assert!(
            unpaced > 24 * MIB,
            "unpaced, it runs ahead: {} MiB",
            unpaced / MIB
        );
    }

    /// Behind a consumer that reads slower than the source (1 MiB per 30
    /// ms), the download holds no more than its request and a piece beyond
    /// what was read: unread bytes are the first a power loss takes.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_download_keeps_within_a_piece_of_a_slow_reader() {
        let (_, ahead) = paced(u64::MAX / 2, Duration::from_millis(30), None).await;
        assert!(
            ahead <= PIECE + MAX_REQUEST,
            "{} MiB ahead of the reader",
            ahead >> 20
        );
    }

    #[test]
    fn ready_ranges_merge() {
        let mut ranges = Vec::new();
        insert(&mut ranges, 10..20);
        insert(&mut ranges, 0..5);
        insert(&mut ranges, 5..10);
        insert(&mut ranges, 30..40);
        assert_eq!(ranges, vec![0..20, 30..40]);
    }

    fn segments(spans: &[(u64, u64, u64)]) -> PartState {
        PartState {
            length: spans.last().map_or(0, |s| s.1),
            sha256: String::new(),
            etag: None,
            segments: spans
                .iter()
                .map(|&(start, end, done)| Segment { start, end, done })
                .collect(),
            synced: Vec::new(),
        }
    }

    #[test]
    fn requests_cover_a_round_trip_budget_learned_from_the_fastest_first_byte() {
        let ms = Duration::from_millis;
        let answer = |first_byte, body| {
            Some(Timing {
                bytes: 4 << 20,
                first_byte,
                body,
            })
        };
        let mut pace = Pace::default();
        assert_eq!(pace.pieces(PIECE), 2, "before any answer: FIRST_REQUEST");
        // 50 ms round trip, 4 MiB in 400 ms (10 MiB/s): 16 round trips are 8 MiB.
        pace.learn(answer(ms(50), ms(400)));
        assert_eq!(pace.pieces(PIECE), 8);
        // A faster body on the same link asks for more, up to MAX_REQUEST.
        pace.learn(answer(ms(60), ms(40)));
        assert_eq!(pace.pieces(PIECE), 8);
        // 1 ms round trip (a LAN): 16 ms of body at 10 MiB/s is 160 KiB, so one piece.
        pace.learn(answer(ms(1), ms(400)));
        assert_eq!(pace.pieces(PIECE), 1);
        // A busy server's late first byte is queueing, not the round trip: still one piece.
        pace.learn(answer(ms(300), ms(400)));
        assert_eq!(pace.pieces(PIECE), 1);
        // A body too short to measure a rate, or a skipped request, changes nothing.
        pace.learn(Some(Timing {
            bytes: 1000,
            first_byte: ms(1),
            body: ms(1000),
        }));
        pace.learn(None);
        assert_eq!(pace.pieces(PIECE), 1);
        // Pieces larger than the request are taken one at a time.
        assert_eq!(pace.pieces(16 << 20), 1);
    }

    #[test]
    fn a_request_spans_consecutive_pieces_and_resumes_only_the_first() {
        let mb = 1 << 20;
        // Pieces 0-1 are adjacent, 2 was begun in an earlier run (a gap before
        // it: a verified chunk), 3 is adjacent to 2 and fresh.
        let state = segments(&[
            (0, mb, 0),
            (mb, 2 * mb, 0),
            (3 * mb, 4 * mb, 100),
            (4 * mb, 5 * mb, 0),
        ]);
        assert_eq!(runs(&state, 0..4), vec![0..2, 2..4]);
        assert_eq!(runs(&state, 1..3), vec![1..2, 2..3]);
        assert_eq!(still_missing(&state, &(2..4)), Some(3 * mb + 100..5 * mb));
        let finished = segments(&[(0, mb, mb), (mb, 2 * mb, 10)]);
        assert_eq!(still_missing(&finished, &(0..2)), Some(mb + 10..2 * mb));
        assert_eq!(still_missing(&finished, &(0..1)), None);
    }

    #[test]
    fn pieces_follow_chunk_boundaries_and_cover_what_is_missing() {
        let length = 210 << 20;
        let align = PackageChunks::size_for(length);
        let pieces = plan(&[0..(5 << 20), (9 << 20)..length], length, align, false);
        let mut covered = 0;
        for piece in &pieces {
            assert!(piece.start % align == 0 && (piece.end % align == 0 || piece.end == length));
            assert!(piece.end - piece.start <= 8 << 20);
            covered += piece.end - piece.start;
        }
        assert_eq!(covered, length - (4 << 20));
        assert_eq!(
            plan(std::slice::from_ref(&(0..length)), length, align, true).len(),
            1
        );
    }
}
