//! The update dialog: [`DialogModel`], a state machine with no drawing in
//! it, and [`UpdateDialog`], the egui widget that draws a model and runs
//! what it asks for against an [`UpdateBackend`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use eframe::egui::{self, Color32, RichText};

use crate::backend::UpdateBackend;
use crate::fonts;
use crate::i18n::{Language, LanguageSetting, Texts};
use crate::icon;
use crate::markdown::{self, Block};
use crate::offer::OfferView;
use crate::progress::{Progress, ProgressSink, ProgressWidget};

/// Where the dialog is: Prompt → Installing → Succeeded or Failed
/// (→ Installing again on "Try again").
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DialogState {
    /// Asking: the offer, its notes and the choices.
    #[default]
    Prompt,
    /// Downloading and installing, with the latest progress.
    Installing(Progress),
    /// Installed; the app restarts to finish.
    Succeeded,
    /// Failed with this sentence; the current version keeps running.
    Failed(String),
}

/// A button of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// "Install now".
    InstallNow,
    /// "Remind me later".
    RemindLater,
    /// "Skip this version".
    Skip,
    /// "Quit" (forced updates).
    Quit,
    /// "Restart now", after a successful install.
    Restart,
    /// "Try again", after a failed install.
    TryAgain,
    /// "Close", after a failed install.
    Close,
}

/// Work a choice needs from the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Start [`UpdateBackend::install`].
    Install,
    /// Call [`UpdateBackend::skip`] with this version.
    Skip(String),
    /// Call [`UpdateBackend::remind_later`].
    RemindLater,
}

/// How the dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialogOutcome {
    /// The update is installed: restart the app to run it.
    Installed,
    /// The user chose "Remind me later" (and it was saved).
    RemindLater,
    /// The user skipped this version (and it was saved).
    Skipped,
    /// The user chose "Quit" on a forced update: exit the app.
    Quit,
    /// The window was closed before installing. For a forced update, treat
    /// it like [`Self::Quit`].
    Closed,
    /// The install failed with this sentence and the user closed the dialog;
    /// the current version keeps running.
    Failed(String),
}

/// The dialog's logic, without drawing: which buttons show, what each
/// does, and how it ends. [`UpdateDialog`] draws one and runs its commands.
///
/// ```
/// use updraft_gui::{Action, Command, DialogModel, DialogOutcome, OfferView};
/// let mut model = DialogModel::new(OfferView::new("1.1.0", "1.0.0"));
/// let command = model.choose(Action::Skip);
/// assert_eq!(command, Some(Command::Skip("1.1.0".into())));
/// model.command_done(&command.unwrap(), Ok(()));
/// assert_eq!(model.outcome(), Some(&DialogOutcome::Skipped));
/// ```
#[derive(Debug, Clone)]
pub struct DialogModel {
    offer: OfferView,
    state: DialogState,
    outcome: Option<DialogOutcome>,
    notice: Option<String>,
    close_requested: bool,
}

impl DialogModel {
    /// A dialog offering `offer`, at the prompt.
    pub fn new(offer: OfferView) -> Self {
        Self {
            offer,
            state: DialogState::Prompt,
            outcome: None,
            notice: None,
            close_requested: false,
        }
    }

    /// The offer shown.
    pub fn offer(&self) -> &OfferView {
        &self.offer
    }

    /// Where the dialog is.
    pub fn state(&self) -> &DialogState {
        &self.state
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&DialogOutcome> {
        self.outcome.as_ref()
    }

    /// Why the last skip or remind-later could not be saved (the dialog stays open).
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The buttons to show now, secondary ones first, the default one last.
    pub fn actions(&self) -> &'static [Action] {
        use Action::{Close, InstallNow, Quit, RemindLater, Restart, Skip, TryAgain};
        if self.outcome.is_some() {
            return &[];
        }
        match (&self.state, self.offer.force_update) {
            (DialogState::Prompt, false) => &[Skip, RemindLater, InstallNow],
            (DialogState::Prompt, true) => &[Quit, InstallNow],
            (DialogState::Installing(_), _) => &[],
            (DialogState::Succeeded, _) => &[Restart],
            (DialogState::Failed(_), false) => &[Close, TryAgain],
            (DialogState::Failed(_), true) => &[Quit, TryAgain],
        }
    }

    /// The user chose `action`: moves on, and returns the backend work to
    /// run, if any. An action not offered now is ignored.
    pub fn choose(&mut self, action: Action) -> Option<Command> {
        if !self.actions().contains(&action) {
            return None;
        }
        self.notice = None;
        match action {
            Action::InstallNow | Action::TryAgain => {
                self.state = DialogState::Installing(Progress::default());
                Some(Command::Install)
            }
            Action::Skip => Some(Command::Skip(self.offer.version.clone())),
            Action::RemindLater => Some(Command::RemindLater),
            Action::Quit => {
                self.outcome = Some(DialogOutcome::Quit);
                None
            }
            Action::Restart => {
                self.outcome = Some(DialogOutcome::Installed);
                None
            }
            Action::Close => {
                if let DialogState::Failed(error) = &self.state {
                    self.outcome = Some(DialogOutcome::Failed(error.clone()));
                }
                None
            }
        }
    }

    /// A skip or remind-later finished: the dialog ends, or, if the choice
    /// could not be saved, says so and stays. (Installs end through
    /// [`Self::install_finished`].)
    pub fn command_done(&mut self, command: &Command, result: Result<(), String>) {
        let outcome = match command {
            Command::Skip(_) => DialogOutcome::Skipped,
            Command::RemindLater => DialogOutcome::RemindLater,
            Command::Install => return self.install_finished(result),
        };
        match result {
            Ok(()) => self.outcome = Some(outcome),
            Err(error) => self.notice = Some(error),
        }
    }

    /// New progress from the running install.
    pub fn set_progress(&mut self, progress: Progress) {
        if let DialogState::Installing(current) = &mut self.state {
            *current = progress;
        }
    }

    /// The install ended.
    pub fn install_finished(&mut self, result: Result<(), String>) {
        if !matches!(self.state, DialogState::Installing(_)) {
            return;
        }
        if self.close_requested {
            self.outcome = Some(match &result {
                Ok(()) => DialogOutcome::Installed,
                Err(_) => DialogOutcome::Closed,
            });
        }
        self.state = match result {
            Ok(()) => DialogState::Succeeded,
            Err(error) => DialogState::Failed(error),
        };
    }

    /// The user closed the window. Returns whether it may close now; while
    /// installing it may not: the dialog ends when the install stops.
    pub fn request_close(&mut self) -> bool {
        if self.outcome.is_some() {
            return true;
        }
        self.outcome = Some(match &self.state {
            DialogState::Prompt => DialogOutcome::Closed,
            DialogState::Installing(_) => {
                self.close_requested = true;
                return false;
            }
            DialogState::Succeeded => DialogOutcome::Installed,
            DialogState::Failed(error) => DialogOutcome::Failed(error.clone()),
        });
        true
    }

    /// Whether an install is running.
    pub fn is_installing(&self) -> bool {
        matches!(self.state, DialogState::Installing(_))
    }
}

type Worker = JoinHandle<(Box<dyn UpdateBackend>, Result<(), String>)>;

/// The update dialog as an egui widget: draw it with [`Self::ui`] every
/// frame, inside any [`egui::Ui`] with a bounded size (a window's central
/// panel, or an [`egui::Window`] with a fixed or default size), and read
/// [`Self::outcome`] to know when it is done.
///
/// Installs run on a background thread; the dialog repaints as progress
/// arrives. Dropping the dialog during an install asks the backend to stop
/// and waits for it, so an install is never cut off mid-way.
///
/// ```no_run
/// # use eframe::egui;
/// use updraft_gui::{Language, OfferView, UpdateBackend, UpdateDialog};
/// fn embed(ctx: &egui::Context, dialog: &mut UpdateDialog) {
///     if dialog.outcome().is_none() {
///         egui::Window::new(dialog.window_title())
///             .auto_sized()
///             .collapsible(false)
///             .show(ctx, |ui| dialog.fitted_ui(ui, egui::vec2(520.0, 420.0)));
///     }
/// }
/// ```
pub struct UpdateDialog {
    model: DialogModel,
    language: Language,
    backend: Option<Box<dyn UpdateBackend>>,
    worker: Option<Worker>,
    sink: ProgressSink,
    notes: Vec<(String, Vec<Block>)>,
    ctx: Option<egui::Context>,
    restarts: bool,
    icon: Arc<egui::IconData>,
    icon_texture: Option<egui::TextureHandle>,
    fit_height: f32,
}

impl fmt::Debug for UpdateDialog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateDialog")
            .field("model", &self.model)
            .field("language", &self.language)
            .field("installing", &self.worker.is_some())
            .finish_non_exhaustive()
    }
}

impl UpdateDialog {
    /// A dialog offering `offer`, acting through `backend`, in `language`
    /// ([`LanguageSetting::Auto`] follows the system locale). Chinese falls
    /// back to English, with a warning, when no CJK font is installed.
    pub fn new(
        offer: impl Into<OfferView>,
        backend: impl UpdateBackend,
        language: impl Into<LanguageSetting>,
    ) -> Self {
        let offer = offer.into();
        let mut language = language.into().resolve();
        if language == Language::SimplifiedChinese && fonts::find_cjk_font().is_none() {
            warn_no_cjk_font();
            language = Language::English;
        }
        let notes = offer
            .notes()
            .into_iter()
            .map(|(version, notes)| (version.to_owned(), markdown::parse(notes)))
            .collect();
        Self {
            model: DialogModel::new(offer),
            language,
            backend: Some(Box::new(backend)),
            worker: None,
            sink: ProgressSink::new(),
            notes,
            ctx: None,
            restarts: true,
            icon: Arc::new(icon::update_icon()),
            icon_texture: None,
            fit_height: DEFAULT_FIT_HEIGHT,
        }
    }

    /// Shows `icon` (the app's, usually) in the header instead of updraft's
    /// arrow ([`update_icon`](crate::update_icon)).
    #[must_use]
    pub fn icon(mut self, icon: impl Into<Arc<egui::IconData>>) -> Self {
        self.icon = icon.into();
        self.icon_texture = None;
        self
    }

    /// The height in points the dialog needs to show everything without
    /// scrolling, as measured in the last frame (the notes as long as they
    /// are, the header, the buttons or the progress). A window sized to it,
    /// up to a maximum, has no empty space when the notes are short.
    pub fn fit_height(&self) -> f32 {
        self.fit_height
    }

    /// Whether the app restarts after the install (the default). When it
    /// does not (`updraft update --gui` with no app running), the success
    /// message says the new version runs at the next start, and the last
    /// button is "Close".
    #[must_use]
    pub fn restarts(mut self, restarts: bool) -> Self {
        self.restarts = restarts;
        self
    }

    /// The dialog's logic and state.
    pub fn model(&self) -> &DialogModel {
        &self.model
    }

    /// The language shown.
    pub fn language(&self) -> Language {
        self.language
    }

    /// How the dialog ended, once it has.
    pub fn outcome(&self) -> Option<DialogOutcome> {
        self.model.outcome().cloned()
    }

    /// The window title: "Kuzflow update" / "Kuzflow 更新", with the offer's
    /// [app name](OfferView::app_name).
    pub fn window_title(&self) -> String {
        Texts(self.language).window_title(self.model.offer().app_name())
    }

    /// The heading, which follows the state: "Version 1.1.0 is available",
    /// "Installing version 1.1.0…", "Version 1.1.0 is installed", "The update
    /// could not be installed".
    pub fn heading(&self) -> String {
        Texts(self.language).heading(self.model.state(), &self.model.offer().version)
    }

    /// Does what a click on `action` does (ignored when it is not offered now).
    pub fn choose(&mut self, action: Action) {
        let Some(command) = self.model.choose(action) else {
            return;
        };
        match &command {
            Command::Install => self.start_install(),
            Command::Skip(version) => {
                let result = self.with_backend(|backend| backend.skip(version));
                self.model.command_done(&command, result);
            }
            Command::RemindLater => {
                let result = self.with_backend(UpdateBackend::remind_later);
                self.model.command_done(&command, result);
            }
        }
    }

    fn with_backend(
        &mut self,
        call: impl FnOnce(&mut Box<dyn UpdateBackend>) -> Result<(), String>,
    ) -> Result<(), String> {
        match &mut self.backend {
            Some(backend) => call(backend),
            None => Err("an install is running".into()),
        }
    }

    /// The window is being closed: returns whether it may close now. During
    /// an install it may not; the download is asked to stop, and the dialog
    /// ends (with [`DialogOutcome::Closed`], or [`DialogOutcome::Installed`]
    /// if the install was past the point of stopping) when it has.
    pub fn request_close(&mut self) -> bool {
        let may_close = self.model.request_close();
        if !may_close {
            self.sink.cancel();
        }
        may_close
    }

    fn start_install(&mut self) {
        let Some(mut backend) = self.backend.take() else {
            self.model
                .install_finished(Err("an install is already running".into()));
            return;
        };
        self.sink = ProgressSink::new();
        if let Some(ctx) = &self.ctx {
            self.sink.repaint_on_update(ctx);
        }
        let sink = self.sink.clone();
        let spawned = std::thread::Builder::new()
            .name("updraft-install".into())
            .spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| backend.install(sink.clone())))
                    .unwrap_or_else(|_| Err("the installer stopped unexpectedly".into()));
                // Show the result now, not at the next scheduled repaint.
                sink.repaint_now();
                (backend, result)
            });
        match spawned {
            Ok(worker) => self.worker = Some(worker),
            Err(error) => self
                .model
                .install_finished(Err(format!("could not start the installer: {error}"))),
        }
    }

    /// Takes the install's progress, and its result once it has ended.
    fn poll(&mut self) {
        if self.worker.as_ref().is_some_and(JoinHandle::is_finished) {
            let joined = self.worker.take().map(JoinHandle::join);
            let result = match joined {
                Some(Ok((backend, result))) => {
                    self.backend = Some(backend);
                    result
                }
                _ => Err("the installer stopped unexpectedly".into()),
            };
            self.model.set_progress(self.sink.snapshot());
            self.model.install_finished(result);
        } else if self.worker.is_some() {
            self.model.set_progress(self.sink.snapshot());
        }
    }

    fn prepare(&mut self, ctx: &egui::Context) {
        if self.ctx.is_some() {
            return;
        }
        self.ctx = Some(ctx.clone());
        self.sink.repaint_on_update(ctx);
        if fonts::install_cjk_font(ctx).is_none() && self.language == Language::SimplifiedChinese {
            warn_no_cjk_font();
            self.language = Language::English;
        }
    }

    /// Draws the dialog into `ui`, and runs the choice made in it.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.prepare(ui.ctx());
        self.poll();
        if self.model.is_installing() {
            // Progress reports repaint too; this is the safety net.
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
        style(ui);
        let texts = Texts(self.language);
        let mut chosen = None;
        let header = egui::Panel::top("updraft-dialog-header")
            .frame(egui::Frame::NONE)
            .show_separator_line(false)
            .show(ui, |ui| self.header_ui(ui, texts))
            .response
            .rect
            .height();
        let footer = egui::Panel::bottom("updraft-dialog-footer")
            .frame(egui::Frame::NONE)
            .show_separator_line(false)
            .show(ui, |ui| chosen = self.footer_ui(ui, texts))
            .response
            .rect
            .height();
        let notes = egui::CentralPanel::no_frame()
            .show(ui, |ui| self.notes_ui(ui, texts))
            .inner;
        self.fit_height = (header + notes + footer).ceil();
        if let Some(action) = chosen {
            self.choose(action);
        }
    }

    /// Draws the dialog `max.x` wide and as tall as it needs up to `max.y`
    /// ([`Self::fit_height`]), for a window that takes its content's size,
    /// such as an [`egui::Window`] with `.auto_sized()`.
    pub fn fitted_ui(&mut self, ui: &mut egui::Ui, max: egui::Vec2) {
        let size = egui::vec2(max.x, self.fit_height.min(max.y));
        ui.allocate_ui(size, |ui| {
            ui.set_min_size(size);
            self.ui(ui);
        });
    }

    /// Draws the dialog as the whole content of a window: the window's
    /// background and margins around [`Self::ui`]. For an app's own
    /// viewport; [`show_update_dialog`](crate::show_update_dialog) uses it.
    pub fn window_ui(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default()
            .frame(egui::Frame::central_panel(ui.style()).inner_margin(WINDOW_MARGIN))
            .show(ui, |ui| self.ui(ui));
        self.fit_height += 2.0 * WINDOW_MARGIN;
    }

    fn header_ui(&mut self, ui: &mut egui::Ui, texts: Texts) {
        let icon = self.icon_texture(ui.ctx());
        let offer = self.model.offer();
        let state = self.model.state();
        ui.horizontal_top(|ui| {
            ui.add(egui::Image::new(&icon).fit_to_exact_size(egui::vec2(ICON_SIZE, ICON_SIZE)));
            ui.add_space(14.0);
            ui.vertical(|ui| {
                ui.add_space(2.0);
                ui.add(
                    egui::Label::new(
                        RichText::new(texts.heading(state, &offer.version))
                            .size(HEADING_SIZE)
                            .strong()
                            .color(ui.visuals().strong_text_color()),
                    )
                    .wrap(),
                );
                ui.add_space(4.0);
                ui.add(
                    egui::Label::new(texts.summary(
                        state,
                        offer.app_name(),
                        (&offer.version, &offer.current_version),
                        offer.file_size,
                    ))
                    .wrap(),
                );
                if offer.force_update && *state == DialogState::Prompt {
                    ui.add_space(4.0);
                    ui.add(
                        egui::Label::new(
                            RichText::new(texts.required())
                                .strong()
                                .color(ui.visuals().warn_fg_color),
                        )
                        .wrap(),
                    );
                }
            });
        });
        ui.add_space(16.0);
    }

    fn icon_texture(&mut self, ctx: &egui::Context) -> egui::TextureHandle {
        self.icon_texture
            .get_or_insert_with(|| {
                ctx.load_texture(
                    "updraft-dialog-icon",
                    icon::icon_image(&self.icon),
                    egui::TextureOptions::LINEAR,
                )
            })
            .clone()
    }

    /// The notes' heading and frame; returns the height they need to show
    /// the notes in full.
    fn notes_ui(&self, ui: &mut egui::Ui, texts: Texts) -> f32 {
        let offer = self.model.offer();
        let top = ui.cursor().top();
        let heading = RichText::new(texts.whats_new(offer.app_name()))
            .strong()
            .size(SUBHEADING_SIZE)
            .color(ui.visuals().strong_text_color());
        egui::containers::Sides::new().show(
            ui,
            |ui| ui.label(heading),
            |ui| {
                if let Some(day) = offer.release_day() {
                    ui.label(RichText::new(texts.released(day)).weak());
                }
            },
        );
        ui.add_space(6.0);
        let above = ui.cursor().top() - top;
        let visuals = ui.visuals();
        let frame = egui::Frame::new()
            .fill(visuals.extreme_bg_color)
            .stroke(visuals.widgets.noninteractive.bg_stroke)
            .corner_radius(6.0)
            .inner_margin(egui::Margin::symmetric(14, 10));
        let framing = frame.total_margin().sum().y;
        let mut content = 0.0;
        frame.show(ui, |ui| {
            let output = egui::ScrollArea::vertical()
                .auto_shrink([false, true])
                .max_height(ui.available_height().max(40.0))
                .show(ui, |ui| {
                    if self.notes.is_empty() {
                        ui.label(RichText::new(texts.no_notes()).weak());
                    }
                    let headed = self.notes.len() > 1;
                    for (index, (version, blocks)) in self.notes.iter().enumerate() {
                        if index > 0 {
                            ui.add_space(12.0);
                        }
                        if headed {
                            ui.label(
                                RichText::new(texts.version_heading(version))
                                    .strong()
                                    .size(SUBHEADING_SIZE)
                                    .color(ui.visuals().strong_text_color()),
                            );
                            ui.add_space(2.0);
                        }
                        markdown::show_blocks(ui, blocks);
                    }
                });
            content = output.content_size.y;
        });
        above + content + framing + ui.spacing().item_spacing.y
    }

    fn footer_ui(&self, ui: &mut egui::Ui, texts: Texts) -> Option<Action> {
        ui.add_space(14.0);
        match self.model.state() {
            DialogState::Prompt => {
                if let Some(notice) = self.model.notice() {
                    ui.add(
                        egui::Label::new(
                            RichText::new(texts.choice_failed(notice))
                                .color(ui.visuals().error_fg_color),
                        )
                        .wrap(),
                    );
                    ui.add_space(6.0);
                }
            }
            DialogState::Installing(progress) => {
                ui.add(ProgressWidget::new(progress, self.language));
            }
            DialogState::Succeeded => {
                let green = if ui.visuals().dark_mode {
                    Color32::from_rgb(0x7c, 0xd6, 0x8f)
                } else {
                    Color32::from_rgb(0x1e, 0x7b, 0x34)
                };
                ui.add(
                    egui::Label::new(
                        RichText::new(texts.success(self.restarts))
                            .strong()
                            .color(green),
                    )
                    .wrap(),
                );
                ui.add_space(6.0);
            }
            DialogState::Failed(error) => {
                // A deep red that reads as a sentence, not an alarm.
                let red = if ui.visuals().dark_mode {
                    Color32::from_rgb(0xf2, 0x8b, 0x82)
                } else {
                    Color32::from_rgb(0xb3, 0x26, 0x1e)
                };
                ui.add(egui::Label::new(RichText::new(texts.failure(error)).color(red)).wrap());
                ui.add_space(2.0);
                ui.label(texts.keeps_running());
                ui.add_space(6.0);
            }
        }
        let actions = self.model.actions();
        if actions.is_empty() {
            return None;
        }
        // Skip sits apart on the left; the rest on the right, default rightmost.
        let (left, right) = egui::containers::Sides::new().height(BUTTON_HEIGHT).show(
            ui,
            |ui| {
                (actions.contains(&Action::Skip) && button(ui, texts.skip(), false))
                    .then_some(Action::Skip)
            },
            |ui| {
                let mut chosen = None;
                for (index, &action) in actions.iter().rev().enumerate() {
                    let text = if action == Action::Restart && !self.restarts {
                        texts.close()
                    } else {
                        label(texts, action)
                    };
                    if action != Action::Skip && button(ui, text, index == 0) {
                        chosen = Some(action);
                    }
                }
                chosen
            },
        );
        left.or(right)
    }
}

/// The margin around the dialog in a window of its own.
const WINDOW_MARGIN: f32 = 20.0;
const ICON_SIZE: f32 = 52.0;
const HEADING_SIZE: f32 = 20.0;
const SUBHEADING_SIZE: f32 = 15.0;
const BODY_SIZE: f32 = 14.0;
const BUTTON_HEIGHT: f32 = 30.0;
/// [`UpdateDialog::fit_height`] before the first frame has measured it.
const DEFAULT_FIT_HEIGHT: f32 = 420.0;

/// The dialog's type sizes and spacing, for this `ui` only (an embedding
/// app's own style is left alone).
fn style(ui: &mut egui::Ui) {
    let style = ui.style_mut();
    for (text_style, size) in [
        (egui::TextStyle::Body, BODY_SIZE),
        (egui::TextStyle::Button, BODY_SIZE),
        (egui::TextStyle::Monospace, BODY_SIZE - 1.0),
        (egui::TextStyle::Heading, HEADING_SIZE),
        (egui::TextStyle::Small, BODY_SIZE - 2.0),
    ] {
        if let Some(font) = style.text_styles.get_mut(&text_style) {
            font.size = size;
        }
    }
    style.spacing.item_spacing = egui::vec2(8.0, 5.0);
    style.spacing.button_padding = egui::vec2(14.0, 5.0);
}

fn label(texts: Texts, action: Action) -> &'static str {
    match action {
        Action::InstallNow => texts.install_now(),
        Action::RemindLater => texts.remind_later(),
        Action::Skip => texts.skip(),
        Action::Quit => texts.quit(),
        Action::Restart => texts.restart(),
        Action::TryAgain => texts.try_again(),
        Action::Close => texts.close(),
    }
}

fn button(ui: &mut egui::Ui, text: &str, primary: bool) -> bool {
    let button = if primary {
        // The default choice stands out in both themes: white on a strong blue.
        let accent = if ui.visuals().dark_mode {
            Color32::from_rgb(0x2f, 0x6f, 0xd6)
        } else {
            Color32::from_rgb(0x1f, 0x63, 0xc9)
        };
        egui::Button::new(RichText::new(text).color(Color32::WHITE)).fill(accent)
    } else {
        egui::Button::new(text)
    };
    ui.add(button.min_size(egui::vec2(104.0, BUTTON_HEIGHT)))
        .clicked()
}

fn warn_no_cjk_font() {
    tracing::warn!(
        "No font with Chinese characters was found, so the update dialog is shown in English. Install Noto Sans CJK (fonts-noto-cjk) or WenQuanYi Micro Hei (fonts-wqy-microhei), or set {}",
        fonts::CJK_FONT_ENV
    );
}

impl Drop for UpdateDialog {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.sink.cancel();
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(force_update: bool) -> OfferView {
        OfferView {
            force_update,
            ..OfferView::new("1.1.0", "1.0.0")
        }
    }

    #[test]
    fn the_prompt_offers_three_choices_and_a_forced_update_two() {
        assert_eq!(
            DialogModel::new(offer(false)).actions(),
            [Action::Skip, Action::RemindLater, Action::InstallNow]
        );
        assert_eq!(
            DialogModel::new(offer(true)).actions(),
            [Action::Quit, Action::InstallNow]
        );
    }

    #[test]
    fn a_forced_update_cannot_be_skipped_or_snoozed() {
        let mut model = DialogModel::new(offer(true));
        assert_eq!(model.choose(Action::Skip), None);
        assert_eq!(model.choose(Action::RemindLater), None);
        assert_eq!(model.outcome(), None);
        assert_eq!(model.choose(Action::Quit), None);
        assert_eq!(model.outcome(), Some(&DialogOutcome::Quit));
    }

    #[test]
    fn install_goes_through_progress_to_success_and_restart() {
        let mut model = DialogModel::new(offer(false));
        assert_eq!(model.choose(Action::InstallNow), Some(Command::Install));
        assert!(model.is_installing());
        assert!(model.actions().is_empty(), "no buttons while installing");
        let progress = Progress {
            overall: 0.5,
            ..Progress::default()
        };
        model.set_progress(progress.clone());
        assert_eq!(model.state(), &DialogState::Installing(progress));
        model.install_finished(Ok(()));
        assert_eq!(model.state(), &DialogState::Succeeded);
        assert_eq!(model.actions(), [Action::Restart]);
        model.choose(Action::Restart);
        assert_eq!(model.outcome(), Some(&DialogOutcome::Installed));
    }

    #[test]
    fn a_failure_can_be_retried_or_closed() {
        let mut model = DialogModel::new(offer(false));
        model.choose(Action::InstallNow);
        model.install_finished(Err("disk full".into()));
        assert_eq!(model.state(), &DialogState::Failed("disk full".into()));
        assert_eq!(model.actions(), [Action::Close, Action::TryAgain]);
        assert_eq!(model.choose(Action::TryAgain), Some(Command::Install));
        model.install_finished(Err("disk still full".into()));
        model.choose(Action::Close);
        assert_eq!(
            model.outcome(),
            Some(&DialogOutcome::Failed("disk still full".into()))
        );
    }

    #[test]
    fn a_choice_that_cannot_be_saved_keeps_the_dialog_open_and_says_why() {
        let mut model = DialogModel::new(offer(false));
        let command = model.choose(Action::RemindLater).unwrap();
        model.command_done(&command, Err("read-only".into()));
        assert_eq!(model.outcome(), None);
        assert_eq!(model.notice(), Some("read-only"));
        let command = model.choose(Action::Skip).unwrap();
        assert_eq!(model.notice(), None);
        model.command_done(&command, Ok(()));
        assert_eq!(model.outcome(), Some(&DialogOutcome::Skipped));
    }

    #[test]
    fn closing_during_an_install_waits_for_it() {
        let mut model = DialogModel::new(offer(false));
        model.choose(Action::InstallNow);
        assert!(!model.request_close());
        assert_eq!(model.outcome(), None);
        model.install_finished(Err("The download was cancelled".into()));
        assert_eq!(model.outcome(), Some(&DialogOutcome::Closed));

        let mut model = DialogModel::new(offer(false));
        model.choose(Action::InstallNow);
        model.request_close();
        model.install_finished(Ok(()));
        assert_eq!(model.outcome(), Some(&DialogOutcome::Installed));

        let mut model = DialogModel::new(offer(true));
        assert!(model.request_close());
        assert_eq!(model.outcome(), Some(&DialogOutcome::Closed));
    }
}
