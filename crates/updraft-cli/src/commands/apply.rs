//! `updraft apply`: the updater's entry point after a hand-off. The library's
//! workflow waits for the app to exit, switches to the prepared version,
//! restarts it and reports; this renders what it did.

use std::process::ExitCode;

use updraft_client::UpdateManager;

use crate::ApplyArgs;
use crate::commands::update::Render;

/// `updraft apply`.
pub(crate) fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let manager = UpdateManager::builder(&args.dir).build()?;
    let from = manager.state().current_version;
    // JSON lines as `update --json` prints them; sentences of its own otherwise.
    let render = Render::new(args.json);
    let quiet = |_: &updraft_client::UpdateEvent| {};
    let events: &dyn updraft_client::EventSink = if args.json { &render } else { &quiet };
    let outcome =
        crate::commands::runtime()?.block_on(manager.apply(&args.handoff.finish(), events))?;
    if !args.json {
        if outcome.switched {
            println!("Switched from {from} to {}.", outcome.version);
        } else {
            println!("No update is prepared.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
