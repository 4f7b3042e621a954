//! Statistics, admin overrides and the audit log, behind the [`Storage`]
//! trait: SQLite (the default, [`SqliteStorage`]) or PostgreSQL
//! ([`PostgresStorage`](crate::PostgresStorage)).
//!
//! The check path never waits for the database: events go into a bounded
//! channel (dropped and counted if it is ever full) and a background task
//! folds them into counters and writes them in one transaction per second.
//! While the database is unreachable the counters keep adding up in memory
//! (at most [`MAX_BUFFERED_KEYS`] distinct counters; events of further new
//! counters are dropped and counted) and are written when it returns. Each
//! batch carries an id that the database remembers, so a batch retried after
//! a commit whose answer was lost is counted once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
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

    /// The name stored in the database (`check`, `download_started`, ...).
    pub fn as_str(self) -> &'static str {
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

/// Install reports per minute: (Unix minute, app, version, event).
pub type TimelineKey = (i64, String, String, EventKind);

/// Counter deltas written as one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Unique per batch (the server's random instance id and a sequence
    /// number): the storage remembers it, so writing the same batch twice
    /// counts it once.
    pub id: String,
    /// Counter deltas.
    pub counters: BTreeMap<CounterKey, Count>,
    /// Install reports per minute, for the adoption chart.
    pub timeline: BTreeMap<TimelineKey, u64>,
}

impl Batch {
    /// Counters and timeline entries held.
    pub fn keys(&self) -> usize {
        self.counters.len() + self.timeline.len()
    }

    /// Events held.
    pub fn events(&self) -> u64 {
        self.counters.values().map(|c| c.count).sum()
    }

    fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.timeline.is_empty()
    }
}

/// Where the server keeps what must survive a restart.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Adds a batch of counter deltas atomically; a batch whose id was
    /// written before is not added again.
    fn record(&self, batch: &Batch) -> Result<()>;
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
    /// A number that changes with every committed override change (from any
    /// server sharing the database): a cheap poll for "reload the overrides".
    fn overrides_version(&self) -> Result<i64>;
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

/// The SQLite schema, one migration per version (version N is
/// `SQLITE_MIGRATIONS[N - 1]`). Version 1 is what servers before versioning
/// created (hence `IF NOT EXISTS`). Never change a released migration.
const SQLITE_MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS counters (
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
    "CREATE TABLE applied_batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
     CREATE INDEX applied_batches_at ON applied_batches (at);
     CREATE TABLE overrides_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
     INSERT INTO overrides_version (id, version) VALUES (1, 0);",
];

/// The SQLite schema version this build writes and understands.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations
pub const SQLITE_SCHEMA_VERSION: i64 = SQLITE_MIGRATIONS.len() as i64;

/// The embedded default: one SQLite file.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    connection: Mutex<rusqlite::Connection>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date; a database that a newer updraft migrated is refused.
    pub fn open(path: &Path) -> Result<Self> {
        let db = |source| Error::Database {
            path: path.to_path_buf(),
            source,
        };
        let mut connection = rusqlite::Connection::open(path).map_err(db)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(db)?;
        // Servers sharing the file wait for each other instead of failing.
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(db)?;
        let tx = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(db)?;
        let found: i64 = tx
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_version",
                [],
                |row| row.get(0),
            )
            .map_err(db)?;
        if found > SQLITE_SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                database: path.display().to_string(),
                found,
                supported: SQLITE_SCHEMA_VERSION,
            });
        }
        for sql in SQLITE_MIGRATIONS
            .iter()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(sql).map_err(db)?;
        }
        tx.execute_batch("DELETE FROM schema_version").map_err(db)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SQLITE_SCHEMA_VERSION],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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

impl EventKind {
    /// The event stored as `name` ([`as_str`](Self::as_str)).
    pub fn from_name(name: &str) -> Option<Self> {
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
        .find(|e| e.as_str() == name)
    }
}

impl Storage for SqliteStorage {
    fn record(&self, batch: &Batch) -> Result<()> {
        let mut connection = self.connection.lock().expect("database lock");
        let tx = connection.transaction().map_err(self.db())?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let fresh = tx
            .execute(
                "INSERT INTO applied_batches (id, at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                rusqlite::params![batch.id, now],
            )
            .map_err(self.db())?;
        if fresh == 0 {
            // Written before: the answer to that commit was lost.
            return tx.commit().map_err(self.db());
        }
        {
            let mut statement = tx
                .prepare_cached(
                    "INSERT INTO counters (app, version, channel, platform, arch, event, count, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (app, version, channel, platform, arch, event)
                     DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes",
                )
                .map_err(self.db())?;
            for (key, count) in &batch.counters {
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
            let mut per_minute = tx
                .prepare_cached(
                    "INSERT INTO timeline (minute, app, version, event, count) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app, minute, version, event) DO UPDATE SET count = count + excluded.count",
                )
                .map_err(self.db())?;
            for ((minute, app, version, event), count) in &batch.timeline {
                per_minute
                    .execute(rusqlite::params![
                        minute,
                        app,
                        version,
                        event.as_str(),
                        i64::try_from(*count).unwrap_or(i64::MAX)
                    ])
                    .map_err(self.db())?;
            }
        }
        if now % 600 == 0 {
            tx.execute(
                "DELETE FROM applied_batches WHERE at < ?1",
                [now - 7 * 86_400],
            )
            .map_err(self.db())?;
        }
        tx.commit().map_err(self.db())
    }

    fn overrides_version(&self) -> Result<i64> {
        let connection = self.connection.lock().expect("database lock");
        connection
            .query_row(
                "SELECT version FROM overrides_version WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .map_err(self.db())
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
            if let Some(event) = EventKind::from_name(&event) {
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
            let Some(event) = EventKind::from_name(&event) else {
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
        tx.execute(
            "UPDATE overrides_version SET version = version + 1 WHERE id = 1",
            [],
        )
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

/// Distinct counters (and per-minute timeline entries) held in memory at
/// most, written or not: events that would add a new one beyond it are
/// dropped and counted (`updraft_stats_dropped_total`); events of counters
/// already held still add up. About 200 bytes each: 10 MB at the bound.
pub const MAX_BUFFERED_KEYS: usize = 50_000;

/// A batch this large is written at once instead of at the next tick.
const FLUSH_KEYS: usize = 1000;

/// After a stop, how long a database that is down is retried before the
/// statistics still held are given up (and their count logged).
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    dropped: Arc<AtomicU64>,
}

const QUEUE: usize = 65_536;

/// Whether the database answers, for the log and `/metrics`: a warning when
/// it stops answering, an info line when it is back.
pub(crate) fn database_failed(metrics: &Metrics, error: &Error) {
    if metrics.database_failed() {
        tracing::warn!(%error, max_buffered_counters = MAX_BUFFERED_KEYS, "the database is unavailable: checks go on from memory, statistics are held in memory until it returns, admin changes fail");
    } else {
        tracing::debug!(%error, "the database is still unavailable");
    }
}

/// See [`database_failed`].
pub(crate) fn database_answered(metrics: &Metrics) {
    if metrics.database_answered() {
        tracing::info!("the database answers again");
    }
}

fn add(batch: &mut Batch, held_elsewhere: usize, event: Event, dropped: &AtomicU64) {
    let timeline = event.key.event.is_install_report().then(|| {
        (
            time::OffsetDateTime::now_utc().unix_timestamp() / 60,
            event.key.app.clone(),
            event.key.version.clone(),
            event.key.event,
        )
    });
    let new_keys = usize::from(!batch.counters.contains_key(&event.key))
        + timeline
            .as_ref()
            .map_or(0, |key| usize::from(!batch.timeline.contains_key(key)));
    if new_keys > 0 && batch.keys() + held_elsewhere + new_keys > MAX_BUFFERED_KEYS {
        dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let count = batch.counters.entry(event.key).or_default();
    count.count += 1;
    count.bytes += event.bytes;
    if let Some(key) = timeline {
        *batch.timeline.entry(key).or_default() += 1;
    }
}

fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or(0)
            ^ u64::from(std::process::id()))
        .to_le_bytes();
    }
    hex::encode(bytes)
}

type Flush = tokio::task::JoinHandle<(Batch, Result<()>)>;

impl Recorder {
    /// Starts the batching task: every `every` it writes what was counted
    /// (one batch at a time; a batch that failed is retried as it was, with
    /// its id, while new events add up beside it). It drains the queue,
    /// writes what it holds and ends when `stop` is sent (or every
    /// `Recorder` is dropped), retrying a database that is down for
    /// [`STOP_GRACE`].
    pub(crate) fn start(
        storage: Arc<dyn Storage>,
        reports_written: Arc<tokio::sync::Notify>,
        metrics: Arc<Metrics>,
        every: Duration,
    ) -> (
        Self,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (sender, mut receiver) = mpsc::channel::<Event>(QUEUE);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let dropped = Arc::new(AtomicU64::new(0));
        let task_dropped = Arc::clone(&dropped);
        let task = tokio::spawn(async move {
            let instance = instance_id();
            let mut sequence = 0u64;
            let mut pending = Batch::default();
            // A batch whose write failed: retried unchanged (same id).
            let mut in_doubt: Option<Batch> = None;
            let mut flushing: Option<Flush> = None;
            let mut in_flight = (0usize, 0u64);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut open, mut stopping) = (true, false);
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let mut due = false;
                tokio::select! {
                    event = receiver.recv(), if open => match event {
                        Some(event) => {
                            let held = in_doubt.as_ref().map_or(0, Batch::keys) + in_flight.0;
                            add(&mut pending, held, event, &task_dropped);
                        }
                        None => open = false,
                    },
                    _ = tick.tick() => due = true,
                    _ = &mut stopped, if !stopping => {
                        stopping = true;
                        // What is queued is still received, then `None`.
                        receiver.close();
                    }
                    outcome = async { flushing.as_mut().expect("a write in flight").await }, if flushing.is_some() => {
                        flushing = None;
                        in_flight = (0, 0);
                        match outcome {
                            Ok((batch, Ok(()))) => {
                                database_answered(&metrics);
                                if batch.counters.keys().any(|key| key.event.is_install_report()) {
                                    reports_written.notify_one();
                                }
                                due = !open || pending.keys() >= FLUSH_KEYS;
                            }
                            Ok((batch, Err(error))) => {
                                metrics.database_error();
                                database_failed(&metrics, &error);
                                in_doubt = Some(batch);
                            }
                            Err(error) => tracing::error!(%error, "the statistics writer panicked; its batch is lost"),
                        }
                    }
                }
                if !open && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                    due = true;
                }
                if pending.keys() >= FLUSH_KEYS && in_doubt.is_none() {
                    due = true;
                }
                if due && flushing.is_none() {
                    let batch = in_doubt.take().or_else(|| {
                        (!pending.is_empty()).then(|| {
                            sequence += 1;
                            let mut batch = std::mem::take(&mut pending);
                            batch.id = format!("{instance}-{sequence}");
                            batch
                        })
                    });
                    if let Some(batch) = batch {
                        in_flight = (batch.keys(), batch.events());
                        let storage = Arc::clone(&storage);
                        flushing = Some(tokio::task::spawn_blocking(move || {
                            let outcome = storage.record(&batch);
                            (batch, outcome)
                        }));
                    }
                }
                let held = in_doubt.as_ref().map_or((0, 0), |b| (b.keys(), b.events()));
                metrics.stats_buffered(
                    pending.events() + held.1 + in_flight.1,
                    pending.keys() + held.0 + in_flight.0,
                );
                if !open && flushing.is_none() {
                    if in_doubt.is_none() && pending.is_empty() {
                        break;
                    }
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        let lost = pending.events() + held.1;
                        tracing::error!(
                            lost_events = lost,
                            "stopping while the database is unavailable: statistics held in memory are lost"
                        );
                        break;
                    }
                }
            }
        });
        (Self { sender, dropped }, stop, task)
    }

    /// Queues an event without waiting; counts it as dropped if the queue is full.
    pub(crate) fn record(&self, key: CounterKey, bytes: u64) {
        if self.sender.try_send(Event { key, bytes }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full or too many distinct
    /// counters were held while the database was down.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(version: &str, kind: EventKind) -> Event {
        Event {
            key: CounterKey {
                app: "kuzflow".into(),
                version: version.into(),
                channel: "stable".into(),
                platform: "linux".into(),
                arch: "x86_64".into(),
                event: kind,
            },
            bytes: 10,
        }
    }

    /// While the database is down memory is bounded by distinct counters:
    /// a new counter past the bound is dropped (and counted), an event of a
    /// counter already held still adds up.
    #[test]
    fn the_buffer_is_bounded_by_distinct_counters() {
        let dropped = AtomicU64::new(0);
        let mut batch = Batch::default();
        // Everything but one slot is held elsewhere (a batch being retried).
        let elsewhere = MAX_BUFFERED_KEYS - 1;
        add(
            &mut batch,
            elsewhere,
            event("1.0.0", EventKind::Check),
            &dropped,
        );
        assert_eq!(batch.keys(), 1);
        add(
            &mut batch,
            elsewhere,
            event("1.0.1", EventKind::Check),
            &dropped,
        );
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "a new counter past the bound"
        );
        for _ in 0..1000 {
            add(
                &mut batch,
                elsewhere,
                event("1.0.0", EventKind::Check),
                &dropped,
            );
        }
        assert_eq!(batch.keys(), 1);
        assert_eq!(batch.events(), 1001, "events of a held counter all count");
        assert_eq!(
            batch.counters.values().next().map(|c| c.bytes),
            Some(10_010)
        );
        // An install report needs two slots (its counter and its minute).
        let mut room = Batch::default();
        add(
            &mut room,
            MAX_BUFFERED_KEYS - 1,
            event("1.1.0", EventKind::Installed),
            &dropped,
        );
        assert_eq!(room.keys(), 0);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        add(
            &mut room,
            MAX_BUFFERED_KEYS - 2,
            event("1.1.0", EventKind::Installed),
            &dropped,
        );
        assert_eq!((room.counters.len(), room.timeline.len()), (1, 1));
    }
}
