//! The admin API: bearer tokens (stored hashed, compared in constant time)
//! and rollout changes that apply at once, persist and are audited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
        warn_if_readable_by_others(path);
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

/// Warns, as ssh does for a private key, when group or others may read the
/// token file (the server still starts: the tokens are already exposed).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = %format!("{mode:04o}"),
                    "the admin token file is accessible by other users; anyone who can read it can change rollouts: run `chmod 600 {}`",
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The authenticated caller, put in request extensions by [`require_token`].
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) String);

/// Failed sign-ins within this window count towards the slow-down.
const FAILURE_WINDOW: Duration = Duration::from_mins(1);
/// Failures from one address within the window answered without delay.
const FREE_FAILURES: u32 = 20;
/// Added per failure beyond the free ones, up to [`MAX_DELAY`].
const DELAY_STEP: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// At most this many failure log lines per window; the rest are counted in the next one.
const LOG_LINES_PER_WINDOW: u32 = 20;
/// Addresses remembered at once (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

#[derive(Debug, Default)]
struct SignInLog {
    window_start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

/// Failed admin sign-ins: counted per peer address to slow repeated
/// failures down, and logged at a bounded rate.
#[derive(Debug, Default)]
pub(crate) struct SignIns {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
    log: Mutex<SignInLog>,
}

impl SignIns {
    /// Records a failure from `address` and returns how many it made within
    /// the window and how long to wait before answering.
    fn failed(&self, address: IpAddr, now: Instant) -> (u32, Duration) {
        let mut by_address = self.by_address.lock().expect("sign-in lock");
        if by_address.len() >= MAX_ADDRESSES && !by_address.contains_key(&address) {
            by_address.retain(|_, f| now.duration_since(f.since) < FAILURE_WINDOW);
            if by_address.len() >= MAX_ADDRESSES
                && let Some(oldest) = by_address
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a)
            {
                by_address.remove(&oldest);
            }
        }
        let failures = by_address.entry(address).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(failures.since) >= FAILURE_WINDOW {
            *failures = Failures {
                count: 0,
                since: now,
            };
        }
        failures.count = failures.count.saturating_add(1);
        let over = failures.count.saturating_sub(FREE_FAILURES);
        (failures.count, (DELAY_STEP * over).min(MAX_DELAY))
    }

    /// A valid token from `address` clears its failures.
    fn succeeded(&self, address: IpAddr) {
        self.by_address
            .lock()
            .expect("sign-in lock")
            .remove(&address);
    }

    /// `Some(lines suppressed before this one)` when this failure may be logged.
    fn may_log(&self, now: Instant) -> Option<u64> {
        let mut log = self.log.lock().expect("sign-in lock");
        if log
            .window_start
            .is_none_or(|start| now.duration_since(start) >= FAILURE_WINDOW)
        {
            log.window_start = Some(now);
            log.lines = 0;
        }
        if log.lines >= LOG_LINES_PER_WINDOW {
            log.suppressed += 1;
            return None;
        }
        log.lines += 1;
        Some(std::mem::take(&mut log.suppressed))
    }
}

/// What the `Authorization` header presented: the scheme is matched without
/// regard to case (RFC 7235).
fn bearer(request: &Request) -> Result<&str, &'static str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or("no Authorization header")?
        .to_str()
        .map_err(|_| "an Authorization header that is not text")?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("an Authorization header that is not a Bearer token");
    }
    match token.trim() {
        "" => Err("an empty Bearer token"),
        token => Ok(token),
    }
}

/// Middleware: 401 unless a valid bearer token or a valid signature (see
/// [`crate::signing`]) is presented. Each refusal is logged (rate-limited)
/// with the peer address, and repeated refusals from one address are
/// answered ever more slowly.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.admin.is_none() && state.signing.is_none() {
        return ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: "the admin API is off: start the server with --admin-token-file or --signing-key-file".into(),
        }
        .into_response();
    }
    if crate::signing::is_signed(request.headers()) {
        return match verify_signed(&state, request).await {
            Ok(request) => next.run(request).await,
            Err(response) => response,
        };
    }
    let mut request = request;
    let peer = peer_of(&request);
    let presented = bearer(&request);
    let refusal = match (presented, &state.admin) {
        (Ok(token), Some(tokens)) => match tokens.check(token) {
            Some(name) => {
                if let Some(peer) = peer {
                    state.sign_ins.succeeded(peer.ip());
                }
                request.extensions_mut().insert(Caller(name.to_owned()));
                return next.run(request).await;
            }
            None => SignInFailure {
                reason: "an unknown token".into(),
                // A client that sends `name:token` as in the token file names
                // who it claims to be; the secret itself is never logged.
                claimed_name: token.split_once(':').map(|(name, _)| name.to_owned()),
                fingerprint: Some(hex::encode(&Sha256::digest(token.as_bytes())[..4])),
            },
        },
        (Ok(_), None) => SignInFailure {
            reason: "a Bearer token, but only signed requests are accepted".into(),
            claimed_name: None,
            fingerprint: None,
        },
        (Err(reason), _) => SignInFailure {
            reason: reason.into(),
            claimed_name: None,
            fingerprint: None,
        },
    };
    refuse(&state, peer, request.uri().path(), &refusal).await;
    ApiError::unauthorized().into_response()
}

fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// Checks a signed request (reading its body to hash it) and hands it on
/// with its [`Caller`] (the key id), or answers 401 (503 when the nonce
/// table is full) with a JSON error, through the same logging and slow-down
/// as a wrong token.
pub(crate) async fn verify_signed(
    state: &Arc<AppState>,
    request: Request,
) -> Result<Request, Response> {
    let peer = peer_of(&request);
    let Some(keys) = &state.signing else {
        let failure = SignInFailure {
            reason: "a signed request, but no signing keys are configured".into(),
            claimed_name: None,
            fingerprint: None,
        };
        refuse(state, peer, request.uri().path(), &failure).await;
        return Err(ApiError {
            status: axum::http::StatusCode::UNAUTHORIZED,
            message: "signed requests are off on this server: start it with --signing-key-file"
                .into(),
        }
        .into_response());
    };
    // Inside `nest` the URI lost its prefix: sign what the client sent.
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().clone(), |original| original.0.clone());
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.body_limit).await else {
        return Err(ApiError {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the body is larger than the limit of {} bytes",
                state.body_limit
            ),
        }
        .into_response());
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match keys.verify(
        parts.method.as_str(),
        uri.path(),
        uri.query(),
        &parts.headers,
        &bytes,
        now,
    ) {
        Ok(key_id) => {
            if let Some(peer) = peer {
                state.sign_ins.succeeded(peer.ip());
            }
            let mut request = Request::from_parts(parts, axum::body::Body::from(bytes));
            request.extensions_mut().insert(Caller(key_id));
            Ok(request)
        }
        Err(crate::signing::Refusal::Busy) => Err(ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            message: "too many signed requests within the last five minutes; try again shortly"
                .into(),
        }
        .into_response()),
        Err(crate::signing::Refusal::Unauthorized(reason)) => {
            let key_id = parts
                .headers
                .get(crate::signing::KEY_ID)
                .and_then(|v| v.to_str().ok())
                .map(|id| id.chars().take(64).collect::<String>());
            let failure = SignInFailure {
                reason: format!("a refused signature: {reason}"),
                claimed_name: key_id,
                fingerprint: Some("signature".into()),
            };
            refuse(state, peer, uri.path(), &failure).await;
            Err(ApiError {
                status: axum::http::StatusCode::UNAUTHORIZED,
                message: format!("the request signature was refused: {reason}"),
            }
            .into_response())
        }
    }
}

/// Counts, logs (rate-limited) and slows down a refused sign-in.
pub(crate) async fn refuse(
    state: &AppState,
    peer: Option<SocketAddr>,
    path: &str,
    refusal: &SignInFailure,
) {
    state.metrics.sign_in_failed();
    let now = Instant::now();
    // Only a presented token is a guess worth slowing down; a request
    // without one cannot succeed however often it is sent.
    let (failures, delay) = match peer {
        Some(peer) if refusal.fingerprint.is_some() => state.sign_ins.failed(peer.ip(), now),
        _ => (0, Duration::ZERO),
    };
    if let Some(suppressed) = state.sign_ins.may_log(now) {
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        tracing::warn!(
            %peer,
            path = %path,
            reason = %refusal.reason,
            token_name = refusal.claimed_name.as_deref().unwrap_or("-"),
            token_sha256_prefix = refusal.fingerprint.as_deref().unwrap_or("-"),
            wrong_tokens_from_peer_last_minute = failures,
            delayed_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            suppressed_since_last_line = suppressed,
            "admin sign-in refused"
        );
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// A sign-in that failed, for the log.
#[derive(Debug)]
pub(crate) struct SignInFailure {
    pub(crate) reason: String,
    pub(crate) claimed_name: Option<String>,
    pub(crate) fingerprint: Option<String>,
}

/// `GET /api/admin/releases`: every release with its rollout state and counters.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let storage = Arc::clone(&state.storage);
    let counters = tokio::task::spawn_blocking(move || storage.counters())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::storage)?;
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
        .map_err(ApiError::storage)?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

/// One admin change, applied to the committed override.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    Rollout(u8),
    Halted(bool),
    Yanked(bool),
    Clear,
}

impl Change {
    fn describe(self) -> String {
        match self {
            Self::Rollout(percent) => format!("rollout {percent}"),
            Self::Halted(true) => "halt".into(),
            Self::Halted(false) => "resume".into(),
            Self::Yanked(true) => "yank".into(),
            Self::Yanked(false) => "restore".into(),
            Self::Clear => "clear override".into(),
        }
    }

    /// The same change for the signed targets, when it has one there.
    fn signed(self) -> Option<updraft_publisher::RolloutAction> {
        use updraft_publisher::RolloutAction;
        match self {
            Self::Rollout(percent) => Some(RolloutAction::Percent(percent)),
            Self::Halted(true) => Some(RolloutAction::Halt),
            Self::Halted(false) => Some(RolloutAction::Resume),
            Self::Yanked(true) => Some(RolloutAction::Yank),
            // The signed metadata has no un-yank, and clearing an override
            // falls back to what is signed.
            Self::Yanked(false) | Self::Clear => None,
        }
    }

    fn apply(self, current: Option<Override>) -> Option<Override> {
        let mut value = current.unwrap_or_default();
        match self {
            Self::Rollout(percent) => value.rollout_percent = Some(percent),
            Self::Halted(halted) => value.halted = Some(halted),
            Self::Yanked(yanked) => value.yanked = Some(yanked),
            Self::Clear => return None,
        }
        Some(value)
    }
}

/// `percent` from a rollout body `{"percent": N}`.
fn rollout_percent(body: &[u8]) -> Result<u8, ApiError> {
    let required =
        || ApiError::bad_request("`percent` is required: send {\"percent\": N} with 0 <= N <= 100");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(required());
    }
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))?;
    let percent = body.get("percent").ok_or_else(required)?;
    percent
        .as_u64()
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| *p <= 100)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`percent`: `{percent}` is not a whole number from 0 to 100"
            ))
        })
}

/// `POST /api/admin/releases/{app}/{version}/{action}` with action
/// `rollout` (body `{"percent": N}`), `halt`, `resume`, `yank`, `restore`
/// (any body is ignored).
pub(crate) async fn change(
    State(state): State<Arc<AppState>>,
    UrlPath((app, version, action)): UrlPath<(String, String, String)>,
    caller: axum::Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = crate::app::read_body(body)?;
    let key = release_key(&state, &app, &version)?;
    let change = match action.as_str() {
        "rollout" => Change::Rollout(rollout_percent(&body)?),
        "halt" => Change::Halted(true),
        "resume" => Change::Halted(false),
        "yank" => Change::Yanked(true),
        "restore" => Change::Yanked(false),
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action `{other}`; use rollout, halt, resume, yank or restore"
            )));
        }
    };
    apply(&state, key, change, &caller.0.0, None).await
}

/// `DELETE /api/admin/releases/{app}/{version}/override`.
pub(crate) async fn clear(
    State(state): State<Arc<AppState>>,
    UrlPath((app, version)): UrlPath<(String, String)>,
    caller: axum::Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = release_key(&state, &app, &version)?;
    apply(&state, key, Change::Clear, &caller.0.0, None).await
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

/// Applies `change` as one read-modify-write transaction in the database
/// (with its audit entry), then rebuilds the in-memory view from every
/// override as committed. Changes run one at a time, so the view always
/// equals the database once a change has been answered.
///
/// With a targets key (`--keys`), the change is then also signed into the
/// targets metadata, so clients that read the store directly (a static host,
/// a `file://` mirror) see it too; that re-signing is audited as well.
pub(crate) async fn apply(
    state: &Arc<AppState>,
    key: ReleaseKey,
    change: Change,
    who: &str,
    why: Option<&str>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let action = match why {
        Some(why) => format!("{}: {why}", change.describe()),
        None => change.describe(),
    };
    let audit = audit_entry(who, action, &key);
    let _one_at_a_time = state.admin_changes.lock().await;
    let storage = Arc::clone(&state.storage);
    let (stored_key, stored_audit) = (key.clone(), audit.clone());
    let (value, committed) = tokio::task::spawn_blocking(move || {
        let value = storage.change_override(
            &stored_key,
            &|current| change.apply(current),
            &stored_audit,
        )?;
        Ok::<_, crate::Error>((value, storage.overrides()?))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(ApiError::storage)?;
    state.view.replace_overrides(committed);
    tracing::info!(who = %audit.who, action = %audit.action, app = %audit.app, version = %audit.version, at = %audit.at, "admin change");
    let signed_version = match (&state.signing_keys, change.signed()) {
        (Some(keys), Some(action)) => resign(state, keys, &key, action, who).await,
        _ => None,
    };
    Ok(Json(
        serde_json::json!({ "app": key.app, "version": key.version, "override": value, "audit": audit,
                            "signed_targets_version": signed_version }),
    ))
}

fn audit_entry(who: &str, action: String, key: &ReleaseKey) -> AuditEntry {
    AuditEntry {
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        who: who.to_owned(),
        action,
        app: key.app.clone(),
        version: key.version.clone(),
    }
}

/// Signs `action` into the store's targets (as `updraft rollout` does),
/// reloads the view from it and audits the new targets version. A failure
/// is logged and audited; the override already applies to checks.
async fn resign(
    state: &Arc<AppState>,
    keys: &std::path::Path,
    key: &ReleaseKey,
    action: updraft_publisher::RolloutAction,
    who: &str,
) -> Option<u64> {
    let (location, keys) = (state.location.clone(), keys.to_path_buf());
    let (app, version) = (key.app.clone(), key.version.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let app = updraft_protocol::AppId::new(&app).map_err(|e| e.to_string())?;
        let version = updraft_protocol::Version::parse(&version).map_err(|e| e.to_string())?;
        location
            .rollout(
                &keys,
                &app,
                &version,
                &[action],
                time::OffsetDateTime::now_utc(),
                &updraft_publisher::ExpiryPolicy::default(),
            )
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|result| result);
    let (action, version) = match outcome {
        Ok(report) => {
            if let Ok(Err(error)) = state.reload().await {
                tracing::warn!(%error, "re-signed the targets but cannot reload them");
            }
            tracing::info!(app = %key.app, version = %key.version, targets_version = report.targets_version, "re-signed the targets");
            (
                format!("signed into targets version {}", report.targets_version),
                Some(report.targets_version),
            )
        }
        Err(error) => {
            tracing::error!(app = %key.app, version = %key.version, %error, "could not sign the change into the targets");
            (format!("could not sign into the targets: {error}"), None)
        }
    };
    let audit = audit_entry(who, action, key);
    let storage = Arc::clone(&state.storage);
    let stored_key = key.clone();
    let written = tokio::task::spawn_blocking(move || {
        storage.change_override(&stored_key, &|current| current, &audit)
    })
    .await;
    if !matches!(written, Ok(Ok(_))) {
        tracing::error!(app = %key.app, version = %key.version, "could not audit the re-signing");
    }
    version
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
