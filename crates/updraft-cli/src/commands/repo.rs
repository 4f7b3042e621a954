use std::path::Path;
use std::process::ExitCode;

use time::OffsetDateTime;
use updraft_publisher::ExpiryPolicy;

use crate::output::EXIT_VERIFICATION;

/// `updraft repo init`.
pub(crate) fn init(repo: &Path, keys: &Path) -> anyhow::Result<ExitCode> {
    let report = updraft_publisher::init(
        repo,
        keys,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    println!(
        "Created an empty signed store in `{}` (root threshold {} of {}).",
        report.store.display(),
        report.root_threshold,
        report.root_keys
    );
    println!(
        "Ship `{}` with your app: it is the root of trust clients start from.",
        report.root_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo verify`: every problem on its own line; exit 4 if any.
pub(crate) fn verify(repo: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = updraft_publisher::verify(repo, OffsetDateTime::now_utc())?;
    if report.recovered {
        eprintln!("note: an interrupted publish was found and undone before verifying");
    }
    if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| serde_json::json!({"path": p.path, "message": p.message}))
            .collect();
        let value = serde_json::json!({
            "ok": report.problems.is_empty(),
            "root_version": report.root_version,
            "targets_checked": report.targets_checked,
            "packages_checked": report.packages_checked,
            "problems": problems,
        });
        println!("{value}");
    } else if report.problems.is_empty() {
        println!(
            "`{}` is valid: root version {}, {} target files and {} packages checked.",
            repo.display(),
            report.root_version,
            report.targets_checked,
            report.packages_checked
        );
    } else {
        for problem in &report.problems {
            eprintln!("problem: {problem}");
        }
        eprintln!(
            "error: `{}` failed verification with {} problem(s).",
            repo.display(),
            report.problems.len()
        );
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VERIFICATION)
    })
}

/// `updraft repo refresh`.
pub(crate) fn refresh(repo: &Path, keys: &Path) -> anyhow::Result<ExitCode> {
    let report = updraft_publisher::refresh(
        repo,
        keys,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    println!(
        "Signed timestamp version {}, valid until {}.",
        report.timestamp_version, report.timestamp_expires
    );
    if report.renewed_targets {
        println!("Renewed the targets metadata, which was close to expiry.");
    }
    if report.renewed_snapshot {
        println!("Renewed the snapshot metadata.");
    }
    Ok(ExitCode::SUCCESS)
}
