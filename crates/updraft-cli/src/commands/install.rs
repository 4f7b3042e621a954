use std::process::ExitCode;

use crate::InstallArgs;
use crate::output::{progress_bar, progress_fn};

/// `updraft install`: a fresh install from a server, trusting ROOT_JSON.
pub(crate) fn run(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let root = std::fs::read(&args.trusted_root).map_err(|e| {
        updraft_client::Error::Usage(format!(
            "The trusted root `{}` cannot be read: {e}",
            args.trusted_root.display()
        ))
    })?;
    let (platform, arch) = updraft_client::host();
    let bar = progress_bar(&format!("Installing {}", args.app));
    let progress = progress_fn(bar.as_ref());
    let runtime = crate::commands::runtime()?;
    let request = updraft_client::InstallRequest {
        install_dir: &args.dir,
        base_url: &args.server,
        mirrors: &args.mirror,
        app: &args.app,
        channel: &args.channel,
        trusted_root: &root,
        version: args.release_version.as_ref(),
        platform,
        arch,
        allow_insecure_http: args.allow_insecure_http,
    };
    let version = runtime
        .block_on(updraft_client::bootstrap(&request, progress))
        .map_err(|error| name_the_root(error, &args.trusted_root))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // The updater lives beside the app, outside its files: the app hands off to it.
    let layout = updraft_installer::Layout::new(&args.dir);
    updraft_installer::install_updater(&layout, &std::env::current_exe()?)?;
    println!(
        "Installed {} {version} for {platform}/{arch} in `{}`.",
        args.app,
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Errors about the trusted root name the file the user gave, not the
/// `root.json` it becomes inside the install.
fn name_the_root(error: updraft_client::Error, path: &std::path::Path) -> updraft_client::Error {
    const PREFIX: &str = "The trusted root is not valid: ";
    match error {
        updraft_client::Error::Verification(message) if message.starts_with(PREFIX) => {
            let reason = &message[PREFIX.len()..];
            let reason = reason
                .strip_prefix("`root.json` is not valid: ")
                .unwrap_or(reason)
                .replace("`root.json`", "it");
            updraft_client::Error::Verification(format!(
                "The trusted root `{}` is not valid: {reason}",
                path.display()
            ))
        }
        other => other,
    }
}
