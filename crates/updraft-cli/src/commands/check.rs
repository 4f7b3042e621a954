use std::process::ExitCode;

use updraft_client::{CheckOutcome, Offer, UpdateManager};

use crate::{CheckArgs, HandoffArgs};

/// The check API's fields for an offer (PRODUCT.md).
/// `updraft check`.
pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let manager = UpdateManager::builder(&args.dir).build()?;
    let runtime = crate::commands::runtime()?;
    let outcome = runtime.block_on(manager.check())?;
    let text = match &outcome {
        CheckOutcome::UpToDate { current_version } => {
            format!("{current_version} is the newest version.")
        }
        CheckOutcome::Available(offer) => describe(offer, "is available"),
        CheckOutcome::Skipped(offer) => describe(offer, "is available but was skipped"),
        CheckOutcome::Snoozed(offer) => {
            describe(offer, "is available (remind me later is in effect)")
        }
    };
    let value = outcome.to_json();
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
    if args.gui
        && let CheckOutcome::Available(offer) = outcome
    {
        drop(runtime);
        let handoff = HandoffArgs::none();
        return crate::commands::update::with_dialog(manager, &offer, &handoff, json);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(offer: &Offer, what: &str) -> String {
    let forced = if offer.force_update {
        " This update is required."
    } else {
        ""
    };
    format!(
        "Version {} {what} ({} update from {}, {} bytes).{forced}\n\n{}",
        offer.version,
        offer.update_type,
        offer.current_version,
        offer.file_size,
        offer.changelog.trim_end()
    )
}
