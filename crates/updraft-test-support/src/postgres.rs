//! Real PostgreSQL for tests: a fresh database on the server named by
//! `UPDRAFT_TEST_POSTGRES`, or a private throw-away cluster (`initdb` +
//! `pg_ctl` into a temp folder) for tests that stop and restart it.
//!
//! Without PostgreSQL a test is skipped (it prints why) unless `CI` is set:
//! there it fails, so CI can never pass by running none of them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming a role that may create databases,
/// e.g. `postgres://updraft_test:updraft_test@127.0.0.1:5432/postgres`.
pub const ENV: &str = "UPDRAFT_TEST_POSTGRES";

/// Panics in CI (`CI` set); elsewhere prints that the test is skipped.
fn skip_or_fail(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (CI is set, so this test fails instead of skipping; .ci/run sets PostgreSQL up)"
    );
    eprintln!("skipped: {what}");
}

/// Runs `psql` on `url` and returns its unaligned output; panics with
/// psql's message on an error.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A database of its own for one test, on the server of
/// [`UPDRAFT_TEST_POSTGRES`](ENV); dropped with the value.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// `postgres://...` of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates the database; `None` (skip) when the variable is unset
    /// outside CI.
    pub fn create() -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let Ok(admin_url) = std::env::var(ENV) else {
            skip_or_fail(&format!("{ENV} is not set"));
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "updraft_t_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// Runs SQL in this database.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A private PostgreSQL cluster in a temp folder, on its own loopback port:
/// a test may stop and start it without disturbing any other test.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop().or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("pg_ctl").is_file()))
    })
}

impl TempCluster {
    /// `initdb` and start; `None` (skip) without PostgreSQL's programs
    /// outside CI. As root, the server runs as the `postgres` user (it
    /// refuses root).
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            skip_or_fail("PostgreSQL's programs (pg_ctl, initdb) are not installed");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("updraft-pg-")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster folder to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "updraft",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_again();
        psql(
            &format!("postgres://updraft@127.0.0.1:{port}/postgres"),
            "CREATE DATABASE updraft",
        );
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `postgres://updraft@127.0.0.1:PORT/updraft` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://updraft@127.0.0.1:{}/updraft", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let socket_dir = self.dir.path().display().to_string();
        let options = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
        );
    }

    /// Stops the server (fast: connections are cut, as in a crash of the
    /// database host).
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// The cluster folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
