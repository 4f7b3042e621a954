//! Kuzflow demo: a small egui app that updates itself with updraft. It is the
//! model an integrator copies:
//!
//! - it confirms a healthy start (so updraft does not roll it back);
//! - it checks for updates on start-up and every `check_interval`, as
//!   `update_config.json` says, and from Help → Check for updates;
//! - it shows updraft's dialog, and "Install now" hands the update to the
//!   updater and exits; the updater switches versions and restarts it;
//! - Help → Revert to previous version returns to the version before.
//!
//! ```text
//! kuzflow-demo [--dir INSTALL_DIR] [--headless] [--auto-update]
//! ```
//!
//! It finds its install in `--dir` or `$UPDRAFT_DIR` (set by `updraft run`).
//! `--headless` runs without a window (for tests and servers): it prints
//! what it does, and with `--auto-update` installs any update it finds.
//! Its version is the one in its own files (`share/version.txt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use updraft_client::{CancellationToken, CheckOutcome, Event, Handoff, Offer, UpdateManager};
use updraft_gui::egui;
use updraft_gui::{
    InstallMode, LanguageSetting, ManagerBackend, OfferView, ThemeFollower, ThemeSetting,
    UpdateDialog,
};
use updraft_installer::{Install, InstallState, Layout, RollbackReason};

/// The name users know the app by, unless `ui.display_name` in
/// `update_config.json` says otherwise.
const DISPLAY_NAME: &str = "Kuzflow";

/// What the command line asked for.
struct Options {
    dir: Option<PathBuf>,
    headless: bool,
    auto_update: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        dir: std::env::var_os("UPDRAFT_DIR").map(PathBuf::from),
        headless: false,
        auto_update: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => options.dir = Some(args.next().ok_or("--dir needs a folder")?.into()),
            "--headless" => options.headless = true,
            "--auto-update" => options.auto_update = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// The version of the files this program runs from: `../share/version.txt`
/// beside `bin/`, else the crate's version.
fn own_version() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share/version.txt")))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map_or_else(
            || env!("CARGO_PKG_VERSION").to_owned(),
            |v| v.trim().to_owned(),
        )
}

/// Appends a line to `data/demo.log` in the install (the app's own files
/// live there, never in its version folder) and prints it.
fn log(dir: Option<&Path>, line: &str) {
    println!("{line}");
    let Some(dir) = dir else { return };
    let data = std::env::var_os("UPDRAFT_DATA_DIR").map_or_else(|| dir.join("data"), PathBuf::from);
    let _ = std::fs::create_dir_all(&data);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("demo.log"))
    {
        use std::io::Write;
        let _ = writeln!(file, "{line}");
    }
}

/// Tells updraft this version started healthy, if it is waiting to hear,
/// and only if this program is the version updraft thinks is current (an old
/// window must not confirm a version it is not).
fn confirm(dir: &Path, version: &str) {
    let Ok(state) = InstallState::load(&Layout::new(dir)) else {
        return;
    };
    if state.pending_confirm && state.current_version == version {
        match Install::open(dir).and_then(|install| install.confirm()) {
            Ok(_) => log(Some(dir), &format!("{version} confirmed")),
            Err(error) => log(Some(dir), &format!("{version} could not confirm: {error}")),
        }
    }
}

fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("kuzflow-demo: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let version = own_version();
    let result = if options.headless {
        headless(&options, &version)
    } else if !updraft_gui::display_available() {
        // Not the new version's fault: run as --headless would, so it still
        // confirms its healthy start and is not rolled back.
        log(
            options.dir.as_deref(),
            "No display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set); running without a window, as with --headless.",
        );
        headless(&options, &version)
    } else {
        windowed(&options, &version)
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            log(
                options.dir.as_deref(),
                &format!("{version} failed: {error}"),
            );
            std::process::ExitCode::FAILURE
        }
    }
}

/// Without a window: start, confirm, check, and (with `--auto-update`)
/// install what is offered by handing off to the updater, then exit.
fn headless(options: &Options, version: &str) -> Result<(), String> {
    let dir = options.dir.as_deref();
    log(dir, &format!("Kuzflow demo {version} started"));
    let Some(dir) = dir else {
        println!("Not installed with updraft (no --dir or UPDRAFT_DIR): no updates.");
        return Ok(());
    };
    confirm(dir, version);
    let manager = UpdateManager::builder(dir)
        .build()
        .map_err(|e| e.to_string())?;
    if !options.auto_update && !manager.config().check_settings.check_on_startup {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let outcome = match manager.check().await {
            Ok(outcome) => outcome,
            // The app itself works: a check that cannot reach the server is
            // no reason to count this version as failed.
            Err(error) => {
                log(
                    Some(dir),
                    &format!("Could not check for updates ({error}); {version} keeps running"),
                );
                return Ok(());
            }
        };
        let offer = match outcome {
            CheckOutcome::Available(offer) => offer,
            CheckOutcome::UpToDate { .. } => {
                log(Some(dir), &format!("{version} is up to date"));
                return Ok(());
            }
            CheckOutcome::Skipped(offer) | CheckOutcome::Snoozed(offer) => {
                log(
                    Some(dir),
                    &format!("{} is available; not asking now", offer.version),
                );
                return Ok(());
            }
        };
        log(
            Some(dir),
            &format!("Version {} is available", offer.version),
        );
        if !options.auto_update {
            return Ok(());
        }
        let handoff = Handoff {
            restart_args: Some(vec!["--headless".into(), "--auto-update".into()]),
            ..Handoff::default()
        };
        // The library's workflow: download, verify, unpack beside this version, hand off.
        let quiet = |_: &updraft_client::UpdateEvent| {};
        manager
            .update(
                &offer,
                &updraft_client::Finish::HandOff(handoff),
                &quiet,
                &CancellationToken::new(),
            )
            .await
            .map_err(|e| e.to_string())?;
        log(
            Some(dir),
            &format!(
                "{version} handed {} to the updater and exits",
                offer.version
            ),
        );
        Ok(())
    })
}

/// What the background checker tells the window.
enum Message {
    Offer(Box<Offer>),
    UpToDate(String),
    Failed(String),
}

/// The windowed app.
struct Demo {
    version: String,
    dir: Option<PathBuf>,
    manager: Option<Arc<UpdateManager>>,
    runtime: Option<tokio::runtime::Runtime>,
    status: String,
    dialog: Option<UpdateDialog>,
    messages: Receiver<Message>,
    sender: Sender<Message>,
    confirmed: bool,
    theme: ThemeFollower,
}

fn windowed(options: &Options, version: &str) -> Result<(), String> {
    let dir = options.dir.clone();
    if let Some(dir) = &dir {
        log(Some(dir), &format!("Kuzflow demo {version} started"));
    }
    let manager = dir
        .as_deref()
        .map(|dir| UpdateManager::builder(dir).build().map(Arc::new))
        .transpose()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (sender, messages) = std::sync::mpsc::channel();
    let status = if manager.is_some() {
        "Ready.".to_owned()
    } else {
        "Not installed with updraft: updates are off.".to_owned()
    };
    let demo = Demo {
        version: version.to_owned(),
        dir,
        manager,
        runtime: Some(runtime),
        status,
        dialog: None,
        messages,
        sender,
        confirmed: false,
        // The desktop's light or dark, as the update dialog follows it.
        theme: ThemeFollower::new(ThemeSetting::Auto),
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(format!("Kuzflow demo {version}"))
            .with_icon(updraft_gui::update_icon())
            .with_inner_size([640.0, 480.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "kuzflow-demo",
        native,
        Box::new(move |creation| {
            let mut demo = demo;
            demo.start_scheduler(&creation.egui_ctx);
            Ok(Box::new(demo))
        }),
    )
    .map_err(|e| format!("could not open the window: {}", updraft_gui::plain(&e)))
}

impl Demo {
    /// Background checks per the configuration: on start-up and every
    /// `check_interval`. Offers arrive as messages and open the dialog.
    fn start_scheduler(&mut self, ctx: &egui::Context) {
        let (Some(manager), Some(runtime)) = (&self.manager, &self.runtime) else {
            return;
        };
        let (sender, ctx) = (self.sender.clone(), ctx.clone());
        let _guard = runtime.enter();
        Arc::clone(manager).spawn_scheduler(move |event| {
            let message = match event {
                Event::UpdateAvailable(offer) => Message::Offer(offer),
                Event::Failed(error) => Message::Failed(error),
                _ => return,
            };
            let _ = sender.send(message);
            ctx.request_repaint();
        });
    }

    /// Help → Check for updates: shows the dialog even for a skipped or
    /// snoozed version (the user asked).
    fn check_now(&mut self, ctx: &egui::Context) {
        let (Some(manager), Some(runtime)) = (&self.manager, &self.runtime) else {
            self.status = "Not installed with updraft: updates are off.".into();
            return;
        };
        self.status = "Checking for updates…".into();
        let (manager, sender, ctx) = (Arc::clone(manager), self.sender.clone(), ctx.clone());
        runtime.spawn(async move {
            let message = match manager.check().await {
                Ok(CheckOutcome::UpToDate { current_version }) => {
                    Message::UpToDate(current_version)
                }
                Ok(
                    CheckOutcome::Available(offer)
                    | CheckOutcome::Skipped(offer)
                    | CheckOutcome::Snoozed(offer),
                ) => Message::Offer(Box::new(offer)),
                Err(error) => Message::Failed(error.to_string()),
            };
            let _ = sender.send(message);
            ctx.request_repaint();
        });
    }

    /// "Updates are checked at start-up and every 24 hours." or why not.
    fn updates_line(&self) -> String {
        let Some(manager) = &self.manager else {
            return "Updates are off: this copy was not installed with updraft.".into();
        };
        let checks = &manager.config().check_settings;
        let every = every(checks.check_interval);
        match (checks.auto_check, checks.check_on_startup) {
            (true, true) => format!("Updates are checked at start-up and {every}."),
            (true, false) => format!("Updates are checked {every}."),
            (false, true) => "Updates are checked at start-up.".into(),
            (false, false) => "Updates are checked from Help > Check for updates.".into(),
        }
    }

    fn revert(&mut self) {
        let Some(dir) = &self.dir else { return };
        self.status = match Install::open(dir)
            .and_then(|install| install.rollback(RollbackReason::Requested))
        {
            Ok(state) => format!(
                "Reverted: {} starts next time (this window keeps running {}).",
                state.current_version, self.version
            ),
            Err(error) => format!("Could not revert: {error}"),
        };
        // The manager's copy of the state is stale after a rollback.
        if let Some(manager) = &self.manager {
            let _ = manager.reload_state();
        }
    }

    fn open_dialog(&mut self, offer: &Offer) {
        let Some(manager) = &self.manager else { return };
        if self.dialog.is_some() {
            return;
        }
        self.status = format!("Version {} is available.", offer.version);
        let language = manager
            .config()
            .ui
            .language
            .parse()
            .unwrap_or(LanguageSetting::Auto);
        // "Install now" prepares the update beside this running version and
        // hands it to the updater, which switches once this window closes.
        let backend = ManagerBackend::new(Arc::clone(manager), offer.clone())
            .mode(InstallMode::HandOff(Handoff::default()));
        let display_name = match manager.config().ui.display_name.as_str() {
            "" => DISPLAY_NAME,
            name => name,
        };
        let offer = OfferView::from(offer).with_display_name(display_name);
        self.dialog = Some(UpdateDialog::new(offer, backend, language));
    }
}

impl eframe::App for Demo {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.theme.apply(&ctx);
        while let Ok(message) = self.messages.try_recv() {
            match message {
                Message::Offer(offer) => self.open_dialog(&offer),
                Message::UpToDate(version) => {
                    self.status = format!("You have the newest version ({version}).");
                }
                Message::Failed(error) => self.status = format!("Update check failed: {error}"),
            }
        }
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    if ui.button("Quit").clicked() {
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                });
                ui.menu_button("Help", |ui| {
                    if ui.button("Check for updates").clicked() {
                        self.check_now(&ctx);
                    }
                    if ui.button("Revert to previous version").clicked() {
                        self.revert();
                    }
                });
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.label(&self.status);
        });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading(format!("Kuzflow demo {}", self.version));
            ui.label("A small app that updates itself with updraft.");
            ui.add_space(4.0);
            // What a user cares about is whether and when it updates; the
            // install folder is there on hover, for support.
            let updates = ui.label(self.updates_line());
            if let Some(dir) = &self.dir {
                updates.on_hover_text(format!("Installed in {}", dir.display()));
            }
        });
        if !self.confirmed {
            // The first frame is drawn: this version starts fine.
            self.confirmed = true;
            if let Some(dir) = &self.dir {
                confirm(dir, &self.version);
            }
        }
        if let Some(dialog) = &mut self.dialog {
            egui::Window::new(dialog.window_title())
                .auto_sized()
                .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
                .collapsible(false)
                // As tall as the dialog needs, up to 400 points (long notes scroll).
                .show(&ctx, |ui| dialog.fitted_ui(ui, egui::vec2(520.0, 400.0)));
            match dialog.outcome() {
                None => {}
                // The updater is waiting for this process to exit.
                Some(updraft_gui::DialogOutcome::Installed | updraft_gui::DialogOutcome::Quit) => {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Some(outcome) => {
                    let version = &dialog.model().offer().version;
                    self.status = match outcome {
                        updraft_gui::DialogOutcome::RemindLater => {
                            format!("Version {version} is available; you will be reminded later.")
                        }
                        updraft_gui::DialogOutcome::Skipped => {
                            format!(
                                "Version {version} is skipped; Help > Check for updates still finds it."
                            )
                        }
                        updraft_gui::DialogOutcome::Failed(error) => {
                            format!("The update failed: {error}")
                        }
                        _ => format!("Version {version} is available."),
                    };
                    self.dialog = None;
                }
            }
        }
    }
}

/// "every 24 hours", "every 30 minutes", "every 90 seconds".
fn every(seconds: u64) -> String {
    let (count, unit) = match seconds {
        0 => return "continuously".into(),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if count == 1 {
        format!("every {unit}")
    } else {
        format!("every {count} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_intervals_read_as_words() {
        assert_eq!(super::every(86_400), "every 24 hours");
        assert_eq!(super::every(3600), "every hour");
        assert_eq!(super::every(1800), "every 30 minutes");
        assert_eq!(super::every(90), "every 90 seconds");
    }
}
