use std::path::Path;
use std::process::ExitCode;

use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, Location};

use crate::output::EXIT_VERIFICATION;

/// `updraft repo init`.
pub(crate) fn init(repo: &str, keys: &Path) -> anyhow::Result<ExitCode> {
    let report =
        Location::open(repo)?.init(keys, OffsetDateTime::now_utc(), &ExpiryPolicy::default())?;
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
pub(crate) fn verify(repo: &str, json: bool) -> anyhow::Result<ExitCode> {
    let location = Location::open(repo)?;
    let report = location.verify(OffsetDateTime::now_utc())?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
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
            "stale_views": report.stale_views.iter().map(|p| serde_json::json!({"path": p.path, "message": p.message})).collect::<Vec<_>>(),
            "orphans": report.orphans.iter().map(|(path, size, modified)| serde_json::json!({"path": path, "size": size, "age_seconds": now - modified})).collect::<Vec<_>>(),
        });
        println!("{value}");
    } else if report.problems.is_empty() {
        print_notes(&report, now);
        println!(
            "`{location}` is valid: root version {}, {} target files and {} packages checked.",
            report.root_version, report.targets_checked, report.packages_checked
        );
    } else {
        for problem in &report.problems {
            eprintln!("problem: {problem}");
        }
        print_notes(&report, now);
        eprintln!(
            "error: `{location}` failed verification with {} problem(s).",
            report.problems.len()
        );
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VERIFICATION)
    })
}

fn print_notes(report: &updraft_publisher::VerifyReport, now: i64) {
    for view in &report.stale_views {
        println!(
            "stale view: {view} (an interrupted publish; the next publish or `updraft repo refresh` rewrites it)"
        );
    }
    print_orphans(&report.orphans, now);
}

fn print_orphans(orphans: &[(String, u64, i64)], now: i64) {
    for (path, size, modified) in orphans {
        println!(
            "orphan: `{path}` ({}, {} old): no signed metadata refers to it (an interrupted publish left it, or one is uploading it now); `updraft repo gc` removes it once older than its grace period",
            crate::output::bytes(*size),
            age(now - modified)
        );
    }
}

fn age(seconds: i64) -> String {
    match seconds {
        ..120 => format!("{} s", seconds.max(0)),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

/// `updraft repo gc`.
pub(crate) fn gc(
    repo: &str,
    grace: std::time::Duration,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let location = Location::open(repo)?;
    let now = OffsetDateTime::now_utc();
    if dry_run {
        let report = location.verify(now)?;
        let cutoff = now.unix_timestamp() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        for (path, size, modified) in &report.orphans {
            let verdict = if *modified <= cutoff {
                "would remove"
            } else {
                "would keep (younger than --grace)"
            };
            println!("{verdict}: `{path}` ({})", crate::output::bytes(*size));
        }
        println!(
            "{} orphan(s) in `{location}`; nothing removed (--dry-run).",
            report.orphans.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = location.gc(grace, now)?;
    for info in &report.removed {
        println!(
            "removed: `{}` ({})",
            info.relative,
            crate::output::bytes(info.size)
        );
    }
    for info in &report.kept {
        println!(
            "kept: `{}` (younger than --grace: a publish may still be uploading it)",
            info.relative
        );
    }
    println!(
        "Removed {} orphan(s) from `{location}`, kept {} younger than the grace period.",
        report.removed.len(),
        report.kept.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo refresh`.
pub(crate) fn refresh(repo: &str, keys: &Path) -> anyhow::Result<ExitCode> {
    let report =
        Location::open(repo)?.refresh(keys, OffsetDateTime::now_utc(), &ExpiryPolicy::default())?;
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

/// `updraft repo delegate`.
pub(crate) fn delegate(
    repo: &str,
    keys: &Path,
    name: String,
    paths: Vec<String>,
    key_files: &[std::path::PathBuf],
    threshold: u64,
    terminating: bool,
) -> anyhow::Result<ExitCode> {
    let mut public = Vec::new();
    for path in key_files {
        public.push(updraft_publisher::keys::read_public_key(path)?);
    }
    let request = updraft_publisher::DelegationRequest {
        name,
        paths,
        keys: public,
        threshold,
        terminating,
    };
    let report = Location::open(repo)?.delegate(
        keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    println!(
        "{} the role `{}` for {} (key {}, threshold {threshold}{}); targets metadata is now version {}.",
        if report.replaced {
            "Replaced"
        } else {
            "Delegated"
        },
        request.name,
        request.paths.join(" "),
        &report.keyid[..16],
        if terminating { ", terminating" } else { "" },
        report.targets_version
    );
    println!(
        "Publish into it with `updraft publish --role {} --keys DIR` where DIR holds {}.key, snapshot.key and timestamp.key.",
        request.name, request.name
    );
    Ok(ExitCode::SUCCESS)
}

fn role_name(text: &str) -> updraft_protocol::tuf::RoleName {
    use updraft_protocol::tuf::RoleName;
    RoleName::ALL
        .into_iter()
        .find(|role| role.as_str() == text)
        .unwrap_or(RoleName::Targets)
}

fn print_rotation(report: &updraft_publisher::RotateReport) {
    let changed: Vec<&str> = report.changed_roles.iter().map(|r| r.as_str()).collect();
    println!(
        "Wrote root version {} (valid until {}); new keys for: {}.",
        report.root_version,
        report.root_expires,
        if changed.is_empty() {
            "none (renewed)".to_owned()
        } else {
            changed.join(", ")
        }
    );
    if !report.resigned.is_empty() {
        println!("Re-signed: {}.", report.resigned.join(", "));
    }
    println!(
        "Clients walk to it from the root they trust; ship `metadata/root.json` with new installs."
    );
}

/// `updraft repo rotate-root`.
/// Key rotation and offline signing work on a store in a folder only.
fn local_only(repo: &Path, command: &str) -> anyhow::Result<()> {
    if repo.to_string_lossy().starts_with("s3://") {
        return Err(updraft_publisher::Error::S3Config(format!(
            "`updraft repo {command}` works on a store in a folder, not on `{}` yet: run it on a local copy of the store's metadata",
            repo.display()
        ))
        .into());
    }
    Ok(())
}

pub(crate) fn rotate_root(repo: &Path, keys: &Path, new_keys: &Path) -> anyhow::Result<ExitCode> {
    local_only(repo, "rotate-root")?;
    let report = updraft_publisher::rotate_root(
        repo,
        keys,
        new_keys,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    print_rotation(&report);
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo rotate --role R`.
pub(crate) fn rotate(
    repo: &Path,
    role: &str,
    keys: &Path,
    new_key: &Path,
) -> anyhow::Result<ExitCode> {
    local_only(repo, "rotate")?;
    let role = role_name(role);
    let report = updraft_publisher::rotate_role(
        repo,
        keys,
        role,
        new_key,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    print_rotation(&report);
    println!(
        "The old {role} key is no longer accepted; sign with `{}` from now on (put it where your {role}.key was).",
        new_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo export-unsigned`.
pub(crate) fn export_unsigned(
    repo: &Path,
    role: &str,
    out: &Path,
    new_keys: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    local_only(repo, "export-unsigned")?;
    let report = updraft_publisher::export_unsigned(
        repo,
        role_name(role),
        new_keys,
        out,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    println!(
        "Wrote {} version {} (valid until {}) to `{}`, unsigned; it needs {}.",
        report.role,
        report.version,
        report.expires,
        out.display(),
        report.needs
    );
    println!(
        "On each signing machine: `updraft repo sign --file {} --key KEY`; then `updraft repo import-signed --repo {} --file {} --keys ONLINE_KEYS`.",
        out.display(),
        repo.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo sign`.
pub(crate) fn sign(file: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let report = updraft_publisher::sign(file, key)?;
    println!(
        "Signed {} version {} (valid until {}) with key {} in `{}`.",
        report.role,
        report.version,
        report.expires,
        &report.keyid[..16],
        file.display()
    );
    if report.role == "root" {
        if report.changes.is_empty() {
            println!("  It renews the root with the same keys.");
        }
        for change in &report.changes {
            println!("  It changes the {change}");
        }
    }
    for line in &report.progress {
        println!("  {line}");
    }
    if report.complete {
        println!("Every threshold is met: import it with `updraft repo import-signed`.");
    } else {
        println!("More signatures are needed: run `updraft repo sign` with another key.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft repo import-signed`.
pub(crate) fn import_signed(
    repo: &Path,
    file: &Path,
    keys: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    local_only(repo, "import-signed")?;
    let report = updraft_publisher::import_signed(
        repo,
        file,
        keys,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )?;
    println!(
        "Imported {} version {} into `{}`.",
        report.role,
        report.version,
        repo.display()
    );
    if !report.resigned.is_empty() {
        println!("Re-signed: {}.", report.resigned.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
