use std::process::ExitCode;

use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, RolloutAction};

use crate::RolloutArgs;

/// `updraft rollout`.
pub(crate) fn run(args: &RolloutArgs) -> anyhow::Result<ExitCode> {
    let action = match (args.percent, args.halt, args.resume, args.yank) {
        (Some(percent), ..) => RolloutAction::Percent(percent),
        (_, true, ..) => RolloutAction::Halt,
        (_, _, true, _) => RolloutAction::Resume,
        _ => RolloutAction::Yank,
    };
    let report = updraft_publisher::rollout(
        &args.repo,
        &args.keys,
        &args.app,
        &args.release_version,
        action,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    let what = match action {
        RolloutAction::Percent(percent) => format!("now rolls out to {percent}% of installs"),
        RolloutAction::Halt => "is halted: no install is offered it until `--resume`".to_owned(),
        RolloutAction::Resume => "rolls out again".to_owned(),
        RolloutAction::Yank => "is yanked: it is never offered again".to_owned(),
    };
    println!(
        "{} {} {what} ({} package(s); targets metadata version {}).",
        args.app,
        args.release_version,
        report.packages.len(),
        report.targets_version
    );
    Ok(ExitCode::SUCCESS)
}
