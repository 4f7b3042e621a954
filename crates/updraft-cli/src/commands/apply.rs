//! `updraft apply`, and the second half of `updraft update --wait-pid`: wait
//! for the running app to exit, switch to the prepared version, restart it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use updraft_client::{Switched, UpdateManager};

use crate::{ApplyArgs, HandoffArgs};

/// What the second half did.
pub(crate) struct Applied {
    pub(crate) switched: Option<Switched>,
    /// Process id of the restarted app's launcher, if restarted.
    pub(crate) restarted: Option<u32>,
    /// From the app's exit (or the start, without `--wait-pid`) to the restart.
    pub(crate) downtime: Duration,
}

/// With `--wait-pid`, tells the app (a JSON line, or a sentence) that the
/// update is prepared and the updater now waits for it to exit.
pub(crate) fn announce_ready(
    version: &str,
    handoff: &HandoffArgs,
    json: bool,
) -> std::io::Result<()> {
    let Some(pid) = handoff.wait_pid else {
        return Ok(());
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "ready", "version": version, "wait_pid": pid})
        );
    } else {
        println!("{version} is ready; waiting for the app (pid {pid}) to exit.");
    }
    std::io::Write::flush(&mut std::io::stdout())
}

/// Waits for `--wait-pid`, activates the prepared version and restarts the
/// app through `updraft run` (so the new version's health is watched).
pub(crate) fn finish(manager: &UpdateManager, handoff: &HandoffArgs) -> anyhow::Result<Applied> {
    if let Some(pid) = handoff.wait_pid {
        updraft_installer::wait_for_exit(pid, Duration::from_secs(handoff.wait_timeout))?;
        updraft_fs::fault::point("apply.waited");
    }
    let exited = Instant::now();
    let switched = manager.activate()?;
    let restarted = if handoff.restart
        && switched.is_some()
        && manager.config().install_settings.auto_restart
    {
        Some(restart(manager, &handoff.args)?)
    } else {
        None
    };
    Ok(Applied {
        switched,
        restarted,
        downtime: exited.elapsed(),
    })
}

/// Starts `updraft run --dir DIR -- ARGS` in its own process group and returns its pid.
fn restart(manager: &UpdateManager, args: &[String]) -> anyhow::Result<u32> {
    let program = std::env::current_exe()?;
    let mut command = std::process::Command::new(program);
    command
        .arg("run")
        .arg("--dir")
        .arg(manager.install_dir())
        .arg("--")
        .args(args)
        .stdin(std::process::Stdio::null());
    updraft_installer::own_process_group(&mut command);
    let child = command.spawn()?;
    updraft_fs::fault::point("apply.restarted");
    Ok(child.id())
}

/// `updraft apply`.
pub(crate) fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let manager = UpdateManager::builder(&args.dir).build()?;
    let applied = finish(&manager, &args.handoff)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match &applied.switched {
        Some(switched) => {
            // Reported after the restart: the user does not wait for the network.
            runtime.block_on(manager.report(&switched.to, "installed", None));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "updated": true, "version": switched.to,
                    "from": switched.from, "restarted": applied.restarted.is_some(),
                    "downtime_seconds": applied.downtime.as_secs_f64()})
                );
            } else {
                println!("Switched from {} to {}.", switched.from, switched.to);
            }
        }
        None => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "updated": false})
                );
            } else {
                println!("No update is prepared.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
