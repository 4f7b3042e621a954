//! S3-compatible release storage: `--repo s3://BUCKET/PREFIX`.
//!
//! A bucket has no rename and no lock, so a change is made the way TUF
//! readers need it, with conditional writes instead of a transaction:
//!
//! 1. The *working copy*: the signed metadata the current `timestamp.json`
//!    leads to (and, for deltas, the packages they start from) is fetched
//!    into a private temporary store, with `.updraft/taken.json` naming
//!    every metadata version the bucket already holds.
//! 2. The ordinary local command (`publish`, `rollout`, `repo refresh`, ...)
//!    runs on that copy, so the publish logic exists once.
//! 3. What it wrote is uploaded in reader order: packages, manifests and
//!    every other signed target first (create-only), then the new versioned
//!    metadata (`N.ROLE.json`, `N.targets.json`, `N.snapshot.json`,
//!    create-only), then `timestamp.json`, the one mutable pointer, replaced
//!    only if its ETag is still the one read in step 1 (compare-and-swap).
//!    The browsing views (`versions.json`, `releases/latest/`, the
//!    changelog pages and feeds) follow.
//!
//! A publisher that loses the race (another one replaced the timestamp, or
//! took the metadata version it wanted) starts again from the new state, at
//! most [`ATTEMPTS`] times. A publish killed at any instant leaves the old
//! timestamp, which leads only to complete old metadata: readers see the old
//! release or the new one, never a mix. What a killed publish uploaded and
//! never signed is an *orphan*: `repo verify` names it, `repo gc` removes it
//! once older than a grace period (so never a concurrent publisher's fresh
//! objects).
//!
//! Memory stays flat as packages grow: an object larger than
//! [`MULTIPART_THRESHOLD`] is uploaded from its file in parts of
//! [`PART_BYTES`], at most [`PARTS_IN_FLIGHT`] at once, and every package
//! read from the bucket (to compare, for deltas, for `repo verify`) is
//! streamed into a hasher or to disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, UpdateVersion,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use updraft_protocol::tuf::{Envelope, Root, Snapshot, Timestamp};
use updraft_protocol::{Sha256Digest, TargetPath};

use crate::error::{Error, Result};
use crate::store::{METADATA_DIR, TAKEN_FILE, delegated_name, load_chain, metadata_name};

/// How many times a publisher starts again after another one changed the
/// bucket under it, before it gives up with [`Error::Contended`].
pub const ATTEMPTS: u32 = 5;

/// The largest metadata file read from a bucket (the client's own cap for
/// targets metadata).
pub const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

/// Objects larger than this are uploaded from their file with a multipart
/// upload (metadata is far smaller and keeps its conditional writes).
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;

/// The size of one part of a multipart upload (S3 wants at least 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload sent at once: with the one being read, an upload
/// holds at most `(PARTS_IN_FLIGHT + 1) * PART_BYTES` (24 MiB) of the file.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The environment variable that accepts a plain-HTTP endpoint that is not
/// on loopback.
pub const ALLOW_HTTP_VAR: &str = "UPDRAFT_S3_ALLOW_HTTP";

/// `s3://BUCKET/PREFIX`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    bucket: String,
    prefix: String,
}

impl S3Url {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (the prefix is a
    /// `/`-separated path without empty, `.` or `..` parts).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::S3Config(format!(
                "`{text}` is not an S3 store URL: {reason}; write `s3://BUCKET/PREFIX`"
            ))
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with `s3://`"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(bad(
                "a bucket name is 3 to 63 lowercase letters, digits, `-` and `.`",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && TargetPath::new(prefix).is_err() {
            return Err(bad(
                "the prefix must be a relative path without empty, `.` or `..` parts",
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (empty for the whole bucket).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL of one object of the store.
    pub fn object_url(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/{relative}", self.bucket)
        } else {
            format!("s3://{}/{}/{relative}", self.bucket, self.prefix)
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Where and how to reach the bucket: the usual AWS variables.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (default: AWS itself).
    pub endpoint: Option<String>,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `UPDRAFT_S3_ALLOW_HTTP=1`: accept a plain-HTTP endpoint that is not loopback.
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            allow_http: var(ALLOW_HTTP_VAR).is_some_and(|v| v == "1" || v == "true"),
        }
    }
}

/// True when `endpoint` is `http://` to a host other than loopback.
fn plain_http_off_loopback(endpoint: &str) -> Option<bool> {
    let rest = endpoint.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or(bracketed)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Some(!loopback)
}

/// One object's listing entry.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Store-relative name.
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix seconds.
    pub modified: i64,
    /// The bucket's ETag.
    pub etag: Option<String>,
}

/// A connected store in a bucket. Cloning shares the connection.
#[derive(Clone)]
pub struct Bucket {
    url: S3Url,
    client: Arc<AmazonS3>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bucket({})", self.url)
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.url.fmt(f)
    }
}

/// What a conditional write found.
enum Put {
    Done,
    /// An object is already there (create-only).
    Exists,
    /// The object changed since it was read (compare-and-swap).
    Changed,
}

impl Bucket {
    /// Prepares a client for `url` (no request is made yet). A plain-HTTP
    /// endpoint is refused unless it is on loopback or `settings.allow_http`.
    pub fn connect(url: &S3Url, settings: &S3Settings) -> Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"));
        let mut client_options = ClientOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(10))
            .with_timeout(std::time::Duration::from_mins(10));
        if let Some(endpoint) = &settings.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(Error::S3Config(format!(
                    "The S3 endpoint `{endpoint}` (AWS_ENDPOINT_URL) must start with https:// (or http:// on loopback)"
                )));
            }
            if plain_http_off_loopback(endpoint) == Some(true) && !settings.allow_http {
                return Err(Error::S3Config(format!(
                    "The S3 endpoint `{endpoint}` (AWS_ENDPOINT_URL) is plain HTTP to a host that is not loopback: the credentials' signatures and every release file would cross the network unencrypted; use https://, or set {ALLOW_HTTP_VAR}=1 if the network is yours"
                )));
            }
            if endpoint.starts_with("http://") {
                client_options = client_options.with_allow_http(true);
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let (Some(key_id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key)
        else {
            return Err(Error::S3Config(format!(
                "`{url}` needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a store other than AWS)"
            )));
        };
        builder = builder
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_client_options(client_options);
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token);
        }
        // reqwest is built without a default TLS provider; use ring, as the client does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = builder.build().map_err(|source| Error::S3 {
            action: "configure a client for",
            url: url.to_string(),
            source,
        })?;
        Ok(Self {
            url: url.clone(),
            client: Arc::new(client),
        })
    }

    /// The store's URL.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    fn key(&self, relative: &str) -> ObjectPath {
        if self.url.prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.url.prefix))
        }
    }

    fn error(&self, action: &'static str, relative: &str, source: object_store::Error) -> Error {
        Error::S3 {
            action,
            url: self.url.object_url(relative),
            source,
        }
    }

    /// Reads one object: its bytes and ETag, or `None` when it is absent.
    pub async fn get(&self, relative: &str) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        self.get_capped(relative, u64::MAX).await
    }

    /// [`Bucket::get`], refusing an object larger than `max` bytes before
    /// reading it (metadata: a bucket must not make a reader buffer gigabytes).
    pub async fn get_capped(
        &self,
        relative: &str,
        max: u64,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        match self.client.get(&self.key(relative)).await {
            Ok(result) if result.meta.size > max => Err(Error::Conflict(format!(
                "`{}` is {} bytes; metadata larger than {max} bytes is refused",
                self.url.object_url(relative),
                result.meta.size
            ))),
            Ok(result) => {
                let etag = result.meta.e_tag.clone();
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| self.error("read", relative, e))?;
                Ok(Some((bytes, etag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.error("read", relative, error)),
        }
    }

    /// Reads `relative` unless its ETag is still `etag`: `Ok(None)` then.
    pub async fn get_if_changed(
        &self,
        relative: &str,
        etag: Option<&str>,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        let options = GetOptions {
            if_none_match: etag.map(str::to_owned),
            ..GetOptions::default()
        };
        match self.client.get_opts(&self.key(relative), options).await {
            Ok(result) if result.meta.size > MAX_METADATA_BYTES => Err(Error::Conflict(format!(
                "`{}` is {} bytes; metadata larger than {MAX_METADATA_BYTES} bytes is refused",
                self.url.object_url(relative),
                result.meta.size
            ))),
            Ok(result) => {
                let etag = result.meta.e_tag.clone();
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| self.error("read", relative, e))?;
                Ok(Some((bytes, etag)))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            Err(error) => Err(self.error("read", relative, error)),
        }
    }

    /// Size, ETag and modification time of one object, or `None`.
    pub async fn head(&self, relative: &str) -> Result<Option<ObjectInfo>> {
        match self.client.head(&self.key(relative)).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                relative: relative.to_owned(),
                size: meta.size,
                modified: meta.last_modified.timestamp(),
                etag: meta.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.error("inspect", relative, error)),
        }
    }

    /// Streams bytes `range` of `relative` if its ETag is still `etag`
    /// (so the head read before and the body sent agree).
    pub async fn stream(
        &self,
        relative: &str,
        range: std::ops::Range<u64>,
        etag: Option<&str>,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        let options = GetOptions {
            if_match: etag.map(str::to_owned),
            range: (range.start < range.end).then_some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = self
            .client
            .get_opts(&self.key(relative), options)
            .await
            .map_err(|e| self.error("read", relative, e))?;
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed())
    }

    /// Every object under `under` (store-relative; `None` for the whole store).
    pub async fn list(&self, under: Option<&str>) -> Result<Vec<ObjectInfo>> {
        let prefix = match under {
            Some(under) => Some(self.key(under)),
            None if self.url.prefix.is_empty() => None,
            None => Some(ObjectPath::from(self.url.prefix.as_str())),
        };
        let strip = if self.url.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.url.prefix)
        };
        let mut stream = self.client.list(prefix.as_ref());
        let mut found = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| self.error("list", under.unwrap_or(""), e))?;
            let key = meta.location.to_string();
            let Some(relative) = key.strip_prefix(&strip) else {
                continue;
            };
            found.push(ObjectInfo {
                relative: relative.to_owned(),
                size: meta.size,
                modified: meta.last_modified.timestamp(),
                etag: meta.e_tag,
            });
        }
        found.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(found)
    }

    /// Streams `relative` into `sink` a chunk at a time: its SHA-256, or
    /// `None` when it is absent. Never holds the whole object.
    async fn read_streamed(
        &self,
        relative: &str,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<Option<Sha256Digest>> {
        let result = match self.client.get(&self.key(relative)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(self.error("read", relative, error)),
        };
        let mut hasher = Sha256::new();
        let mut chunks = result.into_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.error("read", relative, e))?;
            hasher.update(&chunk);
            sink(&chunk)?;
        }
        Ok(Some(Sha256Digest::from_bytes(hasher.finalize().into())))
    }

    /// The SHA-256 of `relative`, hashed as it streams, or `None` when absent.
    pub async fn digest(&self, relative: &str) -> Result<Option<Sha256Digest>> {
        self.read_streamed(relative, |_| Ok(())).await
    }

    /// Streams `relative` into a new file at `path` (in a private folder):
    /// its SHA-256, or `None` (and no file) when it is absent.
    pub async fn download(&self, relative: &str, path: &Path) -> Result<Option<Sha256Digest>> {
        use std::io::Write;
        if let Some(parent) = path.parent() {
            updraft_fs::create_dir_all_durable(parent)?;
        }
        let mut file = None;
        let digest = self
            .read_streamed(relative, |chunk| {
                if file.is_none() {
                    let created =
                        std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
                    file = Some(std::io::BufWriter::new(created));
                }
                if let Some(file) = &mut file {
                    file.write_all(chunk)
                        .map_err(|e| Error::io("write", path, e))?;
                }
                Ok(())
            })
            .await?;
        match (digest.is_some(), file) {
            (true, Some(file)) => {
                file.into_inner()
                    .map_err(|e| Error::io("write", path, e.into_error()))?
                    .sync_all()
                    .map_err(|e| Error::io("write", path, e))?;
            }
            // An empty object sends no chunk.
            (true, None) => updraft_fs::write_atomic(path, b"")?,
            (false, _) => {}
        }
        Ok(digest)
    }

    /// Uploads the file at `path` as `relative`, replacing what is there: a
    /// single request up to [`MULTIPART_THRESHOLD`], else a multipart upload
    /// read from the file a part at a time (bounded memory, module docs).
    async fn put_file(&self, relative: &str, path: &Path) -> Result<()> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io("inspect", path, e))?
            .len();
        if size <= MULTIPART_THRESHOLD {
            let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
            self.put(relative, bytes.into(), PutMode::Overwrite).await?;
            return Ok(());
        }
        let mut upload = self
            .client
            .put_multipart(&self.key(relative))
            .await
            .map_err(|e| self.error("start an upload of", relative, e))?;
        match self.send_parts(relative, path, upload.as_mut()).await {
            Ok(()) => Ok(()),
            Err(error) => {
                // Leave no parts behind (the bucket would bill for them).
                let _ = upload.abort().await;
                Err(error)
            }
        }
    }

    async fn send_parts(
        &self,
        relative: &str,
        path: &Path,
        upload: &mut dyn MultipartUpload,
    ) -> Result<()> {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut in_flight: FuturesUnordered<object_store::UploadPart> = FuturesUnordered::new();
        loop {
            let mut part = Vec::with_capacity(PART_BYTES);
            (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut part)
                .map_err(|e| Error::io("read", path, e))?;
            if part.is_empty() {
                break;
            }
            while in_flight.len() >= PARTS_IN_FLIGHT {
                if let Some(sent) = in_flight.next().await {
                    sent.map_err(|e| self.error("upload a part of", relative, e))?;
                }
            }
            in_flight.push(upload.put_part(PutPayload::from(part)));
        }
        while let Some(sent) = in_flight.next().await {
            sent.map_err(|e| self.error("upload a part of", relative, e))?;
        }
        upload
            .complete()
            .await
            .map_err(|e| self.error("finish the upload of", relative, e))?;
        Ok(())
    }

    async fn put(&self, relative: &str, bytes: bytes::Bytes, mode: PutMode) -> Result<Put> {
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .client
            .put_opts(&self.key(relative), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(Put::Done),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Exists),
            Err(object_store::Error::Precondition { .. }) => Ok(Put::Changed),
            Err(error) => Err(self.error("write", relative, error)),
        }
    }

    /// Removes one object.
    pub async fn delete(&self, relative: &str) -> Result<()> {
        self.client
            .delete(&self.key(relative))
            .await
            .map_err(|e| self.error("delete", relative, e))
    }
}

/// Runs `future` to completion from synchronous code: on the current Tokio
/// runtime when called from a blocking thread of one, else on a new one.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output> {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return Ok(handle.block_on(future));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start", "an async runtime", e))?;
    Ok(runtime.block_on(future))
}

/// A private temporary store holding what a command needs of the bucket.
#[derive(Debug)]
pub(crate) struct WorkingCopy {
    dir: tempfile::TempDir,
    /// The ETag of `timestamp.json` as read (`None`: the bucket has no store yet).
    timestamp: Option<UpdateVersion>,
    /// Files fetched, with their digest: anything else written is new.
    fetched: BTreeMap<String, Sha256Digest>,
}

/// The ETag of `timestamp.json` and the store-relative names of the
/// metadata it leads to, fetched into `dir/metadata/`.
pub(crate) struct Chain {
    /// The ETag of the timestamp fetched.
    pub(crate) etag: Option<String>,
    /// Every file fetched, with its digest.
    pub(crate) files: BTreeMap<String, Sha256Digest>,
}

/// The metadata versions the bucket holds, by file stem (`N.STEM.json`).
pub(crate) fn taken_versions(names: &[ObjectInfo]) -> BTreeMap<String, u64> {
    let mut taken = BTreeMap::new();
    for info in names {
        if let Some((version, stem)) = versioned_metadata(&info.relative) {
            let entry = taken.entry(stem.to_owned()).or_insert(0);
            *entry = (*entry).max(version);
        }
    }
    taken
}

/// `metadata/N.STEM.json` → `(N, STEM)`.
pub(crate) fn versioned_metadata(relative: &str) -> Option<(u64, &str)> {
    let name = relative.strip_prefix("metadata/")?;
    let stem = name.strip_suffix(".json")?;
    let (version, stem) = stem.split_once('.')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || stem.is_empty() {
        return None;
    }
    Some((version.parse().ok()?, stem))
}

fn write_file(dir: &Path, relative: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(relative);
    // Unchanged files keep their modification time (the server reloads on it).
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        updraft_fs::create_dir_all_durable(parent)?;
    }
    updraft_fs::write_atomic(&path, bytes)?;
    Ok(())
}

/// The SHA-256 and size of the file at `path`, read a megabyte at a time.
fn file_digest(path: &Path) -> Result<(Sha256Digest, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| Error::io("read", path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
}

/// Fetches the metadata chain the bucket's current timestamp leads to into
/// `dir` (root chain, timestamp, snapshot, and every targets file the
/// snapshot pins). `Ok(None)` when the bucket holds no store.
pub(crate) async fn fetch_chain(
    bucket: &Bucket,
    dir: &Path,
    listing: &[ObjectInfo],
) -> Result<Option<Chain>> {
    let mut files = BTreeMap::new();
    let Some((timestamp, etag)) = bucket
        .get_capped("metadata/timestamp.json", MAX_METADATA_BYTES)
        .await?
    else {
        return Ok(None);
    };
    let mut roots: Vec<(u64, &str)> = listing
        .iter()
        .filter_map(|info| {
            let (version, stem) = versioned_metadata(&info.relative)?;
            (stem == "root").then_some((version, info.relative.as_str()))
        })
        .collect();
    roots.sort_unstable();
    let mut consistent = true;
    let mut names: Vec<String> = roots.iter().map(|(_, name)| (*name).to_owned()).collect();
    names.push("metadata/root.json".to_owned());
    for name in names {
        if let Some((bytes, _)) = bucket.get_capped(&name, MAX_METADATA_BYTES).await? {
            if let Ok(root) = Envelope::<Root>::from_slice(&name, &bytes) {
                consistent = root.signed.consistent_snapshot;
            }
            files.insert(name.clone(), Sha256Digest::of(&bytes));
            write_file(dir, &name, &bytes)?;
        }
    }
    let timestamp_name = "metadata/timestamp.json".to_owned();
    let parsed =
        Envelope::<Timestamp>::from_slice("timestamp.json", &timestamp).map_err(|source| {
            Error::Verification {
                path: PathBuf::from(bucket.url.object_url(&timestamp_name)),
                source,
            }
        })?;
    let snapshot_name = format!(
        "{METADATA_DIR}/{}",
        metadata_name(
            "snapshot",
            parsed.signed.snapshot_meta().version,
            consistent
        )
    );
    let mut pinned = Vec::new();
    if let Some((bytes, _)) = bucket
        .get_capped(&snapshot_name, MAX_METADATA_BYTES)
        .await?
    {
        if let Ok(snapshot) = Envelope::<Snapshot>::from_slice(&snapshot_name, &bytes) {
            for (name, meta) in &snapshot.signed.meta {
                let role = name.strip_suffix(".json").unwrap_or(name);
                let file = if role == "targets" {
                    metadata_name("targets", meta.version, consistent)
                } else {
                    delegated_name(role, meta.version, consistent)
                };
                pinned.push(format!("{METADATA_DIR}/{file}"));
            }
        }
        files.insert(snapshot_name.clone(), Sha256Digest::of(&bytes));
        write_file(dir, &snapshot_name, &bytes)?;
    }
    for name in pinned {
        if let Some((bytes, _)) = bucket.get_capped(&name, MAX_METADATA_BYTES).await? {
            files.insert(name.clone(), Sha256Digest::of(&bytes));
            write_file(dir, &name, &bytes)?;
        }
    }
    // The timestamp last, so a reader of `dir` sees it only with what it needs.
    files.insert(timestamp_name.clone(), Sha256Digest::of(&timestamp));
    write_file(dir, &timestamp_name, &timestamp)?;
    Ok(Some(Chain { etag, files }))
}

/// Brings the signed metadata in `dir` up to date with the bucket, for a
/// server: a conditional read of `timestamp.json` (nothing else is read when
/// its ETag is still `etag`), then the metadata a new timestamp leads to.
/// Returns the new ETag, or `None` when nothing changed (or, with no `etag`,
/// when the bucket holds no store).
pub async fn sync_metadata(
    bucket: &Bucket,
    dir: &Path,
    etag: Option<&str>,
) -> Result<Option<String>> {
    if let Some(etag) = etag {
        // Not every S3 implementation answers If-None-Match with 304: the
        // ETag is compared here too.
        match bucket
            .get_if_changed("metadata/timestamp.json", Some(etag))
            .await?
        {
            None => return Ok(None),
            Some((_, new)) if new.as_deref() == Some(etag) => return Ok(None),
            Some(_) => {}
        }
    }
    let listing = bucket.list(Some(METADATA_DIR)).await?;
    Ok(fetch_chain(bucket, dir, &listing)
        .await?
        .map(|chain| chain.etag.unwrap_or_default()))
}

impl WorkingCopy {
    /// Fetches the current state of the store in `bucket`. With `expect_store`
    /// false, the bucket must hold no store (`repo init`).
    pub(crate) async fn checkout(bucket: &Bucket, expect_store: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("updraft-s3-")
            .tempdir()
            .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
        let listing = bucket.list(Some(METADATA_DIR)).await?;
        let chain = fetch_chain(bucket, dir.path(), &listing).await?;
        let (timestamp, fetched) = match (chain, expect_store) {
            (Some(chain), true) => (
                Some(UpdateVersion {
                    e_tag: chain.etag,
                    version: None,
                }),
                chain.files,
            ),
            (None, false) => {
                if !listing.is_empty() {
                    return Err(Error::AlreadyExists {
                        path: PathBuf::from(bucket.url.object_url(METADATA_DIR)),
                        hint: "`repo init` needs a prefix without a store; an existing store is never overwritten".into(),
                    });
                }
                (None, BTreeMap::new())
            }
            (Some(_), false) => {
                return Err(Error::AlreadyExists {
                    path: PathBuf::from(bucket.url.object_url("metadata/timestamp.json")),
                    hint: "`repo init` needs a prefix without a store; an existing store is never overwritten".into(),
                });
            }
            (None, true) => {
                return Err(Error::NotAStore {
                    path: PathBuf::from(bucket.url.to_string()),
                    reason: "it has no `metadata/timestamp.json`".into(),
                });
            }
        };
        if expect_store {
            let state = dir.path().join(".updraft");
            updraft_fs::create_dir_all_durable_with_mode(&state, 0o700)?;
            let taken = serde_json::to_vec(&taken_versions(&listing)).expect("a map serialises");
            updraft_fs::write_atomic(&state.join(TAKEN_FILE), &taken)?;
        }
        Ok(Self {
            dir,
            timestamp,
            fetched,
        })
    }

    /// The folder the local command runs on.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fetches more files (the packages a delta starts from) into the copy.
    pub(crate) async fn fetch(&mut self, bucket: &Bucket, relative: &str) -> Result<()> {
        if self.fetched.contains_key(relative) {
            return Ok(());
        }
        let path = self.dir.path().join(relative);
        let Some(digest) = bucket.download(relative, &path).await? else {
            return Ok(()); // the local command reports what is missing
        };
        self.fetched.insert(relative.to_owned(), digest);
        Ok(())
    }

    /// Every file the command wrote, by store-relative name.
    fn changed(&self) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let mut pending = vec![self.dir.path().to_path_buf()];
        while let Some(folder) = pending.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| Error::io("list", &folder, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &folder, e))?;
                let path = entry.path();
                let relative = path
                    .strip_prefix(self.dir.path())
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                if relative == ".updraft" {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io("inspect", &path, e))?;
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    let (digest, _) = file_digest(&path)?;
                    if self.fetched.get(&relative) != Some(&digest) {
                        changed.push(relative);
                    }
                }
            }
        }
        changed.sort();
        Ok(changed)
    }

    /// Uploads what the command wrote, in reader order (module docs).
    /// `Ok(false)`: another publisher changed the store first; start again.
    pub(crate) async fn push(&self, bucket: &Bucket) -> Result<bool> {
        let changed = self.changed()?;
        let current = load_chain(self.dir.path(), None)?;
        let resolved = current.resolved();
        let mut signed_objects = BTreeSet::new();
        let mut hash_named = BTreeSet::new();
        for (name, target) in &resolved.targets {
            signed_objects.insert(name.clone());
            if let (Ok(path), Some(digest)) = (TargetPath::new(name), target.sha256()) {
                hash_named.insert(path.with_hash_prefix(&digest));
            }
        }
        signed_objects.extend(hash_named.iter().cloned());
        let (mut objects, mut metadata, mut views) = (Vec::new(), Vec::new(), Vec::new());
        let mut snapshots = Vec::new();
        let mut timestamp = false;
        for name in changed {
            if name == "metadata/timestamp.json" {
                timestamp = true;
            } else if let Some((_, stem)) = versioned_metadata(&name) {
                if stem == "snapshot" {
                    snapshots.push(name);
                } else {
                    metadata.push(name);
                }
            } else if signed_objects.contains(&name) {
                objects.push(name);
            } else {
                views.push(name);
            }
        }
        let read = |name: &str| -> Result<bytes::Bytes> {
            let path = self.dir.path().join(name);
            std::fs::read(&path)
                .map(bytes::Bytes::from)
                .map_err(|e| Error::io("read", path, e))
        };
        for name in &objects {
            let path = self.dir.path().join(name);
            let (digest, size) = file_digest(&path)?;
            if size <= MULTIPART_THRESHOLD {
                if let Put::Exists = bucket.put(name, read(name)?, PutMode::Create).await? {
                    self.reuse_existing(bucket, name, &path, digest).await?;
                }
            } else if hash_named.contains(name) || bucket.head(name).await?.is_none() {
                // A multipart upload cannot be create-only. A hash-prefixed
                // name is content-addressed: whoever writes it writes these
                // bytes or bytes no client accepts, so it is (re)written
                // unconditionally, which also refreshes it for `repo gc`.
                // A plain name found absent is written the same way (the
                // residual race is in docs/deploy.md, "Limits").
                bucket.put_file(name, &path).await?;
            } else {
                self.reuse_existing(bucket, name, &path, digest).await?;
            }
            updraft_fs::fault::point("s3.object");
        }
        metadata.extend(snapshots);
        // A refused conditional write whose object now holds exactly these
        // bytes was this process's own write, retried by the HTTP client
        // after a lost answer: it succeeded.
        let ours = async |name: &str, bytes: &bytes::Bytes| -> Result<bool> {
            Ok(bucket
                .get_capped(name, MAX_METADATA_BYTES)
                .await?
                .is_some_and(|(there, _)| there == *bytes))
        };
        for name in &metadata {
            let bytes = read(name)?;
            match bucket.put(name, bytes.clone(), PutMode::Create).await? {
                Put::Done => {}
                _ if ours(name, &bytes).await? => {}
                // Another publisher took this version: start again past it.
                Put::Exists | Put::Changed => return Ok(false),
            }
            updraft_fs::fault::point("s3.metadata");
        }
        if timestamp {
            let mode = match &self.timestamp {
                Some(version) => PutMode::Update(version.clone()),
                None => PutMode::Create,
            };
            let name = "metadata/timestamp.json";
            let bytes = read(name)?;
            match bucket.put(name, bytes.clone(), mode).await? {
                Put::Done => {}
                _ if ours(name, &bytes).await? => {}
                Put::Exists | Put::Changed => return Ok(false),
            }
            updraft_fs::fault::point("s3.timestamp");
        }
        // The views are conveniences derived from the signed targets: when a
        // publisher that committed after this one is already there, its views
        // are the newer ones and stay.
        if timestamp {
            let ours = read("metadata/timestamp.json")?;
            if bucket
                .get("metadata/timestamp.json")
                .await?
                .is_some_and(|(theirs, _)| theirs != ours)
            {
                return Ok(true);
            }
        }
        for name in &views {
            bucket.put(name, read(name)?, PutMode::Overwrite).await?;
        }
        Ok(true)
    }

    /// A signed object the bucket already has: the same bytes (another
    /// platform's identical notes, a retry after a lost race) are fine, and
    /// are written again so the object is fresh for `repo gc`'s grace period;
    /// other bytes under a plain name were left by an interrupted publish.
    /// The bucket's object is hashed as it streams, never held whole.
    async fn reuse_existing(
        &self,
        bucket: &Bucket,
        name: &str,
        path: &Path,
        digest: Sha256Digest,
    ) -> Result<()> {
        if bucket.digest(name).await? == Some(digest) {
            bucket.put_file(name, path).await?;
            return Ok(());
        }
        Err(Error::Conflict(format!(
            "`{}` already exists in the bucket with other bytes, and the signed metadata does not list it: an interrupted publish left it (`updraft repo verify --repo {}` lists such orphans, `updraft repo gc` removes them once older than its grace period)",
            bucket.url.object_url(name),
            bucket.url
        )))
    }
}

/// Puts the bucket's URL where an error names the working copy's folder.
pub(crate) fn rename_error(error: Error, copy: &Path, url: &S3Url) -> Error {
    let name = |path: &Path| -> PathBuf {
        match path.strip_prefix(copy) {
            Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(url.to_string()),
            Ok(rest) => PathBuf::from(url.object_url(&rest.to_string_lossy())),
            Err(_) => path.to_path_buf(),
        }
    };
    match error {
        Error::AlreadyPublished {
            app,
            version,
            platform,
            arch,
            store,
        } => Error::AlreadyPublished {
            app,
            version,
            platform,
            arch,
            store: name(&store),
        },
        Error::NotAStore { path, reason } => Error::NotAStore {
            path: name(&path),
            reason,
        },
        Error::Verification { path, source } => Error::Verification {
            path: name(&path),
            source,
        },
        Error::Io {
            action,
            path,
            source,
        } => Error::Io {
            action,
            path: name(&path),
            source,
        },
        Error::Conflict(message) => {
            Error::Conflict(message.replace(&copy.display().to_string(), &url.to_string()))
        }
        other => other,
    }
}

/// Runs `command` on a working copy of the store in `bucket` and uploads
/// what it wrote, starting again on the new state when another publisher
/// got there first. `prepare` may fetch more files into the copy first.
pub(crate) fn change<T>(
    bucket: &Bucket,
    prepare: impl AsyncFnMut(&mut WorkingCopy) -> Result<()>,
    command: impl FnMut(&Path) -> Result<T>,
) -> Result<T> {
    block_on(change_async(bucket, true, prepare, command))?
}

pub(crate) async fn change_async<T>(
    bucket: &Bucket,
    expect_store: bool,
    mut prepare: impl AsyncFnMut(&mut WorkingCopy) -> Result<()>,
    mut command: impl FnMut(&Path) -> Result<T>,
) -> Result<T> {
    for attempt in 1..=ATTEMPTS {
        let mut copy = WorkingCopy::checkout(bucket, expect_store).await?;
        prepare(&mut copy).await?;
        let outcome =
            command(copy.path()).map_err(|e| rename_error(e, copy.path(), &bucket.url))?;
        if copy.push(bucket).await? {
            return Ok(outcome);
        }
        if !expect_store {
            return Err(Error::AlreadyExists {
                path: PathBuf::from(bucket.url.object_url(METADATA_DIR)),
                hint: "another `repo init` created a store there at the same time".into(),
            });
        }
        tracing::info!(attempt, store = %bucket.url, "another publisher changed the store first; starting again on its state");
        // A short random pause, so two publishers do not collide again at once.
        let mut random = [0u8; 2];
        let _ = getrandom::fill(&mut random);
        let pause = 50 + u64::from(u16::from_le_bytes(random)) % (200 * u64::from(attempt));
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
    Err(Error::Contended {
        url: bucket.url.to_string(),
        attempts: ATTEMPTS,
    })
}

/// Fetches every object of the store into a temporary folder, for `repo verify`.
pub(crate) async fn mirror(bucket: &Bucket) -> Result<(tempfile::TempDir, Vec<ObjectInfo>)> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-s3-verify-")
        .tempdir()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
    let listing = bucket.list(None).await?;
    for info in &listing {
        // Names a local store could not hold are reported, not fetched.
        if TargetPath::new(&info.relative).is_err() {
            continue;
        }
        // Streamed to disk (a package may be gigabytes); `None`: deleted since listed.
        bucket
            .download(&info.relative, &dir.path().join(&info.relative))
            .await?;
    }
    Ok((dir, listing))
}

/// Objects of the store that no signed metadata refers to, given the
/// store's current metadata and views fetched into `dir`.
pub(crate) fn orphans(dir: &Path, listing: &[ObjectInfo]) -> Result<Vec<ObjectInfo>> {
    let current = load_chain(dir, None)?;
    let resolved = current.resolved();
    let mut used: BTreeSet<String> = [
        "metadata/root.json",
        "metadata/timestamp.json",
        "metadata/versions.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for (name, target) in &resolved.targets {
        used.insert(name.clone());
        if let (Ok(path), Some(digest)) = (TargetPath::new(name), target.sha256()) {
            used.insert(path.with_hash_prefix(&digest));
        }
    }
    used.extend(crate::layout::latest_files(&resolved).into_keys());
    let (releases, _) = crate::layout::releases(&resolved);
    let infos: Vec<&updraft_protocol::ReleaseInfo> =
        releases.iter().map(|r| &r.custom.release).collect();
    used.extend(crate::announce::store_files(&infos).into_keys());
    // Versioned metadata up to the current versions stays (a client that
    // read an older timestamp may still need it); newer versions were
    // uploaded by a publish that never signed its timestamp.
    let mut current_versions: BTreeMap<String, u64> = BTreeMap::new();
    current_versions.insert("snapshot".into(), current.snapshot().signed.version);
    current_versions.insert("targets".into(), current.targets().signed.version);
    current_versions.insert("timestamp".into(), current.timestamp().signed.version);
    for (name, meta) in &current.snapshot().signed.meta {
        let role = name.strip_suffix(".json").unwrap_or(name);
        if role != "targets" {
            current_versions.insert(updraft_protocol::tuf::role_file_stem(role), meta.version);
        }
    }
    let root_version = current.root().signed.version;
    Ok(listing
        .iter()
        .filter(|info| {
            if used.contains(&info.relative) {
                return false;
            }
            match versioned_metadata(&info.relative) {
                Some((version, "root")) => version > root_version,
                Some((version, stem)) => current_versions
                    .get(stem)
                    .is_some_and(|current| version > *current),
                None => true,
            }
        })
        .cloned()
        .collect())
}

/// What `repo gc` removed and kept.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Orphans removed.
    pub removed: Vec<ObjectInfo>,
    /// Orphans younger than the grace period, kept (a publish may be uploading them).
    pub kept: Vec<ObjectInfo>,
}

/// `repo gc`: removes the orphans older than `grace` at `now`.
pub(crate) async fn gc(
    bucket: &Bucket,
    grace: std::time::Duration,
    now: OffsetDateTime,
) -> Result<GcReport> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-s3-gc-")
        .tempdir()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
    let listing = bucket.list(None).await?;
    let metadata: Vec<ObjectInfo> = listing
        .iter()
        .filter(|i| i.relative.starts_with("metadata/"))
        .cloned()
        .collect();
    if fetch_chain(bucket, dir.path(), &metadata).await?.is_none() {
        return Err(Error::NotAStore {
            path: PathBuf::from(bucket.url.to_string()),
            reason: "it has no `metadata/timestamp.json`".into(),
        });
    }
    let cutoff = now.unix_timestamp() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let mut report = GcReport::default();
    for orphan in orphans(dir.path(), &listing)? {
        if orphan.modified <= cutoff {
            bucket.delete(&orphan.relative).await?;
            report.removed.push(orphan);
        } else {
            report.kept.push(orphan);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let url = S3Url::parse("s3://my-bucket/stores/kuzflow/").unwrap();
        assert_eq!(
            (url.bucket(), url.prefix()),
            ("my-bucket", "stores/kuzflow")
        );
        assert_eq!(url.to_string(), "s3://my-bucket/stores/kuzflow");
        assert_eq!(S3Url::parse("s3://bucket").unwrap().prefix(), "");
        for bad in [
            "s3://",
            "s3://B",
            "s3://ab",
            "s3://bucket/../x",
            "s3://bucket/a//b",
            "http://bucket/x",
            "s3://-bucket",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert_eq!(plain_http_off_loopback("https://s3.example.com"), None);
        for loopback in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
            "http://127.8.0.1",
        ] {
            assert_eq!(plain_http_off_loopback(loopback), Some(false), "{loopback}");
        }
        for remote in [
            "http://10.0.0.5:9000",
            "http://s3.example.com",
            "http://127.0.0.1.example.com:80",
            "http://user@192.168.1.1",
        ] {
            assert_eq!(plain_http_off_loopback(remote), Some(true), "{remote}");
        }
        let settings = S3Settings {
            endpoint: Some("http://10.0.0.5:9000".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..S3Settings::default()
        };
        let url = S3Url::parse("s3://bucket/p").unwrap();
        let error = Bucket::connect(&url, &settings).unwrap_err().to_string();
        assert!(
            error.contains("plain HTTP") && error.contains(ALLOW_HTTP_VAR),
            "{error}"
        );
        let allowed = S3Settings {
            allow_http: true,
            ..settings
        };
        assert!(Bucket::connect(&url, &allowed).is_ok());
    }

    #[test]
    fn versioned_names_are_read() {
        assert_eq!(
            versioned_metadata("metadata/12.targets.json"),
            Some((12, "targets"))
        );
        assert_eq!(
            versioned_metadata("metadata/3.ci.beta.json"),
            Some((3, "ci.beta"))
        );
        assert_eq!(versioned_metadata("metadata/timestamp.json"), None);
        assert_eq!(versioned_metadata("metadata/x.targets.json"), None);
        assert_eq!(versioned_metadata("releases/1.targets.json"), None);
    }
}
