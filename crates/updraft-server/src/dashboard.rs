//! The admin dashboard at `/admin`: server-rendered pages (maud escapes
//! every value), a session cookie after signing in with an admin token, a
//! CSRF token on every change, a confirmation step before each rollout
//! change, English and Simplified Chinese. Only the adoption chart needs
//! JavaScript (vendored uPlot, no CDN).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UrlPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::admin::{self, Change, SignInFailure};
use crate::app::AppState;
use crate::stats::EventKind;
use crate::view::{Release, ReleaseKey};

const COOKIE: &str = "updraft_admin";
const LANG_COOKIE: &str = "updraft_lang";
/// A session ends this long after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_hours(8);
const MAX_SESSIONS: usize = 10_000;
/// The adoption chart covers this many days.
const CHART_DAYS: i64 = 14;

/// Signed-in admins, by the SHA-256 of their session id (the id itself is
/// only in the browser's cookie).
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    name: String,
    csrf: String,
    expires: Instant,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    fn create(&self, name: &str) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            name: name.to_owned(),
            csrf: random_hex(),
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let mut sessions = self.by_hash.lock().expect("session lock");
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(Sha256::digest(id.as_bytes()).into(), session.clone());
        (id, session)
    }

    fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let hash: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let mut sessions = self.by_hash.lock().expect("session lock");
        match sessions.get(&hash) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                sessions.remove(&hash);
                None
            }
            None => None,
        }
    }

    fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            let hash: [u8; 32] = Sha256::digest(id.as_bytes()).into();
            self.by_hash.lock().expect("session lock").remove(&hash);
        }
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Zh,
}

/// Every string the pages show, per language.
struct Text {
    code: &'static str,
    title: &'static str,
    sign_in: &'static str,
    sign_in_hint: &'static str,
    token: &'static str,
    bad_token: &'static str,
    sign_out: &'static str,
    releases: &'static str,
    audit: &'static str,
    version: &'static str,
    channel: &'static str,
    platform: &'static str,
    rollout: &'static str,
    state: &'static str,
    live: &'static str,
    halted: &'static str,
    yanked: &'static str,
    auto_halt: &'static str,
    none: &'static str,
    adoption: &'static str,
    adoption_hint: &'static str,
    no_reports: &'static str,
    checks: &'static str,
    offers: &'static str,
    downloads: &'static str,
    installs: &'static str,
    failures: &'static str,
    rollbacks: &'static str,
    failure_rate: &'static str,
    completion_rate: &'static str,
    controls: &'static str,
    set_percent: &'static str,
    halt: &'static str,
    resume: &'static str,
    yank: &'static str,
    restore: &'static str,
    confirm: &'static str,
    confirm_question: &'static str,
    cancel: &'static str,
    when: &'static str,
    who: &'static str,
    what: &'static str,
    release: &'static str,
    csrf_refused: &'static str,
    no_releases: &'static str,
    signed_note: &'static str,
}

const EN: Text = Text {
    code: "en",
    title: "updraft admin",
    sign_in: "Sign in",
    sign_in_hint: "Paste an admin token from the server's token file.",
    token: "Admin token",
    bad_token: "That token is not valid.",
    sign_out: "Sign out",
    releases: "Releases",
    audit: "Audit log",
    version: "Version",
    channel: "Channel",
    platform: "Platform",
    rollout: "Rollout",
    state: "State",
    live: "live",
    halted: "halted",
    yanked: "yanked",
    auto_halt: "Halts by itself",
    none: "none",
    adoption: "Adoption",
    adoption_hint: "Successful installs by version, cumulative, per minute.",
    no_reports: "No install reports yet.",
    checks: "Checks from this version",
    offers: "Offers",
    downloads: "Downloads (started / completed)",
    installs: "Installs",
    failures: "Failures",
    rollbacks: "Rollbacks",
    failure_rate: "Failure rate",
    completion_rate: "Downloads completed",
    controls: "Rollout controls",
    set_percent: "Set percentage",
    halt: "Halt",
    resume: "Resume",
    yank: "Yank",
    restore: "Restore",
    confirm: "Confirm",
    confirm_question: "Apply this change?",
    cancel: "Cancel",
    when: "When",
    who: "Who",
    what: "What",
    release: "Release",
    csrf_refused: "This change was refused: the form's security token is missing or wrong. Reload the page and try again.",
    no_releases: "No releases are published.",
    signed_note: "Changes apply to checks at once; with the targets key they are signed into the store too.",
};

const ZH: Text = Text {
    code: "zh-CN",
    title: "updraft 管理",
    sign_in: "登录",
    sign_in_hint: "粘贴服务器令牌文件中的管理令牌。",
    token: "管理令牌",
    bad_token: "该令牌无效。",
    sign_out: "退出登录",
    releases: "版本",
    audit: "审计日志",
    version: "版本号",
    channel: "渠道",
    platform: "平台",
    rollout: "灰度比例",
    state: "状态",
    live: "发布中",
    halted: "已暂停",
    yanked: "已撤回",
    auto_halt: "自动暂停规则",
    none: "无",
    adoption: "升级趋势",
    adoption_hint: "按版本统计的累计成功安装数（每分钟）。",
    no_reports: "还没有安装报告。",
    checks: "来自此版本的检查",
    offers: "推送次数",
    downloads: "下载（开始 / 完成）",
    installs: "安装成功",
    failures: "安装失败",
    rollbacks: "回滚",
    failure_rate: "失败率",
    completion_rate: "下载完成率",
    controls: "发布控制",
    set_percent: "设置比例",
    halt: "暂停",
    resume: "恢复",
    yank: "撤回",
    restore: "取消撤回",
    confirm: "确认",
    confirm_question: "确定执行此操作吗？",
    cancel: "取消",
    when: "时间",
    who: "操作者",
    what: "操作",
    release: "版本",
    csrf_refused: "操作被拒绝：表单的安全令牌缺失或错误。请刷新页面后重试。",
    no_releases: "尚未发布任何版本。",
    signed_note: "更改立即作用于更新检查；服务器持有 targets 密钥时也会签入仓库。",
};

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    action: Option<String>,
    percent: Option<String>,
}

fn parse_query(query: Option<&str>) -> PageQuery {
    query
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// The language: `?lang=`, else the cookie, else `Accept-Language`.
fn lang(headers: &HeaderMap, query: &PageQuery) -> (Lang, Option<Lang>) {
    let pick = |text: &str| {
        if text.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    };
    if let Some(asked) = query.lang.as_deref() {
        let lang = pick(asked);
        return (lang, Some(lang));
    }
    if let Some(saved) = cookie(headers, LANG_COOKIE) {
        return (pick(saved), None);
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (pick(accept.split(',').next().unwrap_or("").trim()), None)
}

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

fn page(t: &Text, session: Option<&Session>, heading: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (heading) " · " (t.title) }
                link rel="stylesheet" href="/admin/assets/admin.css";
                link rel="stylesheet" href="/admin/assets/uPlot.min.css";
            }
            body {
                header {
                    a.brand href="/admin" { (t.title) }
                    @if session.is_some() {
                        nav {
                            a href="/admin" { (t.releases) }
                            a href="/admin/audit" { (t.audit) }
                        }
                    }
                    span.langs {
                        a href="?lang=en" lang="en" { "English" }
                        a href="?lang=zh-CN" lang="zh-CN" { "简体中文" }
                    }
                    @if let Some(session) = session {
                        form.signout method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            span.who { (session.name) }
                            button type="submit" { (t.sign_out) }
                        }
                    }
                }
                main {
                    h1 { (heading) }
                    (body)
                }
            }
        }
    }
}

fn respond(status: StatusCode, markup: &Markup, set_lang: Option<Lang>) -> Response {
    let mut response = (status, markup.clone().into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Some(lang) = set_lang {
        let value = format!(
            "{LANG_COOKIE}={}; Path=/admin; SameSite=Strict; Max-Age=31536000",
            text(lang).code
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session, or the answer for a visitor without one: pages redirect to
/// the sign-in page.
#[allow(clippy::result_large_err)] // the answer is returned at once, not propagated
fn session_or_redirect(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    if state.admin.is_none() {
        return Err((
            StatusCode::NOT_FOUND,
            "the dashboard is off: start the server with --admin-token-file",
        )
            .into_response());
    }
    state
        .sessions
        .get(headers)
        .ok_or_else(|| see_other("/admin/sign-in"))
}

/// `GET /admin/assets/{file}`: the stylesheet and the vendored chart code.
pub(crate) async fn asset(UrlPath(file): UrlPath<String>) -> Response {
    let (body, kind): (&'static [u8], &'static str) = match file.as_str() {
        "admin.css" => (ADMIN_CSS.as_bytes(), "text/css; charset=utf-8"),
        "adoption.js" => (ADOPTION_JS.as_bytes(), "text/javascript; charset=utf-8"),
        "uPlot.iife.min.js" => (
            include_bytes!("../assets/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "uPlot.min.css" => (
            include_bytes!("../assets/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /admin/sign-in`.
pub(crate) async fn sign_in_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let (lang, set_lang) = lang(&headers, &query);
    if state.sessions.get(&headers).is_some() {
        return see_other("/admin");
    }
    respond(StatusCode::OK, &sign_in_form(text(lang), false), set_lang)
}

fn sign_in_form(t: &Text, failed: bool) -> Markup {
    page(
        t,
        None,
        t.sign_in,
        &html! {
            form.card method="post" action="/admin/sign-in" {
                p { (t.sign_in_hint) }
                @if failed { p.error role="alert" { (t.bad_token) } }
                label for="token" { (t.token) }
                input #token type="password" name="token" autocomplete="current-password" required maxlength="1024";
                button type="submit" { (t.sign_in) }
            }
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct Form {
    token: Option<String>,
    csrf: Option<String>,
    percent: Option<String>,
}

fn parse_form(body: &Bytes) -> Form {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// `POST /admin/sign-in`: a valid token starts a session; a wrong one is
/// counted, logged and slowed down like a wrong API token.
pub(crate) async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let (lang, _) = lang(&headers, &PageQuery::default());
    let t = text(lang);
    let Some(tokens) = &state.admin else {
        return (StatusCode::NOT_FOUND, "the dashboard is off").into_response();
    };
    let Ok(body) = axum::body::to_bytes(request.into_body(), 16 * 1024).await else {
        return respond(StatusCode::PAYLOAD_TOO_LARGE, &sign_in_form(t, true), None);
    };
    let token = parse_form(&body).token.unwrap_or_default();
    let token = token.trim();
    if let Some(name) = tokens.check(token).filter(|_| !token.is_empty()) {
        let (id, _) = state.sessions.create(name);
        let secure = if state.scheme == "https" {
            "; Secure"
        } else {
            ""
        };
        let mut response = see_other("/admin");
        let cookie = format!(
            "{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_LIFETIME.as_secs()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        tracing::info!(who = %name, "admin signed in to the dashboard");
        return response;
    }
    let failure = SignInFailure {
        reason: if token.is_empty() {
            "an empty dashboard sign-in".into()
        } else {
            "an unknown token at the dashboard sign-in".into()
        },
        claimed_name: None,
        fingerprint: (!token.is_empty())
            .then(|| hex::encode(&Sha256::digest(token.as_bytes())[..4])),
    };
    admin::refuse(&state, peer, "/admin/sign-in", &failure).await;
    respond(StatusCode::UNAUTHORIZED, &sign_in_form(t, true), None)
}

/// The session of a change, if its CSRF token matches; otherwise the refusal.
#[allow(clippy::result_large_err)] // the answer is returned at once, not propagated
fn session_for_change(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    t: &Text,
) -> Result<Session, Response> {
    let Some(session) = state.sessions.get(headers) else {
        return Err(respond(
            StatusCode::UNAUTHORIZED,
            &sign_in_form(t, false),
            None,
        ));
    };
    let presented = form.csrf.as_deref().unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), session.csrf.as_bytes()) {
        tracing::warn!(who = %session.name, "dashboard change refused: missing or wrong CSRF token");
        return Err(respond(
            StatusCode::FORBIDDEN,
            &page(
                t,
                Some(&session),
                t.controls,
                &html! { p.error role="alert" { (t.csrf_refused) } },
            ),
            None,
        ));
    }
    Ok(session)
}

/// `POST /admin/sign-out`.
pub(crate) async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lang, _) = lang(&headers, &PageQuery::default());
    let form = parse_form(&body);
    if let Err(response) = session_for_change(&state, &headers, &form, text(lang)) {
        return response;
    }
    state.sessions.remove(&headers);
    let mut response = see_other("/admin/sign-in");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "updraft_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

fn state_label(t: &Text, release: &Release) -> (&'static str, &'static str) {
    if release.info.yanked {
        (t.yanked, "bad")
    } else if release.info.halted {
        (t.halted, "warn")
    } else {
        (t.live, "ok")
    }
}

fn release_href(release: &Release) -> String {
    format!(
        "/admin/releases/{}/{}",
        release.info.app,
        crate::app::url_path(&release.info.version.to_string())
    )
}

/// `GET /admin`: every app's releases per channel and platform.
pub(crate) async fn home(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let (lang, set_lang) = lang(&headers, &query);
    let t = text(lang);
    let session = match session_or_redirect(&state, &headers) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let view = state.view.get();
    let mut by_app: BTreeMap<String, Vec<&Release>> = BTreeMap::new();
    for release in &view.releases {
        by_app
            .entry(release.info.app.to_string())
            .or_default()
            .push(release);
    }
    let body = html! {
        @if by_app.is_empty() { p { (t.no_releases) } }
        @for (app, releases) in &by_app {
            section {
                h2 { (app) }
                table {
                    thead { tr {
                        th { (t.version) } th { (t.channel) } th { (t.platform) }
                        th { (t.rollout) } th { (t.state) } th { (t.auto_halt) }
                    } }
                    tbody {
                        @for release in releases {
                            @let (label, class) = state_label(t, release);
                            tr {
                                td { a href=(release_href(release)) { (release.info.version.to_string()) } }
                                td { (release.info.channel.as_str()) }
                                td { (release.info.platform.as_str()) "/" (release.info.arch.as_str()) }
                                td { (release.info.rollout_percent) " %" }
                                td { span class=(format!("badge {class}")) { (label) } }
                                td { @match release.signed.auto_halt {
                                    Some(rule) => { "> " (rule.percent()) " % / ≥ " (rule.min_reports) }
                                    None => { (t.none) }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        &page(t, Some(&session), t.releases, &body),
        set_lang,
    )
}

fn find_release<'v>(view: &'v crate::view::View, app: &str, version: &str) -> Option<&'v Release> {
    view.releases
        .iter()
        .find(|r| r.info.app.as_str() == app && r.info.version.to_string() == version)
}

fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    #[allow(clippy::cast_precision_loss)]
    let value = part as f64 * 100.0 / whole as f64;
    format!("{value:.1} %")
}

/// The adoption chart's data: Unix seconds and, per version, cumulative
/// successful installs.
/// The line starts at 0 the minute before the first install and runs to
/// `now_minute`.
fn adoption_series(points: &[crate::stats::TimelinePoint], now_minute: i64) -> serde_json::Value {
    let mut minutes: Vec<i64> = points
        .iter()
        .filter(|p| p.event == EventKind::Installed)
        .map(|p| p.minute)
        .collect();
    if let Some(first) = minutes.iter().min().copied() {
        minutes.push(first - 1);
        minutes.push(now_minute.max(first));
    }
    minutes.sort_unstable();
    minutes.dedup();
    let mut versions: BTreeMap<&str, BTreeMap<i64, u64>> = BTreeMap::new();
    for point in points.iter().filter(|p| p.event == EventKind::Installed) {
        *versions
            .entry(point.version.as_str())
            .or_default()
            .entry(point.minute)
            .or_default() += point.count;
    }
    let series: Vec<serde_json::Value> = versions
        .iter()
        .map(|(version, counts)| {
            let mut total = 0;
            let values: Vec<u64> = minutes
                .iter()
                .map(|minute| {
                    total += counts.get(minute).copied().unwrap_or(0);
                    total
                })
                .collect();
            serde_json::json!({ "version": version, "values": values })
        })
        .collect();
    let seconds: Vec<i64> = minutes.iter().map(|m| m * 60).collect();
    serde_json::json!({ "x": seconds, "series": series })
}

/// `GET /admin/releases/{app}/{version}`: counts, rates, the adoption chart
/// and the rollout controls.
pub(crate) async fn release(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((app, version)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let (lang, set_lang) = lang(&headers, &query);
    let t = text(lang);
    let session = match session_or_redirect(&state, &headers) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let view = state.view.get();
    let Some(release) = find_release(&view, &app, &version) else {
        return respond(
            StatusCode::NOT_FOUND,
            &page(
                t,
                Some(&session),
                t.release,
                &html! { p { (app) " " (version) ": 404" } },
            ),
            None,
        );
    };
    let platforms: Vec<&Release> = view
        .releases
        .iter()
        .filter(|r| r.key() == release.key())
        .collect();
    let storage = Arc::clone(&state.storage);
    let app_name = app.clone();
    let since = time::OffsetDateTime::now_utc().unix_timestamp() / 60 - CHART_DAYS * 24 * 60;
    let loaded = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::Error>((storage.counters()?, storage.timeline(&app_name, since)?))
    })
    .await;
    let Ok(Ok((counters, timeline))) = loaded else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the statistics database failed",
        )
            .into_response();
    };
    let mut counts: BTreeMap<EventKind, u64> = BTreeMap::new();
    for (key, count) in &counters {
        if key.app == app && key.version == version {
            *counts.entry(key.event).or_default() += count.count;
        }
    }
    let get = |event| counts.get(&event).copied().unwrap_or(0);
    let installs = get(EventKind::Installed);
    let failures = get(EventKind::Failed);
    let rollbacks = get(EventKind::RolledBack);
    let reports = installs + failures + rollbacks;
    let chart = adoption_series(
        &timeline,
        time::OffsetDateTime::now_utc().unix_timestamp() / 60,
    );
    let mut chart = chart;
    chart["label"] = t.installs.into();
    let has_chart = chart["x"].as_array().is_some_and(|x| !x.is_empty());
    let href = release_href(release);
    let (label, class) = state_label(t, release);
    let heading = format!("{app} {version}");
    let body = html! {
        p {
            span class=(format!("badge {class}")) { (label) } " "
            (t.rollout) ": " strong #rollout-percent { (release.info.rollout_percent) " %" } " · "
            (t.channel) ": " (release.info.channel.as_str()) " · "
            (t.auto_halt) ": "
            @match release.signed.auto_halt {
                Some(rule) => { "> " (rule.percent()) " % / ≥ " (rule.min_reports) }
                None => { (t.none) }
            }
        }
        p.small { @for r in &platforms { span.tag { (r.info.platform.as_str()) "/" (r.info.arch.as_str()) } " " } }
        section {
            h2 { (t.adoption) }
            p.small { (t.adoption_hint) }
            @if has_chart {
                div #adoption data-chart=(chart.to_string()) {}
                noscript { p.small { (t.adoption_hint) } }
            } @else {
                p { (t.no_reports) }
            }
        }
        section {
            table.stats {
                tbody {
                    tr { th { (t.checks) } td { (get(EventKind::Check)) } }
                    tr { th { (t.offers) } td { (get(EventKind::Offer)) } }
                    tr { th { (t.downloads) } td { (get(EventKind::DownloadStarted)) " / " (get(EventKind::DownloadCompleted)) } }
                    tr { th { (t.completion_rate) } td { (rate(get(EventKind::DownloadCompleted), get(EventKind::DownloadStarted))) } }
                    tr { th { (t.installs) } td #installs { (installs) } }
                    tr { th { (t.failures) } td #failures { (failures) } }
                    tr { th { (t.rollbacks) } td #rollbacks { (rollbacks) } }
                    tr { th { (t.failure_rate) } td #failure-rate { (rate(failures + rollbacks, reports)) } }
                }
            }
        }
        section {
            h2 { (t.controls) }
            p.small { (t.signed_note) }
            form.inline method="get" action=(format!("{href}/confirm")) {
                input type="hidden" name="action" value="rollout";
                label for="percent" { (t.set_percent) }
                input #percent type="number" name="percent" min="0" max="100" value=(release.info.rollout_percent) required;
                button type="submit" { (t.set_percent) }
            }
            div.buttons {
                @if release.info.halted {
                    a.button href=(format!("{href}/confirm?action=resume")) { (t.resume) }
                } @else {
                    a.button href=(format!("{href}/confirm?action=halt")) { (t.halt) }
                }
                @if release.info.yanked {
                    a.button href=(format!("{href}/confirm?action=restore")) { (t.restore) }
                } @else {
                    a.button.danger href=(format!("{href}/confirm?action=yank")) { (t.yank) }
                }
            }
        }
        script src="/admin/assets/uPlot.iife.min.js" {}
        script src="/admin/assets/adoption.js" {}
    };
    respond(
        StatusCode::OK,
        &page(t, Some(&session), &heading, &body),
        set_lang,
    )
}

fn action_label(t: &Text, action: &str, percent: Option<u8>) -> Option<String> {
    Some(match (action, percent) {
        ("rollout", Some(percent)) => format!("{} → {percent} %", t.set_percent),
        ("halt", _) => t.halt.to_owned(),
        ("resume", _) => t.resume.to_owned(),
        ("yank", _) => t.yank.to_owned(),
        ("restore", _) => t.restore.to_owned(),
        _ => return None,
    })
}

fn parse_percent(text: Option<&str>) -> Option<u8> {
    text?.trim().parse::<u8>().ok().filter(|p| *p <= 100)
}

/// `GET /admin/releases/{app}/{version}/confirm?action=…`: the confirmation
/// step (changes nothing).
pub(crate) async fn confirm(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((app, version)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let (lang, set_lang) = lang(&headers, &query);
    let t = text(lang);
    let session = match session_or_redirect(&state, &headers) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let view = state.view.get();
    let Some(release) = find_release(&view, &app, &version) else {
        return respond(
            StatusCode::NOT_FOUND,
            &page(t, Some(&session), t.release, &html! { p { "404" } }),
            None,
        );
    };
    let action = query.action.as_deref().unwrap_or("");
    let percent = parse_percent(query.percent.as_deref());
    let Some(label) = action_label(t, action, percent) else {
        return respond(
            StatusCode::BAD_REQUEST,
            &page(
                t,
                Some(&session),
                t.controls,
                &html! { p.error { "action?" } },
            ),
            None,
        );
    };
    let href = release_href(release);
    let body = html! {
        form.card method="post" action=(format!("{href}/{action}")) {
            p { strong { (app) " " (version) } ": " (label) }
            p { (t.confirm_question) }
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some(percent) = percent { input type="hidden" name="percent" value=(percent); }
            button #confirm type="submit" { (t.confirm) }
            " "
            a.button.secondary href=(href) { (t.cancel) }
        }
    };
    respond(
        StatusCode::OK,
        &page(t, Some(&session), t.controls, &body),
        set_lang,
    )
}

/// `POST /admin/releases/{app}/{version}/{action}`: the change, with the
/// session's CSRF token; audited under the token's name.
pub(crate) async fn change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((app, version, action)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (lang, _) = lang(&headers, &PageQuery::default());
    let t = text(lang);
    let form = parse_form(&body);
    let session = match session_for_change(&state, &headers, &form, t) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let view = state.view.get();
    let Some(release) = find_release(&view, &app, &version) else {
        return respond(
            StatusCode::NOT_FOUND,
            &page(t, Some(&session), t.release, &html! { p { "404" } }),
            None,
        );
    };
    let key: ReleaseKey = release.key();
    let href = release_href(release);
    let change = match action.as_str() {
        "rollout" => match parse_percent(form.percent.as_deref()) {
            Some(percent) => Change::Rollout(percent),
            None => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &page(
                        t,
                        Some(&session),
                        t.controls,
                        &html! { p.error { "0–100" } },
                    ),
                    None,
                );
            }
        },
        "halt" => Change::Halted(true),
        "resume" => Change::Halted(false),
        "yank" => Change::Yanked(true),
        "restore" => Change::Yanked(false),
        _ => {
            return respond(
                StatusCode::NOT_FOUND,
                &page(t, Some(&session), t.controls, &html! { p.error { "404" } }),
                None,
            );
        }
    };
    match admin::apply(&state, key, change, &session.name, None).await {
        Ok(_) => see_other(&href),
        Err(error) => respond(
            error.status,
            &page(
                t,
                Some(&session),
                t.controls,
                &html! { p.error { (error.message) } },
            ),
            None,
        ),
    }
}

/// `GET /admin/audit`: the newest changes first.
pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let (lang, set_lang) = lang(&headers, &query);
    let t = text(lang);
    let session = match session_or_redirect(&state, &headers) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let storage = Arc::clone(&state.storage);
    let Ok(Ok(entries)) = tokio::task::spawn_blocking(move || storage.audit(500)).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the statistics database failed",
        )
            .into_response();
    };
    let body = html! {
        table #audit {
            thead { tr { th { (t.when) } th { (t.who) } th { (t.release) } th { (t.what) } } }
            tbody {
                @for entry in &entries {
                    tr {
                        td { (entry.at) }
                        td { (entry.who) }
                        td { (entry.app) " " (entry.version) }
                        td { (entry.action) }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        &page(t, Some(&session), t.audit, &body),
        set_lang,
    )
}

const ADMIN_CSS: &str = "\
body{font:15px/1.5 system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{display:flex;gap:1.2rem;align-items:center;padding:.6rem 1.5rem;background:#1d2733;color:#fff;flex-wrap:wrap}
header a{color:#cfe3ff;text-decoration:none}header .brand{font-weight:700;color:#fff}
header nav{display:flex;gap:1rem}header .langs{margin-left:auto;display:flex;gap:.6rem}
header .signout{display:flex;gap:.5rem;align-items:center}header .who{opacity:.8}
main{max-width:64rem;margin:1.5rem auto;padding:0 1.5rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0 1.5rem}
th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid #e3e8ee}
table.stats{max-width:32rem}table.stats th{font-weight:500;color:#4a5868}
.badge{display:inline-block;padding:.05rem .55rem;border-radius:1rem;font-size:.85em;font-weight:600}
.badge.ok{background:#dff5e3;color:#1b6b2f}.badge.warn{background:#fff0cc;color:#7a5200}.badge.bad{background:#fde2e2;color:#8a1c1c}
.small{color:#5b6b7b;font-size:.9em}.tag{background:#e8edf3;border-radius:.3rem;padding:0 .4rem}
.card{background:#fff;padding:1.2rem 1.5rem;border-radius:.5rem;max-width:28rem;box-shadow:0 1px 3px #0002}
label{display:block;margin:.6rem 0 .2rem;font-weight:500}form.inline label{display:inline;margin-right:.5rem}
input{font:inherit;padding:.35rem .5rem;border:1px solid #b8c3cf;border-radius:.3rem}
input[type=password]{width:100%;box-sizing:border-box}
button,.button{font:inherit;display:inline-block;padding:.35rem .9rem;margin:.4rem .3rem .4rem 0;border:0;border-radius:.3rem;background:#2563eb;color:#fff;cursor:pointer;text-decoration:none}
.button.danger{background:#b91c1c}.button.secondary{background:#64748b}
header button{background:#3b4a5c;margin:0}
.error{color:#8a1c1c;font-weight:600}
#adoption{background:#fff;padding:.5rem;border-radius:.5rem;min-height:300px}
";

const ADOPTION_JS: &str = r"// Draws the adoption chart from the data attribute (no inline script).
(function () {
  var node = document.getElementById('adoption');
  if (!node || typeof uPlot === 'undefined') return;
  var chart = JSON.parse(node.getAttribute('data-chart'));
  var colours = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2'];
  var series = [{}];
  var data = [chart.x];
  chart.series.forEach(function (s, i) {
    series.push({ label: s.version, stroke: colours[i % colours.length], width: 2,
                  points: { show: true, size: 6 } });
    data.push(s.values);
  });
  var width = Math.max(320, node.clientWidth - 16);
  new uPlot({ width: width, height: 280, series: series,
              scales: { x: { time: true } }, axes: [{}, { label: chart.label }] }, data, node);
  node.setAttribute('data-drawn', String(chart.series.length));
})();
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adoption_is_cumulative_per_version_over_shared_minutes() {
        let point = |minute, version: &str, event, count| crate::stats::TimelinePoint {
            minute,
            version: version.into(),
            event,
            count,
        };
        let chart = adoption_series(
            &[
                point(10, "1.0.0", EventKind::Installed, 2),
                point(11, "1.1.0", EventKind::Installed, 3),
                point(11, "1.1.0", EventKind::Failed, 9),
                point(12, "1.0.0", EventKind::Installed, 1),
            ],
            14,
        );
        assert_eq!(
            chart,
            serde_json::json!({"x": [540, 600, 660, 720, 840], "series": [
                {"version": "1.0.0", "values": [0, 2, 2, 3, 3]},
                {"version": "1.1.0", "values": [0, 0, 3, 3, 3]}]})
        );
        assert_eq!(
            adoption_series(&[], 14),
            serde_json::json!({"x": [], "series": []})
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "x_updraft_admin=evil; updraft_admin=abc; updraft_lang=zh-CN"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(lang(&headers, &PageQuery::default()).0, Lang::Zh);
    }
}
