//! One suite for every [`Storage`]: each test function runs on SQLite and on
//! PostgreSQL (a fresh database per test on `UPDRAFT_TEST_POSTGRES`; see
//! `updraft_test_support::postgres`).

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_server::{
    AuditEntry, Batch, Count, CounterKey, EventKind, Override, PostgresOptions, PostgresStorage,
    ReleaseKey, SqliteStorage, Storage,
};
use updraft_test_support::postgres::TestDatabase;

/// Where a test's storage lives, so it can be opened again (as a restarted
/// or a second server would).
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    fn open(&self) -> updraft_server::Result<Arc<dyn Storage>> {
        Ok(match self {
            Self::Sqlite(dir) => Arc::new(SqliteStorage::open(&dir.path().join("server.sqlite"))?),
            Self::Postgres(db) => Arc::new(PostgresStorage::connect(
                &db.url,
                PostgresOptions::default(),
            )?),
        })
    }

    /// Sets the stored schema version behind the storage's back.
    fn set_schema_version(&self, version: i64) {
        match self {
            Self::Sqlite(dir) => {
                let connection =
                    rusqlite::Connection::open(dir.path().join("server.sqlite")).unwrap();
                connection
                    .execute("UPDATE schema_version SET version = ?1", [version])
                    .unwrap();
            }
            Self::Postgres(db) => {
                db.psql(&format!("UPDATE schema_version SET version = {version}"));
            }
        }
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Backend::Sqlite(tempfile::tempdir().unwrap()));
            }
            #[test]
            fn postgres() {
                if let Some(db) = updraft_test_support::postgres::TestDatabase::create() {
                    super::$name(&super::Backend::Postgres(db));
                }
            }
        }
    )*};
}

on_both!(
    batches_add_up_per_counter,
    a_batch_written_twice_counts_once,
    the_timeline_keeps_each_minute,
    concurrent_override_changes_from_two_servers_lose_nothing,
    the_overrides_version_moves_with_every_change,
    audit_is_newest_first_and_limited,
    data_survives_reopening_and_the_schema_is_versioned,
    a_database_from_a_newer_updraft_is_refused,
);

fn key(version: &str, event: EventKind) -> CounterKey {
    CounterKey {
        app: "kuzflow".into(),
        version: version.into(),
        channel: "stable".into(),
        platform: "linux".into(),
        arch: "x86_64".into(),
        event,
    }
}

fn batch(id: &str, entries: &[(CounterKey, u64, u64)]) -> Batch {
    Batch {
        id: id.into(),
        counters: entries
            .iter()
            .map(|(k, count, bytes)| {
                (
                    k.clone(),
                    Count {
                        count: *count,
                        bytes: *bytes,
                    },
                )
            })
            .collect(),
        timeline: BTreeMap::new(),
    }
}

fn counters(storage: &dyn Storage) -> BTreeMap<CounterKey, Count> {
    storage.counters().unwrap().into_iter().collect()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: "2026-12-02T06:00:00Z".into(),
        who: "alice".into(),
        action: action.into(),
        app: "kuzflow".into(),
        version: "1.1.0".into(),
    }
}

fn release() -> ReleaseKey {
    ReleaseKey {
        app: "kuzflow".into(),
        version: "1.1.0".into(),
    }
}

fn batches_add_up_per_counter(backend: &Backend) {
    let storage = backend.open().unwrap();
    let check = key("1.0.0", EventKind::Check);
    let download = key("1.1.0", EventKind::DownloadCompleted);
    storage
        .record(&batch(
            "a-1",
            &[(check.clone(), 3, 0), (download.clone(), 1, 1000)],
        ))
        .unwrap();
    storage
        .record(&batch(
            "a-2",
            &[(check.clone(), 4, 0), (download.clone(), 2, 500)],
        ))
        .unwrap();
    let counted = counters(&*storage);
    assert_eq!(counted[&check], Count { count: 7, bytes: 0 });
    assert_eq!(
        counted[&download],
        Count {
            count: 3,
            bytes: 1500
        }
    );
    assert_eq!(counted.len(), 2);
    // Big numbers survive the round trip.
    let big = key("2.0.0", EventKind::Offer);
    storage
        .record(&batch("a-3", &[(big.clone(), 1 << 40, 1 << 50)]))
        .unwrap();
    assert_eq!(
        counters(&*storage)[&big],
        Count {
            count: 1 << 40,
            bytes: 1 << 50
        }
    );
}

/// A write whose commit answer was lost is retried with the same id: it
/// must count once, while a new batch of the same counters counts again.
fn a_batch_written_twice_counts_once(backend: &Backend) {
    let storage = backend.open().unwrap();
    let check = key("1.0.0", EventKind::Check);
    let one = batch("server-a-1", &[(check.clone(), 5, 0)]);
    storage.record(&one).unwrap();
    storage.record(&one).unwrap();
    // Another server reusing nothing but the counter.
    let other = backend.open().unwrap();
    other.record(&one).unwrap();
    assert_eq!(counters(&*storage)[&check].count, 5);
    storage
        .record(&batch("server-a-2", &[(check.clone(), 5, 0)]))
        .unwrap();
    assert_eq!(counters(&*storage)[&check].count, 10);
}

fn the_timeline_keeps_each_minute(backend: &Backend) {
    let storage = backend.open().unwrap();
    let mut written = batch("t-1", &[(key("1.1.0", EventKind::Installed), 3, 0)]);
    written.timeline.insert(
        (1000, "kuzflow".into(), "1.1.0".into(), EventKind::Installed),
        2,
    );
    written.timeline.insert(
        (1001, "kuzflow".into(), "1.1.0".into(), EventKind::Installed),
        1,
    );
    written.timeline.insert(
        (1001, "kuzflow".into(), "1.1.0".into(), EventKind::Failed),
        4,
    );
    written
        .timeline
        .insert((1001, "other".into(), "1.1.0".into(), EventKind::Failed), 9);
    storage.record(&written).unwrap();
    let mut again = Batch {
        id: "t-2".into(),
        ..Batch::default()
    };
    again.timeline.insert(
        (1001, "kuzflow".into(), "1.1.0".into(), EventKind::Installed),
        5,
    );
    storage.record(&again).unwrap();
    let points: Vec<(i64, EventKind, u64)> = storage
        .timeline("kuzflow", 1001)
        .unwrap()
        .into_iter()
        .map(|p| (p.minute, p.event, p.count))
        .collect();
    let mut points = points;
    points.sort_by_key(|p| (p.0, p.1));
    assert_eq!(
        points,
        vec![
            (1001, EventKind::Installed, 6),
            (1001, EventKind::Failed, 4)
        ]
    );
    assert_eq!(storage.timeline("kuzflow", 0).unwrap().len(), 3);
}

/// Two servers (two storages on one database) change the same release's
/// override from several threads at once: every change is applied on top of
/// the previous one, none is lost, and each is audited.
fn concurrent_override_changes_from_two_servers_lose_nothing(backend: &Backend) {
    let servers = [backend.open().unwrap(), backend.open().unwrap()];
    let rounds = 10;
    std::thread::scope(|scope| {
        for (index, storage) in servers.iter().enumerate() {
            for field in 0..2 {
                let storage = Arc::clone(storage);
                scope.spawn(move || {
                    for _ in 0..rounds {
                        storage
                            .change_override(
                                &release(),
                                &|current| {
                                    let mut value = current.unwrap_or_default();
                                    // Each thread increments its own share of the percent
                                    // (read-modify-write), or flips the halt flag.
                                    if field == 0 {
                                        value.rollout_percent =
                                            Some(value.rollout_percent.unwrap_or(0) + 1);
                                    } else {
                                        value.halted = Some(index == 0);
                                    }
                                    Some(value)
                                },
                                &audit("concurrent"),
                            )
                            .unwrap();
                    }
                });
            }
        }
    });
    let stored = servers[1].overrides().unwrap();
    assert_eq!(
        stored[&release()].rollout_percent,
        Some(2 * rounds),
        "every increment applied on top of the committed value: {stored:?}"
    );
    assert!(stored[&release()].halted.is_some());
    assert_eq!(
        servers[0].audit(1000).unwrap().len(),
        4 * usize::from(rounds)
    );
}

fn the_overrides_version_moves_with_every_change(backend: &Backend) {
    let storage = backend.open().unwrap();
    let other = backend.open().unwrap();
    let start = other.overrides_version().unwrap();
    storage
        .change_override(
            &release(),
            &|_| {
                Some(Override {
                    halted: Some(true),
                    ..Override::default()
                })
            },
            &audit("halt"),
        )
        .unwrap();
    let after_halt = other.overrides_version().unwrap();
    assert_ne!(after_halt, start);
    assert_eq!(other.overrides().unwrap()[&release()].halted, Some(true));
    // Clearing removes the row and still moves the version.
    assert_eq!(
        storage
            .change_override(&release(), &|_| None, &audit("clear override"))
            .unwrap(),
        None
    );
    let after_clear = other.overrides_version().unwrap();
    assert_ne!(after_clear, after_halt);
    assert!(other.overrides().unwrap().is_empty());
    // Reading changes nothing.
    assert_eq!(other.overrides_version().unwrap(), after_clear);
}

fn audit_is_newest_first_and_limited(backend: &Backend) {
    let storage = backend.open().unwrap();
    for action in ["rollout 10", "rollout 50", "halt"] {
        storage
            .change_override(&release(), &|current| current, &audit(action))
            .unwrap();
    }
    let entries = storage.audit(2).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["halt", "rollout 50"]);
    assert_eq!(entries[0], audit("halt"));
}

fn data_survives_reopening_and_the_schema_is_versioned(backend: &Backend) {
    let check = key("1.0.0", EventKind::Check);
    {
        let storage = backend.open().unwrap();
        storage
            .record(&batch("r-1", &[(check.clone(), 2, 0)]))
            .unwrap();
        storage
            .change_override(
                &release(),
                &|_| {
                    Some(Override {
                        rollout_percent: Some(25),
                        ..Override::default()
                    })
                },
                &audit("rollout 25"),
            )
            .unwrap();
    }
    // Opening again runs the migrations again: nothing is applied twice.
    let storage = backend.open().unwrap();
    let storage_again = backend.open().unwrap();
    assert_eq!(counters(&*storage)[&check].count, 2);
    assert_eq!(
        storage_again.overrides().unwrap()[&release()].rollout_percent,
        Some(25)
    );
    // The id of a batch written before the restart is still remembered.
    storage
        .record(&batch("r-1", &[(check.clone(), 2, 0)]))
        .unwrap();
    assert_eq!(counters(&*storage)[&check].count, 2);
    let version = match backend {
        Backend::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("server.sqlite"))
            .unwrap()
            .query_row("SELECT version FROM schema_version", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap(),
        Backend::Postgres(db) => db
            .psql("SELECT version FROM schema_version")
            .parse()
            .unwrap(),
    };
    let expected = match backend {
        Backend::Sqlite(_) => updraft_server::SQLITE_SCHEMA_VERSION,
        Backend::Postgres(_) => updraft_server::POSTGRES_SCHEMA_VERSION,
    };
    assert_eq!(version, expected);
}

fn a_database_from_a_newer_updraft_is_refused(backend: &Backend) {
    drop(backend.open().unwrap());
    backend.set_schema_version(99);
    let error = backend.open().unwrap_err().to_string();
    assert!(
        error.contains("schema version 99") && error.contains("newer"),
        "{error}"
    );
    // It is refused without being changed.
    backend.set_schema_version(99);
    assert!(backend.open().is_err());
}

/// A `server.sqlite` written before schemas were versioned (the four tables,
/// no `schema_version`) is migrated in place: its data stays, and it gains
/// what version 2 adds.
#[test]
fn an_unversioned_sqlite_file_from_an_older_updraft_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sqlite");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE counters (
                 app TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL,
                 platform TEXT NOT NULL, arch TEXT NOT NULL, event TEXT NOT NULL,
                 count INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (app, version, channel, platform, arch, event));
             CREATE TABLE overrides (app TEXT NOT NULL, version TEXT NOT NULL, settings TEXT NOT NULL,
                 PRIMARY KEY (app, version));
             CREATE TABLE timeline (minute INTEGER NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL,
                 event TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (app, minute, version, event));
             CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
                 action TEXT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL);
             INSERT INTO counters VALUES ('kuzflow', '1.0.0', 'stable', 'linux', 'x86_64', 'check', 41, 0);
             INSERT INTO overrides VALUES ('kuzflow', '1.1.0', '{\"halted\":true}');",
        )
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap();
    assert_eq!(
        counters(&storage)[&key("1.0.0", EventKind::Check)].count,
        41
    );
    assert_eq!(storage.overrides().unwrap()[&release()].halted, Some(true));
    let before = storage.overrides_version().unwrap();
    storage
        .change_override(&release(), &|_| None, &audit("clear override"))
        .unwrap();
    assert_ne!(storage.overrides_version().unwrap(), before);
    storage
        .record(&batch("m-1", &[(key("1.0.0", EventKind::Check), 1, 0)]))
        .unwrap();
    assert_eq!(
        counters(&storage)[&key("1.0.0", EventKind::Check)].count,
        42
    );
}
