//! `updraft quickstart`: the whole flow on a demo app, in a fresh folder, on
//! loopback, with nothing but this binary: keys, a signed store, two
//! releases, a server, an install of 1.0.0 and its update to 1.1.0.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, KeygenOptions, PackOptions, PublishRequest};

use crate::output::bytes;

const APP: &str = "kuzflow-demo";
const MARKER: &str = ".updraft-quickstart";

const STEPS: usize = 10;

/// Runs the flow in `dir`.
pub(crate) fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    prepare_dir(dir)?;
    let (keys, store) = (dir.join("keys"), dir.join("store"));
    let now = OffsetDateTime::now_utc();
    let policy = ExpiryPolicy::default();
    // The demo is published for this machine so it can be installed here.
    let (platform, arch) = updraft_client::host();

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
                "updraft publish --repo store --keys keys --app {APP} --version {version} --platform {platform} --arch {arch} --main bin/{APP} --notes dist/CHANGELOG-{version}.md dist/{version}"
            ),
        );
        let request = PublishRequest {
            app: APP.parse()?,
            version: version.parse()?,
            platform,
            arch,
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve_install_update(dir, &store))?;

    println!("\nDone. Everything is in `{}`:", dir.display());
    println!("  keys/                  signing keys (private, 0600)");
    println!(
        "  store/metadata/        signed TUF metadata; ship store/metadata/root.json with your app"
    );
    println!("  store/releases/        packages and manifests, one folder per version");
    println!(
        "  app/                   the demo install: current -> versions/1.1.0, and 1.0.0 kept for rollback"
    );
    println!(
        "Try `updraft status --dir {}/app`, or serve the store yourself with `updraft serve --repo {}/store`.",
        dir.display(),
        dir.display()
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
    println!("[{number}/{STEPS}] {command}");
}

/// Serves the store on loopback, installs 1.0.0, updates it to 1.1.0 and
/// runs the demo before and after.
async fn serve_install_update(dir: &Path, store: &Path) -> anyhow::Result<()> {
    let mut config = updraft_server::ServerConfig::new(store.to_path_buf());
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = updraft_server::Server::bind(config).await?;
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    step(
        7,
        &format!(
            "updraft serve --repo store --listen {}",
            url.trim_start_matches("http://")
        ),
    );
    let outcome = install_and_update(dir, store, &url).await;
    let _ = stop.send(());
    running.await??;
    outcome
}

async fn install_and_update(dir: &Path, store: &Path, url: &str) -> anyhow::Result<()> {
    let (platform, arch) = updraft_client::host();
    let install_dir = dir.join("app");
    step(
        8,
        &format!(
            "updraft install --server {url} --app {APP} --version 1.0.0 --dir app --trusted-root store/metadata/root.json"
        ),
    );
    let root = fs::read(store.join("metadata/root.json"))
        .with_context(|| "Could not read the store's root.json".to_owned())?;
    let version: updraft_protocol::Version = "1.0.0".parse()?;
    let request = updraft_client::InstallRequest {
        install_dir: &install_dir,
        base_url: url,
        app: &APP.parse()?,
        channel: &updraft_protocol::Channel::stable(),
        trusted_root: &root,
        version: Some(&version),
        platform,
        arch,
    };
    updraft_client::bootstrap(&request, None).await?;
    println!("   -> {}", run_demo(&install_dir)?);
    step(9, "updraft update --dir app --yes");
    let manager = updraft_client::UpdateManager::builder(&install_dir).build()?;
    let updraft_client::CheckOutcome::Available(offer) = manager.check().await? else {
        bail!("The quickstart server offered no update to 1.0.0");
    };
    println!(
        "   -> Version {} is available ({} update): {}",
        offer.version,
        offer.update_type,
        offer.changelog.lines().last().unwrap_or("")
    );
    let downloaded = manager
        .download(&offer, None, &updraft_client::CancellationToken::new())
        .await?;
    manager.install(&offer, &downloaded).await?;
    manager.report(&offer.version, "installed", None).await;
    println!(
        "   -> downloaded and verified {} and switched `app/current` to versions/{}",
        bytes(offer.file_size),
        offer.version
    );
    step(10, "app/current/bin/kuzflow-demo");
    println!("   -> {}", run_demo(&install_dir)?);
    Ok(())
}

fn run_demo(install_dir: &Path) -> anyhow::Result<String> {
    let program = install_dir.join(format!("current/bin/{APP}"));
    let output = std::process::Command::new("sh")
        .arg(&program)
        .output()
        .with_context(|| format!("Could not run `{}`", program.display()))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
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
