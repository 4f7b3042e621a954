use std::path::Path;
use std::process::ExitCode;

use updraft_installer::{Install, RollbackReason};

/// `updraft run`: passes the app's exit code through.
pub(crate) fn run(dir: &Path, args: &[String]) -> anyhow::Result<ExitCode> {
    let outcome = updraft_installer::run(dir, args)?;
    if let Some(version) = &outcome.rolled_back {
        eprintln!(
            "updraft: {version} did not confirm a healthy start; the previous version was restored and {version} will not be offered again"
        );
        report(dir, version);
    }
    Ok(ExitCode::from(
        u8::try_from(outcome.exit_code.clamp(0, 255)).unwrap_or(1),
    ))
}

/// Tells the server, best effort, that `version` was rolled back.
fn report(dir: &Path, version: &str) {
    let Ok(manager) = updraft_client::UpdateManager::builder(dir).build() else {
        return;
    };
    let Ok(runtime) = crate::commands::runtime() else {
        return;
    };
    runtime.block_on(manager.report(
        version,
        "rolled_back",
        Some("the new version did not confirm a healthy start"),
    ));
}

/// `updraft confirm`.
pub(crate) fn confirm(dir: &Path) -> anyhow::Result<ExitCode> {
    let state = Install::open(dir)?.confirm()?;
    println!("{} {} is confirmed.", state.app, state.current_version);
    Ok(ExitCode::SUCCESS)
}

/// `updraft rollback`.
pub(crate) fn rollback(dir: &Path) -> anyhow::Result<ExitCode> {
    let state = Install::open(dir)?.rollback(RollbackReason::Requested)?;
    println!("{} is back on {}.", state.app, state.current_version);
    Ok(ExitCode::SUCCESS)
}
