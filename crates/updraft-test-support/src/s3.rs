//! Real S3 servers on loopback for the S3 store tests: `moto_server`
//! (PyPI `moto[server]`) and `s3s-fs` (crates.io, `--features binary`).
//! Each test starts its own on a free port with its own data folder, and
//! the server is killed when the handle is dropped.
//!
//! When a binary is missing the test is skipped with a note, except under CI
//! (`CI` set), where a missing server is a failure: `.ci/run` installs both.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use updraft_publisher::s3::S3Settings;

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// `moto_server -H 127.0.0.1 -p PORT`.
    Moto,
    /// `s3s-fs --host 127.0.0.1 --port PORT ROOT`.
    S3sFs,
}

impl S3Kind {
    /// Both, for tests that run against each.
    pub const ALL: [Self; 2] = [Self::Moto, Self::S3sFs];

    fn binary(self) -> &'static str {
        match self {
            Self::Moto => "moto_server",
            Self::S3sFs => "s3s-fs",
        }
    }
}

/// A running S3 server with one bucket, `updraft`.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Which implementation.
    pub kind: S3Kind,
    data: tempfile::TempDir,
}

/// The access key and secret the servers are started with.
pub const ACCESS_KEY: &str = "updraft-test-key";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "updraft-test-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

impl S3Server {
    /// Starts `kind` on loopback. `None` (after printing why) when its binary
    /// is not installed and `CI` is not set; under CI that panics.
    pub fn start(kind: S3Kind) -> Option<Self> {
        let binary = kind.binary();
        if !on_path(binary) {
            let how = match kind {
                S3Kind::Moto => "pip install 'moto[server]'",
                S3Kind::S3sFs => "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "`{binary}` is not on PATH and CI is set: install it ({how}); .ci/run does"
            );
            eprintln!("skipping: `{binary}` is not on PATH ({how})");
            return None;
        }
        let data = tempfile::tempdir().expect("a temporary folder");
        let port = free_port();
        let mut command = match kind {
            S3Kind::Moto => {
                let mut command = Command::new(binary);
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                command
            }
            S3Kind::S3sFs => {
                std::fs::create_dir_all(data.path().join("updraft")).expect("the bucket folder");
                let mut command = Command::new(binary);
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(data.path());
                command
            }
        };
        let log = std::fs::File::create(data.path().join("server.log")).expect("a log file");
        let child = command
            .current_dir(data.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{binary}`: {e}"));
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            kind,
            data,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_mins(1),
                "`{binary}` did not listen on port {port} within 60 s: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if kind == S3Kind::Moto {
            // moto keeps buckets in memory and accepts an unsigned request.
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            write!(
                stream,
                "PUT /updraft HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .expect("send");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "moto did not create the bucket: {answer}"
            );
        }
        Some(server)
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// The data folder (s3s-fs keeps objects as files under `updraft/`).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `s3://updraft/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://updraft/{prefix}")
    }

    /// Settings that reach this server.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            session_token: None,
            allow_http: false,
        }
    }

    /// The same as environment variables, for the `updraft` binary.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
