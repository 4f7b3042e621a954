use std::path::Path;
use std::process::ExitCode;

use updraft_client::UpdateManager;

/// `updraft status`.
pub(crate) fn run(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let manager = UpdateManager::builder(dir).build()?;
    let state = manager.state();
    if json {
        let value = serde_json::json!({
            "app": state.app,
            "current_version": state.current_version,
            "channel": manager.config().channel,
            "install_dir": dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            "previous_versions": state.previous_versions,
            "pending_confirm": state.pending_confirm,
            "prepared": state.prepared,
            "platform": state.platform,
            "arch": state.arch,
            "skipped": state.skipped,
            "bad_versions": state.bad_versions,
            "remind_after": state.remind_after,
            "server": manager.config().update_server.base_url,
        });
        println!("{value}");
    } else {
        println!(
            "{} {} ({}/{}, channel {}) in `{}`",
            state.app,
            state.current_version,
            state.platform,
            state.arch,
            manager.config().channel,
            dir.display()
        );
        if !state.previous_versions.is_empty() {
            println!(
                "previous versions kept: {}",
                state.previous_versions.join(", ")
            );
        }
        if let Some(prepared) = &state.prepared {
            println!("{prepared} is prepared: it becomes current when the app next starts");
        }
        if state.pending_confirm {
            println!(
                "{} has not yet confirmed a healthy start",
                state.current_version
            );
        }
        println!("updates from {}", manager.config().update_server.base_url);
    }
    Ok(ExitCode::SUCCESS)
}
