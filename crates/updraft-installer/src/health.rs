//! Health confirmation and rollback: a new version is pending until the app
//! confirms a healthy start. If it exits with a failure, or has not confirmed
//! after `health_launches` launches or `health_timeout` seconds, the previous
//! version is restored and the bad one is never offered again.
//!
//! Every step goes through [`Install`]: it takes the install's lock and ends
//! with an atomic switch of `current` and an atomic write of the state.

use std::path::Path;
use std::process::Command;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::UpdateConfig;
use crate::error::{Error, Result};
use crate::install::{Install, RollbackReason};
use crate::layout::{InstallState, Layout};

/// What `run` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The app's exit code (1 if it was killed by a signal).
    pub exit_code: i32,
    /// A version that was rolled back because it failed, if any.
    pub rolled_back: Option<String>,
}

/// The pending version has run out of launches or time.
fn overdue(state: &InstallState, config: &UpdateConfig, now: OffsetDateTime) -> bool {
    let settings = &config.install_settings;
    let since = state
        .pending_since
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let expired = since.is_some_and(|since| {
        (now - since).whole_seconds() > i64::try_from(settings.health_timeout).unwrap_or(i64::MAX)
    });
    state.pending_launches >= settings.health_launches || expired
}

/// Launches the current version's main program with `args`, exporting
/// `UPDRAFT_DIR` (the install) and `UPDRAFT_DATA_DIR` (its `data/` folder,
/// for settings and logs), and applies the health rules around it:
///
/// 1. a pending version that has run out of launches or time is rolled back;
/// 2. a prepared update is applied;
/// 3. a pending version's launch is counted (its time limit starts at its
///    first launch, not at the switch);
/// 4. the program is started from its own version folder, chosen under the
///    lock, so a switch made meanwhile cannot mix versions;
/// 5. if it exits with a failure while still pending, and it is still the
///    current version (an updater may have switched since), it is rolled back.
pub fn run(install_dir: &Path, args: &[String]) -> Result<RunOutcome> {
    let layout = Layout::new(install_dir);
    let config = UpdateConfig::load(&layout.config())?.config;
    let watched = config.install_settings.rollback_on_failure;
    let mut rolled_back = None;
    let (launched, program, running) = {
        let install = Install::open(install_dir)?;
        let now = OffsetDateTime::now_utc();
        let state = install.state()?;
        if watched && state.pending_confirm && overdue(&state, &config, now) {
            rolled_back = roll_back_failed(&install, &state.current_version);
        }
        // An update prepared while the app ran (or whose updater gave up
        // waiting) is applied now, before anything runs.
        if let Err(error) = install.activate(&config.install_settings) {
            tracing::warn!("{error}");
        }
        let mut state = install.state()?;
        if watched && state.pending_confirm {
            if state.pending_launches == 0 {
                state.pending_since = now.format(&Rfc3339).ok();
            }
            state.pending_launches += 1;
            install.save(&state)?;
        }
        let main = state
            .mains
            .get(&state.current_version)
            .cloned()
            .ok_or_else(|| Error::Install {
                version: state.current_version.clone(),
                reason: "its main program is not recorded".into(),
            })?;
        // The program and every folder above it still belong to this install.
        crate::trust::check_program(&layout, &state.current_version, &main)?;
        let program = layout.versions().join(&state.current_version).join(main);
        // Taken under the install's lock: no prune can slip in before it.
        let running = install.hold_running(&state.current_version)?;
        (state.current_version, program, running)
    };
    updraft_fs::create_dir_all_durable(&layout.data())?;
    let status = Command::new(&program)
        .args(args)
        .env("UPDRAFT_DIR", &layout.root)
        .env("UPDRAFT_DATA_DIR", layout.data())
        .status()
        .map_err(|e| Error::io("start", &program, e))?;
    drop(running);
    let exit_code = status.code().unwrap_or(1);
    updraft_fs::fault::point("run.exited");
    if !status.success() && rolled_back.is_none() && watched {
        let install = Install::open(install_dir)?;
        let state = install.state()?;
        // Still unconfirmed, still current, and it failed: it is not healthy.
        if state.pending_confirm && state.current_version == launched {
            rolled_back = roll_back_failed(&install, &launched);
        }
    }
    Ok(RunOutcome {
        exit_code,
        rolled_back,
    })
}

/// Rolls back `version`, which failed its health check. If that is
/// impossible (its predecessor's folder is gone), stops waiting for a
/// confirmation instead, so the app can always start.
fn roll_back_failed(install: &Install, version: &str) -> Option<String> {
    match install.rollback(RollbackReason::Failed) {
        Ok(_) => Some(version.to_owned()),
        Err(error) => {
            tracing::warn!("{version} failed its health check but cannot be rolled back: {error}");
            // Stop waiting for a confirmation, so the app can always start.
            let _ = install.confirm();
            None
        }
    }
}
