//! [`Storage`] on PostgreSQL, for several servers sharing one database.
//!
//! The trait is synchronous (the server calls it from `spawn_blocking` and
//! from its statistics task, never on a request's path), so this storage owns
//! a small runtime of its own (one thread) that drives a bounded
//! [`deadpool_postgres`] pool; each call blocks only the calling thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::error::{Error, Result};
use crate::stats::{AuditEntry, Batch, Count, CounterKey, EventKind, Storage, TimelinePoint};
use crate::view::{Override, ReleaseKey};

/// The schema, one migration per version (version N is `MIGRATIONS[N - 1]`).
/// A migration is never changed once released: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: counters, overrides, the adoption timeline and the audit log.
    "CREATE TABLE counters (
         app TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL,
         platform TEXT NOT NULL, arch TEXT NOT NULL, event TEXT NOT NULL,
         count BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0,
         PRIMARY KEY (app, version, channel, platform, arch, event));
     CREATE TABLE overrides (
         app TEXT NOT NULL, version TEXT NOT NULL, settings TEXT NOT NULL,
         PRIMARY KEY (app, version));
     CREATE TABLE timeline (
         minute BIGINT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL,
         event TEXT NOT NULL, count BIGINT NOT NULL DEFAULT 0,
         PRIMARY KEY (app, minute, version, event));
     CREATE TABLE audit (
         id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL,
         action TEXT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL);",
    // 2: batches already written (a retried batch counts once) and the
    // overrides' version, which every server polls to pick up changes.
    "CREATE TABLE applied_batches (id TEXT PRIMARY KEY, at BIGINT NOT NULL);
     CREATE INDEX applied_batches_at ON applied_batches (at);
     CREATE TABLE overrides_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
     INSERT INTO overrides_version (id, version) VALUES (1, 0);",
];

/// The schema version this build writes and understands.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations
pub const POSTGRES_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Any PostgreSQL server's advisory lock key for migrations ("updraft" in ASCII).
const MIGRATION_LOCK: i64 = 0x0075_7064_7261_6674;

/// How long applied batch ids are kept: far longer than any retry.
const BATCH_ID_DAYS: i64 = 7;

/// Pool and timeout settings.
#[derive(Debug, Clone, Copy)]
pub struct PostgresOptions {
    /// Connections at most.
    pub max_connections: usize,
    /// Time to open a connection (TCP and authentication).
    pub connect_timeout: Duration,
    /// Time to wait for a free connection from the pool.
    pub wait_timeout: Duration,
    /// Longest a statement may run on the server.
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(3),
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Server state in PostgreSQL (`--database postgres://USER:PASS@HOST:PORT/DB`).
pub struct PostgresStorage {
    /// The URL with its password replaced by `***`: the only form that is
    /// ever shown.
    url: String,
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    records: AtomicU64,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // The storage may be dropped inside the server's runtime, where
        // blocking on a runtime's shutdown is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `url` with the password (in the user part or a `password=` parameter)
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// An error and its causes, as one line (tokio-postgres keeps the server's
/// message in the source).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PostgresStorage {
    /// Connects to `url`, brings the schema up to date (refusing a database
    /// that a newer updraft migrated), and keeps a pool of at most
    /// `options.max_connections` connections.
    pub fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let redacted = redact_url(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            Error::Config(format!(
                "`--database {redacted}` is not a PostgreSQL URL ({}); use postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                chain(&error)
            ))
        })?;
        if config.get_dbname().is_none() {
            return Err(Error::Config(format!(
                "`--database {redacted}` names no database; use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )));
        }
        config
            .connect_timeout(options.connect_timeout)
            .application_name("updraft serve")
            .options(format!(
                "-c statement_timeout={}",
                options.statement_timeout.as_millis()
            ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("updraft-postgres")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                action: "start the PostgreSQL thread for",
                target: redacted.clone(),
                source,
            })?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| Error::Config(format!("`--database {redacted}`: {error}")))?;
        let storage = Self {
            url: redacted,
            pool,
            runtime: Some(runtime),
            records: AtomicU64::new(0),
        };
        storage.migrate()?;
        Ok(storage)
    }

    /// The URL as shown (password replaced by `***`).
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    fn fail(&self, action: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
        move |error| Error::Postgres {
            url: self.url.clone(),
            action,
            message: error.to_string(),
        }
    }

    fn pg(&self, action: &'static str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
        move |error| Error::Postgres {
            url: self.url.clone(),
            action,
            message: chain(&error),
        }
    }

    fn block_on<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(work),
            None => Err(Error::Config("the PostgreSQL storage is closed".into())),
        }
    }

    async fn client(&self, action: &'static str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|error| {
            let message = match &error {
                deadpool_postgres::PoolError::Backend(error) => chain(error),
                other => chain(other),
            };
            Error::Postgres {
                url: self.url.clone(),
                action,
                message,
            }
        })
    }

    fn migrate(&self) -> Result<()> {
        self.block_on(async {
            let action = "migrate the schema";
            let mut client = self.client(action).await?;
            let tx = client.transaction().await.map_err(self.pg(action))?;
            // Servers starting together migrate one after the other.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(self.pg(action))?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                .await
                .map_err(self.pg(action))?;
            let found: Option<i64> = tx
                .query_one("SELECT max(version) FROM schema_version", &[])
                .await
                .map_err(self.pg(action))?
                .get(0);
            let found = found.unwrap_or(0);
            if found > POSTGRES_SCHEMA_VERSION {
                return Err(Error::SchemaTooNew {
                    database: self.url.clone(),
                    found,
                    supported: POSTGRES_SCHEMA_VERSION,
                });
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
                tx.batch_execute(sql).await.map_err(self.pg(action))?;
                tracing::info!(database = %self.url, version = index + 1, "migrated the PostgreSQL schema");
            }
            tx.execute("DELETE FROM schema_version", &[])
                .await
                .map_err(self.pg(action))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&POSTGRES_SCHEMA_VERSION],
            )
            .await
            .map_err(self.pg(action))?;
            tx.commit().await.map_err(self.pg(action))
        })
    }
}

impl Storage for PostgresStorage {
    fn record(&self, batch: &Batch) -> Result<()> {
        let prune = self
            .records
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(600);
        self.block_on(async {
            let action = "write statistics";
            let mut client = self.client(action).await?;
            let tx = client.transaction().await.map_err(self.pg(action))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let fresh = tx
                .execute(
                    "INSERT INTO applied_batches (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    &[&batch.id, &now],
                )
                .await
                .map_err(self.pg(action))?;
            if fresh == 0 {
                // Written before: the answer to that commit was lost.
                return tx.commit().await.map_err(self.pg(action));
            }
            let mut columns: [Vec<String>; 6] = Default::default();
            let (mut counts, mut bytes) = (Vec::new(), Vec::new());
            for (key, count) in &batch.counters {
                for (column, value) in columns.iter_mut().zip([
                    &key.app,
                    &key.version,
                    &key.channel,
                    &key.platform,
                    &key.arch,
                    &key.event.as_str().to_owned(),
                ]) {
                    column.push(value.clone());
                }
                counts.push(to_i64(count.count));
                bytes.push(to_i64(count.bytes));
            }
            // One statement per table; rows in key order, so concurrent
            // servers lock them in the same order and never deadlock.
            if !counts.is_empty() {
                tx.execute(
                    "INSERT INTO counters (app, version, channel, platform, arch, event, count, bytes)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
                     ON CONFLICT (app, version, channel, platform, arch, event)
                     DO UPDATE SET count = counters.count + excluded.count, bytes = counters.bytes + excluded.bytes",
                    &[&columns[0], &columns[1], &columns[2], &columns[3], &columns[4], &columns[5], &counts, &bytes],
                )
                .await
                .map_err(self.pg(action))?;
            }
            if !batch.timeline.is_empty() {
                let (mut minutes, mut apps, mut versions, mut events, mut counts) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for ((minute, app, version, event), count) in &batch.timeline {
                    minutes.push(*minute);
                    apps.push(app.clone());
                    versions.push(version.clone());
                    events.push(event.as_str().to_owned());
                    counts.push(to_i64(*count));
                }
                tx.execute(
                    "INSERT INTO timeline (minute, app, version, event, count)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                     ON CONFLICT (app, minute, version, event) DO UPDATE SET count = timeline.count + excluded.count",
                    &[&minutes, &apps, &versions, &events, &counts],
                )
                .await
                .map_err(self.pg(action))?;
            }
            if prune {
                tx.execute(
                    "DELETE FROM applied_batches WHERE at < $1",
                    &[&(now - BATCH_ID_DAYS * 86_400)],
                )
                .await
                .map_err(self.pg(action))?;
            }
            tx.commit().await.map_err(self.pg(action))
        })
    }

    fn counters(&self) -> Result<Vec<(CounterKey, Count)>> {
        self.block_on(async {
            let action = "read the counters";
            let client = self.client(action).await?;
            let rows = client
                .query(
                    "SELECT app, version, channel, platform, arch, event, count, bytes FROM counters ORDER BY 1, 2, 3, 4, 5, 6",
                    &[],
                )
                .await
                .map_err(self.pg(action))?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    let event = EventKind::from_name(row.get(5))?;
                    Some((
                        CounterKey {
                            app: row.get(0),
                            version: row.get(1),
                            channel: row.get(2),
                            platform: row.get(3),
                            arch: row.get(4),
                            event,
                        },
                        Count {
                            count: to_u64(row.get(6)),
                            bytes: to_u64(row.get(7)),
                        },
                    ))
                })
                .collect())
        })
    }

    fn change_override(
        &self,
        key: &ReleaseKey,
        change: &dyn Fn(Option<Override>) -> Option<Override>,
        audit: &AuditEntry,
    ) -> Result<Option<Override>> {
        self.block_on(async {
            let action = "change an override";
            let mut client = self.client(action).await?;
            let tx = client.transaction().await.map_err(self.pg(action))?;
            // Locks the one version row first: changes from every server
            // apply one at a time, also to rows that do not exist yet.
            tx.execute(
                "UPDATE overrides_version SET version = version + 1 WHERE id = 1",
                &[],
            )
            .await
            .map_err(self.pg(action))?;
            let current: Option<String> = tx
                .query_opt(
                    "SELECT settings FROM overrides WHERE app = $1 AND version = $2",
                    &[&key.app, &key.version],
                )
                .await
                .map_err(self.pg(action))?
                .map(|row| row.get(0));
            let current = current.and_then(|settings| serde_json::from_str(&settings).ok());
            let value = change(current);
            match &value {
                Some(value) => {
                    let settings =
                        serde_json::to_string(value).map_err(|e| self.fail(action)(&e))?;
                    tx.execute(
                        "INSERT INTO overrides (app, version, settings) VALUES ($1, $2, $3)
                         ON CONFLICT (app, version) DO UPDATE SET settings = excluded.settings",
                        &[&key.app, &key.version, &settings],
                    )
                    .await
                    .map_err(self.pg(action))?;
                }
                None => {
                    tx.execute(
                        "DELETE FROM overrides WHERE app = $1 AND version = $2",
                        &[&key.app, &key.version],
                    )
                    .await
                    .map_err(self.pg(action))?;
                }
            }
            tx.execute(
                "INSERT INTO audit (at, who, action, app, version) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &audit.at,
                    &audit.who,
                    &audit.action,
                    &audit.app,
                    &audit.version,
                ],
            )
            .await
            .map_err(self.pg(action))?;
            tx.commit().await.map_err(self.pg(action))?;
            Ok(value)
        })
    }

    fn overrides(&self) -> Result<BTreeMap<ReleaseKey, Override>> {
        self.block_on(async {
            let action = "read the overrides";
            let client = self.client(action).await?;
            let rows = client
                .query("SELECT app, version, settings FROM overrides", &[])
                .await
                .map_err(self.pg(action))?;
            let mut out = BTreeMap::new();
            for row in rows {
                let (app, version, settings): (String, String, String) =
                    (row.get(0), row.get(1), row.get(2));
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
        })
    }

    fn overrides_version(&self) -> Result<i64> {
        self.block_on(async {
            let action = "read the overrides' version";
            let client = self.client(action).await?;
            let row = client
                .query_one("SELECT version FROM overrides_version WHERE id = 1", &[])
                .await
                .map_err(self.pg(action))?;
            Ok(row.get(0))
        })
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.block_on(async {
            let action = "read the audit log";
            let client = self.client(action).await?;
            let rows = client
                .query(
                    "SELECT at, who, action, app, version FROM audit ORDER BY id DESC LIMIT $1",
                    &[&i64::try_from(limit).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(self.pg(action))?;
            Ok(rows
                .iter()
                .map(|row| AuditEntry {
                    at: row.get(0),
                    who: row.get(1),
                    action: row.get(2),
                    app: row.get(3),
                    version: row.get(4),
                })
                .collect())
        })
    }

    fn timeline(&self, app: &str, since_minute: i64) -> Result<Vec<TimelinePoint>> {
        self.block_on(async {
            let action = "read the timeline";
            let client = self.client(action).await?;
            let rows = client
                .query(
                    "SELECT minute, version, event, count FROM timeline
                     WHERE app = $1 AND minute >= $2 ORDER BY minute LIMIT 200000",
                    &[&app, &since_minute],
                )
                .await
                .map_err(self.pg(action))?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    Some(TimelinePoint {
                        minute: row.get(0),
                        version: row.get(1),
                        event: EventKind::from_name(row.get(2))?,
                        count: to_u64(row.get(3)),
                    })
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("postgres://updraft:s3cret@db.example.com:5432/updraft"),
            "postgres://updraft:***@db.example.com:5432/updraft"
        );
        assert_eq!(
            redact_url("postgresql://updraft:p%40ss@h/db?sslmode=disable&password=other"),
            "postgresql://updraft:***@h/db?sslmode=disable&password=***"
        );
        // An `@` inside the password: everything before the last one is user info.
        assert_eq!(
            redact_url("postgres://u:a@b@host/db"),
            "postgres://u:***@host/db"
        );
        assert_eq!(
            redact_url("postgres://host:5432/db"),
            "postgres://host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://user@host/db"),
            "postgres://user@host/db"
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_showing_its_password() {
        let error = PostgresStorage::connect(
            "postgres://updraft:s3cret@host:notaport/db",
            PostgresOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("updraft:***@host"), "{error}");
        let error = PostgresStorage::connect(
            "postgres://updraft:s3cret@127.0.0.1:5432",
            PostgresOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("names no database"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
