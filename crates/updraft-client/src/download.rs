//! The download manager: resumable, parallel ranged downloads that never
//! write more than the signed length, never trust a partial file, give up on
//! a slow drip, fail over across mirrors, and verify the result before it is
//! renamed into place.
//!
//! A download of `F` keeps `F.part` (the bytes) and `F.part.json` (the
//! segments done, the ETag and the URL) in a private staging folder, so a
//! killed process resumes where it stopped. A server that ignores the Range,
//! answers a wrong Content-Range or a changed ETag makes the partial worthless:
//! it is discarded and the download starts over.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use updraft_protocol::Sha256Digest;

use crate::error::{Error, Result};
use crate::transport::{Fetcher, describe};

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
        }
    }
}

/// What a download did, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadStats {
    /// Bytes received over the network in this run.
    pub fetched: u64,
    /// Bytes already on disk from an earlier, interrupted run.
    pub resumed: u64,
    /// True when the file was already complete and verified.
    pub already_complete: bool,
}

/// Progress callback: bytes done, total.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// One file to download.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The same file on every mirror, tried in order.
    pub urls: Vec<String>,
    /// The signed length.
    pub length: u64,
    /// The signed digest.
    pub sha256: Sha256Digest,
    /// A name for messages (the target path).
    pub what: String,
    /// Where the verified file goes (its folder must be private to updraft).
    pub dest: PathBuf,
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

struct Shared {
    state: Mutex<PartState>,
    sidecar: PathBuf,
    done: AtomicU64,
    fetched: AtomicU64,
    total: u64,
    progress: Option<ProgressFn>,
    restart: AtomicBool,
}

impl Shared {
    /// Counts `n` more bytes written and tells the progress callback.
    fn advance(&self, n: u64) {
        self.fetched.fetch_add(n, Ordering::Relaxed);
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(progress) = &self.progress {
            progress(done, self.total);
        }
    }

    fn save(&self) -> Result<()> {
        let state = self.state.lock().expect("download state lock").clone();
        let bytes = serde_json::to_vec(&state).expect("state serialises");
        updraft_fs::write_atomic(&self.sidecar, &bytes)?;
        Ok(())
    }
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

fn sidecar_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".part.json");
    dest.with_file_name(name)
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

async fn file_digest(path: &Path) -> std::io::Result<(u64, Sha256Digest)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((total, Sha256Digest::from_bytes(hasher.finalize().into())))
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
    if let Ok((length, digest)) = file_digest(&request.dest).await
        && length == request.length
        && digest == request.sha256
    {
        return Ok(DownloadStats {
            fetched: 0,
            resumed: 0,
            already_complete: true,
        });
    }
    let deadline = options.deadline.unwrap_or_else(|| {
        Duration::from_mins(1) + Duration::from_secs(request.length / options.min_rate.max(1))
    });
    let url = request.urls.first().cloned().unwrap_or_default();
    match tokio::time::timeout(
        deadline,
        download_inner(fetcher, request, options, progress, cancel),
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

async fn download_inner(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    progress: Option<ProgressFn>,
    cancel: &CancellationToken,
) -> Result<DownloadStats> {
    let part = part_path(&request.dest);
    let sidecar = sidecar_path(&request.dest);
    let mut verification_failures = 0;
    let mut restarts = 0u32;
    loop {
        // After a restart the server's ranges cannot be trusted: one plain connection.
        let state = load_state(request, &part, &sidecar, options, restarts > 0).await;
        let resumed: u64 = state.segments.iter().map(|s| s.done).sum();
        if let Some(dir) = request.dest.parent() {
            ensure_space(dir, request.length - resumed)?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state.clone()),
            sidecar: sidecar.clone(),
            done: AtomicU64::new(resumed),
            fetched: AtomicU64::new(0),
            total: request.length,
            progress: progress.clone(),
            restart: AtomicBool::new(false),
        });
        shared.save()?;
        if !part.exists() {
            tokio::fs::File::create(&part)
                .await
                .map_err(|e| Error::io("create", &part, e))?;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..state.segments.len() {
            let (shared, fetcher, request, options, cancel, part) = (
                Arc::clone(&shared),
                fetcher.clone(),
                request.clone(),
                options.clone(),
                cancel.clone(),
                part.clone(),
            );
            tasks.spawn(async move {
                run_segment(&fetcher, &request, &options, &shared, index, &part, &cancel).await
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
                tasks.abort_all();
            }
        }
        let fetched = shared.fetched.load(Ordering::Relaxed);
        if shared.restart.load(Ordering::Relaxed) && first_error.is_none() {
            discard(&part, &sidecar).await;
            restarts += 1;
            if restarts > options.retry_count + 1 {
                return Err(Error::Network {
                    url: request.urls.join(", "),
                    reason: "the server's answers to range requests cannot be trusted (started over too many times)".into(),
                });
            }
            continue;
        }
        if let Some(error) = first_error {
            if shared.restart.load(Ordering::Relaxed) {
                discard(&part, &sidecar).await;
            }
            return Err(error);
        }
        let (length, digest) = file_digest(&part)
            .await
            .map_err(|e| Error::io("read", &part, e))?;
        if length != request.length || digest != request.sha256 {
            // Never trust it: throw the bytes away, and try once more from scratch.
            discard(&part, &sidecar).await;
            verification_failures += 1;
            if verification_failures > options.retry_count.min(2) {
                return Err(Error::Verification(format!(
                    "`{}` failed verification: expected {} bytes with sha256 `{}`, got {length} bytes with sha256 `{digest}`",
                    request.what, request.length, request.sha256
                )));
            }
            continue;
        }
        // No fsync here: whatever a power loss leaves behind fails the hash
        // check on the next run and is fetched again; it is never installed.
        tokio::fs::rename(&part, &request.dest)
            .await
            .map_err(|e| Error::io("rename", &request.dest, e))?;
        if let Some(dir) = request.dest.parent() {
            updraft_fs::fsync_dir(dir)?;
        }
        let _ = tokio::fs::remove_file(&sidecar).await;
        return Ok(DownloadStats {
            fetched,
            resumed,
            already_complete: false,
        });
    }
}

async fn discard(part: &Path, sidecar: &Path) {
    let _ = tokio::fs::remove_file(part).await;
    let _ = tokio::fs::remove_file(sidecar).await;
}

/// The saved state of an interrupted download, if it belongs to this file;
/// otherwise a fresh plan.
async fn load_state(
    request: &DownloadRequest,
    part: &Path,
    sidecar: &Path,
    options: &DownloadOptions,
    single: bool,
) -> PartState {
    if let Ok(bytes) = tokio::fs::read(sidecar).await
        && let Ok(state) = serde_json::from_slice::<PartState>(&bytes)
        && state.length == request.length
        && state.sha256 == request.sha256.to_hex()
        && part.exists()
        && state.segments.iter().all(|s| s.start + s.done <= s.end)
    {
        return state;
    }
    discard(part, sidecar).await;
    let count = if request.length >= 4 << 20 && !single {
        u64::from(options.parallel.max(1))
    } else {
        1
    };
    let size = request.length.div_ceil(count).max(1);
    let segments = (0..count)
        .map(|i| Segment {
            start: i * size,
            end: ((i + 1) * size).min(request.length),
            done: 0,
        })
        .filter(|s| s.start < s.end || request.length == 0)
        .collect();
    PartState {
        length: request.length,
        sha256: request.sha256.to_hex(),
        etag: None,
        segments,
    }
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

async fn run_segment(
    fetcher: &Fetcher,
    request: &DownloadRequest,
    options: &DownloadOptions,
    shared: &Shared,
    index: usize,
    part: &Path,
    cancel: &CancellationToken,
) -> Result<()> {
    let mut last = String::from("no mirror answered");
    let mut missing = 0;
    for url in &request.urls {
        for attempt in 0..=options.retry_count {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let segment = shared.state.lock().expect("download state lock").segments[index].clone();
            if segment.start + segment.done >= segment.end {
                return Ok(());
            }
            match attempt_segment(fetcher, url, options, shared, index, part, cancel).await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Restart(reason)) => {
                    tracing::warn!(%url, %reason, "discarding the partial download");
                    shared.restart.store(true, Ordering::Relaxed);
                    return Ok(());
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

fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

async fn attempt_segment(
    fetcher: &Fetcher,
    url: &str,
    options: &DownloadOptions,
    shared: &Shared,
    index: usize,
    part: &Path,
    cancel: &CancellationToken,
) -> std::result::Result<(), Failure> {
    let (segment, etag, single) = {
        let state = shared.state.lock().expect("download state lock");
        (
            state.segments[index].clone(),
            state.etag.clone(),
            state.segments.len() == 1,
        )
    };
    let from = segment.start + segment.done;
    if let Some(local) = url.strip_prefix("file://") {
        return copy_local(
            Path::new(local),
            shared,
            index,
            part,
            from,
            segment.end,
            cancel,
        )
        .await;
    }
    let ranged = !(single && from == 0);
    let mut builder = fetcher.client().get(url);
    if ranged {
        builder = builder.header("range", format!("bytes={from}-{}", segment.end - 1));
        if let Some(etag) = &etag {
            builder = builder.header("if-range", etag.as_str());
        }
    }
    let response = tokio::select! {
        response = builder.send() => response.map_err(|e| Failure::Retry(describe(&e)))?,
        () = cancel.cancelled() => return Err(Failure::Fatal(Error::Cancelled)),
    };
    let status = response.status().as_u16();
    match status {
        404 | 403 | 410 => return Err(Failure::Missing(format!("the server answered {status}"))),
        408 | 425 | 429 | 500..=599 => {
            return Err(Failure::Retry(format!("the server answered {status}")));
        }
        200 | 206 => {}
        other => return Err(Failure::Missing(format!("the server answered {other}"))),
    }
    let new_etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if ranged {
        if status == 200 {
            return Err(Failure::Restart(
                "the server ignored the Range request (200 instead of 206)".into(),
            ));
        }
        let range = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        if range != Some((from, segment.end - 1, shared.total)) {
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
    if let Some(length) = response.content_length()
        && length > segment.end - from
    {
        return Err(Failure::Retry(format!(
            "the server announced {length} bytes where {} were asked",
            segment.end - from
        )));
    }
    if etag.is_none() && new_etag.is_some() {
        shared
            .state
            .lock()
            .expect("download state lock")
            .etag
            .clone_from(&new_etag);
    }

    let mut file = open_at(part, from).await?;
    let mut position = from;
    let mut unsaved = 0u64;
    let mut last_flush = Instant::now();
    let mut window_start = Instant::now();
    let mut window_bytes = 0u64;
    let mut response = response;
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            () = cancel.cancelled() => {
                flush(&mut file, shared, index, position, part).await?;
                return Err(Failure::Fatal(Error::Cancelled));
            }
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                flush(&mut file, shared, index, position, part).await?;
                return Err(Failure::Retry(describe(&error)));
            }
        };
        if position + chunk.len() as u64 > segment.end {
            // Never more than the signed length: an endless or lying body stops here.
            flush(&mut file, shared, index, position, part).await?;
            return Err(Failure::Retry(format!(
                "the server sent more than the {} signed bytes",
                shared.total
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Failure::Fatal(Error::io("write", part, e)))?;
        position += chunk.len() as u64;
        unsaved += chunk.len() as u64;
        window_bytes += chunk.len() as u64;
        shared.advance(chunk.len() as u64);
        // Checkpoint often enough that a kill loses at most a second or 8 MiB.
        if unsaved >= 8 << 20 || last_flush.elapsed() >= Duration::from_secs(1) {
            flush(&mut file, shared, index, position, part).await?;
            unsaved = 0;
            last_flush = Instant::now();
        }
        let elapsed = window_start.elapsed();
        if elapsed >= options.rate_window {
            #[allow(clippy::cast_precision_loss)] // rates far below 2^52 bytes per second
            let (rate, minimum) = (
                window_bytes as f64 / elapsed.as_secs_f64(),
                options.min_rate as f64,
            );
            if rate < minimum {
                flush(&mut file, shared, index, position, part).await?;
                return Err(Failure::Retry(format!(
                    "the transfer is too slow ({rate:.0} B/s, the minimum is {} B/s)",
                    options.min_rate
                )));
            }
            window_start = Instant::now();
            window_bytes = 0;
        }
    }
    flush(&mut file, shared, index, position, part).await?;
    if position < segment.end {
        return Err(Failure::Retry(format!(
            "the connection closed after {} of {} bytes",
            position - segment.start,
            segment.end - segment.start
        )));
    }
    Ok(())
}

/// The partial file, positioned at `from` for writing.
async fn open_at(part: &Path, from: u64) -> std::result::Result<tokio::fs::File, Failure> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(part)
        .await
        .map_err(|e| Failure::Fatal(Error::io("open", part, e)))?;
    file.seek(SeekFrom::Start(from))
        .await
        .map_err(|e| Failure::Fatal(Error::io("seek in", part, e)))?;
    Ok(file)
}

/// A mirror that is a local folder (`file://`): the same checks, no network.
async fn copy_local(
    source: &Path,
    shared: &Shared,
    index: usize,
    part: &Path,
    from: u64,
    end: u64,
    cancel: &CancellationToken,
) -> std::result::Result<(), Failure> {
    let mut input = tokio::fs::File::open(source)
        .await
        .map_err(|e| Failure::Missing(format!("cannot read it: {e}")))?;
    let length = input
        .metadata()
        .await
        .map_err(|e| Failure::Missing(format!("cannot read it: {e}")))?
        .len();
    if length != shared.total {
        return Err(Failure::Missing(format!(
            "it has {length} bytes, not the {} signed ones",
            shared.total
        )));
    }
    input
        .seek(SeekFrom::Start(from))
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let mut file = open_at(part, from).await?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut position = from;
    while position < end {
        if cancel.is_cancelled() {
            flush(&mut file, shared, index, position, part).await?;
            return Err(Failure::Fatal(Error::Cancelled));
        }
        let want =
            usize::try_from((end - position).min(buffer.len() as u64)).unwrap_or(buffer.len());
        let n = input
            .read(&mut buffer[..want])
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n])
            .await
            .map_err(|e| Failure::Fatal(Error::io("write", part, e)))?;
        position += n as u64;
        shared.advance(n as u64);
    }
    flush(&mut file, shared, index, position, part).await?;
    if position < end {
        return Err(Failure::Retry("the file ended early".into()));
    }
    Ok(())
}

/// Hands the bytes to the operating system, then records them as done. A
/// killed process loses nothing; a power loss may leave recorded bytes that
/// never reached the disk, which the final hash check catches (the download
/// then starts over), so the bytes are not fsynced on the hot path.
async fn flush(
    file: &mut tokio::fs::File,
    shared: &Shared,
    index: usize,
    position: u64,
    part: &Path,
) -> std::result::Result<(), Failure> {
    file.flush()
        .await
        .map_err(|e| Failure::Fatal(Error::io("write", part, e)))?;
    {
        let mut state = shared.state.lock().expect("download state lock");
        let segment = &mut state.segments[index];
        segment.done = position - segment.start;
    }
    shared.save().map_err(Failure::Fatal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_strictly() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

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
}
