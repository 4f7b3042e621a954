//! `updraft quickstart`: the publishing flow end to end on a demo app, in a
//! fresh folder, with nothing but this binary.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, KeygenOptions, PackOptions, PublishRequest};

use crate::output::bytes;

const APP: &str = "kuzflow-demo";
const MARKER: &str = ".updraft-quickstart";

/// Runs keygen, init, two publishes, refresh and verify in `dir`.
pub(crate) fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    prepare_dir(dir)?;
    let (keys, store) = (dir.join("keys"), dir.join("store"));
    let now = OffsetDateTime::now_utc();
    let policy = ExpiryPolicy::default();

    step(1, "updraft keygen --out keys");
    updraft_publisher::keys::generate(&keys, KeygenOptions::default())?;
    step(2, "updraft repo init --repo store --keys keys");
    updraft_publisher::init(&store, &keys, now, &policy)?;

    for (index, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        let source = dir.join(format!("dist/{version}"));
        write_demo_app(&source, version)?;
        let notes = dir.join(format!("dist/CHANGELOG-{version}.md"));
        fs::write(
            &notes,
            format!(
                "## {APP} {version}\n\n- {}\n",
                if index == 0 {
                    "First release."
                } else {
                    "Faster start-up and a new greeting."
                }
            ),
        )
        .with_context(|| format!("Could not write `{}`", notes.display()))?;
        step(
            3 + index,
            &format!(
                "updraft publish --repo store --keys keys --app {APP} --version {version} --platform linux --arch x86_64 --main bin/{APP} --notes dist/CHANGELOG-{version}.md dist/{version}"
            ),
        );
        let request = PublishRequest {
            app: APP.parse()?,
            version: version.parse()?,
            platform: updraft_protocol::Platform::Linux,
            arch: updraft_protocol::Arch::X86_64,
            channel: updraft_protocol::Channel::stable(),
            main: format!("bin/{APP}").parse()?,
            notes: Some(notes),
            rollout_percent: 100,
            force: false,
            min_supported_version: None,
            source,
            pack: PackOptions::default(),
        };
        let report = updraft_publisher::publish(&store, &keys, &request, now, &policy)?;
        println!(
            "   -> {} ({}, sha256 {}...)",
            report.package,
            bytes(report.length),
            &report.sha256.to_hex()[..16]
        );
    }

    step(5, "updraft repo refresh --repo store --keys keys");
    let refreshed = updraft_publisher::refresh(&store, &keys, now, &policy)?;
    println!(
        "   -> timestamp version {} valid until {}",
        refreshed.timestamp_version, refreshed.timestamp_expires
    );
    step(6, "updraft repo verify --repo store");
    let report = updraft_publisher::verify(&store, now)?;
    if !report.problems.is_empty() {
        for problem in &report.problems {
            eprintln!("problem: {problem}");
        }
        bail!(
            "The quickstart store `{}` failed verification",
            store.display()
        );
    }
    println!(
        "   -> valid: {} target files and {} packages checked",
        report.targets_checked, report.packages_checked
    );

    println!("\nDone. Everything is in `{}`:", dir.display());
    println!("  keys/                  signing keys (private, 0600)");
    println!(
        "  store/metadata/        signed TUF metadata; ship store/metadata/root.json with your app"
    );
    println!("  store/releases/        packages and manifests, one folder per version");
    println!("  store/changelog/       release notes");
    println!(
        "Serve `store/` from any static host or CDN; clients verify every byte against the signed metadata."
    );
    Ok(ExitCode::SUCCESS)
}

/// Makes `dir` an empty folder. A folder left by an earlier quickstart (it
/// holds the marker file) is replaced; anything else that is not empty is
/// refused, so no user file is ever deleted.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let marker = dir.join(MARKER);
    if dir.exists() {
        let not_empty = fs::read_dir(dir)
            .with_context(|| format!("Could not list `{}`", dir.display()))?
            .next()
            .is_some();
        if not_empty && !marker.exists() {
            bail!(
                "The quickstart folder `{}` is not empty and was not made by `updraft quickstart`; pass --dir with a new folder",
                dir.display()
            );
        }
        if not_empty {
            println!("Replacing the previous quickstart in `{}`.", dir.display());
            fs::remove_dir_all(dir)
                .with_context(|| format!("Could not remove `{}`", dir.display()))?;
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("Could not create `{}`", dir.display()))?;
    fs::write(
        &marker,
        b"made by `updraft quickstart`; the next quickstart run replaces this folder\n",
    )
    .with_context(|| format!("Could not write `{}`", marker.display()))?;
    Ok(())
}

fn step(number: usize, command: &str) {
    println!("[{number}/6] {command}");
}

fn write_demo_app(source: &Path, version: &str) -> anyhow::Result<()> {
    let bin = source.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("Could not create `{}`", bin.display()))?;
    let main = bin.join(APP);
    fs::write(&main, format!("#!/bin/sh\necho \"{APP} {version}\"\n"))
        .with_context(|| format!("Could not write `{}`", main.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&main, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("Could not make `{}` executable", main.display()))?;
    }
    let data = source.join("share");
    fs::create_dir_all(&data).with_context(|| format!("Could not create `{}`", data.display()))?;
    let readme = data.join("README.txt");
    fs::write(
        &readme,
        format!("{APP} {version}: a demo app published by `updraft quickstart`.\n"),
    )
    .with_context(|| format!("Could not write `{}`", readme.display()))?;
    Ok(())
}
