use std::process::ExitCode;

use updraft_client::{CheckOutcome, Offer, UpdateManager};

use crate::{CheckArgs, HandoffArgs};

/// The check API's fields for an offer (PRODUCT.md).
pub(crate) fn offer_json(offer: &Offer, status: &str) -> serde_json::Value {
    serde_json::json!({
        "update_available": true,
        "status": status,
        "current_version": offer.current_version,
        "latest_version": offer.version,
        "update_type": offer.update_type,
        "force_update": offer.force_update,
        "target": offer.target,
        "file_size": offer.file_size,
        "sha256": offer.sha256,
        "changelog": offer.changelog,
        "changelogs": offer.changelogs.iter().map(|(v, n)| serde_json::json!({"version": v, "notes": n})).collect::<Vec<_>>(),
        "release_date": offer.release_date,
        "min_supported_version": offer.min_supported_version,
    })
}

/// `updraft check`.
pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let manager = UpdateManager::builder(&args.dir).build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(manager.check())?;
    let (value, text) = match &outcome {
        CheckOutcome::UpToDate { current_version } => (
            serde_json::json!({"update_available": false, "current_version": current_version}),
            format!("{current_version} is the newest version."),
        ),
        CheckOutcome::Available(offer) => (
            offer_json(offer, "available"),
            describe(offer, "is available"),
        ),
        CheckOutcome::Skipped(offer) => (
            offer_json(offer, "skipped"),
            describe(offer, "is available but was skipped"),
        ),
        CheckOutcome::Snoozed(offer) => (
            offer_json(offer, "snoozed"),
            describe(offer, "is available (remind me later is in effect)"),
        ),
    };
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
