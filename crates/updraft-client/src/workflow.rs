//! The update workflow, written once for every front-end: download (with
//! verification and the streaming unpack) → prepare → switch now, hand off
//! to the updater, or wait for the app and switch → restart → report. It
//! tells a subscriber what happens through typed [`UpdateEvent`]s; the CLI
//! prints them (`update --json` prints each one as a JSON line, exactly as
//! serialised here), the terminal bar and the update dialog render them, and
//! bindings forward them to their own callbacks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), updraft_client::Error> {
//! use updraft_client::{CancellationToken, CheckOutcome, Finish, UpdateEvent, UpdateManager};
//! let manager = UpdateManager::builder("/opt/kuzflow").build()?;
//! if let CheckOutcome::Available(offer) = manager.check().await? {
//!     let print = |event: &UpdateEvent| println!("{}", serde_json::to_string(event).unwrap());
//!     manager.update(&offer, &Finish::Now { restart: None }, &print, &CancellationToken::new()).await?;
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::manager::{Offer, UpdateManager};
use crate::{Handoff, Switched};

/// How long reporting an outcome to the server may hold up the user.
const REPORT_DEADLINE: Duration = Duration::from_secs(3);

/// Share of the overall progress that the download (with its overlapping
/// verification and unpacking) takes; preparing and switching take the rest.
const DOWNLOAD_SHARE: f64 = 0.95;

impl Outcome {
    fn new(version: &str, from: &str) -> Self {
        Self {
            updated: false,
            version: version.to_owned(),
            from: from.to_owned(),
            switched: false,
            downloaded_bytes: 0,
            path: None,
            resumed_bytes: 0,
            download_seconds: 0.0,
            install_seconds: 0.0,
            restarted: false,
            downtime_seconds: 0.0,
            updater_pid: None,
            error: None,
            error_kind: None,
        }
    }
}

/// What happens once the update is downloaded, verified and unpacked.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Switch at once (no copy of the app runs from the install), then
    /// restart the app with these arguments if `Some` and
    /// `install_settings.auto_restart` is on.
    Now {
        /// Arguments for the restarted app.
        restart: Option<Vec<String>>,
    },
    /// Only prepare: the switch happens at the next `updraft apply` or
    /// `updraft run`.
    Prepare,
    /// For the running app itself: hand off to the separate updater process,
    /// which switches once the app has exited. Exit after `update` returns.
    HandOff(Handoff),
    /// For the updater started by a running app (`updraft update
    /// --wait-pid`): tell it the update is ready ([`UpdateEvent::Ready`]),
    /// wait for its process to exit, switch and restart.
    AfterExit {
        /// The app's process.
        pid: u32,
        /// How long to wait for it.
        timeout: Duration,
        /// Arguments for the restarted app, if it is to be restarted.
        restart: Option<Vec<String>>,
    },
}

/// A step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching the package; each chunk is verified and unpacked into the
    /// private staging folder as it arrives.
    Downloading,
    /// Moving the verified release into `versions/` beside the running one.
    Installing,
    /// Waiting for the app to exit.
    Waiting,
    /// Switching `current` to the new version.
    Switching,
    /// Starting the new version.
    Restarting,
}

/// Progress of the current step and of the whole update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The step.
    pub phase: Phase,
    /// Bytes of the package received (or found intact from an earlier run).
    pub downloaded: u64,
    /// The package's signed length.
    pub total: u64,
    /// Bytes per second over the last seconds.
    pub rate: f64,
    /// Seconds left in the current step at that rate, when it is known.
    pub eta_seconds: Option<f64>,
    /// Seconds left for the whole update, when it is known: the step's
    /// time left, plus the steps after the download estimated from their
    /// share of the whole (their files are already written and synced by
    /// then, so they take little).
    pub overall_eta_seconds: Option<f64>,
    /// The current step's share done, 0 to 1.
    pub step_fraction: f64,
    /// The whole update's share done, 0 to 1.
    pub overall_fraction: f64,
}

/// The class of a failure, for front-ends that act on it (and the CLI's
/// exit codes: 3, 4, 5, 2, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The network or a server failed; retrying later may work.
    Network,
    /// Something failed verification: nothing was installed.
    Verification,
    /// Installing failed; the previous version is intact.
    Install,
    /// A setting or the install is wrong.
    Usage,
    /// Anything else.
    Other,
    /// The user cancelled.
    Cancelled,
}

impl FailureKind {
    fn of(error: &Error) -> Self {
        if matches!(error, Error::Cancelled) {
            return Self::Cancelled;
        }
        match error.kind() {
            ErrorKind::Network => Self::Network,
            ErrorKind::Verification => Self::Verification,
            ErrorKind::Install => Self::Install,
            ErrorKind::Usage => Self::Usage,
            ErrorKind::Other => Self::Other,
        }
    }
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The new version was installed (switched to, or prepared and handed
    /// off / left for the next start when `switched` is false).
    pub updated: bool,
    /// The version offered.
    pub version: String,
    /// The version that was installed before.
    pub from: String,
    /// `current` now points at `version`.
    pub switched: bool,
    /// Bytes received over the network.
    pub downloaded_bytes: u64,
    /// The signed path the download took: `delta` (one patch), `chain`
    /// (several) or `full` (the full package, also after a patch failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<crate::DownloadPath>,
    /// Bytes kept from an earlier, interrupted run.
    pub resumed_bytes: u64,
    /// Time spent downloading, verifying and unpacking (they overlap).
    pub download_seconds: f64,
    /// Time spent putting the verified release in place.
    pub install_seconds: f64,
    /// The app was restarted on the new version.
    pub restarted: bool,
    /// From the app's exit (or the switch) to the restart.
    pub downtime_seconds: f64,
    /// The updater's process id after a hand-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updater_pid: Option<u32>,
    /// One sentence, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<FailureKind>,
}

/// What the workflow tells its subscriber, in order: `update_available`
/// (from the front-end's check), then `phase` and `progress` events, `ready`
/// before waiting for an app, and one `result`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpdateEvent {
    /// A check found this update.
    UpdateAvailable {
        /// The offer, with the check API's fields.
        #[serde(serialize_with = "offer_fields")]
        offer: Box<Offer>,
    },
    /// A step began.
    Phase {
        /// The step.
        phase: Phase,
    },
    /// Bytes moved (at most about once per percent or 100 ms).
    Progress(Progress),
    /// The update is prepared; the updater waits for the app to exit.
    Ready {
        /// The version that will run.
        version: String,
        /// The process waited for.
        wait_pid: u32,
    },
    /// The end, successful or not.
    Result(Outcome),
}

fn offer_fields<S: serde::Serializer>(
    offer: &Offer,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    offer.to_json("available").serialize(serializer)
}

/// Receives the workflow's events. Closures are subscribers (`|event| ...`),
/// and so is a tokio channel's sender, for async code. Called on the
/// workflow's threads: keep it quick.
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &UpdateEvent);
}

impl<F: Fn(&UpdateEvent) + Send + Sync> EventSink for F {
    fn event(&self, event: &UpdateEvent) {
        self(event);
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<UpdateEvent> {
    fn event(&self, event: &UpdateEvent) {
        // A receiver that went away wants no more events.
        let _ = self.send(event.clone());
    }
}

/// Turns byte counts into throttled progress events with a rate and an ETA.
struct Meter<'a> {
    events: &'a dyn EventSink,
    state: Mutex<MeterState>,
}

struct MeterState {
    started: Instant,
    last_emit: Option<Instant>,
    last_percent: u64,
    /// (time, bytes) samples over the last seconds, for the rate.
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl<'a> Meter<'a> {
    fn new(events: &'a dyn EventSink) -> Self {
        Self {
            events,
            state: Mutex::new(MeterState {
                started: Instant::now(),
                last_emit: None,
                last_percent: u64::MAX,
                samples: std::collections::VecDeque::new(),
            }),
        }
    }

    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    fn bytes(&self, done: u64, total: u64) {
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        let due = state
            .last_emit
            .is_none_or(|last| now.duration_since(last) >= Duration::from_millis(100));
        if percent == state.last_percent && !due && done < total {
            return;
        }
        state.samples.push_back((now, done));
        while state.samples.len() > 2
            && state
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            state.samples.pop_front();
        }
        let (first_time, first_done) = state.samples.front().copied().unwrap_or((now, done));
        let span = now.duration_since(first_time).as_secs_f64();
        let rate = if span > 0.0 {
            done.saturating_sub(first_done) as f64 / span
        } else {
            let elapsed = now.duration_since(state.started).as_secs_f64();
            if elapsed > 0.0 {
                done as f64 / elapsed
            } else {
                0.0
            }
        };
        let eta_seconds = (rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate);
        let elapsed = now.duration_since(state.started).as_secs_f64();
        let overall_eta_seconds =
            eta_seconds.map(|eta| eta + (elapsed + eta) * (1.0 - DOWNLOAD_SHARE) / DOWNLOAD_SHARE);
        let step_fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        state.last_percent = percent;
        state.last_emit = Some(now);
        drop(state);
        self.events.event(&UpdateEvent::Progress(Progress {
            phase: Phase::Downloading,
            downloaded: done,
            total,
            rate,
            eta_seconds,
            overall_eta_seconds,
            step_fraction,
            overall_fraction: step_fraction * DOWNLOAD_SHARE,
        }));
    }
}

/// One whole-step progress event (a step without bytes of its own).
fn step(events: &dyn EventSink, phase: Phase, total: u64, overall_fraction: f64) {
    events.event(&UpdateEvent::Phase { phase });
    events.event(&UpdateEvent::Progress(Progress {
        phase,
        downloaded: total,
        total,
        rate: 0.0,
        eta_seconds: None,
        overall_eta_seconds: None,
        step_fraction: 0.0,
        overall_fraction,
    }));
}

/// What the second half (wait, switch, restart) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The switch made, if a prepared version was switched to.
    pub switched: Option<Switched>,
    /// Process id of the restarted app's launcher.
    pub restarted: Option<u32>,
    /// From the app's exit (or the start, without waiting) to the restart.
    pub downtime: Duration,
}

impl UpdateManager {
    /// Runs the update of `offer` to its end, as `finish` says, telling
    /// `events` what happens (ending with one [`UpdateEvent::Result`]), and
    /// reports the outcome to the server. Cancelling `cancel` stops it at
    /// once during the download, leaving only resumable staging behind, and
    /// while it waits for the app to exit ([`Finish::AfterExit`]), leaving
    /// the update prepared (the next `updraft run` or `apply` switches);
    /// the other steps are short and finish.
    pub async fn update(
        &self,
        offer: &Offer,
        finish: &Finish,
        events: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Result<Outcome> {
        let mut outcome = Outcome::new(&offer.version, &offer.current_version);
        let result = self
            .run_update(offer, finish, events, cancel, &mut outcome)
            .await;
        self.conclude(result, outcome, events).await
    }

    /// The second half alone, for an update already prepared (by
    /// [`Finish::Prepare`], or an app's dialog): switches now or after the
    /// app exits, restarts and reports, as `finish` says. Ends with one
    /// [`UpdateEvent::Result`]; `updated` is false when nothing is prepared.
    pub async fn apply(&self, finish: &Finish, events: &dyn EventSink) -> Result<Outcome> {
        let state = self.reload_state()?;
        let Some(version) = state.prepared else {
            let outcome = Outcome::new(&state.current_version, &state.current_version);
            events.event(&UpdateEvent::Result(outcome.clone()));
            return Ok(outcome);
        };
        let mut outcome = Outcome::new(&version, &state.current_version);
        outcome.updated = true;
        let result = self
            .complete(
                &version,
                finish,
                events,
                &CancellationToken::new(),
                &mut outcome,
            )
            .await;
        self.conclude(result, outcome, events).await
    }

    /// Reports a failure, tells the subscriber the outcome, and returns it.
    async fn conclude(
        &self,
        result: Result<()>,
        mut outcome: Outcome,
        events: &dyn EventSink,
    ) -> Result<Outcome> {
        if let Err(error) = &result {
            outcome.updated = false;
            outcome.error = Some(error.to_string());
            outcome.error_kind = Some(FailureKind::of(error));
            if !matches!(error, Error::Cancelled) {
                self.report_within(&outcome.version, "failed", Some(&error.to_string()))
                    .await;
            }
        }
        events.event(&UpdateEvent::Result(outcome.clone()));
        result.map(|()| outcome)
    }

    async fn run_update(
        &self,
        offer: &Offer,
        finish: &Finish,
        events: &dyn EventSink,
        cancel: &CancellationToken,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let started = Instant::now();
        events.event(&UpdateEvent::Phase {
            phase: Phase::Downloading,
        });
        let meter = Arc::new(Meter::new(events));
        let downloaded = {
            // The download reports from its own tasks; the meter lives on this
            // stack, so hand them a channel and drain it here.
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
            let progress: crate::download::ProgressFn = Arc::new(move |done, total| {
                let _ = sender.send((done, total));
            });
            let download = self.download(offer, Some(progress), cancel);
            tokio::pin!(download);
            loop {
                tokio::select! {
                    result = &mut download => {
                        while let Ok((done, total)) = receiver.try_recv() {
                            meter.bytes(done, total);
                        }
                        break result?;
                    }
                    Some((done, total)) = receiver.recv() => meter.bytes(done, total),
                }
            }
        };
        meter.bytes(offer.file_size, offer.file_size);
        outcome.downloaded_bytes = downloaded.stats.fetched;
        outcome.path = Some(downloaded.path);
        outcome.resumed_bytes = downloaded.stats.resumed;
        outcome.download_seconds = started.elapsed().as_secs_f64();
        let installing = Instant::now();
        step(events, Phase::Installing, offer.file_size, DOWNLOAD_SHARE);
        self.prepare(offer, &downloaded).await?;
        outcome.install_seconds = installing.elapsed().as_secs_f64();
        outcome.updated = true;
        self.complete(&offer.version, finish, events, cancel, outcome)
            .await
    }

    async fn complete(
        &self,
        version: &str,
        finish: &Finish,
        events: &dyn EventSink,
        cancel: &CancellationToken,
        outcome: &mut Outcome,
    ) -> Result<()> {
        match finish {
            Finish::Prepare => Ok(()),
            Finish::HandOff(handoff) => {
                outcome.updater_pid = Some(self.apply_on_exit(handoff)?);
                Ok(())
            }
            Finish::Now { restart } => {
                self.switch_to(version, None, restart.as_deref(), events, cancel, outcome)
                    .await
            }
            Finish::AfterExit {
                pid,
                timeout,
                restart,
            } => {
                events.event(&UpdateEvent::Ready {
                    version: version.to_owned(),
                    wait_pid: *pid,
                });
                step(events, Phase::Waiting, 0, 0.97);
                self.switch_to(
                    version,
                    Some((*pid, *timeout)),
                    restart.as_deref(),
                    events,
                    cancel,
                    outcome,
                )
                .await
            }
        }
    }

    async fn switch_to(
        &self,
        version: &str,
        wait: Option<(u32, Duration)>,
        restart: Option<&[String]>,
        events: &dyn EventSink,
        cancel: &CancellationToken,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let applied = blocking(|| {
            self.apply_prepared(wait, restart, cancel, &|phase| {
                step(events, phase, 0, 0.98);
            })
        })?;
        outcome.switched = applied.switched.as_ref().is_some_and(|s| s.to == version);
        outcome.restarted = applied.restarted.is_some();
        outcome.downtime_seconds = applied.downtime.as_secs_f64();
        if !outcome.switched {
            return Err(Error::Install {
                version: version.to_owned(),
                reason: "another updater changed the prepared version meanwhile".into(),
            });
        }
        // Reported after the restart: the user does not wait for the network.
        self.report_within(version, "installed", None).await;
        Ok(())
    }

    /// The updater's half: waits for `wait` (a process and how long), makes
    /// the prepared version current, and restarts the app through
    /// `updraft run` with `restart` when `install_settings.auto_restart` is
    /// on (so the new version's health is watched). `phase` hears each step.
    /// Cancelling `cancel` while it waits ends it with [`Error::Cancelled`],
    /// the update still prepared.
    pub fn apply_prepared(
        &self,
        wait: Option<(u32, Duration)>,
        restart: Option<&[String]>,
        cancel: &CancellationToken,
        phase: &dyn Fn(Phase),
    ) -> Result<Applied> {
        if let Some((pid, timeout)) = wait {
            if !updraft_installer::wait_for_exit_unless(pid, timeout, &|| cancel.is_cancelled())? {
                return Err(Error::Cancelled);
            }
            updraft_fs::fault::point("apply.waited");
        }
        let exited = Instant::now();
        phase(Phase::Switching);
        let switched = self.activate()?;
        let restarted = match restart {
            Some(args) if switched.is_some() && self.config().install_settings.auto_restart => {
                phase(Phase::Restarting);
                Some(self.restart(args)?)
            }
            _ => None,
        };
        Ok(Applied {
            switched,
            restarted,
            downtime: exited.elapsed(),
        })
    }

    /// Starts `updraft run --dir DIR -- ARGS` in its own process group and
    /// returns its pid.
    fn restart(&self, args: &[String]) -> Result<u32> {
        let program = self.updater_program()?;
        let mut command = std::process::Command::new(&program);
        command
            .arg("run")
            .arg("--dir")
            .arg(self.install_dir())
            .arg("--")
            .args(args)
            .stdin(std::process::Stdio::null());
        updraft_installer::own_process_group(&mut command);
        let child = command
            .spawn()
            .map_err(|e| Error::io("start", &program, e))?;
        updraft_fs::fault::point("apply.restarted");
        Ok(child.id())
    }

    /// The `updraft` program that launches the app: the install's updater,
    /// or the running program when it is `updraft` itself.
    fn updater_program(&self) -> Result<PathBuf> {
        let current = std::env::current_exe().ok().filter(|exe| {
            exe.file_stem()
                .is_some_and(|stem| stem.to_string_lossy() == "updraft")
        });
        match (updraft_installer::updater_path(self.layout()), current) {
            (_, Some(current)) => Ok(current),
            (Ok(updater), None) => Ok(updater),
            (Err(error), None) => Err(error.into()),
        }
    }

    /// [`report`](Self::report), giving up after a few seconds.
    pub(crate) async fn report_within(&self, version: &str, outcome: &str, error: Option<&str>) {
        let _ = tokio::time::timeout(REPORT_DEADLINE, self.report(version, outcome, error)).await;
    }
}

/// Runs blocking work (waiting for a process, the journaled switch) from
/// async code on any runtime: in place on a multi-threaded one, telling it
/// so; directly on a current-thread one, which has nothing else to run.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
