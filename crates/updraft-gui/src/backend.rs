//! What the dialog asks of the outside world: [`UpdateBackend`], and
//! [`ManagerBackend`], the one over `updraft_client`'s [`UpdateManager`].

use std::sync::Arc;
use std::time::Duration;

use updraft_client::{
    CancellationToken, EventSink, Finish, Offer, Phase, UpdateEvent, UpdateManager,
};

use crate::progress::{ProgressSink, Stage};

/// The dialog's link to the updater. Each method returns one clear sentence
/// on failure; the dialog shows it.
///
/// `skip` and `remind_later` run on the UI thread and must be quick (they
/// save a choice). `install` runs on a background thread of its own.
pub trait UpdateBackend: Send + 'static {
    /// "Skip this version": never offer `version` again (unless forced).
    fn skip(&mut self, version: &str) -> Result<(), String>;

    /// "Remind me later": do not prompt again for a while.
    fn remind_later(&mut self) -> Result<(), String>;

    /// Downloads and installs the update, reporting through `progress`;
    /// returns when done. Runs on a background thread, so it may block.
    ///
    /// Check [`ProgressSink::is_cancelled`] where stopping is safe (the
    /// download) and return an error if it is set.
    fn install(&mut self, progress: ProgressSink) -> Result<(), String>;
}

impl<B: UpdateBackend + ?Sized> UpdateBackend for Box<B> {
    fn skip(&mut self, version: &str) -> Result<(), String> {
        (**self).skip(version)
    }

    fn remind_later(&mut self) -> Result<(), String> {
        (**self).remind_later()
    }

    fn install(&mut self, progress: ProgressSink) -> Result<(), String> {
        (**self).install(progress)
    }
}

/// An [`UpdateBackend`] over an [`UpdateManager`] and the [`Offer`] it made.
///
/// `install` downloads (resuming an interrupted download), verifies and
/// installs the offer, and reports the outcome to the server (best effort,
/// for at most three seconds). Progress is the workflow's own: its
/// events' fractions, bytes, rate and time left, the download ("Downloading…")
/// 95 % of the overall bar, verifying and installing the rest ("Verifying
/// and installing…").
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use updraft_client::{CheckOutcome, UpdateManager};
/// use updraft_gui::ManagerBackend;
/// let manager = UpdateManager::builder("/opt/kuzflow").build()?;
/// if let CheckOutcome::Available(offer) = manager.check().await? {
///     let backend = ManagerBackend::new(manager, offer);
///     // updraft_gui::show_update_dialog(backend.offer().clone(), backend, Default::default())?;
/// }
/// # Ok(()) }
/// ```
pub struct ManagerBackend {
    manager: Arc<UpdateManager>,
    offer: Offer,
    mode: InstallMode,
    /// Also hears every workflow event, as the dialog does.
    events: Option<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for ManagerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBackend")
            .field("manager", &self.manager)
            .field("offer", &self.offer)
            .field("mode", &self.mode)
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// What "Install now" does once the update is downloaded and verified.
#[derive(Debug, Clone, Default)]
pub enum InstallMode {
    /// Unpack and switch to it at once (the workflow's `Finish::Now`): for a
    /// tool with no running copy of the app, such as `updraft update --gui`.
    #[default]
    Now,
    /// Unpack beside the running version only (`Finish::Prepare`); the
    /// caller switches later (the `updraft` CLI after `--wait-pid`, through
    /// `UpdateManager::apply`).
    PrepareOnly,
    /// Unpack beside the running version and hand off to the updater
    /// (`Finish::HandOff`), which switches once this process
    /// exits and restarts the app: for the app itself. Exit after the dialog
    /// ends with [`DialogOutcome::Installed`](crate::DialogOutcome::Installed).
    HandOff(updraft_client::Handoff),
}

impl ManagerBackend {
    /// A backend installing `offer` through `manager` ([`InstallMode::Now`]).
    pub fn new(manager: impl Into<Arc<UpdateManager>>, offer: Offer) -> Self {
        Self {
            manager: manager.into(),
            offer,
            mode: InstallMode::Now,
            events: None,
        }
    }

    /// Also tells `sink` every event of the workflow that "Install now"
    /// runs, its outcome included, as the dialog hears them: how `updraft
    /// update --gui --json` prints them.
    #[must_use]
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }

    /// Sets what "Install now" does; see [`InstallMode`].
    #[must_use]
    pub fn mode(mut self, mode: InstallMode) -> Self {
        self.mode = mode;
        self
    }

    /// The offer this backend installs.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// The manager.
    pub fn manager(&self) -> &Arc<UpdateManager> {
        &self.manager
    }

    /// Runs the library's update workflow and shows its events on `sink`.
    async fn download_and_install(&self, sink: &ProgressSink) -> updraft_client::Result<()> {
        let cancel = CancellationToken::new();
        // The UI can only flag the sink; turn that into the client's token.
        let watcher = {
            let (sink, cancel) = (sink.clone(), cancel.clone());
            tokio::spawn(async move {
                while !sink.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                cancel.cancel();
            })
        };
        let finish = match &self.mode {
            InstallMode::Now => Finish::Now { restart: None },
            InstallMode::PrepareOnly => Finish::Prepare,
            InstallMode::HandOff(handoff) => Finish::HandOff(handoff.clone()),
        };
        let show = |event: &UpdateEvent| {
            show_event(sink, event);
            if let Some(events) = &self.events {
                events.event(event);
            }
        };
        let outcome = self
            .manager
            .update(&self.offer, &finish, &show, &cancel)
            .await;
        watcher.abort();
        outcome.map(drop)
    }
}

/// What the dialog's progress widget shows for one workflow event.
fn show_event(sink: &ProgressSink, event: &UpdateEvent) {
    match event {
        UpdateEvent::Phase {
            phase: Phase::Downloading,
        } => sink.set_stage(Stage::Downloading),
        UpdateEvent::Progress(progress) => sink.report(progress),
        UpdateEvent::Phase {
            phase: Phase::Installing,
        } => {
            sink.clear_bytes();
            sink.set_stage(Stage::Installing);
        }
        UpdateEvent::Phase { .. } => sink.set_stage(Stage::Finishing),
        UpdateEvent::Result(outcome) if outcome.error.is_none() => {
            sink.set_task(1.0);
            sink.set_overall(1.0);
        }
        _ => {}
    }
}

impl UpdateBackend for ManagerBackend {
    fn skip(&mut self, version: &str) -> Result<(), String> {
        self.manager
            .skip(version)
            .map_err(|error| error.to_string())
    }

    fn remind_later(&mut self) -> Result<(), String> {
        self.manager
            .remind_later()
            .map_err(|error| error.to_string())
    }

    fn install(&mut self, progress: ProgressSink) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("Could not start the download: {error}"))?;
        runtime
            .block_on(self.download_and_install(&progress))
            .map_err(|error| error.to_string())
    }
}
