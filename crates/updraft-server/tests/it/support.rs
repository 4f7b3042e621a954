//! Starting a real server over a test store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, PublishRequest};
use updraft_server::{Server, ServerConfig};
use updraft_test_support::{TestStore, write_app};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789abcdef";

pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<updraft_server::Result<()>>>,
}

impl Running {
    pub(crate) async fn start(config: ServerConfig) -> Self {
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        // reqwest is built without a default TLS provider (the client picks ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub(crate) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stops gracefully (the last statistics are written).
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub(crate) fn config(store: &TestStore) -> ServerConfig {
    let mut config = ServerConfig::new(store.store.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let tokens = store.dir.join("tokens");
    std::fs::write(&tokens, format!("# test\nci:{TOKEN}\n")).unwrap();
    config.admin_token_file = Some(tokens);
    config.reload_interval = Duration::from_millis(100);
    config
}

/// Publishes `version` of the test app with a tweak to the request.
pub(crate) fn publish_with(
    store: &TestStore,
    version: &str,
    tweak: impl FnOnce(&mut PublishRequest),
) {
    publish_with_policy(store, version, &ExpiryPolicy::default(), tweak);
}

pub(crate) fn publish_with_policy(
    store: &TestStore,
    version: &str,
    policy: &ExpiryPolicy,
    tweak: impl FnOnce(&mut PublishRequest),
) {
    let source = store.dir.join(format!("src-{version}"));
    if !source.exists() {
        write_app(&source, version);
    }
    let notes = store.dir.join(format!("notes-{version}.md"));
    std::fs::write(&notes, format!("Notes for {version}\n")).unwrap();
    let mut request = TestStore::request(version, &source);
    request.notes = Some(notes);
    tweak(&mut request);
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        &request,
        OffsetDateTime::now_utc(),
        policy,
    )
    .unwrap();
}

/// Waits until the server serves targets version `version` (reload is polled).
pub(crate) async fn wait_for_targets(server: &Running, version: u64) {
    for _ in 0..100 {
        let (_, health) = server.get_json("/healthz").await;
        if health["targets_version"].as_u64() >= Some(version) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never reloaded targets version {version}");
}

pub(crate) fn temp() -> (tempfile::TempDir, TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    (dir, store)
}

pub(crate) fn targets_version(store: &Path) -> u64 {
    updraft_publisher::store::load_chain(store, None)
        .unwrap()
        .targets()
        .signed
        .version
}

/// Everything the server logs in this test process, formatted as
/// `updraft serve` does for text logs (with [`updraft_server::EscapedFields`]).
pub(crate) fn captured_logs() -> String {
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_ansi(false)
            .fmt_fields(updraft_server::EscapedFields)
            .with_writer(move || LogSink(Arc::clone(&sink)))
            .try_init();
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A raw TCP connection to `server` from the loopback address `from`
/// (`127.0.0.2` is a different peer than `127.0.0.1` on Linux).
pub(crate) async fn connect_from(server: &Running, from: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(server.addr).await.unwrap()
}

/// Reads until the peer closes (or `limit` passes): what it sent.
pub(crate) async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

/// Reads one HTTP answer (head and a `content-length` body) from `stream`,
/// for at most 5 s.
pub(crate) async fn read_answer(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).to_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    received
}

/// The body of `GET url` as text.
pub(crate) async fn text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A client whose connections come from the loopback address `from`.
pub(crate) fn client_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .unwrap()
}

/// A running server (settings tweaked) over a store with release 1.0.0.
pub(crate) async fn serving_one_release(
    tweak: impl FnOnce(&mut ServerConfig),
) -> (tempfile::TempDir, TestStore, Running) {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    let mut settings = config(&store);
    tweak(&mut settings);
    let server = Running::start(settings).await;
    (dir, store, server)
}
