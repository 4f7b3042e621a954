//! Fetching bytes behind one trait, [`Transport`], with two implementations:
//! [`HttpTransport`] for `http(s)://` (reqwest: proxies from the
//! environment, TLS with rustls) and [`FileTransport`] for `file://` (a local
//! folder: a mirror on a share or a USB stick, and most tests, with no
//! server). [`Fetcher`] picks one by the URL's scheme; everything above it
//! (metadata, manifests, ranged package downloads) is written once. Every
//! fetch has a size cap and a deadline; nothing here decides what is
//! trusted (the signed metadata does).
//!
//! Plain `http://` is for loopback only (127.0.0.0/8, `::1`, `localhost`),
//! unless `update_server.allow_insecure_http` says otherwise: signed
//! metadata keeps the bytes safe over any transport, but not the user's
//! privacy (which app, which version, the install id). [`HttpTransport`]
//! holds every request and every redirect to that rule.

use std::future::Future;
use std::io::SeekFrom;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use updraft_installer::UpdateConfig;

use crate::error::{Error, Result};

/// A boxed future, for [`Transport`]'s methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The bytes of an answer, a piece at a time.
pub trait Body: Send {
    /// The next piece; `None` at the end. Errors are one sentence.
    fn chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<bytes::Bytes>, String>>;
}

/// One answer to a GET.
pub struct Response {
    /// HTTP status (a local file answers 200, 206, 404 or 416 the same way).
    pub status: u16,
    /// Its ETag, if any.
    pub etag: Option<String>,
    /// `Content-Range`: first byte, last byte, total length.
    pub content_range: Option<(u64, u64, u64)>,
    /// `Content-Length`, if announced.
    pub content_length: Option<u64>,
    /// The bytes.
    pub body: Box<dyn Body>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("etag", &self.etag)
            .field("content_range", &self.content_range)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// Where bytes come from. Errors are one sentence without the URL (the
/// caller names it).
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// GETs `url`, or its bytes `range` (asking `If-Range: if_range`), with
    /// an overall `timeout` if given.
    fn get<'a>(
        &'a self,
        url: &'a str,
        range: Option<Range<u64>>,
        if_range: Option<&'a str>,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, std::result::Result<Response, String>>;

    /// POSTs `body` as JSON and reads a JSON answer of at most `max_len`
    /// bytes (`Null` if it is not JSON); a transport without requests
    /// answers 404, as a static host does.
    fn post_json<'a>(
        &'a self,
        url: &'a str,
        body: &'a serde_json::Value,
        max_len: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, std::result::Result<(u16, serde_json::Value), String>>;
}

/// Why plain HTTP to `url` is refused, if it is: an `http://` URL to a
/// host that is not loopback, without `allow_insecure_http`.
pub fn insecure_http(url: &str, allow_insecure_http: bool) -> Option<String> {
    if allow_insecure_http
        || !url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        return None;
    }
    let loopback = reqwest::Url::parse(url).ok().is_some_and(|parsed| {
        parsed.host_str().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
    });
    (!loopback).then(|| {
        format!(
            "`{url}` is plain HTTP to a host that is not loopback, so anyone on the way sees which app and version this is; use https://, or set `update_server.allow_insecure_http: true` in update_config.json to accept that"
        )
    })
}

/// Redirects followed before giving up (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// `http://` and `https://` through reqwest.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    allow_insecure_http: bool,
}

impl HttpTransport {
    /// A client with connect and read timeouts of `timeout`, verifying
    /// certificates unless `verify_ssl` is false, and refusing plain
    /// `http://` to hosts that are not loopback.
    pub fn new(timeout: Duration, verify_ssl: bool) -> Result<Self> {
        Self::build(timeout, verify_ssl, false)
    }

    /// Like [`new`](Self::new), but plain `http://` to any host is accepted
    /// (`update_server.allow_insecure_http`).
    pub fn with_insecure_http(timeout: Duration, verify_ssl: bool) -> Result<Self> {
        Self::build(timeout, verify_ssl, true)
    }

    fn build(timeout: Duration, verify_ssl: bool, allow_insecure_http: bool) -> Result<Self> {
        // reqwest is built without a default crypto provider; use ring, like the server.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A redirect is held to the same rule as the URL it came from.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if let Some(reason) = insecure_http(attempt.url().as_str(), allow_insecure_http) {
                attempt.error(format!("refusing the redirect: {reason}"))
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .redirect(redirects)
            .tls_danger_accept_invalid_certs(!verify_ssl)
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network {
                url: "(client setup)".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            allow_insecure_http,
        })
    }

    /// Refuses `url` before connecting when it is plain HTTP this transport must not use.
    fn check_url(&self, url: &str) -> std::result::Result<(), String> {
        insecure_http(url, self.allow_insecure_http).map_or(Ok(()), |reason| {
            Err(format!("refusing to connect: {reason}"))
        })
    }
}

struct HttpBody(reqwest::Response);

impl Body for HttpBody {
    fn chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<bytes::Bytes>, String>> {
        Box::pin(async move { self.0.chunk().await.map_err(|e| describe(&e)) })
    }
}

impl Transport for HttpTransport {
    fn get<'a>(
        &'a self,
        url: &'a str,
        range: Option<Range<u64>>,
        if_range: Option<&'a str>,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, std::result::Result<Response, String>> {
        Box::pin(async move {
            self.check_url(url)?;
            let mut request = self.client.get(url);
            if let Some(range) = range {
                request = request.header(
                    "range",
                    format!("bytes={}-{}", range.start, range.end.saturating_sub(1)),
                );
                if let Some(etag) = if_range {
                    request = request.header("if-range", etag);
                }
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = request.send().await.map_err(|e| describe(&e))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            Ok(Response {
                status: response.status().as_u16(),
                etag: header("etag"),
                content_range: header("content-range")
                    .as_deref()
                    .and_then(parse_content_range),
                content_length: response.content_length(),
                body: Box::new(HttpBody(response)),
            })
        })
    }

    fn post_json<'a>(
        &'a self,
        url: &'a str,
        body: &'a serde_json::Value,
        max_len: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, std::result::Result<(u16, serde_json::Value), String>> {
        Box::pin(async move {
            self.check_url(url)?;
            let response = self
                .client
                .post(url)
                .timeout(timeout)
                .json(body)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let mut body = HttpBody(response);
            let bytes = read_capped(&mut body, max_len)
                .await?
                .ok_or_else(|| format!("the answer is larger than {max_len} bytes"))?;
            let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            Ok((status, value))
        })
    }
}

/// `file://` URLs: files in a local folder, answered the way a static HTTP
/// server would (200, 206 with `Content-Range`, 404, 416, an ETag from the
/// length and modification time), so the download code treats a mirror
/// folder exactly like a server.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileTransport;

struct FileBody {
    file: Option<tokio::fs::File>,
    left: u64,
}

impl Body for FileBody {
    fn chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<bytes::Bytes>, String>> {
        Box::pin(async move {
            let Some(file) = self.file.as_mut() else {
                return Ok(None);
            };
            if self.left == 0 {
                return Ok(None);
            }
            let want = usize::try_from(self.left.min(1 << 20)).unwrap_or(1 << 20);
            let mut buffer = vec![0u8; want];
            let n = file.read(&mut buffer).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the file ended early".into());
            }
            buffer.truncate(n);
            self.left -= n as u64;
            Ok(Some(bytes::Bytes::from(buffer)))
        })
    }
}

impl Transport for FileTransport {
    fn get<'a>(
        &'a self,
        url: &'a str,
        range: Option<Range<u64>>,
        if_range: Option<&'a str>,
        _timeout: Option<Duration>,
    ) -> BoxFuture<'a, std::result::Result<Response, String>> {
        Box::pin(async move {
            let path = url.strip_prefix("file://").unwrap_or(url);
            let answer = |status, file, left| Response {
                status,
                etag: None,
                content_range: None,
                content_length: Some(left),
                body: Box::new(FileBody { file, left }),
            };
            let mut file = match tokio::fs::File::open(path).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(answer(404, None, 0));
                }
                Err(e) => return Err(format!("cannot read it: {e}")),
            };
            let meta = file
                .metadata()
                .await
                .map_err(|e| format!("cannot read it: {e}"))?;
            if !meta.is_file() {
                return Ok(answer(404, None, 0));
            }
            let length = meta.len();
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let etag = format!("\"{length:x}-{modified:x}\"");
            let range = range.filter(|_| if_range.is_none_or(|tag| tag == etag));
            let mut response = match range {
                None => answer(200, Some(file), length),
                Some(range) if range.start >= length || range.end <= range.start => {
                    answer(416, None, 0)
                }
                Some(range) => {
                    let end = range.end.min(length);
                    file.seek(SeekFrom::Start(range.start))
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut response = answer(206, Some(file), end - range.start);
                    response.content_range = Some((range.start, end - 1, length));
                    response
                }
            };
            response.etag = Some(etag);
            Ok(response)
        })
    }

    fn post_json<'a>(
        &'a self,
        _url: &'a str,
        _body: &'a serde_json::Value,
        _max_len: u64,
        _timeout: Duration,
    ) -> BoxFuture<'a, std::result::Result<(u16, serde_json::Value), String>> {
        Box::pin(async { Ok((404, serde_json::Value::Null)) })
    }
}

/// Reads a whole body, `None` when it passes `max_len` bytes.
async fn read_capped(
    body: &mut dyn Body,
    max_len: u64,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        if bytes.len() as u64 + chunk.len() as u64 > max_len {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// Fetches over whichever [`Transport`] a URL's scheme needs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: Arc<dyn Transport>,
    file: Arc<dyn Transport>,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher honouring `update_server.timeout`,
    /// `update_server.allow_insecure_http` and `download_settings.verify_ssl`.
    pub fn new(config: &UpdateConfig) -> Result<Self> {
        let timeout = Duration::from_secs(config.update_server.timeout);
        let verify_ssl = config.download_settings.verify_ssl;
        let http = if config.update_server.allow_insecure_http {
            HttpTransport::with_insecure_http(timeout, verify_ssl)?
        } else {
            HttpTransport::new(timeout, verify_ssl)?
        };
        Ok(Self {
            http: Arc::new(http),
            file: Arc::new(FileTransport),
            timeout,
        })
    }

    /// A fetcher with an explicit per-request timeout; plain HTTP only to loopback.
    pub fn with(timeout: Duration, verify_ssl: bool) -> Result<Self> {
        Ok(Self {
            http: Arc::new(HttpTransport::new(timeout, verify_ssl)?),
            file: Arc::new(FileTransport),
            timeout,
        })
    }

    /// Uses `http` for `http(s)://` URLs instead of reqwest (a custom
    /// network stack, a test double that injects faults).
    #[must_use]
    pub fn with_http_transport(mut self, http: Arc<dyn Transport>) -> Self {
        self.http = http;
        self
    }

    /// The transport for `url`.
    pub fn transport(&self, url: &str) -> &dyn Transport {
        if url.starts_with("file://") {
            &*self.file
        } else {
            &*self.http
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Fetches `url`, refusing more than `max_len` bytes; `Ok(None)` when the
    /// file does not exist (404, 403).
    pub async fn fetch(&self, url: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        let network = |reason: String| Error::Network {
            url: url.to_owned(),
            reason,
        };
        let too_large = || {
            network(format!(
                "it is larger than the {max_len}-byte limit for this file"
            ))
        };
        let mut response = self
            .transport(url)
            .get(url, None, None, Some(self.timeout * 4))
            .await
            .map_err(network)?;
        if response.status == 404 || response.status == 403 {
            return Ok(None);
        }
        if !(200..300).contains(&response.status) {
            return Err(network(format!("the server answered {}", response.status)));
        }
        if response.content_length.is_some_and(|len| len > max_len) {
            return Err(too_large());
        }
        read_capped(&mut *response.body, max_len)
            .await
            .map_err(network)?
            .map(Some)
            .ok_or_else(too_large)
    }

    /// POSTs JSON and reads a JSON answer of at most `max_len` bytes.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        max_len: u64,
    ) -> Result<(u16, serde_json::Value)> {
        self.transport(url)
            .post_json(url, body, max_len, self.timeout * 2)
            .await
            .map_err(|reason| Error::Network {
                url: url.to_owned(),
                reason,
            })
    }
}

/// Parses `bytes FIRST-LAST/TOTAL`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// One sentence for a reqwest error, without the URL (the caller names it).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the server did not answer in time".into()
    } else if error.is_connect() {
        "the server cannot be reached".into()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while receiving".into()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }
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

    /// A local folder answers like a static server: whole files, ranges,
    /// If-Range, 404 and 416.
    #[tokio::test]
    async fn a_local_folder_answers_like_a_static_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let url = format!("file://{}", path.display());
        let read = |mut response: Response| async move {
            read_capped(&mut *response.body, 100)
                .await
                .unwrap()
                .unwrap()
        };
        let whole = FileTransport.get(&url, None, None, None).await.unwrap();
        assert_eq!(whole.status, 200);
        let etag = whole.etag.clone().unwrap();
        assert_eq!(read(whole).await, b"0123456789");
        let part = FileTransport
            .get(&url, Some(2..5), Some(&etag), None)
            .await
            .unwrap();
        assert_eq!((part.status, part.content_range), (206, Some((2, 4, 10))));
        assert_eq!(read(part).await, b"234");
        let changed = FileTransport
            .get(&url, Some(2..5), Some("\"other\""), None)
            .await
            .unwrap();
        assert_eq!(changed.status, 200, "a changed file is sent whole");
        let beyond = FileTransport
            .get(&url, Some(20..30), None, None)
            .await
            .unwrap();
        assert_eq!(beyond.status, 416);
        let missing = format!("file://{}", dir.path().join("none").display());
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        assert_eq!(fetcher.fetch(&missing, 100).await.unwrap(), None);
        assert!(fetcher.fetch(&url, 5).await.is_err(), "over the cap");
    }

    #[test]
    fn plain_http_is_for_loopback_only_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/store",
            "http://[::1]:9000",
            "http://localhost:8080",
            "HTTP://LOCALHOST",
            "https://updates.example.com",
            "file:///srv/store",
        ] {
            assert_eq!(insecure_http(url, false), None, "{url}");
        }
        for url in [
            "http://updates.example.com",
            "http://10.0.0.5:8080",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://127.0.0.1@evil.com",
            "http://",
        ] {
            let reason = insecure_http(url, false).unwrap_or_else(|| panic!("{url} accepted"));
            assert!(
                reason.contains(&format!("`{url}`"))
                    && reason.contains("`update_server.allow_insecure_http: true`"),
                "{reason}"
            );
            assert_eq!(insecure_http(url, true), None, "{url} when allowed");
        }
    }

    #[tokio::test]
    async fn a_fetcher_refuses_plain_http_before_connecting() {
        let fetcher = Fetcher::with(Duration::from_secs(1), true).unwrap();
        let url = "http://updates.example.com/metadata/timestamp.json";
        let error = fetcher.fetch(url, 1024).await.unwrap_err().to_string();
        assert!(
            error.contains(&format!("refusing to connect: `{url}` is plain HTTP")),
            "{error}"
        );
        let error = fetcher
            .post_json(url, &serde_json::Value::Null, 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("refusing to connect"), "{error}");
    }

    #[tokio::test]
    async fn a_redirect_to_plain_http_elsewhere_is_not_followed() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 302 Found\r\nLocation: http://updates.example.com/timestamp.json\r\nContent-Length: 0\r\n\r\n";
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let fetcher = Fetcher::with(Duration::from_secs(5), true).unwrap();
        let error = fetcher
            .fetch(&format!("{base}/timestamp.json"), 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refusing the redirect")
                && error.contains("`http://updates.example.com/timestamp.json` is plain HTTP"),
            "{error}"
        );
    }
}
