//! Starting a real server over a test store.

use std::net::SocketAddr;
use std::path::Path;
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
