//! [`show_update_dialog`]: the dialog in a native window of its own.

use std::sync::{Arc, Mutex, PoisonError};

use eframe::egui;

use crate::backend::UpdateBackend;
use crate::dialog::{DialogOutcome, UpdateDialog};
use crate::error::Error;
use crate::i18n::LanguageSetting;
use crate::offer::OfferView;

/// How [`show_update_dialog`] opens its window.
///
/// ```
/// use updraft_gui::{DialogOptions, Language};
/// let options = DialogOptions::new("Kuzflow").language(Language::SimplifiedChinese);
/// ```
#[derive(Debug, Clone)]
pub struct DialogOptions {
    app_name: String,
    language: LanguageSetting,
    size: [f32; 2],
    restarts: bool,
}

impl Default for DialogOptions {
    fn default() -> Self {
        Self::new("updraft")
    }
}

impl DialogOptions {
    /// Options for `app_name`'s dialog (the window is titled "{app_name} update"),
    /// in the system's language, 560 × 480 points.
    pub fn new(app_name: impl Into<String>) -> Self {
        Self {
            app_name: app_name.into(),
            language: LanguageSetting::Auto,
            size: [560.0, 480.0],
            restarts: true,
        }
    }

    /// Shows the dialog in `language` (or [`LanguageSetting::Auto`]).
    #[must_use]
    pub fn language(mut self, language: impl Into<LanguageSetting>) -> Self {
        self.language = language.into();
        self
    }

    /// Whether the app restarts after the install (see [`UpdateDialog::restarts`]).
    #[must_use]
    pub fn restarts(mut self, restarts: bool) -> Self {
        self.restarts = restarts;
        self
    }

    /// The window's inner size in points.
    #[must_use]
    pub fn size(mut self, width: f32, height: f32) -> Self {
        self.size = [width, height];
        self
    }
}

/// The eframe app around an [`UpdateDialog`].
struct DialogApp {
    dialog: UpdateDialog,
    outcome: Arc<Mutex<Option<DialogOutcome>>>,
}

impl eframe::App for DialogApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if ctx.input(|input| input.viewport().close_requested()) && !self.dialog.request_close() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        self.dialog.window_ui(ui);
        if let Some(outcome) = self.dialog.outcome() {
            *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Shows the update dialog for `offer` in a native window and returns how
/// it ended, acting through `backend` (usually a
/// [`ManagerBackend`](crate::ManagerBackend)).
///
/// Call it from the main thread, at most once per process (the windowing
/// libraries allow one event loop). Needs a display: X11 or Wayland on
/// Linux, with OpenGL (Mesa's software renderer will do).
///
/// ```no_run
/// use updraft_gui::{DialogOptions, DialogOutcome, OfferView, UpdateBackend, show_update_dialog};
/// # fn demo(backend: impl UpdateBackend) -> Result<(), updraft_gui::Error> {
/// let offer = OfferView::new("1.1.0", "1.0.0");
/// match show_update_dialog(offer, backend, DialogOptions::new("Kuzflow"))? {
///     DialogOutcome::Installed => { /* restart into the new version */ }
///     DialogOutcome::Quit => std::process::exit(0),
///     _ => { /* keep running */ }
/// }
/// # Ok(()) }
/// ```
pub fn show_update_dialog(
    offer: impl Into<OfferView>,
    backend: impl UpdateBackend,
    options: DialogOptions,
) -> Result<DialogOutcome, Error> {
    let DialogOptions {
        app_name,
        language,
        size,
        restarts,
    } = options;
    let dialog = UpdateDialog::new(offer, backend, language).restarts(restarts);
    let title = dialog.window_title(&app_name);
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_inner_size(size)
            .with_min_inner_size([400.0, 340.0]),
        centered: true,
        ..eframe::NativeOptions::default()
    };
    let outcome = Arc::new(Mutex::new(None));
    let app = DialogApp {
        dialog,
        outcome: Arc::clone(&outcome),
    };
    eframe::run_native(
        &app_name,
        native,
        Box::new(move |_creation| Ok(Box::new(app))),
    )
    .map_err(Error::Window)?;
    let outcome = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Ok(outcome.unwrap_or(DialogOutcome::Closed))
}
