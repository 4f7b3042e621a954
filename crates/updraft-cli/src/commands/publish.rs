use std::process::ExitCode;

use time::OffsetDateTime;
use updraft_protocol::AutoHalt;
use updraft_publisher::{DeltaPolicy, ExpiryPolicy, PackOptions, PublishRequest};

use crate::PublishArgs;
use crate::output::{bytes, interactive};

/// `updraft publish`.
pub(crate) fn run(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let request = PublishRequest {
        app: args.app.clone(),
        version: args.release_version.clone(),
        platform: args.platform,
        arch: args.arch,
        channel: args.channel.clone(),
        main: args.main.clone(),
        notes: args.notes.clone(),
        rollout_percent: args.rollout,
        force: args.force,
        min_supported_version: args.min_supported.clone(),
        auto_halt: args
            .halt_failure_rate
            .zip(args.halt_min_reports)
            .map(|(rate, reports)| AutoHalt {
                max_failure_basis_points: rate,
                min_reports: reports,
            }),
        source: args.source.clone(),
        pack: PackOptions {
            level: args.level,
            ..PackOptions::default()
        },
        deltas: if args.no_delta {
            DeltaPolicy::None
        } else if args.delta_from.is_empty() {
            DeltaPolicy::default()
        } else {
            DeltaPolicy::From(args.delta_from.clone())
        },
    };
    if interactive() {
        eprintln!(
            "Packing `{}` (zstd level {})...",
            args.source.display(),
            args.level
        );
    }
    let location = updraft_publisher::Location::open(&args.repo)?;
    let report = match (&args.export_unsigned, &location) {
        (Some(out), updraft_publisher::Location::Local(store)) => {
            updraft_publisher::publish_unsigned(
                store,
                &args.keys,
                &request,
                out,
                OffsetDateTime::now_utc(),
                &ExpiryPolicy::default(),
            )?
        }
        (Some(_), updraft_publisher::Location::S3(bucket)) => {
            return Err(updraft_publisher::Error::S3Config(format!(
                "`publish --export-unsigned` works on a store in a folder, not on `{bucket}`: publish into a local copy, or sign with the targets key"
            ))
            .into());
        }
        (None, location) => location.publish(
            &args.keys,
            &request,
            args.role.as_deref(),
            OffsetDateTime::now_utc(),
            &ExpiryPolicy::default(),
        )?,
    };
    for change in &report.mode_changes {
        eprintln!("warning: {change}");
    }
    println!(
        "Published {} {} for {}/{} on channel {}: {} files ({}) packed into {} ({}).",
        args.app,
        args.release_version,
        args.platform,
        args.arch,
        args.channel,
        report.file_count,
        bytes(report.installed_size),
        report.package,
        bytes(report.length)
    );
    for patch in &report.patches {
        println!(
            "Delta from {}: {} ({}).",
            patch.from,
            patch.path,
            bytes(patch.length)
        );
    }
    for skipped in &report.skipped_patches {
        eprintln!("note: no delta from {}: {}", skipped.from, skipped.reason);
    }
    if let Some(out) = &args.export_unsigned {
        println!(
            "sha256 {}; targets version {} is in `{}`, unsigned: clients see the release once it is signed (`updraft repo sign --file {} --key targets.key`) and imported (`updraft repo import-signed`).",
            report.sha256,
            report.targets_version,
            out.display(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "sha256 {}; {} metadata is now version {}.",
        report.sha256,
        args.role.as_deref().unwrap_or("targets"),
        report.targets_version
    );
    Ok(ExitCode::SUCCESS)
}
