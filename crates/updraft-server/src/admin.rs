//! The admin API: bearer tokens (stored hashed, compared in constant time)
//! and rollout changes that apply at once, persist and are audited.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::{ApiError, Error, Result};
use crate::stats::{AuditEntry, EventKind};
use crate::view::{Override, ReleaseKey};

const MIN_TOKEN: usize = 16;

/// Admin tokens, kept only as SHA-256 hashes.
#[derive(Debug, Clone)]
pub(crate) struct AdminTokens {
    entries: Vec<(String, [u8; 32])>,
}

impl AdminTokens {
    /// Reads a token file: one token per line, optionally `name:token`;
    /// blank lines and `#` comments are skipped.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read the admin token file",
            target: path.display().to_string(),
            source,
        })?;
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, token) = match line.split_once(':') {
                Some((name, token)) if !name.is_empty() => (name.trim().to_owned(), token.trim()),
                _ => ("admin".to_owned(), line),
            };
            if token.len() < MIN_TOKEN {
                return Err(Error::Config(format!(
                    "The admin token on line {} of `{}` is shorter than {MIN_TOKEN} characters; use a long random token (for example `openssl rand -hex 32`)",
                    number + 1,
                    path.display()
                )));
            }
            entries.push((name, Sha256::digest(token.as_bytes()).into()));
        }
        if entries.is_empty() {
            return Err(Error::Config(format!(
                "The admin token file `{}` holds no token",
                path.display()
            )));
        }
        Ok(Self { entries })
    }

    /// The name of the token that matches, comparing every stored hash in
    /// constant time so timing reveals nothing about near misses.
    pub(crate) fn check(&self, provided: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(provided.as_bytes()).into();
        let mut found = None;
        for (name, hash) in &self.entries {
            let difference = hash
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The authenticated caller, put in request extensions by [`require_token`].
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) String);

/// Middleware: 401 unless a valid bearer token is presented.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = &state.admin else {
        return ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: "the admin API is off: start the server with --admin-token-file".into(),
        }
        .into_response();
    };
    let provided = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match provided.and_then(|token| tokens.check(token)) {
        Some(name) => {
            request.extensions_mut().insert(Caller(name.to_owned()));
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// `GET /api/admin/releases`: every release with its rollout state and counters.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let storage = Arc::clone(&state.storage);
    let counters = tokio::task::spawn_blocking(move || storage.counters())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let view = state.view.get();
    let releases: Vec<serde_json::Value> = view
        .releases
        .iter()
        .map(|release| {
            let info = &release.info;
            let mut counts = serde_json::Map::new();
            for (key, count) in &counters {
                let matches = key.app == info.app.as_str()
                    && key.version == info.version.to_string()
                    && key.platform == info.platform.as_str()
                    && key.arch == info.arch.as_str()
                    && key.event != EventKind::Check;
                if matches {
                    let name = serde_json::to_value(key.event).expect("events serialise");
                    let entry = counts.entry(name.as_str().unwrap_or_default().to_owned()).or_insert(serde_json::json!(0));
                    *entry = serde_json::json!(entry.as_u64().unwrap_or(0) + count.count);
                    if key.event == EventKind::DownloadCompleted || key.event == EventKind::DownloadStarted {
                        let bytes = counts.entry("download_bytes".to_owned()).or_insert(serde_json::json!(0));
                        *bytes = serde_json::json!(bytes.as_u64().unwrap_or(0) + count.bytes);
                    }
                }
            }
            serde_json::json!({
                "app": info.app, "version": info.version, "platform": info.platform, "arch": info.arch,
                "channel": info.channel, "rollout_percent": info.rollout_percent, "halted": info.halted,
                "yanked": info.yanked, "force": info.force, "package": release.package, "size": release.length,
                "signed": {"rollout_percent": release.signed.rollout_percent, "halted": release.signed.halted, "yanked": release.signed.yanked},
                "override": state.view.override_of(&release.key()),
                "counts": counts,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "targets_version": view.targets_version, "releases": releases }),
    ))
}

/// `GET /api/admin/audit`: the newest changes first.
pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let storage = Arc::clone(&state.storage);
    let entries = tokio::task::spawn_blocking(move || storage.audit(500))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PercentBody {
    percent: serde_json::Value,
}

/// `POST /api/admin/releases/{app}/{version}/{action}` with action
/// `rollout` (body `{"percent": N}`), `halt`, `resume`, `yank`, `restore`;
/// `DELETE /api/admin/releases/{app}/{version}/override` clears the override.
pub(crate) async fn change(
    State(state): State<Arc<AppState>>,
    UrlPath((app, version, action)): UrlPath<(String, String, String)>,
    caller: axum::Extension<Caller>,
    body: Option<Json<PercentBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = release_key(&state, &app, &version)?;
    let mut value = state.view.override_of(&key).unwrap_or_default();
    let description = match action.as_str() {
        "rollout" => {
            let body = body.ok_or_else(|| {
                ApiError::bad_request(
                    "`percent` is required: send {\"percent\": N} with 0 <= N <= 100",
                )
            })?;
            let percent = body
                .percent
                .as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`percent`: `{}` is not a whole number from 0 to 100",
                        body.percent
                    ))
                })?;
            value.rollout_percent = Some(percent);
            format!("rollout {percent}")
        }
        "halt" => {
            value.halted = Some(true);
            "halt".to_owned()
        }
        "resume" => {
            value.halted = Some(false);
            "resume".to_owned()
        }
        "yank" => {
            value.yanked = Some(true);
            "yank".to_owned()
        }
        "restore" => {
            value.yanked = Some(false);
            "restore".to_owned()
        }
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action `{other}`; use rollout, halt, resume, yank or restore"
            )));
        }
    };
    apply(&state, key, Some(value), &caller.0.0, &description).await
}

/// `DELETE /api/admin/releases/{app}/{version}/override`.
pub(crate) async fn clear(
    State(state): State<Arc<AppState>>,
    UrlPath((app, version)): UrlPath<(String, String)>,
    caller: axum::Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = release_key(&state, &app, &version)?;
    apply(&state, key, None, &caller.0.0, "clear override").await
}

fn release_key(state: &AppState, app: &str, version: &str) -> Result<ReleaseKey, ApiError> {
    let app = updraft_protocol::AppId::new(app).map_err(|e| ApiError::field("app", &e))?;
    let version =
        updraft_protocol::Version::parse(version).map_err(|e| ApiError::field("version", &e))?;
    let view = state.view.get();
    let release = view
        .releases
        .iter()
        .find(|r| r.info.app == app && r.info.version == version)
        .ok_or_else(|| {
            ApiError::not_found(format!("{app} {version} is not published on this server"))
        })?;
    Ok(release.key())
}

async fn apply(
    state: &Arc<AppState>,
    key: ReleaseKey,
    value: Option<Override>,
    who: &str,
    action: &str,
) -> Result<Json<serde_json::Value>, ApiError> {
    let audit = AuditEntry {
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        who: who.to_owned(),
        action: action.to_owned(),
        app: key.app.clone(),
        version: key.version.clone(),
    };
    let storage = Arc::clone(&state.storage);
    let (stored_key, stored_value, stored_audit) = (key.clone(), value.clone(), audit.clone());
    tokio::task::spawn_blocking(move || {
        storage.set_override(&stored_key, stored_value.as_ref(), &stored_audit)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    state.view.set_override(key.clone(), value.clone());
    tracing::info!(who = %audit.who, action = %audit.action, app = %audit.app, version = %audit.version, at = %audit.at, "admin change");
    Ok(Json(
        serde_json::json!({ "app": key.app, "version": key.version, "override": value, "audit": audit }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# admins\nalice:0123456789abcdef0123\n\nfedcba9876543210fedc\n",
        )
        .unwrap();
        let tokens = AdminTokens::load(&path).unwrap();
        assert_eq!(tokens.check("0123456789abcdef0123"), Some("alice"));
        assert_eq!(tokens.check("fedcba9876543210fedc"), Some("admin"));
        assert_eq!(tokens.check("0123456789abcdef012"), None);
        assert_eq!(tokens.check(""), None);
        std::fs::write(&path, "short\n").unwrap();
        assert!(
            AdminTokens::load(&path)
                .unwrap_err()
                .to_string()
                .contains("shorter than 16")
        );
    }
}
