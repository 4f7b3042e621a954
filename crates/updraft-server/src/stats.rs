//! Statistics, admin overrides and the audit log, behind the [`Storage`]
//! trait (SQLite now; PostgreSQL plugs in behind the same trait).
//!
//! The check path never waits for the database: events go into a bounded
//! channel (dropped and counted if it is ever full) and a background task
//! folds them into counters and writes them in one transaction per second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::view::{Override, ReleaseKey};

/// What happened, counted per app, version, channel, platform and arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A client checked (version is the client's).
    Check,
    /// A client was offered a release (version is the offer).
    Offer,
    /// A package download started at byte 0.
    DownloadStarted,
    /// A package's last byte was sent.
    DownloadCompleted,
    /// A client reported a successful install.
    Installed,
    /// A client reported a failed install.
    Failed,
    /// A client reported an automatic rollback.
    RolledBack,
}

impl EventKind {
    /// An install report (`installed`, `failed`, `rolled_back`).
    pub fn is_install_report(self) -> bool {
        matches!(self, Self::Installed | Self::Failed | Self::RolledBack)
    }

    /// A report of an install that did not stay (`failed`, `rolled_back`).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Offer => "offer",
            Self::DownloadStarted => "download_started",
            Self::DownloadCompleted => "download_completed",
            Self::Installed => "installed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// The dimensions a counter is kept for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CounterKey {
    /// Application.
    pub app: String,
    /// Version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// Arch.
    pub arch: String,
    /// Event.
    pub event: EventKind,
}

/// One counter: how many events, and bytes where that applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Events.
    pub count: u64,
    /// Bytes (downloads).
    pub bytes: u64,
}

/// A change made through the admin API: who, what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// RFC 3339 time.
    pub at: String,
    /// The token's name.
    pub who: String,
    /// What was done (`rollout 20`, `halt`, ...).
    pub action: String,
    /// The release.
    pub app: String,
    /// The release.
    pub version: String,
}

/// Where the server keeps what must survive a restart.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Adds a batch of counter deltas atomically.
    fn record(&self, batch: &BTreeMap<CounterKey, Count>) -> Result<()>;
    /// Every counter.
    fn counters(&self) -> Result<Vec<(CounterKey, Count)>>;
    /// Changes a release's override as one serialized read-modify-write:
    /// reads the committed value, stores what `change` makes of it (`None`
    /// clears it) with the audit entry, commits, and returns the new value.
    /// Concurrent callers (threads or other processes) never lose a change.
    fn change_override(
        &self,
        key: &ReleaseKey,
        change: &dyn Fn(Option<Override>) -> Option<Override>,
        audit: &AuditEntry,
    ) -> Result<Option<Override>>;
    /// Every override.
    fn overrides(&self) -> Result<BTreeMap<ReleaseKey, Override>>;
    /// The newest audit entries first.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>>;
    /// Install outcomes of `app` per minute since `since_minute` (Unix
    /// minutes), oldest first.
    fn timeline(&self, app: &str, since_minute: i64) -> Result<Vec<TimelinePoint>>;
}

/// Install outcomes of one version in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// Unix time / 60.
    pub minute: i64,
    /// Version reported.
    pub version: String,
    /// `installed`, `failed` or `rolled_back`.
    pub event: EventKind,
    /// Reports.
    pub count: u64,
}

/// The embedded default: one SQLite file.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    connection: Mutex<rusqlite::Connection>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = |source| Error::Database {
            path: path.to_path_buf(),
            source,
        };
        let connection = rusqlite::Connection::open(path).map_err(db)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS counters (
                     app TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL,
                     platform TEXT NOT NULL, arch TEXT NOT NULL, event TEXT NOT NULL,
                     count INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (app, version, channel, platform, arch, event));
                 CREATE TABLE IF NOT EXISTS overrides (
                     app TEXT NOT NULL, version TEXT NOT NULL, settings TEXT NOT NULL,
                     PRIMARY KEY (app, version));
                 CREATE TABLE IF NOT EXISTS timeline (
                     minute INTEGER NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL,
                     event TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (app, minute, version, event));
                 CREATE TABLE IF NOT EXISTS audit (
                     id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
                     action TEXT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL);",
            )
            .map_err(db)?;
        Ok(Self {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Database {
            path: self.path.clone(),
            source,
        }
    }
}

fn event_from(text: &str) -> Option<EventKind> {
    [
        EventKind::Check,
        EventKind::Offer,
        EventKind::DownloadStarted,
        EventKind::DownloadCompleted,
        EventKind::Installed,
        EventKind::Failed,
        EventKind::RolledBack,
    ]
    .into_iter()
    .find(|e| e.as_str() == text)
}

impl Storage for SqliteStorage {
    fn record(&self, batch: &BTreeMap<CounterKey, Count>) -> Result<()> {
        let mut connection = self.connection.lock().expect("database lock");
        let tx = connection.transaction().map_err(self.db())?;
        {
            let mut statement = tx
                .prepare_cached(
                    "INSERT INTO counters (app, version, channel, platform, arch, event, count, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (app, version, channel, platform, arch, event)
                     DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes",
                )
                .map_err(self.db())?;
            for (key, count) in batch {
                statement
                    .execute(rusqlite::params![
                        key.app,
                        key.version,
                        key.channel,
                        key.platform,
                        key.arch,
                        key.event.as_str(),
                        i64::try_from(count.count).unwrap_or(i64::MAX),
                        i64::try_from(count.bytes).unwrap_or(i64::MAX)
                    ])
                    .map_err(self.db())?;
            }
            // Install outcomes per minute, for the dashboard's adoption chart.
            let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
            let mut per_minute = tx
                .prepare_cached(
                    "INSERT INTO timeline (minute, app, version, event, count) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app, minute, version, event) DO UPDATE SET count = count + excluded.count",
                )
                .map_err(self.db())?;
            for (key, count) in batch.iter().filter(|(k, _)| k.event.is_install_report()) {
                per_minute
                    .execute(rusqlite::params![
                        minute,
                        key.app,
                        key.version,
                        key.event.as_str(),
                        i64::try_from(count.count).unwrap_or(i64::MAX)
                    ])
                    .map_err(self.db())?;
            }
        }
        tx.commit().map_err(self.db())
    }

    fn timeline(&self, app: &str, since_minute: i64) -> Result<Vec<TimelinePoint>> {
        let connection = self.connection.lock().expect("database lock");
        let mut statement = connection
            .prepare(
                "SELECT minute, version, event, count FROM timeline
                 WHERE app = ?1 AND minute >= ?2 ORDER BY minute LIMIT 200000",
            )
            .map_err(self.db())?;
        let rows = statement
            .query_map(rusqlite::params![app, since_minute], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (minute, version, event, count) = row.map_err(self.db())?;
            if let Some(event) = event_from(&event) {
                out.push(TimelinePoint {
                    minute,
                    version,
                    event,
                    count: u64::try_from(count).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    fn counters(&self) -> Result<Vec<(CounterKey, Count)>> {
        let connection = self.connection.lock().expect("database lock");
        let mut statement = connection
            .prepare("SELECT app, version, channel, platform, arch, event, count, bytes FROM counters ORDER BY 1, 2, 3, 4, 5, 6")
            .map_err(self.db())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    row.get::<_, i64>(7)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (app, version, channel, platform, arch, event, count, bytes) =
                row.map_err(self.db())?;
            let Some(event) = event_from(&event) else {
                continue;
            };
            out.push((
                CounterKey {
                    app,
                    version,
                    channel,
                    platform,
                    arch,
                    event,
                },
                Count {
                    count: u64::try_from(count).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                },
            ));
        }
        Ok(out)
    }

    fn change_override(
        &self,
        key: &ReleaseKey,
        change: &dyn Fn(Option<Override>) -> Option<Override>,
        audit: &AuditEntry,
    ) -> Result<Option<Override>> {
        let mut connection = self.connection.lock().expect("database lock");
        // IMMEDIATE takes the write lock before reading, so another process
        // sharing the file cannot change the row between read and write.
        let tx = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.db())?;
        let current: Option<String> = tx
            .query_row(
                "SELECT settings FROM overrides WHERE app = ?1 AND version = ?2",
                rusqlite::params![key.app, key.version],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.db())?;
        let current = current.and_then(|settings| serde_json::from_str(&settings).ok());
        let value = change(current);
        match &value {
            Some(value) => {
                let settings = serde_json::to_string(value).expect("overrides serialise");
                tx.execute(
                    "INSERT INTO overrides (app, version, settings) VALUES (?1, ?2, ?3)
                     ON CONFLICT (app, version) DO UPDATE SET settings = excluded.settings",
                    rusqlite::params![key.app, key.version, settings],
                )
                .map_err(self.db())?;
            }
            None => {
                tx.execute(
                    "DELETE FROM overrides WHERE app = ?1 AND version = ?2",
                    rusqlite::params![key.app, key.version],
                )
                .map_err(self.db())?;
            }
        }
        tx.execute(
            "INSERT INTO audit (at, who, action, app, version) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![audit.at, audit.who, audit.action, audit.app, audit.version],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(value)
    }

    fn overrides(&self) -> Result<BTreeMap<ReleaseKey, Override>> {
        let connection = self.connection.lock().expect("database lock");
        let mut statement = connection
            .prepare("SELECT app, version, settings FROM overrides")
            .map_err(self.db())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (app, version, settings) = row.map_err(self.db())?;
            match serde_json::from_str(&settings) {
                Ok(value) => {
                    out.insert(ReleaseKey { app, version }, value);
                }
                Err(error) => {
                    tracing::warn!(%app, %version, %error, "ignoring an unreadable override");
                }
            }
        }
        Ok(out)
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let connection = self.connection.lock().expect("database lock");
        let mut statement = connection
            .prepare("SELECT at, who, action, app, version FROM audit ORDER BY id DESC LIMIT ?1")
            .map_err(self.db())?;
        let rows = statement
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(AuditEntry {
                    at: row.get(0)?,
                    who: row.get(1)?,
                    action: row.get(2)?,
                    app: row.get(3)?,
                    version: row.get(4)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(self.db())
    }
}

/// One event on its way to storage.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) key: CounterKey,
    pub(crate) bytes: u64,
}

/// The non-blocking front of the statistics pipeline.
#[derive(Debug)]
pub(crate) struct Recorder {
    sender: mpsc::Sender<Event>,
    dropped: AtomicU64,
}

const QUEUE: usize = 65_536;

impl Recorder {
    /// Starts the batching task; it drains the queue, writes a last batch and
    /// ends when `stop` is sent (or every `Recorder` is dropped).
    pub(crate) fn start(
        storage: std::sync::Arc<dyn Storage>,
        reports_written: std::sync::Arc<tokio::sync::Notify>,
    ) -> (
        Self,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (sender, mut receiver) = mpsc::channel::<Event>(QUEUE);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut pending: BTreeMap<CounterKey, Count> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let (open, ticked) = tokio::select! {
                    event = receiver.recv() => match event {
                        Some(event) => {
                            let count = pending.entry(event.key).or_default();
                            count.count += 1;
                            count.bytes += event.bytes;
                            (true, false)
                        }
                        None => (false, false),
                    },
                    _ = tick.tick() => (true, true),
                    _ = &mut stopped => {
                        while let Ok(event) = receiver.try_recv() {
                            let count = pending.entry(event.key).or_default();
                            count.count += 1;
                            count.bytes += event.bytes;
                        }
                        (false, false)
                    }
                };
                if (!open || ticked || pending.len() >= 1000) && !pending.is_empty() {
                    let batch = std::mem::take(&mut pending);
                    let has_reports = batch.keys().any(|key| key.event.is_install_report());
                    let storage = std::sync::Arc::clone(&storage);
                    match tokio::task::spawn_blocking(move || storage.record(&batch)).await {
                        Ok(Ok(())) if has_reports => reports_written.notify_one(),
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(%error, "could not write statistics"),
                        Err(error) => tracing::error!(%error, "the statistics writer panicked"),
                    }
                }
                if !open {
                    break;
                }
            }
        });
        (
            Self {
                sender,
                dropped: AtomicU64::new(0),
            },
            stop,
            task,
        )
    }

    /// Queues an event without waiting; counts it as dropped if the queue is full.
    pub(crate) fn record(&self, key: CounterKey, bytes: u64) {
        if self.sender.try_send(Event { key, bytes }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
