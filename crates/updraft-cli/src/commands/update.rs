//! `updraft update`: checks, asks, then runs the library's update workflow
//! and renders its events (JSON lines, or a progress bar and sentences).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use updraft_client::{
    CancellationToken, CheckOutcome, EventSink, Finish, Offer, Phase, UpdateEvent, UpdateManager,
};
use updraft_gui::{
    DialogOptions, DialogOutcome, InstallMode, LanguageSetting, ManagerBackend, show_update_dialog,
};

use crate::output::progress_bar;
use crate::{HandoffArgs, UpdateArgs};

impl HandoffArgs {
    /// What the workflow does after preparing: wait for `--wait-pid`'s exit
    /// and switch, or switch at once; restart with `--restart`.
    pub(crate) fn finish(&self) -> Finish {
        let restart = self.restart.then(|| self.args.clone());
        match self.wait_pid {
            Some(pid) => Finish::AfterExit {
                pid,
                timeout: std::time::Duration::from_secs(self.wait_timeout),
                restart,
            },
            None => Finish::Now { restart },
        }
    }
}

/// Renders the workflow's events: each as one JSON line (`--json`), or a
/// progress bar on a terminal and one sentence per outcome.
pub(crate) struct Render {
    json: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Render {
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            bar: Mutex::new(None),
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
        self.bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EventSink for Render {
    fn event(&self, event: &UpdateEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            return;
        }
        match event {
            UpdateEvent::UpdateAvailable { offer } => println!(
                "Version {} is available ({} update from {}).",
                offer.version, offer.update_type, offer.current_version
            ),
            UpdateEvent::Phase {
                phase: Phase::Downloading,
            } => *self.bar() = progress_bar("Downloading"),
            UpdateEvent::Phase { .. } => {
                if let Some(bar) = self.bar().take() {
                    bar.finish_and_clear();
                }
            }
            UpdateEvent::Progress(progress) if progress.phase == Phase::Downloading => {
                if let Some(bar) = &*self.bar() {
                    bar.set_length(progress.total);
                    bar.set_position(progress.downloaded);
                }
            }
            UpdateEvent::Ready { version, wait_pid } => {
                println!("{version} is ready; waiting for the app (pid {wait_pid}) to exit.");
                let _ = std::io::stdout().flush();
            }
            UpdateEvent::Result(outcome) => {
                if let Some(bar) = self.bar().take() {
                    bar.finish_and_clear();
                }
                if outcome.error.is_some() {
                    // main prints the error, with its exit code.
                } else if outcome.restarted {
                    println!("Updated to {} and restarted it.", outcome.version);
                } else if outcome.switched {
                    println!("Updated to {}.", outcome.version);
                } else if outcome.updated {
                    println!(
                        "{} is prepared; it runs from the next start of the app.",
                        outcome.version
                    );
                }
            }
            _ => {}
        }
    }
}

/// `updraft update`: check, download, verify, install.
pub(crate) fn run(args: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let manager = UpdateManager::builder(&args.dir).build()?;
    let runtime = crate::commands::runtime()?;
    let offer = match runtime.block_on(manager.check())? {
        // An explicit `update` installs a skipped or snoozed version too.
        CheckOutcome::Available(offer)
        | CheckOutcome::Skipped(offer)
        | CheckOutcome::Snoozed(offer) => offer,
        CheckOutcome::UpToDate { current_version } => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "updated": false, "current_version": current_version})
                );
            } else {
                println!("{current_version} is the newest version.");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.gui {
        drop(runtime);
        return with_dialog(manager, &offer, &args.handoff, args.json);
    }
    let render = Render::new(args.json);
    render.event(&UpdateEvent::UpdateAvailable {
        offer: Box::new(offer.clone()),
    });
    if !args.yes && !args.json && std::io::stdin().is_terminal() {
        print!("Install now? [Y/n] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim().eq_ignore_ascii_case("n") || answer.trim().eq_ignore_ascii_case("no") {
            println!("Not installed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let cancel = CancellationToken::new();
    runtime.block_on(async {
        // Ctrl-C stops the download and keeps what arrived for the next run.
        let interrupt = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            })
        };
        let outcome = manager
            .update(&offer, &args.handoff.finish(), &render, &cancel)
            .await;
        interrupt.abort();
        outcome
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Asks with the update dialog; "Install now" downloads and installs from it
/// (prepares only, with `--wait-pid`: the switch waits for the app's exit).
pub(crate) fn with_dialog(
    manager: UpdateManager,
    offer: &Offer,
    handoff: &HandoffArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !updraft_gui::display_available() {
        return Err(updraft_client::Error::Usage(
            "There is no display to open the update dialog on (neither DISPLAY nor WAYLAND_DISPLAY is set); leave out --gui to answer in the terminal".into(),
        )
        .into());
    }
    let language: LanguageSetting = manager
        .config()
        .ui
        .language
        .parse()
        .unwrap_or(LanguageSetting::Auto);
    // The name users know the app by (`ui.display_name`), else its id.
    let display_name = match manager.config().ui.display_name.as_str() {
        "" => manager.state().app,
        name => name.to_owned(),
    };
    let manager = Arc::new(manager);
    let mode = if handoff.wait_pid.is_some() {
        InstallMode::PrepareOnly
    } else {
        InstallMode::Now
    };
    // The dialog runs the workflow; its events are rendered here as they
    // come, the outcome included (`--json`: one line each).
    let render = Arc::new(Render::new(json));
    let backend = ManagerBackend::new(Arc::clone(&manager), offer.clone())
        .mode(mode)
        .events(Arc::clone(&render) as Arc<dyn EventSink>);
    // Without an app to restart (`--restart`), the dialog says the new version runs next time.
    let options = DialogOptions::new(display_name)
        .language(language)
        .restarts(handoff.restart);
    let outcome =
        show_update_dialog(offer, backend, options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let choice = match &outcome {
        DialogOutcome::Installed => "installed",
        DialogOutcome::RemindLater => "remind_later",
        DialogOutcome::Skipped => "skipped",
        DialogOutcome::Quit => "quit",
        DialogOutcome::Failed(_) => "failed",
        _ => "closed",
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "choice", "choice": choice, "version": offer.version})
        );
    }
    match outcome {
        DialogOutcome::Installed => {
            if handoff.wait_pid.is_some() {
                // The dialog prepared it; the workflow's second half waits, switches, restarts.
                crate::commands::runtime()?
                    .block_on(manager.apply(&handoff.finish(), render.as_ref()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DialogOutcome::Failed(reason) => Err(anyhow::anyhow!(
            "The update to {} failed: {reason}",
            offer.version
        )),
        _ => Ok(ExitCode::SUCCESS),
    }
}
