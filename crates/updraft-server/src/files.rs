//! Serving store files: Range (one range), If-Range, ETag, If-None-Match,
//! Last-Modified, and Cache-Control chosen per file, streamed from disk.

use std::io::SeekFrom;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use updraft_protocol::TargetPath;

use crate::error::ApiError;

/// Called as a response body is streamed: bytes sent, and whether the last
/// byte of the file went out.
pub(crate) type Progress = Arc<dyn Fn(u64, bool) + Send + Sync>;

/// Maps a request path to a store-relative path, refusing anything outside
/// the store, hidden entries (`.updraft/`) and names that are not portable.
pub(crate) fn resolve(request_path: &str) -> Result<TargetPath, ApiError> {
    let decoded = percent_encoding::percent_decode_str(request_path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    let path = TargetPath::new(&decoded)
        .map_err(|_| ApiError::not_found(format!("`/{decoded}` is not a file of this store")))?;
    if path.components().any(|c| c.starts_with('.')) {
        return Err(ApiError::not_found(format!(
            "`/{decoded}` is not a file of this store"
        )));
    }
    Ok(path)
}

/// Opens `relative` inside `store` for reading without following any
/// symbolic link on the way (each folder is opened relative to the one
/// before, with `O_NOFOLLOW`), and only if it is a regular file. A link
/// planted in the store, even one pointing inside it, is never followed, so
/// nothing outside the store (nor `.updraft/`) can be sent by any path.
pub(crate) fn open_in_store(store: &Path, relative: &TargetPath) -> std::io::Result<std::fs::File> {
    if relative.components().any(|c| c.starts_with('.')) {
        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    }
    let file = open_beneath(store, relative)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

#[cfg(unix)]
fn open_beneath(store: &Path, relative: &TargetPath) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, open, openat};
    let folder = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = open(
        store,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let components: Vec<&str> = relative.components().collect();
    let (last, folders) = components
        .split_last()
        .ok_or(std::io::ErrorKind::NotFound)?;
    for name in folders {
        dir = openat(&dir, *name, folder, Mode::empty())?;
    }
    // NONBLOCK so that a FIFO planted in the store cannot hang the open; it
    // changes nothing for regular files.
    let file = openat(
        &dir,
        *last,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(file))
}

#[cfg(not(unix))]
fn open_beneath(store: &Path, relative: &TargetPath) -> std::io::Result<std::fs::File> {
    let mut path = store.to_path_buf();
    for name in relative.components() {
        path.push(name);
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
    }
    std::fs::File::open(path)
}

/// Cache-Control for a store file: metadata that changes is revalidated,
/// versioned and content-addressed files are immutable.
pub(crate) fn cache_control(relative: &str) -> &'static str {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    let versioned_metadata = relative.starts_with("metadata/")
        && name
            .split('.')
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let hash_named = name.len() > 65
        && name.as_bytes()[64] == b'.'
        && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
    let release_file = (relative.starts_with("releases/v") || relative.starts_with("changelog/"))
        && !relative.starts_with("releases/latest/");
    if name == "timestamp.json" {
        "no-cache"
    } else if versioned_metadata || hash_named || release_file {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    }
}

fn http_date(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let instant = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    instant.format(format).unwrap_or_default()
}

/// One byte range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable Range header: send everything.
    Full,
    /// `start..=end`.
    Partial(u64, u64),
    /// Syntactically fine but outside the file: 416.
    Unsatisfiable,
}

/// True for a suffix range (`bytes=-N`, the last N bytes of the file).
pub(crate) fn is_suffix_range(value: &str) -> bool {
    value
        .trim()
        .strip_prefix("bytes=")
        .is_some_and(|spec| !spec.contains(',') && spec.trim_start().starts_with('-'))
}

/// Parses a `Range` header against a file of `len` bytes. Anything that is
/// not exactly one byte range is ignored (RFC 9110 allows serving the whole
/// file), except a range that starts past the end, which is 416.
pub(crate) fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let number = |text: &str| -> Option<u64> {
        if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
            text.parse().ok()
        } else {
            None
        }
    };
    match (start.is_empty(), end.is_empty()) {
        (true, false) => match number(end) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Partial(len.saturating_sub(suffix), len - 1),
            None => RangeRequest::Full,
        },
        (false, _) => {
            let Some(first) = number(start) else {
                return RangeRequest::Full;
            };
            let last = if end.is_empty() {
                len.saturating_sub(1)
            } else {
                match number(end) {
                    Some(last) if last >= first => last.min(len.saturating_sub(1)),
                    _ => return RangeRequest::Full,
                }
            };
            if first >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(first, last)
            }
        }
        (true, true) => RangeRequest::Full,
    }
}

/// What to answer for a file of `len` bytes, from the request's
/// conditional and range headers: a finished answer (304, 416, HEAD), or
/// the bytes `start..end` to send with `status` and `headers`.
enum Plan {
    Done(Response),
    Send {
        status: StatusCode,
        headers: HeaderMap,
        start: u64,
        end: u64,
    },
}

fn plan(
    relative: &str,
    len: u64,
    etag: &str,
    last_modified: &str,
    method: &Method,
    request: &HeaderMap,
    extra: &[(header::HeaderName, String)],
) -> Plan {
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::ETAG, etag);
    set(header::LAST_MODIFIED, last_modified);
    set(header::CACHE_CONTROL, cache_control(relative));
    set(header::ACCEPT_RANGES, "bytes");

    if let Some(tags) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && tags.split(',').any(|t| {
            t.trim() == etag || t.trim() == "*" || t.trim().strip_prefix("W/") == Some(etag)
        })
    {
        return Plan::Done((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    for (name, value) in extra {
        set(name.clone(), value);
    }
    // If-Range: use the Range only if the validator still matches this file.
    let range_allowed = match request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(validator) => validator.trim() == etag || validator.trim() == last_modified,
    };
    let range = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if range_allowed => parse_range(value, len),
        _ => RangeRequest::Full,
    };
    let (status, start, end) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial(first, last) => {
            set(
                header::CONTENT_RANGE,
                &format!("bytes {first}-{last}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, first, last + 1)
        }
        RangeRequest::Unsatisfiable => {
            set(header::CONTENT_RANGE, &format!("bytes */{len}"));
            let mut response = (StatusCode::RANGE_NOT_SATISFIABLE, axum::Json(serde_json::json!({"error": format!("the range is outside `/{relative}` ({len} bytes)")}))).into_response();
            response.headers_mut().extend(headers);
            return Plan::Done(response);
        }
    };
    set(header::CONTENT_LENGTH, &(end - start).to_string());
    let content_type = if relative.ends_with(".json") {
        "application/json"
    } else if relative.ends_with(".md") {
        "text/markdown; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    set(header::CONTENT_TYPE, content_type);
    if method == Method::HEAD {
        return Plan::Done((status, headers).into_response());
    }
    Plan::Send {
        status,
        headers,
        start,
        end,
    }
}

fn body<S>(stream: S, start: u64, end: u64, len: u64, progress: Option<Progress>) -> Body
where
    S: futures_core::Stream<Item = std::io::Result<Bytes>> + Unpin + Send + 'static,
{
    match progress {
        Some(progress) => Body::from_stream(Counted {
            inner: stream,
            sent: 0,
            reaches_end: end == len,
            remaining: end - start,
            progress,
        }),
        None => Body::from_stream(stream),
    }
}

/// Serves the store file `relative` honouring the request's conditional and
/// range headers. `extra` headers (Content-Disposition) are added to
/// successful answers.
pub(crate) async fn serve(
    store: &Path,
    relative: &TargetPath,
    method: &Method,
    request: &HeaderMap,
    extra: &[(header::HeaderName, String)],
    progress: Option<Progress>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("`/{relative}` is not a file of this store"));
    let (store_dir, path) = (store.to_path_buf(), relative.clone());
    let opened = tokio::task::spawn_blocking(move || open_in_store(&store_dir, &path))
        .await
        .map_err(|e| ApiError::internal(format!("could not open `/{relative}`: {e}")))?
        .map_err(|_| not_found())?;
    let mut handle = tokio::fs::File::from_std(opened);
    let meta = handle.metadata().await.map_err(|_| not_found())?;
    let relative = relative.as_str();
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mtime = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{len:x}-{mtime:x}\"");
    let (status, headers, start, end) = match plan(
        relative,
        len,
        &etag,
        &http_date(modified),
        method,
        request,
        extra,
    ) {
        Plan::Done(response) => return Ok(response),
        Plan::Send {
            status,
            headers,
            start,
            end,
        } => (status, headers, start, end),
    };
    if start > 0 {
        handle
            .seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::internal(format!("could not read `/{relative}`: {e}")))?;
    }
    let stream = ReaderStream::with_capacity(handle.take(end - start), 64 * 1024);
    Ok((status, headers, body(stream, start, end, len, progress)).into_response())
}

/// [`serve`] for a store in an S3 bucket: the object is streamed from the
/// bucket (only the bytes asked for), with the bucket's ETag; the body is
/// read only if the object still has the ETag its head had.
pub(crate) async fn serve_bucket(
    bucket: &updraft_publisher::s3::Bucket,
    relative: &TargetPath,
    method: &Method,
    request: &HeaderMap,
    extra: &[(header::HeaderName, String)],
    progress: Option<Progress>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("`/{relative}` is not a file of this store"));
    if relative.components().any(|c| c.starts_with('.')) {
        return Err(not_found());
    }
    let unavailable = |error: &dyn std::fmt::Display| {
        tracing::warn!(%error, path = %relative, "the bucket did not answer");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "`/{relative}` cannot be read from the store's bucket right now; try again"
            ),
        }
    };
    let info = bucket
        .head(relative.as_str())
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(not_found)?;
    let len = info.size;
    let etag = match &info.etag {
        Some(tag) if tag.starts_with('"') || tag.starts_with("W/") => tag.clone(),
        Some(tag) => format!("\"{tag}\""),
        None => format!("\"{len:x}-{:x}\"", info.modified),
    };
    let modified =
        UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(info.modified).unwrap_or(0));
    let (status, headers, start, end) = match plan(
        relative.as_str(),
        len,
        &etag,
        &http_date(modified),
        method,
        request,
        extra,
    ) {
        Plan::Done(response) => return Ok(response),
        Plan::Send {
            status,
            headers,
            start,
            end,
        } => (status, headers, start, end),
    };
    let stream = if start == end {
        futures_util::stream::empty().boxed()
    } else {
        bucket
            .stream(relative.as_str(), start..end, info.etag.as_deref())
            .await
            .map_err(|e| unavailable(&e))?
    };
    Ok((status, headers, body(stream, start, end, len, progress)).into_response())
}

/// Reports bytes as they are sent; a body dropped early (client gone) reports
/// what was sent and no completion.
struct Counted<S> {
    inner: S,
    sent: u64,
    remaining: u64,
    reaches_end: bool,
    progress: Progress,
}

impl<S> futures_core::Stream for Counted<S>
where
    S: futures_core::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            let n = chunk.len() as u64;
            self.sent += n;
            self.remaining = self.remaining.saturating_sub(n);
            let done = self.remaining == 0 && self.reaches_end;
            (self.progress)(n, done);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(
            parse_range("bytes=0-99", 1000),
            RangeRequest::Partial(0, 99)
        );
        assert_eq!(
            parse_range("bytes=900-", 1000),
            RangeRequest::Partial(900, 999)
        );
        assert_eq!(
            parse_range("bytes=-100", 1000),
            RangeRequest::Partial(900, 999)
        );
        assert_eq!(
            parse_range("bytes=-5000", 1000),
            RangeRequest::Partial(0, 999)
        );
        assert_eq!(
            parse_range("bytes=990-5000", 1000),
            RangeRequest::Partial(990, 999)
        );
        assert_eq!(
            parse_range("bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=-",
            "bytes=--1",
            "",
        ] {
            assert_eq!(parse_range(ignored, 1000), RangeRequest::Full, "{ignored}");
        }
    }

    #[test]
    fn paths_outside_the_store_or_hidden_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/.updraft/lock",
            "/releases/.hidden",
            "/a//b",
            "/%00",
            "/C:/x",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resolve("/metadata/timestamp.json").unwrap().as_str(),
            "metadata/timestamp.json"
        );
    }

    #[test]
    fn cache_control_suits_each_file() {
        assert_eq!(cache_control("metadata/timestamp.json"), "no-cache");
        assert_eq!(
            cache_control("metadata/3.targets.json"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("metadata/root.json"), "public, max-age=60");
        assert_eq!(
            cache_control("metadata/versions.json"),
            "public, max-age=60"
        );
        assert_eq!(
            cache_control("releases/latest/a_stable_linux_x86_64.json"),
            "public, max-age=60"
        );
        assert_eq!(
            cache_control("releases/v1.0.0/a_v1.0.0_linux_x86_64_full.tar.zst"),
            "public, max-age=31536000, immutable"
        );
        let hashed = format!("releases/v1.0.0/{}.a.tar.zst", "ab".repeat(32));
        assert_eq!(
            cache_control(&hashed),
            "public, max-age=31536000, immutable"
        );
    }
}
