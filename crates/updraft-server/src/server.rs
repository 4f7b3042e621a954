//! Configuration, start-up, background tasks and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use updraft_protocol::tuf::{Envelope, Timestamp};

use crate::admin::{AdminTokens, SignIns};
use crate::app::{AppState, Limits, router};
use crate::connections::{self, ConnectionLimits};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::postgres::{PostgresOptions, PostgresStorage, redact_url};
use crate::stats::{Recorder, SqliteStorage, Storage};
use crate::tls::acceptor;
use crate::view::ViewCell;

/// Everything `updraft serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The store folder (ignored when `bucket` is set).
    pub repo: PathBuf,
    /// A store in an S3-compatible bucket instead of a folder: checks are
    /// answered from the view of its signed metadata (polled every
    /// `reload_interval` with a conditional read of `timestamp.json`),
    /// files are streamed from the bucket. `database` must then be given.
    pub bucket: Option<updraft_publisher::s3::Bucket>,
    /// Base URL of a CDN or static host that serves the same store (the
    /// bucket behind it): package downloads and store files are then
    /// answered with a redirect there. Clients verify every byte against the
    /// signed metadata, so that host needs no trust.
    pub files_url: Option<String>,
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// `sqlite://PATH`, a plain path, or `postgres://USER:PASS@HOST:PORT/DB`;
    /// default `REPO/.updraft/server.sqlite`.
    pub database: Option<DatabaseUrl>,
    /// PostgreSQL pool size and timeouts.
    pub postgres: PostgresOptions,
    /// How often the admin overrides' version is read from the database, so
    /// a change made through another server applies here too.
    pub override_poll_interval: Duration,
    /// How often counted statistics are written.
    pub stats_flush_interval: Duration,
    /// File of admin tokens; without it the admin API is off.
    pub admin_token_file: Option<PathBuf>,
    /// File of `key_id:secret` HMAC keys (mode 0600) for signed admin
    /// requests and install reports.
    pub signing_key_file: Option<PathBuf>,
    /// Refuse install reports that are not signed.
    pub require_signed_reports: bool,
    /// Base URL used in answers (`https://updates.example.com`); default: the request's Host.
    pub public_url: Option<String>,
    /// Keys folder with `timestamp.key`: the server then re-signs the timestamp before it expires.
    pub keys: Option<PathBuf>,
    /// PEM certificate chain and key for built-in TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed to produce a response head.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait.
    pub max_concurrency: usize,
    /// Time a connection has to send a complete request head (and finish a
    /// TLS handshake), counted from when it opened or got its last answer:
    /// it closes half-sent (slowloris) and idle keep-alive connections.
    pub header_timeout: Duration,
    /// Connections open at once, from everyone; more are refused.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are refused.
    /// Behind a reverse proxy every connection comes from the proxy: raise it
    /// to `max_connections` there.
    pub max_connections_per_address: usize,
    /// How often the store is checked for a new timestamp.
    pub reload_interval: Duration,
    /// How often the timestamp's expiry is checked (with `keys`).
    pub refresh_interval: Duration,
    /// How often rollouts that halt themselves are checked besides after
    /// each batch of install reports.
    pub auto_halt_interval: Duration,
}

impl ServerConfig {
    /// Defaults for serving `repo` on `127.0.0.1:8080`.
    pub fn new(repo: PathBuf) -> Self {
        Self {
            repo,
            bucket: None,
            files_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: None,
            postgres: PostgresOptions::default(),
            override_poll_interval: Duration::from_millis(250),
            stats_flush_interval: Duration::from_secs(1),
            admin_token_file: None,
            signing_key_file: None,
            require_signed_reports: false,
            public_url: None,
            keys: None,
            tls: None,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 1024,
            header_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_address: 256,
            reload_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_mins(1),
            auto_halt_interval: Duration::from_mins(1),
        }
    }
}

/// A `--database` value. It may hold a password, so it is shown (Debug
/// and Display) with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL or path.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as given, password included: pass it to a driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for `postgres://` and `postgresql://`.
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

fn database_path(repo: &Path, url: &str) -> Result<PathBuf> {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
        return Err(Error::Config(format!(
            "`--database {}` is not a database URL; use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`",
            redact_url(url)
        )));
    }
    let _ = repo;
    Ok(PathBuf::from(path))
}

/// Opens the configured storage (SQLite by default) on a blocking thread.
async fn open_storage(config: &ServerConfig) -> Result<Arc<dyn Storage>> {
    let joined = |e: tokio::task::JoinError| Error::Config(e.to_string());
    match &config.database {
        Some(url) if url.is_postgres() => {
            let (url, options) = (url.clone(), config.postgres);
            let storage = tokio::task::spawn_blocking(move || {
                PostgresStorage::connect(url.expose(), options)
            })
            .await
            .map_err(joined)??;
            tracing::info!(database = %storage.redacted_url(), "using PostgreSQL");
            Ok(Arc::new(storage))
        }
        database => {
            let db_path = match database {
                Some(url) => database_path(&config.repo, url.expose())?,
                None => config.repo.join(".updraft/server.sqlite"),
            };
            if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    action: "create",
                    target: parent.display().to_string(),
                    source,
                })?;
            }
            let storage = tokio::task::spawn_blocking(move || SqliteStorage::open(&db_path))
                .await
                .map_err(joined)??;
            Ok(Arc::new(storage))
        }
    }
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local: SocketAddr,
    config: ServerConfig,
    state: Arc<AppState>,
    stats_stop: tokio::sync::oneshot::Sender<()>,
    stats_task: JoinHandle<()>,
    reports_written: Arc<tokio::sync::Notify>,
    overrides_version: i64,
}

impl Server {
    /// Opens the store and the database and binds the socket.
    pub async fn bind(mut config: ServerConfig) -> Result<Self> {
        // Before any request to the bucket: a missing setting is a usage error.
        if let Some(bucket) = &config.bucket
            && config.database.is_none()
        {
            return Err(Error::Config(format!(
                "`--repo {bucket}` is a bucket: give the server's database with `--database sqlite://PATH` (or `postgres://...`); statistics, overrides and audit cannot live in the bucket"
            )));
        }
        let mut cache = None;
        if let Some(bucket) = &config.bucket {
            // The signed metadata is kept in a private folder and loaded
            // from there as for a local store.
            let dir = tempfile::Builder::new()
                .prefix("updraft-serve-")
                .tempdir()
                .map_err(|source| Error::Io {
                    action: "create",
                    target: "a metadata cache folder".into(),
                    source,
                })?;
            let etag = updraft_publisher::s3::sync_metadata(bucket, dir.path(), None).await?;
            if etag.is_none() {
                return Err(updraft_publisher::Error::NotAStore {
                    path: PathBuf::from(bucket.to_string()),
                    reason: "it has no `metadata/timestamp.json`".into(),
                }
                .into());
            }
            config.repo = dir.path().to_path_buf();
            cache = Some((dir, etag));
        }
        if let Some(url) = &config.files_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::Config(format!(
                "`--files-url {url}` must start with http:// or https://"
            )));
        }
        let repo = config.repo.clone();
        if !repo.join("metadata").is_dir() {
            return Err(updraft_publisher::Error::NotAStore {
                path: repo,
                reason: "it has no `metadata` folder".into(),
            }
            .into());
        }
        let admin = config
            .admin_token_file
            .as_deref()
            .map(AdminTokens::load)
            .transpose()?;
        let signing = config
            .signing_key_file
            .as_deref()
            .map(crate::signing::SigningKeys::load)
            .transpose()?;
        if config.require_signed_reports && signing.is_none() {
            return Err(Error::Config(
                "`--require-signed-reports` needs `--signing-key-file`".into(),
            ));
        }
        if let Some(url) = &config.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::Config(format!(
                "`--public-url {url}` must start with http:// or https://"
            )));
        }
        let mut signing_keys = None;
        if let Some(keys) = &config.keys {
            let dir = updraft_publisher::keys::KeyDir::open(keys)?;
            dir.role_key(updraft_protocol::tuf::RoleName::Timestamp)?;
            if dir
                .role_key(updraft_protocol::tuf::RoleName::Targets)
                .is_ok()
                && dir
                    .role_key(updraft_protocol::tuf::RoleName::Snapshot)
                    .is_ok()
            {
                signing_keys = Some(keys.clone());
            } else {
                tracing::info!(keys = %keys.display(), "no targets key: admin changes and automatic halts apply to checks only, not to the signed targets");
            }
        }
        let storage = open_storage(&config).await?;
        let (overrides_version, overrides) = {
            let storage = Arc::clone(&storage);
            tokio::task::spawn_blocking(move || {
                Ok::<_, Error>((storage.overrides_version()?, storage.overrides()?))
            })
            .await
            .map_err(|e| Error::Config(e.to_string()))??
        };
        let view = ViewCell::new((Vec::new(), 0, Vec::new()), overrides);
        {
            let repo = config.repo.clone();
            let view_ref = &view;
            // Loading verifies every signature: do it before accepting requests.
            tokio::task::block_in_place(|| view_ref.reload_if_changed(&repo))?;
        }
        let reports_written = Arc::new(tokio::sync::Notify::new());
        let metrics = Arc::new(Metrics::default());
        let (recorder, stats_stop, stats_task) = Recorder::start(
            Arc::clone(&storage),
            Arc::clone(&reports_written),
            Arc::clone(&metrics),
            config.stats_flush_interval,
        );
        let listener = TcpListener::bind(config.listen).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                Error::AddressInUse {
                    address: config.listen.to_string(),
                }
            } else {
                Error::Io {
                    action: "listen on",
                    target: config.listen.to_string(),
                    source,
                }
            }
        })?;
        let local = listener.local_addr().map_err(|source| Error::Io {
            action: "read the address of",
            target: config.listen.to_string(),
            source,
        })?;
        let location = match &config.bucket {
            Some(bucket) => updraft_publisher::Location::S3(bucket.clone()),
            None => updraft_publisher::Location::Local(config.repo.clone()),
        };
        let (cache_dir, timestamp_etag) = match cache {
            Some((dir, etag)) => (Some(dir), etag),
            None => (None, None),
        };
        let state = Arc::new(AppState {
            store: config.repo.clone(),
            location,
            bucket: config.bucket.clone(),
            files_url: config
                .files_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            timestamp_etag: tokio::sync::Mutex::new(timestamp_etag),
            _cache_dir: cache_dir,
            view,
            storage,
            recorder,
            metrics,
            admin,
            sign_ins: SignIns::default(),
            admin_changes: tokio::sync::Mutex::new(()),
            public_url: config.public_url.clone(),
            scheme: if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            signing_keys,
            signing,
            require_signed_reports: config.require_signed_reports,
            body_limit: config.max_body_bytes,
            sessions: crate::dashboard::Sessions::default(),
        });
        Ok(Self {
            listener,
            local,
            config,
            state,
            stats_stop,
            stats_task,
            reports_written,
            overrides_version,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// True when built-in TLS is on.
    pub fn uses_tls(&self) -> bool {
        self.config.tls.is_some()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests
    /// and writes the last statistics.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Self {
            listener,
            local,
            config,
            state,
            stats_stop,
            stats_task,
            reports_written,
            overrides_version,
        } = self;
        let limits = Limits {
            body_bytes: config.max_body_bytes,
            timeout: config.request_timeout,
            concurrency: config.max_concurrency,
        };
        let app = router(Arc::clone(&state), limits);
        let mut background = vec![
            spawn_reloader(Arc::clone(&state), config.reload_interval),
            spawn_override_poller(
                Arc::clone(&state),
                overrides_version,
                config.override_poll_interval,
            ),
            crate::autohalt::spawn(
                Arc::clone(&state),
                reports_written,
                config.auto_halt_interval,
            ),
        ];
        if let Some(keys) = config.keys.clone() {
            background.push(spawn_refresher(
                Arc::clone(&state),
                keys,
                config.refresh_interval,
            ));
        }
        tracing::info!(address = %local, store = %state.location, tls = config.tls.is_some(), "serving");
        let tls = match &config.tls {
            Some((cert, key)) => Some(acceptor(cert, key)?),
            None => None,
        };
        let connection_limits = ConnectionLimits {
            header_timeout: config.header_timeout,
            max_connections: config.max_connections.max(1),
            max_per_address: config.max_connections_per_address.max(1),
        };
        connections::serve(
            listener,
            tls,
            app,
            connection_limits,
            Arc::clone(&state.metrics),
            shutdown,
        )
        .await;
        for task in background {
            task.abort();
        }
        // Every request is answered: write what they counted before exiting.
        let _ = stats_stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), stats_task).await;
        tracing::info!(address = %local, "stopped");
        Ok(())
    }
}

fn spawn_reloader(state: Arc<AppState>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.reload().await {
                Ok(Ok(true)) => {
                    state.metrics.reloaded();
                    tracing::info!(
                        targets_version = state.view.get().targets_version,
                        "reloaded the store"
                    );
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the store changed but cannot be loaded; still serving the previous view");
                }
                Err(error) => tracing::error!(%error, "the reload task failed"),
            }
        }
    })
}

/// Reads the overrides' version every `every` and, when another server (or
/// anyone sharing the database) changed an override, rebuilds the view from
/// the committed overrides. Also keeps `updraft_database_up` current when
/// no statistics are being written.
fn spawn_override_poller(state: Arc<AppState>, mut seen: i64, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let storage = Arc::clone(&state.storage);
            let version =
                match tokio::task::spawn_blocking(move || storage.overrides_version()).await {
                    Ok(Ok(version)) => version,
                    Ok(Err(error)) => {
                        crate::stats::database_failed(&state.metrics, &error);
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "the override poll failed");
                        continue;
                    }
                };
            crate::stats::database_answered(&state.metrics);
            if version == seen {
                continue;
            }
            // One at a time with this server's own admin changes, so an
            // older read never replaces a newer view.
            let _one_at_a_time = state.admin_changes.lock().await;
            let storage = Arc::clone(&state.storage);
            match tokio::task::spawn_blocking(move || storage.overrides()).await {
                Ok(Ok(overrides)) => {
                    state.view.replace_overrides(overrides);
                    tracing::debug!(version, "applied override changes from the database");
                    seen = version;
                }
                Ok(Err(error)) => crate::stats::database_failed(&state.metrics, &error),
                Err(error) => tracing::error!(%error, "the override poll failed"),
            }
        }
    })
}

/// Re-signs `timestamp.json` once less than half its lifetime is left.
fn spawn_refresher(state: Arc<AppState>, keys: PathBuf, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store, location, keys) =
                (state.store.clone(), state.location.clone(), keys.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                refresh_if_due(&store, &location, &keys, OffsetDateTime::now_utc())
            })
            .await;
            match outcome {
                Ok(Ok(Some(version))) => {
                    state.metrics.timestamp_refreshed();
                    tracing::info!(version, "re-signed timestamp.json");
                }
                Ok(Ok(None)) => {}
                Ok(Err(error))
                    if matches!(
                        *error,
                        updraft_publisher::Error::Fs(updraft_fs::Error::Locked { .. })
                    ) =>
                {
                    tracing::debug!("the store is busy (a publish is running); will retry");
                }
                Ok(Err(error)) => tracing::error!(%error, "could not re-sign timestamp.json"),
                Err(error) => tracing::error!(%error, "the refresh task failed"),
            }
        }
    })
}

/// Refreshes when the timestamp has less than half of the policy's lifetime
/// left; returns the new timestamp version if it did.
pub(crate) fn refresh_if_due(
    store: &Path,
    location: &updraft_publisher::Location,
    keys: &Path,
    now: OffsetDateTime,
) -> std::result::Result<Option<u64>, Box<updraft_publisher::Error>> {
    let policy = updraft_publisher::ExpiryPolicy::default();
    let path = store.join("metadata/timestamp.json");
    let bytes = std::fs::read(&path).map_err(|source| updraft_publisher::Error::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let expires = Envelope::<Timestamp>::from_slice("timestamp.json", &bytes)
        .map_err(|source| Box::new(updraft_publisher::Error::Verification { path, source }))?
        .signed
        .expires;
    if expires.instant() - now > policy.timestamp / 2 {
        return Ok(None);
    }
    let report = location.refresh(keys, now, &policy).map_err(Box::new)?;
    Ok(Some(report.timestamp_version))
}

/// Completes on Ctrl-C or SIGTERM. The handlers are in place when this
/// returns (call it inside the runtime, before announcing the server), so a
/// signal sent the moment the server is up is never missed.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
