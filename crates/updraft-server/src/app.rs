//! The router, the shared state and the public API handlers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::admin::{self, AdminTokens};
use crate::dashboard;
use crate::error::ApiError;
use crate::files;
use crate::metrics::Metrics;
use crate::rules::{self, CheckParams, CheckRequest};
use crate::stats::{CounterKey, EventKind, Recorder, Storage};
use crate::view::{Release, ViewCell};

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The store folder (for a bucket: the private copy of its signed metadata).
    pub(crate) store: PathBuf,
    /// Where the store is kept: what admin changes and refreshes sign into.
    pub(crate) location: updraft_publisher::Location,
    /// The bucket, when the store is in one: files are streamed from it.
    pub(crate) bucket: Option<updraft_publisher::s3::Bucket>,
    /// Store files and downloads are redirected here (`--files-url`).
    pub(crate) files_url: Option<String>,
    /// The bucket's `timestamp.json` ETag the view was loaded from.
    pub(crate) timestamp_etag: tokio::sync::Mutex<Option<String>>,
    /// Removed with the state.
    pub(crate) _cache_dir: Option<tempfile::TempDir>,
    pub(crate) view: ViewCell,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) recorder: Recorder,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) admin: Option<AdminTokens>,
    /// Failed admin sign-ins per address: logged (rate-limited) and slowed down.
    pub(crate) sign_ins: admin::SignIns,
    /// Held while an admin change is written and the view rebuilt from the
    /// database, so changes apply one at a time and memory never lags.
    pub(crate) admin_changes: tokio::sync::Mutex<()>,
    pub(crate) public_url: Option<String>,
    pub(crate) scheme: &'static str,
    /// The keys folder when it holds the targets and snapshot keys: admin
    /// changes and automatic halts are then signed into the targets too.
    pub(crate) signing_keys: Option<PathBuf>,
    /// HMAC keys for signed requests (`--signing-key-file`).
    pub(crate) signing: Option<crate::signing::SigningKeys>,
    /// Install reports must be signed (`--require-signed-reports`).
    pub(crate) require_signed_reports: bool,
    /// The largest request body, also when a signed one is hashed.
    pub(crate) body_limit: usize,
    /// Dashboard sessions.
    pub(crate) sessions: crate::dashboard::Sessions,
}

impl AppState {
    /// Reloads the view when the store's timestamp changed (for a bucket,
    /// after a conditional read of its `timestamp.json` and fetching the
    /// metadata it leads to). The outer error is a failed task.
    pub(crate) async fn reload(
        self: &Arc<Self>,
    ) -> std::result::Result<crate::error::Result<bool>, tokio::task::JoinError> {
        if let Some(bucket) = &self.bucket {
            let mut etag = self.timestamp_etag.lock().await;
            match updraft_publisher::s3::sync_metadata(bucket, &self.store, etag.as_deref()).await {
                Ok(Some(new)) => *etag = Some(new),
                Ok(None) => return Ok(Ok(false)),
                Err(error) => return Ok(Err(error.into())),
            }
        }
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.view.reload_if_changed(&state.store)).await
    }
}

/// Serves a store file from wherever the store is: a redirect to
/// `--files-url`, the bucket, or the folder.
pub(crate) async fn serve_store_file(
    state: &AppState,
    relative: &updraft_protocol::TargetPath,
    method: &Method,
    headers: &HeaderMap,
    extra: &[(header::HeaderName, String)],
    progress: Option<files::Progress>,
) -> Result<Response, ApiError> {
    if let Some(base) = &state.files_url {
        let location = format!("{base}/{}", url_path(relative.as_str()));
        return Ok((
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response());
    }
    match &state.bucket {
        Some(bucket) => {
            files::serve_bucket(bucket, relative, method, headers, extra, progress).await
        }
        None => files::serve(&state.store, relative, method, headers, extra, progress).await,
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) body_bytes: usize,
    pub(crate) timeout: Duration,
    pub(crate) concurrency: usize,
}

pub(crate) fn router(state: Arc<AppState>, limits: Limits) -> Router {
    let admin = Router::new()
        .route("/releases", get(admin::list))
        .route("/audit", get(admin::audit))
        .route("/releases/{app}/{version}/{action}", post(admin::change))
        .route("/releases/{app}/{version}/override", delete(admin::clear))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            admin::require_token,
        ));
    Router::new()
        .route("/api/version/check", get(check_get).post(check_post))
        .route("/api/version/info", get(info))
        .route("/api/version/download", get(download))
        .route(
            "/api/version/report",
            post(report).layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                signed_reports,
            )),
        )
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/changelog/{app}", get(changelog))
        .route("/feeds/{app}/{file}", get(feed))
        .nest("/api/admin", admin)
        .route("/admin", get(dashboard::home))
        .route("/admin/", get(dashboard::home))
        .route(
            "/admin/sign-in",
            get(dashboard::sign_in_page).post(dashboard::sign_in),
        )
        .route("/admin/sign-out", post(dashboard::sign_out))
        .route("/admin/audit", get(dashboard::audit))
        .route("/admin/assets/{file}", get(dashboard::asset))
        .route("/admin/releases/{app}/{version}", get(dashboard::release))
        .route(
            "/admin/releases/{app}/{version}/confirm",
            get(dashboard::confirm),
        )
        .route(
            "/admin/releases/{app}/{version}/{action}",
            post(dashboard::change),
        )
        .fallback(static_file)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(limits.timeout, deadline))
        .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .with_state(state)
}

/// 408 with a JSON error when no response head is ready within `timeout`.
async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request was not answered within {} s; send it again",
                timeout.as_secs_f64()
            ),
        }
        .into_response(),
    }
}

/// Every error answer is `{"error": "..."}`: what axum answers by itself in
/// plain text or with an empty body (405 with its `Allow` header, 413, 415,
/// 422) is rewritten with the same status and headers.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = match parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
    {
        Some(allowed) if status == StatusCode::METHOD_NOT_ALLOWED => {
            format!("this method is not allowed here; use {allowed}")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase(),
        _ => text,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": message }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Metrics for every request, labelled by a fixed route name.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route: &'static str = match request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/api/version/check") => "check",
        Some("/api/version/info") => "info",
        Some("/api/version/download") => "download",
        Some("/api/version/report") => "report",
        Some("/healthz") => "healthz",
        Some("/metrics") => "metrics",
        Some("/openapi.json") => "openapi",
        Some("/changelog/{app}") => "changelog",
        Some("/feeds/{app}/{file}") => "feed",
        Some(path) if path.starts_with("/api/admin") => "admin",
        Some(path) if path.starts_with("/admin") => "dashboard",
        _ => "static",
    };
    let response = next.run(request).await;
    state
        .metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}", state.scheme)
}

/// Percent-encodes each path component (`+` in build metadata included).
pub(crate) fn url_path(path: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    path.split('/')
        .map(|c| percent_encoding::utf8_percent_encode(c, COMPONENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_query<T: for<'de> Deserialize<'de> + Default>(query: Option<&str>) -> Result<T, ApiError> {
    match query {
        None | Some("") => Ok(T::default()),
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("the query string is not valid: {e}"))),
    }
}

/// The request body, or the reason it could not be read (413 when too large)
/// as a JSON error.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| ApiError {
        status: rejection.status(),
        message: rejection.body_text(),
    })
}

pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    serde_json::from_slice(&read_body(body)?)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))
}

async fn check_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match parse_query::<CheckParams>(query.as_deref()) {
        Ok(params) => params,
        Err(error) => {
            state.metrics.check("error");
            return error.into_response();
        }
    };
    answer_check(&state, &headers, &params)
}

async fn check_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match parse_body::<CheckParams>(body) {
        Ok(params) => answer_check(&state, &headers, &params),
        Err(error) => {
            state.metrics.check("error");
            error.into_response()
        }
    }
}

fn answer_check(state: &AppState, headers: &HeaderMap, params: &CheckParams) -> Response {
    let view = state.view.get();
    let request = match CheckRequest::parse(params, &view) {
        Ok(request) => request,
        Err(error) => {
            state.metrics.check("error");
            return error.into_response();
        }
    };
    let base = base_url(state, headers);
    let (answer, offer) =
        rules::check(&view, &request, |path| format!("{base}/{}", url_path(path)));
    let key = |version: String, event| CounterKey {
        app: request.app.to_string(),
        version,
        channel: request.channel.to_string(),
        platform: request.platform.to_string(),
        arch: request.arch.to_string(),
        event,
    };
    state.recorder.record(
        key(request.current_version.to_string(), EventKind::Check),
        0,
    );
    if let Some(offer) = &offer {
        state
            .recorder
            .record(key(offer.info.version.to_string(), EventKind::Offer), 0);
    }
    state.metrics.check(if offer.is_some() {
        "update"
    } else {
        "no_update"
    });
    Json(answer).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct ReleaseParams {
    app: Option<String>,
    version: Option<String>,
    /// `download` only: the installed version, for its patch.
    from: Option<String>,
    platform: Option<String>,
    arch: Option<String>,
}

fn find_release(state: &AppState, params: &ReleaseParams) -> Result<Release, ApiError> {
    let view = state.view.get();
    let version = rules::parse_version(params.version.as_ref(), "version")?;
    let platform = rules::parse_platform(params.platform.as_ref())?;
    let arch = rules::parse_arch(params.arch.as_ref())?;
    let app = rules::resolve_app(&view, params.app.as_ref())?;
    view.find(&app, &version, platform, arch)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{app} {version} is not published for {platform}/{arch}"
            ))
        })
}

async fn info(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let release = find_release(&state, &parse_query(query.as_deref())?)?;
    let base = base_url(&state, &headers);
    let info = &release.info;
    Ok(Json(serde_json::json!({
        "app": info.app, "version": info.version, "channel": info.channel, "platform": info.platform, "arch": info.arch,
        "release_date": info.release_date, "changelog": info.notes, "file_size": release.length,
        "sha256": release.sha256.map(|d| d.to_hex()), "target": release.package,
        "download_url": format!("{base}/{}", url_path(&release.package)),
        "manifest": release.custom.manifest, "main": info.main,
        "installed_size": release.custom.installed_size, "file_count": release.custom.file_count,
        "force_update": info.force, "min_supported_version": info.min_supported_version,
        "rollout_percent": info.rollout_percent, "halted": info.halted, "yanked": info.yanked,
    })))
}

async fn download(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params: ReleaseParams = parse_query(query.as_deref())?;
    let release = find_release(&state, &params)?;
    let info = &release.info;
    if info.yanked {
        return Err(ApiError {
            status: StatusCode::GONE,
            message: format!("{} {} was withdrawn (yanked)", info.app, info.version),
        });
    }
    // With `from`, the patch from that version instead (404 when there is none).
    let (served, served_length, filename) = match params.from.as_ref().filter(|f| !f.is_empty()) {
        None => (
            release.package.clone(),
            release.length,
            format!(
                "{}_v{}_{}_{}.{}",
                info.app,
                info.version,
                info.platform,
                info.arch,
                release.custom.format.extension()
            ),
        ),
        Some(from) => {
            let from = rules::parse_version(Some(from), "from")?;
            let view = state.view.get();
            let patch = view
                .find_patch(&info.app, &from, &info.version, info.platform, info.arch)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "{} has no patch from {from} to {} for {}/{}",
                        info.app, info.version, info.platform, info.arch
                    ))
                })?;
            let name = patch
                .path
                .rsplit('/')
                .next()
                .unwrap_or(&patch.path)
                .to_owned();
            (patch.path.clone(), patch.length, name)
        }
    };
    let disposition = format!("attachment; filename=\"{filename}\"");
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let from_start = match range {
        None => true,
        Some(range) => matches!(
            files::parse_range(range, served_length),
            files::RangeRequest::Full | files::RangeRequest::Partial(0, _)
        ),
    };
    // `bytes=-N` asks for the last N bytes (a probe, or a reader of an
    // archive's trailer): it never completes a download. A resume
    // (`bytes=N-`) that reaches the end does.
    let can_complete = !range.is_some_and(files::is_suffix_range);
    let key = |event| CounterKey {
        app: info.app.to_string(),
        version: info.version.to_string(),
        channel: info.channel.to_string(),
        platform: info.platform.to_string(),
        arch: info.arch.to_string(),
        event,
    };
    let progress_state = Arc::clone(&state);
    let completed_key = key(EventKind::DownloadCompleted);
    let sent = Arc::new(AtomicU64::new(0));
    let progress: files::Progress = Arc::new(move |bytes, done| {
        progress_state.metrics.bytes(bytes);
        let total = sent.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if done && can_complete {
            progress_state.recorder.record(completed_key.clone(), total);
        }
    });
    let package = updraft_protocol::TargetPath::new(&served)
        .map_err(|_| ApiError::not_found(format!("`{served}` is not a file of this store")))?;
    let response = serve_store_file(
        &state,
        &package,
        &method,
        &headers,
        &[(header::CONTENT_DISPOSITION, disposition)],
        Some(progress),
    )
    .await?;
    if from_start && method == Method::GET && response.status().is_success() {
        state.recorder.record(key(EventKind::DownloadStarted), 0);
    }
    Ok(response)
}

/// Middleware of the report endpoint: a signed report must carry a valid
/// signature; an unsigned one is refused when signatures are required.
async fn signed_reports(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if crate::signing::is_signed(request.headers()) {
        return match admin::verify_signed(&state, request).await {
            Ok(request) => next.run(request).await,
            Err(response) => response,
        };
    }
    if state.require_signed_reports {
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "install reports must be signed on this server (X-Updraft-Signature; see docs/server.md)".into(),
        }
        .into_response();
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct Report {
    app: Option<String>,
    version: Option<String>,
    platform: Option<String>,
    arch: Option<String>,
    channel: Option<String>,
    outcome: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn report(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let report: Report = parse_body(body)?;
    let view = state.view.get();
    let app = rules::resolve_app(&view, report.app.as_ref())?;
    let version = rules::parse_version(report.version.as_ref(), "version")?;
    let platform = rules::parse_platform(report.platform.as_ref())?;
    let arch = rules::parse_arch(report.arch.as_ref())?;
    let channel = match report.channel.as_deref().filter(|c| !c.is_empty()) {
        Some(channel) => {
            updraft_protocol::Channel::new(channel).map_err(|e| ApiError::field("channel", &e))?
        }
        None => updraft_protocol::Channel::stable(),
    };
    let event = match rules::required(report.outcome.as_ref(), "outcome")? {
        "installed" => EventKind::Installed,
        "failed" => EventKind::Failed,
        "rolled_back" => EventKind::RolledBack,
        other => {
            return Err(ApiError::bad_request(format!(
                "`outcome`: `{other}` is not one of installed, failed, rolled_back"
            )));
        }
    };
    if report.error.as_ref().is_some_and(|e| e.len() > 4096) {
        return Err(ApiError::bad_request("`error` is longer than 4096 bytes"));
    }
    if let Some(error) = &report.error {
        tracing::info!(%app, %version, %platform, %arch, outcome = ?event, error = %error, "install report");
    }
    state.recorder.record(
        CounterKey {
            app: app.to_string(),
            version: version.to_string(),
            channel: channel.to_string(),
            platform: platform.to_string(),
            arch: arch.to_string(),
            event,
        },
        0,
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"recorded": true})),
    )
        .into_response())
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let view = state.view.get();
    Json(
        serde_json::json!({"status": "ok", "targets_version": view.targets_version, "releases": view.releases.len(),
                           "database": if state.metrics.database_up() { "up" } else { "down" }}),
    )
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state
        .metrics
        .render(state.recorder.dropped(), state.view.get().targets_version);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn announced_app(state: &AppState, app: &str) -> Result<updraft_protocol::AppId, ApiError> {
    let app = updraft_protocol::AppId::new(app).map_err(|e| ApiError::field("app", &e))?;
    if !state.view.get().apps.contains(&app) {
        return Err(ApiError::not_found(format!(
            "`{app}` is not published on this server"
        )));
    }
    Ok(app)
}

/// `GET /changelog/{app}`: every release's notes as HTML, per channel. Any
/// other name there is a store file (the notes `changelog/{app}_v{version}.md`).
async fn changelog(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    axum::extract::Path(app): axum::extract::Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let known = updraft_protocol::AppId::new(&app)
        .ok()
        .filter(|app| state.view.get().apps.contains(app));
    if known.is_none() && (app.contains('.') || method == Method::HEAD) {
        return static_file(State(state), method, headers, request).await;
    }
    let app = announced_app(&state, &app)?;
    let view = state.view.get();
    let base = base_url(&state, &headers);
    let page = updraft_publisher::announce::changelog_page(
        view.releases.iter().map(|r| &r.info),
        &app,
        updraft_publisher::announce::Links::Absolute(&base),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src https:",
            ),
        ],
        page,
    )
        .into_response())
}

/// `GET /feeds/{app}/{channel}.atom`: an Atom 1.0 feed of the channel's releases.
async fn feed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Path((app, file)): axum::extract::Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = announced_app(&state, &app)?;
    let channel = file.strip_suffix(".atom").ok_or_else(|| {
        ApiError::not_found(format!(
            "`{file}` is not a feed; ask for `{{channel}}.atom`"
        ))
    })?;
    let channel =
        updraft_protocol::Channel::new(channel).map_err(|e| ApiError::field("channel", &e))?;
    let view = state.view.get();
    let base = base_url(&state, &headers);
    let feed = updraft_publisher::announce::atom_feed(
        view.releases.iter().map(|r| &r.info),
        &app,
        &channel,
        updraft_publisher::announce::Links::Absolute(&base),
    );
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed,
    )
        .into_response())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn static_file(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "store files are read-only: use GET or HEAD".into(),
        }
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let relative = files::resolve(request.uri().path())?;
    let progress_state = Arc::clone(&state);
    let progress: files::Progress = Arc::new(move |bytes, _| progress_state.metrics.bytes(bytes));
    serve_store_file(&state, &relative, &method, &headers, &[], Some(progress)).await
}
