//! [`show_update_dialog`]: the dialog in a native window of its own.

use std::sync::{Arc, Mutex, PoisonError};

use eframe::egui;

use crate::backend::UpdateBackend;
use crate::dialog::{DialogOutcome, UpdateDialog};
use crate::error::Error;
use crate::i18n::LanguageSetting;
use crate::offer::OfferView;
use crate::theme::{ThemeFollower, ThemeSetting};

/// How [`show_update_dialog`] opens its window.
///
/// ```
/// use updraft_gui::{DialogOptions, Language, ThemeSetting};
/// let options = DialogOptions::new("Kuzflow")
///     .language(Language::SimplifiedChinese)
///     .theme(ThemeSetting::Dark);
/// ```
#[derive(Debug, Clone)]
pub struct DialogOptions {
    app_name: String,
    language: LanguageSetting,
    theme: ThemeSetting,
    size: [f32; 2],
    restarts: bool,
    icon: Option<Arc<egui::IconData>>,
}

impl Default for DialogOptions {
    fn default() -> Self {
        Self::new("")
    }
}

/// The smallest window the dialog is drawn in.
const MIN_SIZE: [f32; 2] = [440.0, 280.0];

impl DialogOptions {
    /// Options for `app_name`'s dialog: the name users know the app by
    /// (`Kuzflow`; the window is titled "Kuzflow update"), used when the
    /// offer has no [display name](OfferView::display_name) of its own (an
    /// empty name falls back to the app id). In the system's language and
    /// the desktop's theme, at most 560 × 480 points.
    pub fn new(app_name: impl Into<String>) -> Self {
        Self {
            app_name: app_name.into(),
            language: LanguageSetting::Auto,
            theme: ThemeSetting::Auto,
            size: [560.0, 480.0],
            restarts: true,
            icon: None,
        }
    }

    /// Light, dark, or the desktop's preference ([`ThemeSetting::Auto`],
    /// the default: see [`choose_theme`](crate::choose_theme)).
    #[must_use]
    pub fn theme(mut self, theme: impl Into<ThemeSetting>) -> Self {
        self.theme = theme.into();
        self
    }

    /// The window's and the header's icon (the app's own, usually); by
    /// default updraft's arrow ([`update_icon`](crate::update_icon)).
    #[must_use]
    pub fn icon(mut self, icon: egui::IconData) -> Self {
        self.icon = Some(Arc::new(icon));
        self
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

    /// The window's largest inner size in points: the window is as tall as
    /// the dialog needs, up to `height` (long notes scroll).
    #[must_use]
    pub fn size(mut self, width: f32, height: f32) -> Self {
        self.size = [width, height];
        self
    }
}

/// The eframe app around an [`UpdateDialog`].
struct DialogApp {
    dialog: UpdateDialog,
    theme: ThemeFollower,
    size: [f32; 2],
    requested_height: f32,
    outcome: Arc<Mutex<Option<DialogOutcome>>>,
}

impl eframe::App for DialogApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.theme.apply(&ctx);
        if ctx.input(|input| input.viewport().close_requested()) && !self.dialog.request_close() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        self.dialog.window_ui(ui);
        // As tall as the dialog needs: no empty block under short notes.
        let height = fitted_height(self.dialog.fit_height(), self.size[1]);
        if (height - self.requested_height).abs() >= 1.0 {
            self.requested_height = height;
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(
                self.size[0],
                height,
            )));
        }
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
        theme,
        size,
        restarts,
        icon,
    } = options;
    let mut offer = offer.into();
    if offer.display_name.trim().is_empty() {
        offer = offer.with_display_name(app_name);
    }
    // Started before the window opens, so the desktop has usually answered
    // by the first frame.
    let theme = ThemeFollower::new(theme);
    let icon = icon.unwrap_or_else(|| Arc::new(crate::icon::update_icon()));
    let app_id = match offer.app_id.trim() {
        "" => "updraft".to_owned(),
        id => id.to_owned(),
    };
    let dialog = UpdateDialog::new(offer, backend, language)
        .restarts(restarts)
        .icon(Arc::clone(&icon));
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(dialog.window_title())
            .with_app_id(app_id.clone())
            .with_icon(icon)
            .with_inner_size(size)
            .with_min_inner_size(MIN_SIZE)
            .with_resizable(false),
        centered: true,
        ..eframe::NativeOptions::default()
    };
    let outcome = Arc::new(Mutex::new(None));
    let app = DialogApp {
        dialog,
        theme,
        size,
        requested_height: size[1],
        outcome: Arc::clone(&outcome),
    };
    eframe::run_native(
        &app_id,
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

/// The window height for a dialog that needs `fit` points: no taller than
/// `max`, no shorter than the smallest window.
fn fitted_height(fit: f32, max: f32) -> f32 {
    fit.clamp(MIN_SIZE[1], max.max(MIN_SIZE[1])).ceil()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fits_the_dialog_between_the_smallest_and_the_given_size() {
        let near = |a: f32, b: f32| (a - b).abs() < 0.01;
        assert!(near(fitted_height(350.2, 480.0), 351.0));
        assert!(near(fitted_height(900.0, 480.0), 480.0));
        assert!(near(fitted_height(100.0, 480.0), MIN_SIZE[1]));
    }
}
