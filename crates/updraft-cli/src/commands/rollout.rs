use std::process::ExitCode;

use time::OffsetDateTime;
use updraft_protocol::AutoHalt;
use updraft_publisher::{ExpiryPolicy, RolloutAction};

use crate::RolloutArgs;

/// `updraft rollout`: every change given is signed as one targets version.
pub(crate) fn run(args: &RolloutArgs) -> anyhow::Result<ExitCode> {
    let mut actions = Vec::new();
    if let Some(percent) = args.percent {
        actions.push(RolloutAction::Percent(percent));
    }
    if args.halt {
        actions.push(RolloutAction::Halt);
    }
    if args.resume {
        actions.push(RolloutAction::Resume);
    }
    if args.yank {
        actions.push(RolloutAction::Yank);
    }
    if let (Some(rate), Some(reports)) = (args.halt_failure_rate, args.halt_min_reports) {
        actions.push(RolloutAction::AutoHalt(Some(AutoHalt {
            max_failure_basis_points: rate,
            min_reports: reports,
        })));
    }
    if args.no_auto_halt {
        actions.push(RolloutAction::AutoHalt(None));
    }
    let report = updraft_publisher::Location::open(&args.repo)?.rollout(
        &args.keys,
        &args.app,
        &args.release_version,
        &actions,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    let what: Vec<String> = actions
        .iter()
        .map(|action| match action {
            RolloutAction::Percent(percent) => format!("now rolls out to {percent}% of installs"),
            RolloutAction::Halt => {
                "is halted: no install is offered it until `--resume`".to_owned()
            }
            RolloutAction::Resume => "rolls out again".to_owned(),
            RolloutAction::Yank => "is yanked: it is never offered again".to_owned(),
            RolloutAction::AutoHalt(Some(rule)) => format!(
                "halts by itself once more than {}% of at least {} install reports fail",
                rule.percent(),
                rule.min_reports
            ),
            RolloutAction::AutoHalt(None) => "no longer halts by itself".to_owned(),
        })
        .collect();
    println!(
        "{} {} {} ({} package(s); targets metadata version {}).",
        args.app,
        args.release_version,
        what.join(", and "),
        report.packages.len(),
        report.targets_version
    );
    Ok(ExitCode::SUCCESS)
}
