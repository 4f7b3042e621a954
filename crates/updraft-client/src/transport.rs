//! Fetching bytes: `http(s)://` through reqwest (proxies from the
//! environment, TLS with rustls) and `file://` from a local folder, so most
//! tests need no server. Every fetch has a size cap and a deadline.

use std::time::Duration;

use crate::error::{Error, Result};
use updraft_installer::UpdateConfig;

/// Fetches whole (small) files: metadata, manifests, check answers.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher honouring `update_server.timeout` and `download_settings.verify_ssl`.
    pub fn new(config: &UpdateConfig) -> Result<Self> {
        Self::with(
            Duration::from_secs(config.update_server.timeout),
            config.download_settings.verify_ssl,
        )
    }

    /// A fetcher with an explicit per-request timeout.
    pub fn with(timeout: Duration, verify_ssl: bool) -> Result<Self> {
        // reqwest is built without a default crypto provider; use ring, like the server.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .tls_danger_accept_invalid_certs(!verify_ssl)
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network {
                url: "(client setup)".into(),
                reason: e.to_string(),
            })?;
        Ok(Self { client, timeout })
    }

    /// The HTTP client, for streaming downloads.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Fetches `url`, refusing more than `max_len` bytes; `Ok(None)` when the
    /// file does not exist (404, or a missing local file).
    pub async fn fetch(&self, url: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        if let Some(path) = url.strip_prefix("file://") {
            return fetch_file(url, path, max_len).await;
        }
        let network = |reason: String| Error::Network {
            url: url.to_owned(),
            reason,
        };
        let request = self.client.get(url).timeout(self.timeout * 4);
        let mut response = request.send().await.map_err(|e| network(describe(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(network(format!("the server answered {status}")));
        }
        if response.content_length().is_some_and(|len| len > max_len) {
            return Err(network(format!(
                "it is larger than the {max_len}-byte limit for this file"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network(describe(&e)))? {
            if body.len() as u64 + chunk.len() as u64 > max_len {
                return Err(network(format!(
                    "it is larger than the {max_len}-byte limit for this file"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// POSTs JSON and reads a JSON answer of at most `max_len` bytes.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        max_len: u64,
    ) -> Result<(u16, serde_json::Value)> {
        let network = |reason: String| Error::Network {
            url: url.to_owned(),
            reason,
        };
        let mut response = self
            .client
            .post(url)
            .timeout(self.timeout * 2)
            .json(body)
            .send()
            .await
            .map_err(|e| network(describe(&e)))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network(describe(&e)))? {
            if bytes.len() as u64 + chunk.len() as u64 > max_len {
                return Err(network(format!(
                    "the answer is larger than {max_len} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

async fn fetch_file(url: &str, path: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
    let meta = match tokio::fs::metadata(path).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Network {
                url: url.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if meta.len() > max_len {
        return Err(Error::Network {
            url: url.to_owned(),
            reason: format!("it is larger than the {max_len}-byte limit for this file"),
        });
    }
    tokio::fs::read(path)
        .await
        .map(Some)
        .map_err(|e| Error::Network {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// One sentence for a reqwest error, without the URL (the caller names it).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the server did not answer in time".into()
    } else if error.is_connect() {
        "the server cannot be reached".into()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while receiving".into()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }
}
