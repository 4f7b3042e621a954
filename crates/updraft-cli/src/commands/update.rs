use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use updraft_client::{CancellationToken, CheckOutcome, UpdateManager};

use updraft_gui::{
    DialogOptions, DialogOutcome, InstallMode, LanguageSetting, ManagerBackend, show_update_dialog,
};

use crate::commands::apply;
use crate::commands::check::offer_json;
use crate::output::progress_bar;
use crate::{HandoffArgs, UpdateArgs};

/// `updraft update`: check, download, verify, install.
pub(crate) fn run(args: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let manager = UpdateManager::builder(&args.dir).build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
    runtime.block_on(async {
        if args.json {
            println!("{}", serde_json::json!({"event": "update_available", "offer": offer_json(&offer, "available")}));
        } else {
            println!("Version {} is available ({} update from {}).", offer.version, offer.update_type, offer.current_version);
        }
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
        let bar = if args.json { None } else { progress_bar(&format!("Downloading {}", offer.version)) };
        let json = args.json;
        let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let progress: updraft_client::download::ProgressFn = {
            let bar = bar.clone();
            Arc::new(move |done, total| {
                if let Some(bar) = &bar {
                    bar.set_length(total);
                    bar.set_position(done);
                }
                // One JSON line per percent at most.
                let step = total / 100 + 1;
                let previous = last.load(std::sync::atomic::Ordering::Relaxed);
                if json && (done / step != previous / step || done == total) {
                    last.store(done, std::sync::atomic::Ordering::Relaxed);
                    println!("{}", serde_json::json!({"event": "progress", "downloaded": done, "total": total}));
                }
            })
        };
        let result = async {
            let started = std::time::Instant::now();
            let downloaded = manager.download(&offer, Some(progress), &CancellationToken::new()).await?;
            let downloaded_at = started.elapsed();
            manager.prepare(&offer, &downloaded).await?;
            Ok::<_, updraft_client::Error>((downloaded, downloaded_at, started.elapsed().saturating_sub(downloaded_at)))
        }
        .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let (downloaded, download_time, prepare_time) = match result {
            Ok(done) => done,
            Err(error) => {
                manager.report(&offer.version, "failed", Some(&error.to_string())).await;
                return Err(error.into());
            }
        };
        apply::announce_ready(&offer.version, &args.handoff, args.json)?;
        let applied = tokio::task::block_in_place(|| apply::finish(&manager, &args.handoff));
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                manager.report(&offer.version, "failed", Some(&error.to_string())).await;
                return Err(error);
            }
        };
        manager.report(&offer.version, "installed", None).await;
        if args.json {
            println!("{}", serde_json::json!({"event": "result", "updated": true, "version": offer.version,
                "downloaded_bytes": downloaded.stats.fetched, "resumed_bytes": downloaded.stats.resumed,
                "download_seconds": download_time.as_secs_f64(), "install_seconds": prepare_time.as_secs_f64(),
                "restarted": applied.restarted.is_some(), "downtime_seconds": applied.downtime.as_secs_f64()}));
        } else if applied.restarted.is_some() {
            println!("Updated to {} and restarted it.", offer.version);
        } else {
            println!("Updated to {}.", offer.version);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Asks with the update dialog; "Install now" downloads and installs from it
/// (prepares only, with `--wait-pid`: the switch waits for the app's exit).
pub(crate) fn with_dialog(
    manager: UpdateManager,
    offer: &updraft_client::Offer,
    handoff: &HandoffArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let language: LanguageSetting = manager
        .config()
        .ui
        .language
        .parse()
        .unwrap_or(LanguageSetting::Auto);
    let app = manager.state().app;
    let manager = Arc::new(manager);
    let mode = if handoff.wait_pid.is_some() {
        InstallMode::PrepareOnly
    } else {
        InstallMode::Now
    };
    let backend = ManagerBackend::new(Arc::clone(&manager), offer.clone()).mode(mode);
    // Without an app to restart (`--restart`), the dialog says the new version runs next time.
    let options = DialogOptions::new(app)
        .language(language)
        .restarts(handoff.restart);
    let outcome = show_update_dialog(offer, backend, options)
        .map_err(|e| anyhow::anyhow!("Could not open the update dialog: {e}"))?;
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
                apply::announce_ready(&offer.version, handoff, json)?;
                let applied = apply::finish(&manager, handoff)?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(manager.report(&offer.version, "installed", None));
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "result", "updated": true, "version": offer.version, "restarted": applied.restarted.is_some()})
                    );
                }
            } else if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "updated": true, "version": offer.version})
                );
            }
            if !json {
                println!("Updated to {}.", offer.version);
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
