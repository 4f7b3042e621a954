//! The native module of the `updraft` Python package (`updraft._updraft`).
//!
//! Thin `#[pyclass]` wrappers over [`updraft_client`], after pydantic-core:
//! every call starts the library's one workflow ([`UpdateManager::update`],
//! [`UpdateManager::apply`]) or one of its small steps and converts what it
//! says. There is no update logic here. Blocking work runs with the GIL
//! released (`Python::detach`) on one shared tokio runtime; progress
//! callbacks re-attach to call into Python. The pure-Python parts
//! (`updraft.qt`) live in `python/updraft/`.
#![deny(missing_docs)]
// PyO3 hands arguments over by value.
#![allow(clippy::needless_pass_by_value)]

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::{IntoPyObjectExt, create_exception};
use updraft_client::{
    CancellationToken, CheckOutcome, ErrorKind, Finish, Handoff, Install, Offer, Outcome, Phase,
    Progress, RollbackReason, UpdateEvent,
};

create_exception!(
    updraft,
    UpdateError,
    PyException,
    "An update failed. `kind` is the Rust error's class: `network`, `verification`, `install`, `usage`, `other` or `cancelled`."
);
create_exception!(
    updraft,
    DownloadError,
    UpdateError,
    "The network or a server failed (nothing was installed); retrying later may work."
);
create_exception!(
    updraft,
    VerificationError,
    UpdateError,
    "Something failed verification against the signed metadata: nothing was installed."
);
create_exception!(
    updraft,
    InstallError,
    UpdateError,
    "Installing failed; the previous version is intact."
);
create_exception!(
    updraft,
    UpdateCancelled,
    UpdateError,
    "`cancel()` stopped the call; what was downloaded is kept for the next run."
);

/// The one runtime every manager's calls run on.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("updraft")
        .enable_all()
        .build()
        .map_err(|error| UpdateError::new_err(format!("could not start a runtime: {error}")))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The library's error as the exception of its class, with `kind` set.
fn to_py(error: &updraft_client::Error) -> PyErr {
    let message = error.to_string();
    let (err, kind) = if matches!(error, updraft_client::Error::Cancelled) {
        (UpdateCancelled::new_err(message), "cancelled")
    } else {
        match error.kind() {
            ErrorKind::Network => (DownloadError::new_err(message), "network"),
            ErrorKind::Verification => (VerificationError::new_err(message), "verification"),
            ErrorKind::Install => (InstallError::new_err(message), "install"),
            ErrorKind::Usage => (UpdateError::new_err(message), "usage"),
            ErrorKind::Other => (UpdateError::new_err(message), "other"),
        }
    };
    Python::attach(|py| {
        // Setting an attribute on a fresh exception object cannot fail in practice.
        let _ = err.value(py).setattr("kind", kind);
    });
    err
}

fn installer_to_py(error: updraft_installer::Error) -> PyErr {
    to_py(&updraft_client::Error::from(error))
}

/// A JSON value as the Python object `json.loads` would give.
fn to_object<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_bound_py_any(py),
            (None, Some(u)) => u.into_bound_py_any(py),
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py),
        },
        Value::String(s) => s.into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_object(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_object(py, item)?)?;
            }
            Ok(dict.into_any())
        }
    }
}

fn serialised<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value).map_err(|e| UpdateError::new_err(e.to_string()))?;
    to_object(py, &value)
}

/// An update the install may take: what `UpdateManager.check()` returns.
#[pyclass(frozen, module = "updraft")]
#[derive(Debug)]
pub struct UpdateInfo {
    offer: Offer,
}

#[pymethods]
impl UpdateInfo {
    /// The version offered.
    #[getter]
    fn version(&self) -> &str {
        &self.offer.version
    }
    /// The installed version.
    #[getter]
    fn current_version(&self) -> &str {
        &self.offer.current_version
    }
    /// `major`, `minor` or `patch`.
    #[getter]
    fn update_type(&self) -> String {
        self.offer.update_type.to_string()
    }
    /// Mandatory: only "install" or "quit" may be offered.
    #[getter]
    fn force_update(&self) -> bool {
        self.offer.force_update
    }
    /// The package's signed size in bytes.
    #[getter]
    fn file_size(&self) -> u64 {
        self.offer.file_size
    }
    /// The package's signed SHA-256.
    #[getter]
    fn sha256(&self) -> &str {
        &self.offer.sha256
    }
    /// The offered version's notes (Markdown).
    #[getter]
    fn changelog(&self) -> &str {
        &self.offer.changelog
    }
    /// `(version, notes)` of every version between the installed and the offered one, newest first.
    #[getter]
    fn changelogs(&self) -> Vec<(String, String)> {
        self.offer.changelogs.clone()
    }
    /// Release date (RFC 3339).
    #[getter]
    fn release_date(&self) -> &str {
        &self.offer.release_date
    }
    /// The minimum supported version, if the release sets one.
    #[getter]
    fn min_supported_version(&self) -> Option<&str> {
        self.offer.min_supported_version.as_deref()
    }
    /// Where the package is on the first server, if known.
    #[getter]
    fn download_url(&self) -> Option<&str> {
        self.offer.download_url.as_deref()
    }
    /// The check API's fields as a dict (as `updraft check --json` prints them).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_object(py, &self.offer.to_json("available"))
    }
    fn __repr__(&self) -> String {
        format!(
            "UpdateInfo(version={:?}, current_version={:?}, update_type={:?}, force_update={})",
            self.offer.version,
            self.offer.current_version,
            self.offer.update_type.to_string(),
            if self.offer.force_update {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// One progress event of the workflow (`UpdateEvent::Progress`).
#[pyclass(frozen, module = "updraft")]
#[derive(Debug)]
pub struct ProgressInfo {
    progress: Progress,
}

#[pymethods]
impl ProgressInfo {
    /// The step: `downloading`, `installing`, `waiting`, `switching` or `restarting`.
    #[getter]
    fn phase(&self) -> String {
        serde_json::to_value(self.progress.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
    /// The step in words, for a status label: "Downloading and verifying", ...
    #[getter]
    fn status(&self) -> &'static str {
        match self.progress.phase {
            Phase::Downloading => "Downloading and verifying",
            Phase::Installing => "Installing",
            Phase::Waiting => "Waiting for the app to close",
            Phase::Switching => "Switching to the new version",
            Phase::Restarting => "Restarting",
        }
    }
    /// Bytes, rate and time left while downloading ("1.3 MB of 3.0 MB, 2.4 MB/s, 1 s left"), else "".
    #[getter]
    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    fn detail(&self) -> String {
        let progress = &self.progress;
        if progress.phase != Phase::Downloading || progress.total == 0 {
            return String::new();
        }
        let mut parts = vec![format!(
            "{} of {}",
            human_bytes(progress.downloaded as f64),
            human_bytes(progress.total as f64)
        )];
        if progress.rate > 0.0 {
            parts.push(format!("{}/s", human_bytes(progress.rate)));
        }
        if let Some(eta) = progress.eta_seconds {
            parts.push(format!("{eta:.0} s left"));
        }
        parts.join(", ")
    }
    /// Bytes of the package received (or found intact from an earlier run).
    #[getter]
    fn downloaded(&self) -> u64 {
        self.progress.downloaded
    }
    /// The package's signed length.
    #[getter]
    fn total(&self) -> u64 {
        self.progress.total
    }
    /// Bytes per second over the last seconds.
    #[getter]
    fn rate(&self) -> f64 {
        self.progress.rate
    }
    /// Seconds left in the current step at that rate, when known.
    #[getter]
    fn eta_seconds(&self) -> Option<f64> {
        self.progress.eta_seconds
    }
    /// Seconds left for the whole update, when known.
    #[getter]
    fn overall_eta_seconds(&self) -> Option<f64> {
        self.progress.overall_eta_seconds
    }
    /// The current step's share done, 0 to 1.
    #[getter]
    fn step_fraction(&self) -> f64 {
        self.progress.step_fraction
    }
    /// The whole update's share done, 0 to 1.
    #[getter]
    fn overall_fraction(&self) -> f64 {
        self.progress.overall_fraction
    }
    /// The whole update, 0 to 100.
    #[getter]
    fn overall_percent(&self) -> u32 {
        percent(self.progress.overall_fraction)
    }
    /// The current step, 0 to 100.
    #[getter]
    fn current_percent(&self) -> u32 {
        percent(self.progress.step_fraction)
    }
    /// The event as a dict, as `updraft update --json` prints it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialised(py, &UpdateEvent::Progress(self.progress.clone()))
    }
    fn __repr__(&self) -> String {
        format!(
            "ProgressInfo(phase={:?}, downloaded={}, total={}, overall_percent={})",
            self.phase(),
            self.progress.downloaded,
            self.progress.total,
            self.overall_percent()
        )
    }
}

/// Decimal units, one decimal: "3.0 MB".
fn human_bytes(count: f64) -> String {
    if count < 1000.0 {
        return format!("{count:.0} B");
    }
    let mut value = count;
    for unit in ["KB", "MB", "GB"] {
        value /= 1000.0;
        if value < 1000.0 || unit == "GB" {
            return format!("{value:.1} {unit}");
        }
    }
    unreachable!("the loop returns at GB")
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 0..=100
fn percent(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 100.0).round() as u32
}

/// Forwards the workflow's events to Python callables, with the GIL
/// re-acquired: progress events as `ProgressInfo` to `progress`, and every
/// event (phase, progress, ready, result) as a dict, as `updraft update
/// --json` prints it, to `events`. The first exception a callable raises
/// cancels the call and is raised from it.
struct Callback<'a> {
    progress: Option<&'a Py<PyAny>>,
    events: Option<&'a Py<PyAny>>,
    cancel: &'a CancellationToken,
    raised: Mutex<Option<PyErr>>,
}

impl Callback<'_> {
    fn event(&self, event: &UpdateEvent) {
        let progress = match (self.progress, event) {
            (Some(callable), UpdateEvent::Progress(progress)) => Some((callable, progress)),
            _ => None,
        };
        if progress.is_none() && self.events.is_none() {
            return;
        }
        Python::attach(|py| {
            if let Some(callable) = self.events {
                let called = serialised(py, event).and_then(|event| callable.call1(py, (event,)));
                if let Err(error) = called {
                    self.raise(error);
                    return;
                }
            }
            if let Some((callable, progress)) = progress {
                let info = ProgressInfo {
                    progress: progress.clone(),
                };
                if let Err(error) = callable.call1(py, (info,)) {
                    self.raise(error);
                }
            }
        });
    }

    fn raise(&self, error: PyErr) {
        let mut raised = self.raised.lock().unwrap_or_else(PoisonError::into_inner);
        raised.get_or_insert(error);
        self.cancel.cancel();
    }

    fn finish(self, result: updraft_client::Result<Outcome>) -> PyResult<Outcome> {
        if let Some(error) = self
            .raised
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(error);
        }
        result.map_err(|error| to_py(&error))
    }
}

/// Checks, downloads, installs, skips and rolls back the install in
/// `install_dir`, reading its `update_config.json`.
#[pyclass(frozen, module = "updraft")]
#[derive(Debug)]
pub struct UpdateManager {
    manager: updraft_client::UpdateManager,
    /// The token of the call in progress; `cancel()` cancels it.
    cancel: Mutex<CancellationToken>,
}

impl UpdateManager {
    /// A fresh token for a new call, replacing the last one.
    fn token(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.cancel.lock().unwrap_or_else(PoisonError::into_inner) = token.clone();
        token
    }

    /// Runs the workflow with `finish`: the second half alone when `info`'s
    /// version is already prepared (by `download`), else the whole of it.
    fn run(
        &self,
        py: Python<'_>,
        info: &UpdateInfo,
        finish: &Finish,
        progress: Option<Py<PyAny>>,
        events: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let runtime = runtime()?;
        let cancel = self.token();
        let callback = Callback {
            progress: progress.as_ref(),
            events: events.as_ref(),
            cancel: &cancel,
            raised: Mutex::new(None),
        };
        let manager = &self.manager;
        let result = py.detach(|| {
            let events = |event: &UpdateEvent| callback.event(event);
            runtime.block_on(async {
                let prepared = manager.reload_state()?.prepared;
                if prepared.as_deref() == Some(info.offer.version.as_str()) {
                    manager.apply(finish, &events).await
                } else {
                    manager.update(&info.offer, finish, &events, &cancel).await
                }
            })
        });
        let outcome = callback.finish(result)?;
        Ok(serialised(py, &outcome)?.unbind())
    }
}

#[pymethods]
impl UpdateManager {
    /// Opens the install in `install_dir` (made by `updraft install`).
    #[new]
    fn new(py: Python<'_>, install_dir: PathBuf) -> PyResult<Self> {
        let manager = py
            .detach(|| updraft_client::UpdateManager::builder(&install_dir).build())
            .map_err(|error| to_py(&error))?;
        Ok(Self {
            manager,
            cancel: Mutex::new(CancellationToken::new()),
        })
    }

    /// The install folder.
    #[getter]
    fn install_dir(&self) -> PathBuf {
        self.manager.install_dir().to_path_buf()
    }

    /// The configuration in effect (`update_config.json` with defaults filled in).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialised(py, self.manager.config())
    }

    /// Checks for an update. Returns an `UpdateInfo`, or `None` when the
    /// install is up to date or the user skipped or postponed the offer
    /// (never for forced updates). Raises `DownloadError` when no server
    /// answers and `VerificationError` when the signed metadata is wrong.
    fn check(&self, py: Python<'_>) -> PyResult<Option<UpdateInfo>> {
        let runtime = runtime()?;
        let cancel = self.token();
        let manager = &self.manager;
        let outcome = py.detach(|| {
            runtime.block_on(async {
                tokio::select! {
                    outcome = manager.check() => outcome,
                    () = cancel.cancelled() => Err(updraft_client::Error::Cancelled),
                }
            })
        });
        match outcome.map_err(|error| to_py(&error))? {
            CheckOutcome::Available(offer) => Ok(Some(UpdateInfo { offer })),
            _ => Ok(None),
        }
    }

    /// Downloads, verifies and unpacks `info`'s release and prepares it
    /// beside the running version, calling `progress(ProgressInfo)` as it
    /// goes, and `events(dict)` with every event of the workflow (phase,
    /// progress, ready, result), as `updraft update --json` prints them. A
    /// later `install` or `install_on_exit` only switches. Returns the
    /// workflow's result as a dict.
    #[pyo3(signature = (info, progress = None, events = None))]
    fn download(
        &self,
        py: Python<'_>,
        info: &UpdateInfo,
        progress: Option<Py<PyAny>>,
        events: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.run(py, info, &Finish::Prepare, progress, events)
    }

    /// Installs `info` now (downloading it first unless `download` did):
    /// for a program that is not running from the install. With `restart`
    /// (a list of arguments) the app is started on the new version.
    /// `progress` and `events` as for `download`.
    #[pyo3(signature = (info, progress = None, restart = None, events = None))]
    fn install(
        &self,
        py: Python<'_>,
        info: &UpdateInfo,
        progress: Option<Py<PyAny>>,
        restart: Option<Vec<String>>,
        events: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.run(py, info, &Finish::Now { restart }, progress, events)
    }

    /// "Install now" in the running app: downloads (unless `download` did)
    /// and prepares `info`, then hands off to the updater process, which
    /// switches once this process (or `wait_pid`) has exited and, with
    /// `restart`, starts the app again with `args`. Quit the app after it
    /// returns; the dict's `updater_pid` is the updater's process id.
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    #[pyo3(signature = (info, restart = true, args = None, wait_pid = None, wait_timeout = 60.0, progress = None, events = None))]
    fn install_on_exit(
        &self,
        py: Python<'_>,
        info: &UpdateInfo,
        restart: bool,
        args: Option<Vec<String>>,
        wait_pid: Option<u32>,
        wait_timeout: f64,
        progress: Option<Py<PyAny>>,
        events: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let handoff = Handoff {
            wait_pid,
            wait_timeout: Duration::try_from_secs_f64(wait_timeout)
                .map_err(|e| UpdateError::new_err(format!("wait_timeout: {e}")))?,
            restart_args: restart.then(|| args.unwrap_or_default()),
        };
        self.run(py, info, &Finish::HandOff(handoff), progress, events)
    }

    /// Stops the check or download in progress (from any thread): it raises
    /// `UpdateCancelled`, keeping what arrived for the next run.
    fn cancel(&self) {
        self.cancel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancel();
    }

    /// "Skip this version": `info`'s version is not offered again unless forced.
    fn skip(&self, py: Python<'_>, info: &UpdateInfo) -> PyResult<()> {
        let manager = &self.manager;
        py.detach(|| manager.skip(&info.offer.version))
            .map_err(|error| to_py(&error))
    }

    /// "Remind me later": no offer for `check_settings.remind_interval`
    /// seconds unless forced.
    #[pyo3(signature = (info = None))]
    fn remind_later(&self, py: Python<'_>, info: Option<&UpdateInfo>) -> PyResult<()> {
        let _ = info;
        let manager = &self.manager;
        py.detach(|| manager.remind_later())
            .map_err(|error| to_py(&error))
    }

    /// The new version started healthy: call it once the app is up after an update.
    fn confirm(&self, py: Python<'_>) -> PyResult<()> {
        let dir = self.manager.install_dir();
        py.detach(|| Install::open(dir)?.confirm())
            .map_err(installer_to_py)?;
        py.detach(|| self.manager.reload_state())
            .map_err(|error| to_py(&error))?;
        Ok(())
    }

    /// Goes back to the previous version; returns the version now current.
    fn rollback(&self, py: Python<'_>) -> PyResult<String> {
        let dir = self.manager.install_dir();
        let state = py
            .detach(|| Install::open(dir)?.rollback(RollbackReason::Requested))
            .map_err(installer_to_py)?;
        py.detach(|| self.manager.reload_state())
            .map_err(|error| to_py(&error))?;
        Ok(state.current_version)
    }

    /// The install's state as `updraft status --json` prints it: `app`,
    /// `current_version`, `channel`, `install_dir`, `previous_versions`,
    /// `pending_confirm`, `prepared`, `skipped`, ...
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = &self.manager;
        let state = py
            .detach(|| manager.reload_state())
            .map_err(|error| to_py(&error))?;
        let status = serialised(py, &state)?;
        // Always present, as in `status --json` (the state file omits them when unset).
        status.set_item("prepared", &state.prepared)?;
        status.set_item("remind_after", &state.remind_after)?;
        status.set_item("channel", &manager.config().channel)?;
        status.set_item("install_dir", manager.install_dir())?;
        status.set_item("server", &manager.config().update_server.base_url)?;
        Ok(status)
    }
}

/// `updraft serve` inside this process, on an ephemeral loopback port: what
/// `updraft.fastapi` forwards the seed's endpoints to, so they are answered
/// by the server's own rules (channels, rollout, forced updates, Range,
/// If-Range, ETag) from the signed store.
#[pyclass(frozen, module = "updraft")]
#[derive(Debug)]
pub struct EmbeddedServer {
    url: String,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[pymethods]
impl EmbeddedServer {
    /// Serves the store in `store` (made by `updraft repo init` and `publish`).
    /// `public_url` is the base URL put in answers (`download_url`); by
    /// default the request's `Host`.
    #[new]
    #[pyo3(signature = (store, public_url = None))]
    fn new(py: Python<'_>, store: PathBuf, public_url: Option<String>) -> PyResult<Self> {
        let runtime = runtime()?;
        let mut config = updraft_server::ServerConfig::new(store);
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.public_url = public_url;
        let server = py
            .detach(|| runtime.block_on(updraft_server::Server::bind(config)))
            .map_err(|error| UpdateError::new_err(error.to_string()))?;
        let url = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            // The server logs its own failures; nothing waits for this task.
            let _ = server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url,
            stop: Mutex::new(Some(stop)),
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving (also when the object is garbage-collected).
    fn stop(&self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `updraft._updraft` module.
#[pymodule]
fn _updraft(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<UpdateManager>()?;
    m.add_class::<UpdateInfo>()?;
    m.add_class::<ProgressInfo>()?;
    m.add_class::<EmbeddedServer>()?;
    m.add("UpdateError", py.get_type::<UpdateError>())?;
    m.add("DownloadError", py.get_type::<DownloadError>())?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    m.add("InstallError", py.get_type::<InstallError>())?;
    m.add("UpdateCancelled", py.get_type::<UpdateCancelled>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
