//! Progress: the [`ProgressSink`] a backend reports through from its thread,
//! the [`Progress`] the dialog reads from it each frame, and the
//! [`ProgressWidget`] that draws it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use eframe::egui::{self, ProgressBar, RichText};

use crate::i18n::{Language, Texts};

/// What an install is doing: the status line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Stage {
    /// Not started yet ("Preparing…").
    #[default]
    Preparing,
    /// Downloading the package ("Downloading…").
    Downloading,
    /// Verifying and installing ("Verifying and installing…").
    Installing,
    /// Cleaning up ("Finishing…").
    Finishing,
    /// Any other status, shown as given (the backend translates it).
    Other(String),
}

/// A snapshot of an install's progress.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// The status line.
    pub stage: Stage,
    /// The whole install, 0.0 to 1.0.
    pub overall: f32,
    /// The current step, 0.0 to 1.0.
    pub task: f32,
    /// Bytes done and total of the current transfer, if any.
    pub bytes: Option<(u64, u64)>,
    /// Transfer rate in bytes per second, once it can be measured.
    pub rate: Option<f64>,
    /// Estimated time left for the transfer.
    pub time_left: Option<Duration>,
    /// The user asked to stop (closed the window).
    pub cancel_requested: bool,
}

/// A cloneable handle a backend reports progress through, from any thread.
///
/// The dialog reads it every frame; each report also asks the window to
/// repaint, so progress shows without the UI polling in a busy loop.
///
/// ```
/// use updraft_gui::{ProgressSink, Stage};
/// let sink = ProgressSink::new();
/// sink.set_stage(Stage::Downloading);
/// sink.set_bytes(20_000_000, 40_000_000);
/// sink.set_task(0.5);
/// sink.set_overall(0.45);
/// assert_eq!(sink.snapshot().bytes, Some((20_000_000, 40_000_000)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProgressSink {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<SinkState>,
    cancelled: AtomicBool,
    repaint: Mutex<Option<egui::Context>>,
    created: Instant,
    /// When the last repaint was asked for, in milliseconds since `created`.
    last_repaint: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            cancelled: AtomicBool::new(false),
            repaint: Mutex::default(),
            created: Instant::now(),
            last_repaint: AtomicU64::new(0),
        }
    }
}

/// How often reports may repaint, in milliseconds: a download reports every few kilobytes.
const REPAINT_EVERY_MS: u64 = 30;

#[derive(Debug, Default)]
struct SinkState {
    progress: Progress,
    meter: RateMeter,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking backend thread must not take the dialog down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fraction(value: f32) -> f32 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

impl ProgressSink {
    /// A fresh sink: stage [`Stage::Preparing`], nothing done.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, change: impl FnOnce(&mut SinkState)) {
        change(&mut lock(&self.shared.state));
        let now = u64::try_from(self.shared.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.shared.last_repaint.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= REPAINT_EVERY_MS {
            self.shared.last_repaint.store(now, Ordering::Relaxed);
            self.repaint_now();
        } else if let Some(ctx) = lock(&self.shared.repaint).as_ref() {
            // Skipped now, shown at most a moment later.
            ctx.request_repaint_after(Duration::from_millis(REPAINT_EVERY_MS));
        }
    }

    /// Asks the window to repaint now.
    pub(crate) fn repaint_now(&self) {
        if let Some(ctx) = lock(&self.shared.repaint).as_ref() {
            ctx.request_repaint();
        }
    }

    /// Sets the status line.
    pub fn set_stage(&self, stage: Stage) {
        self.update(|state| state.progress.stage = stage);
    }

    /// Sets the whole install's progress (0.0 to 1.0; clamped).
    pub fn set_overall(&self, fraction_done: f32) {
        self.update(|state| state.progress.overall = fraction(fraction_done));
    }

    /// Sets the current step's progress (0.0 to 1.0; clamped).
    pub fn set_task(&self, fraction_done: f32) {
        self.update(|state| state.progress.task = fraction(fraction_done));
    }

    /// Reports the current transfer's bytes; the rate and time left follow from them.
    pub fn set_bytes(&self, done: u64, total: u64) {
        self.set_bytes_at(Instant::now(), done, total);
    }

    fn set_bytes_at(&self, at: Instant, done: u64, total: u64) {
        self.update(|state| state.record_bytes(at, done, total));
    }

    /// Shows one progress event of the update workflow as it is: its step's
    /// and the whole update's fractions and, while downloading, its bytes,
    /// rate and time left (the workflow measures them; nothing is measured
    /// again here).
    #[allow(clippy::cast_possible_truncation)] // fractions, 0 to 1
    pub fn report(&self, progress: &updraft_client::Progress) {
        let downloading = progress.phase == updraft_client::Phase::Downloading;
        self.update(|state| {
            state.progress.task = fraction(progress.step_fraction as f32);
            state.progress.overall = fraction(progress.overall_fraction as f32);
            if downloading {
                state.progress.bytes = Some((progress.downloaded, progress.total));
                state.progress.rate = (progress.rate > 0.0).then_some(progress.rate);
                state.progress.time_left = progress
                    .eta_seconds
                    .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
            }
        });
    }

    /// Forgets the transfer (hides the bytes, rate and time-left line).
    pub fn clear_bytes(&self) {
        self.update(|state| {
            state.meter = RateMeter::default();
            state.progress.bytes = None;
            state.progress.rate = None;
            state.progress.time_left = None;
        });
    }

    /// The progress now.
    pub fn snapshot(&self) -> Progress {
        let mut progress = lock(&self.shared.state).progress.clone();
        progress.cancel_requested = self.is_cancelled();
        progress
    }

    /// Asks the backend to stop. Backends check [`Self::is_cancelled`] where
    /// stopping is safe (during the download); an install that has started
    /// its switch runs to the end.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        self.update(|_| {});
    }

    /// Whether the user asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Repaint `ctx` whenever progress is reported.
    pub(crate) fn repaint_on_update(&self, ctx: &egui::Context) {
        *lock(&self.shared.repaint) = Some(ctx.clone());
    }
}

impl SinkState {
    fn record_bytes(&mut self, at: Instant, done: u64, total: u64) {
        self.meter.record(at, done);
        let rate = self.meter.rate();
        self.progress.bytes = Some((done, total));
        self.progress.rate = rate;
        self.progress.time_left = rate.and_then(|rate| time_left(done, total, rate));
    }
}

fn time_left(done: u64, total: u64, rate: f64) -> Option<Duration> {
    if rate <= 0.0 || done > total {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // seconds left need no byte precision
    let seconds = (total - done) as f64 / rate;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Measures a transfer's rate over the last few seconds, so a resumed
/// download (which starts with many bytes already done) or a short stall
/// does not skew it for long.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    const WINDOW: Duration = Duration::from_secs(3);
    const MIN_SPAN: Duration = Duration::from_millis(500);
    const SPACING: Duration = Duration::from_millis(100);

    pub(crate) fn record(&mut self, at: Instant, done: u64) {
        if self
            .samples
            .back()
            .is_some_and(|&(last_at, last_done)| done < last_done || at < last_at)
        {
            // The transfer restarted: older samples say nothing about it.
            self.samples.clear();
        }
        // Keep samples a tenth of a second apart: a download may report
        // thousands of times a second.
        let len = self.samples.len();
        if len >= 2
            && self
                .samples
                .get(len - 2)
                .is_some_and(|&(before, _)| at.duration_since(before) < Self::SPACING)
        {
            self.samples.pop_back();
        }
        self.samples.push_back((at, done));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(second, _)| at.duration_since(second) >= Self::WINDOW)
        {
            self.samples.pop_front();
        }
    }

    pub(crate) fn rate(&self) -> Option<f64> {
        let (&(first_at, first_done), &(last_at, last_done)) =
            (self.samples.front()?, self.samples.back()?);
        let span = last_at.duration_since(first_at);
        if span < Self::MIN_SPAN {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some((last_done - first_done) as f64 / span.as_secs_f64())
    }
}

/// Draws a [`Progress`]: the status line, the overall and current-step bars,
/// and a detail line with bytes, rate and time left.
///
/// ```
/// # use eframe::egui;
/// use updraft_gui::{Language, Progress, ProgressWidget, Stage};
/// fn show(ui: &mut egui::Ui, progress: &Progress) {
///     ui.add(ProgressWidget::new(progress, Language::English));
/// }
/// ```
#[derive(Debug)]
#[must_use = "add it to a Ui: `ui.add(widget)`"]
pub struct ProgressWidget<'a> {
    progress: &'a Progress,
    language: Language,
}

impl<'a> ProgressWidget<'a> {
    /// A widget showing `progress` in `language`.
    pub fn new(progress: &'a Progress, language: Language) -> Self {
        Self { progress, language }
    }
}

fn percent(fraction_done: f32) -> String {
    // Floor, so 100% means done, not 99.6%.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let percent = (fraction(fraction_done) * 100.0).floor() as u32;
    format!("{percent}%")
}

impl egui::Widget for ProgressWidget<'_> {
    fn ui(self, ui: &mut egui::Ui) -> egui::Response {
        let texts = Texts(self.language);
        let progress = self.progress;
        ui.vertical(|ui| {
            let status = if progress.cancel_requested {
                texts.cancelling().to_owned()
            } else {
                texts.stage(&progress.stage)
            };
            ui.label(RichText::new(status).strong());
            ui.add_space(6.0);
            egui::Grid::new("updraft-progress-bars")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    for (name, value) in [
                        (texts.overall(), progress.overall),
                        (texts.current_task(), progress.task),
                    ] {
                        ui.label(name);
                        ui.add(
                            ProgressBar::new(value)
                                .desired_width(ui.available_width())
                                .text(percent(value)),
                        );
                        ui.end_row();
                    }
                });
            if let Some((done, total)) = progress.bytes {
                ui.add_space(2.0);
                ui.label(
                    RichText::new(texts.detail(done, total, progress.rate, progress.time_left))
                        .weak(),
                );
            }
        })
        .response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_needs_half_a_second_then_follows_the_last_three() {
        let start = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(start, 0);
        meter.record(start + Duration::from_millis(200), 1_000_000);
        assert_eq!(meter.rate(), None, "too soon to tell");
        meter.record(start + Duration::from_secs(1), 5_000_000);
        assert_eq!(meter.rate(), Some(5_000_000.0));
        // Ten seconds at 1 MB/s: the early 5 MB/s burst leaves the window.
        for second in 2..=11 {
            meter.record(
                start + Duration::from_secs(second),
                5_000_000 + (second - 1) * 1_000_000,
            );
        }
        let rate = meter.rate().unwrap();
        assert!((rate - 1_000_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn thousands_of_reports_a_second_keep_few_samples() {
        let start = Instant::now();
        let mut meter = RateMeter::default();
        for ms in 0..10_000u64 {
            meter.record(start + Duration::from_millis(ms), ms * 1_000);
        }
        assert!(meter.samples.len() <= 40, "{}", meter.samples.len());
        let rate = meter.rate().unwrap();
        assert!((rate - 1_000_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn a_restarted_transfer_is_measured_afresh() {
        let start = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(start, 0);
        meter.record(start + Duration::from_secs(1), 9_000_000);
        meter.record(start + Duration::from_secs(2), 1_000_000);
        assert_eq!(meter.rate(), None);
        meter.record(start + Duration::from_secs(3), 3_000_000);
        assert_eq!(meter.rate(), Some(2_000_000.0));
    }

    #[test]
    fn the_sink_reports_rate_and_time_left_and_clamps_fractions() {
        let sink = ProgressSink::new();
        let start = Instant::now();
        sink.set_bytes_at(start, 0, 40_000_000);
        sink.set_bytes_at(start + Duration::from_secs(2), 10_000_000, 40_000_000);
        sink.set_overall(1.5);
        sink.set_task(f32::NAN);
        let progress = sink.snapshot();
        assert_eq!(progress.rate, Some(5_000_000.0));
        assert_eq!(progress.time_left, Some(Duration::from_secs(6)));
        assert!((progress.overall - 1.0).abs() < f32::EPSILON);
        assert!(progress.task.abs() < f32::EPSILON);
        sink.clear_bytes();
        assert_eq!(sink.snapshot().bytes, None);
        assert!(!sink.snapshot().cancel_requested);
        sink.clone().cancel();
        assert!(sink.is_cancelled() && sink.snapshot().cancel_requested);
    }

    #[test]
    fn percentages_floor_so_100_means_done() {
        assert_eq!(percent(0.996), "99%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(-3.0), "0%");
    }
}
