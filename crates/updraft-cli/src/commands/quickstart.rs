//! `updraft quickstart`: the whole flow on a demo app, in a fresh folder, on
//! loopback: keys, a signed store, two releases of the Kuzflow demo (the
//! `kuzflow-demo` program built beside this one, or a shell-script stand-in
//! when it is not), a server, an install of 1.0.0 and its update to 1.1.0
//! with terminal progress (or the update dialog with `--gui`).

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use updraft_publisher::{ExpiryPolicy, KeygenOptions, PackOptions, PublishRequest};

use crate::output::{bytes, progress_bar, progress_fn};

const APP: &str = "kuzflow-demo";
const MARKER: &str = ".updraft-quickstart";

const STEPS: usize = 10;

/// The release the quickstart makes ready for the user to publish.
const NEXT_VERSION: &str = "1.2.0";

/// zstd level for the demo's packages: quick to pack (real releases use 19).
const LEVEL: i32 = 6;

/// Runs the flow in `dir`.
pub(crate) fn run(dir: &Path, gui: bool) -> anyhow::Result<ExitCode> {
    prepare_dir(dir)?;
    let gui = gui
        && {
            let display = updraft_gui::display_available();
            if !display {
                println!(
                    "(There is no display for the update dialog (neither DISPLAY nor WAYLAND_DISPLAY is set), so the update runs in the terminal.)"
                );
            }
            display
        };
    let demo = demo_program();
    if demo.is_none() {
        println!(
            "(The Kuzflow demo program is not built beside this updraft, so a shell-script stand-in is published; `cargo build --workspace` builds it.)"
        );
    }
    let (keys, store) = (dir.join("keys"), dir.join("store"));
    let now = OffsetDateTime::now_utc();
    let policy = ExpiryPolicy::default();
    // The demo is published for this machine so it can be installed here.
    let (platform, arch) = updraft_client::host();

    step(1, "updraft keygen --out keys");
    updraft_publisher::keys::generate(&keys, KeygenOptions::default())?;
    step(2, "updraft repo init --repo store --keys keys");
    updraft_publisher::init(&store, &keys, now, &policy)?;

    // 1.2.0 is made ready but not published: the closing lines say how to.
    for (version, note) in [
        ("1.0.0", "First release."),
        (
            "1.1.0",
            "Faster start-up and a new greeting.\n- **Resumable downloads** and automatic rollback.",
        ),
        (NEXT_VERSION, "Published by you, after the quickstart."),
    ] {
        write_demo_app(
            &dir.join(format!("dist/{version}")),
            version,
            demo.as_deref(),
        )?;
        let notes = dir.join(format!("dist/CHANGELOG-{version}.md"));
        fs::write(&notes, format!("- {note}\n"))
            .with_context(|| format!("Could not write `{}`", notes.display()))?;
    }
    for (index, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        let source = dir.join(format!("dist/{version}"));
        let notes = dir.join(format!("dist/CHANGELOG-{version}.md"));
        step(
            3 + index,
            &format!("updraft {}", publish_args(Path::new(""), version)),
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
            auto_halt: None,
            source,
            pack: PackOptions {
                level: LEVEL,
                ..PackOptions::default()
            },
            deltas: updraft_publisher::DeltaPolicy::default(),
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

    let runtime = crate::commands::runtime()?;
    let mut config = updraft_server::ServerConfig::new(store.clone());
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = runtime.block_on(updraft_server::Server::bind(config))?;
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = runtime.spawn(server.run(async {
        let _ = stopped.await;
    }));
    step(
        7,
        &format!(
            "updraft serve --repo store --listen {}",
            url.trim_start_matches("http://")
        ),
    );
    let mirror = store_url(&store)?;
    let outcome = install_and_update(&runtime, dir, &store, &url, &mirror, gui);
    let _ = stop.send(());
    runtime.block_on(running)??;
    outcome?;
    print_done(dir, &url, gui);
    Ok(ExitCode::SUCCESS)
}

/// The closing lines: where everything is, and commands that work exactly as
/// printed from the folder the quickstart ran in (`updraft` as it can be
/// run from there, the folder as it was given).
fn print_done(dir: &Path, url: &str, gui: bool) {
    let updraft = program();
    let at = shell_word(&dir.display().to_string());
    let listen = url.trim_start_matches("http://");

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
        "  app/data/              the app's own files (demo.log), kept across updates and rollbacks"
    );
    println!(
        "\nThe quickstart's server has stopped; the install also lists the store folder as a mirror, so it keeps checking."
    );
    if updraft != "updraft" {
        println!(
            "(`updraft` is not on PATH here, so these commands name it by its path; `cargo install --locked --path crates/updraft-cli` puts it there.)"
        );
    }
    println!("Next:");
    println!("  {updraft} status --dir {at}/app");
    println!("  {updraft} check --dir {at}/app      # 1.1.0 is the newest version");
    println!(
        "  {updraft} run --dir {at}/app        # the demo (a window when there is a display): Help > Check for updates"
    );
    println!(
        "To see an update arrive, publish 1.2.0 (made ready in dist/{NEXT_VERSION}) and update:"
    );
    println!("  {updraft} {}", publish_args(dir, NEXT_VERSION));
    println!("  {updraft} update --dir {at}/app --yes");
    println!("To serve the store at the address the install was given:");
    println!("  {updraft} serve --repo {at}/store --listen {listen}      # Ctrl-C stops it");
    if !gui {
        println!(
            "  {updraft} quickstart --dir {at} --gui       # all of it again, with the update dialog"
        );
    }
}

/// The arguments of `updraft publish` for a demo release, with paths under `dir`.
fn publish_args(dir: &Path, version: &str) -> String {
    let (platform, arch) = updraft_client::host();
    let at = |path: &str| shell_word(&dir.join(path).display().to_string());
    format!(
        "publish --repo {} --keys {} --app {APP} --version {version} --platform {platform} --arch {arch} --main bin/{APP} --notes {} --level {LEVEL} {}",
        at("store"),
        at("keys"),
        at(&format!("dist/CHANGELOG-{version}.md")),
        at(&format!("dist/{version}")),
    )
}

/// How to run this `updraft` from the current folder: `updraft` when that
/// name on PATH is this program, else its path (relative when it is below
/// the current folder, as `target/debug/updraft` is after the README's
/// first command).
fn program() -> String {
    let Ok(exe) = std::env::current_exe().and_then(fs::canonicalize) else {
        return "updraft".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|folder| fs::canonicalize(folder.join("updraft")).is_ok_and(|found| found == exe))
    });
    if on_path {
        return "updraft".into();
    }
    let relative = std::env::current_dir()
        .and_then(fs::canonicalize)
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf));
    match relative {
        Some(relative) => shell_word(&relative.display().to_string()),
        None => shell_word(&exe.display().to_string()),
    }
}

/// `text` as one word for a POSIX shell: as is when it is plain, else quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The store folder as a `file://` mirror URL (absolute, so it works from anywhere).
fn store_url(store: &Path) -> anyhow::Result<String> {
    let absolute = fs::canonicalize(store)
        .with_context(|| format!("Could not resolve `{}`", store.display()))?;
    Ok(format!("file://{}", absolute.display()))
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

fn install_and_update(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    store: &Path,
    url: &str,
    mirror: &str,
    gui: bool,
) -> anyhow::Result<()> {
    let (platform, arch) = updraft_client::host();
    let install_dir = dir.join("app");
    step(
        8,
        &format!(
            "updraft install --server {url} --mirror {} --app {APP} --version 1.0.0 --dir app --trusted-root store/metadata/root.json",
            shell_word(mirror)
        ),
    );
    let root = fs::read(store.join("metadata/root.json"))
        .with_context(|| "Could not read the store's root.json".to_owned())?;
    let version: updraft_protocol::Version = "1.0.0".parse()?;
    let request = updraft_client::InstallRequest {
        install_dir: &install_dir,
        base_url: url,
        mirrors: &[mirror.to_owned()],
        app: &APP.parse()?,
        channel: &updraft_protocol::Channel::stable(),
        trusted_root: &root,
        version: Some(&version),
        platform,
        arch,
        allow_insecure_http: false,
    };
    let bar = progress_bar("Installing 1.0.0");
    runtime.block_on(updraft_client::bootstrap(
        &request,
        progress_fn(bar.as_ref()),
    ))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let layout = updraft_installer::Layout::new(&install_dir);
    updraft_installer::install_updater(&layout, &std::env::current_exe()?)?;
    // The name the update dialog calls the demo ("What's new in Kuzflow").
    let mut config = updraft_installer::UpdateConfig::load(&layout.config())?.config;
    "Kuzflow".clone_into(&mut config.ui.display_name);
    config.save(&layout.config())?;
    run_demo(&install_dir)?;
    let gui_flag = if gui { "--gui" } else { "--yes" };
    step(9, &format!("updraft update --dir app {gui_flag}"));
    let manager = updraft_client::UpdateManager::builder(&install_dir).build()?;
    let updraft_client::CheckOutcome::Available(offer) = runtime.block_on(manager.check())? else {
        bail!("The quickstart server offered no update to 1.0.0");
    };
    println!(
        "   -> Version {} is available ({} update, {})",
        offer.version,
        offer.update_type,
        bytes(offer.file_size)
    );
    if gui {
        let handoff = crate::HandoffArgs::none();
        crate::commands::update::with_dialog(manager, &offer, &handoff, false)?;
        if !is_current(&install_dir, &offer.version) {
            println!("   -> not installed (the dialog was closed or the update declined)");
            return Ok(());
        }
    } else {
        // The library's workflow, rendered as a bar only: the steps below say the rest.
        let bar = progress_bar(&format!("Downloading {}", offer.version));
        let render = |event: &updraft_client::UpdateEvent| {
            if let (Some(bar), updraft_client::UpdateEvent::Progress(progress)) = (&bar, event) {
                bar.set_length(progress.total);
                bar.set_position(progress.downloaded);
            }
        };
        let finish = updraft_client::Finish::Now { restart: None };
        let outcome = runtime.block_on(manager.update(
            &offer,
            &finish,
            &render,
            &updraft_client::CancellationToken::new(),
        ));
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        outcome?;
        println!(
            "   -> downloaded and verified {}, unpacked beside 1.0.0, and switched `app/current` to versions/{}",
            bytes(offer.file_size),
            offer.version
        );
    }
    step(10, &format!("app/current/bin/{APP} --headless --dir app"));
    run_demo(&install_dir)?;
    Ok(())
}

fn is_current(install_dir: &Path, version: &str) -> bool {
    fs::read_link(install_dir.join("current"))
        .is_ok_and(|link| link == Path::new("versions").join(version))
}

/// The Kuzflow demo program built beside this `updraft`, if there is one.
fn demo_program() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let demo = exe
        .parent()?
        .join(format!("{APP}{}", std::env::consts::EXE_SUFFIX));
    demo.is_file().then_some(demo)
}

/// Runs the installed demo headless, as `updraft run` would (it confirms
/// its healthy start itself), and prints what it said.
fn run_demo(install_dir: &Path) -> anyhow::Result<()> {
    let program = install_dir.join(format!("current/bin/{APP}"));
    let output = std::process::Command::new(&program)
        .args(["--headless", "--dir"])
        .arg(install_dir)
        .env("UPDRAFT_DIR", install_dir)
        .output()
        .with_context(|| format!("Could not run `{}`", program.display()))?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("   -> {line}");
    }
    Ok(())
}

/// The demo's release tree: the demo program (or a stand-in script) and
/// `share/version.txt`, which is how the program knows its version.
fn write_demo_app(source: &Path, version: &str, demo: Option<&Path>) -> anyhow::Result<()> {
    let bin = source.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("Could not create `{}`", bin.display()))?;
    let main = bin.join(APP);
    match demo {
        Some(demo) => {
            fs::copy(demo, &main)
                .with_context(|| format!("Could not copy `{}`", demo.display()))?;
        }
        None => fs::write(
            &main,
            // It confirms its healthy start through the install's own updater.
            format!(
                "#!/bin/sh\necho \"Kuzflow demo {version} (stand-in)\"\n[ -n \"$UPDRAFT_DIR\" ] && \"$UPDRAFT_DIR/.updraft/bin/updraft\" confirm --dir \"$UPDRAFT_DIR\" >/dev/null\nexit 0\n"
            ),
        )
        .with_context(|| format!("Could not write `{}`", main.display()))?,
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&main, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("Could not make `{}` executable", main.display()))?;
    }
    let data = source.join("share");
    fs::create_dir_all(&data).with_context(|| format!("Could not create `{}`", data.display()))?;
    let version_file = data.join("version.txt");
    fs::write(&version_file, format!("{version}\n"))
        .with_context(|| format!("Could not write `{}`", version_file.display()))?;
    let readme = data.join("README.txt");
    fs::write(
        &readme,
        format!("{APP} {version}: a demo app published by `updraft quickstart`.\n"),
    )
    .with_context(|| format!("Could not write `{}`", readme.display()))?;
    Ok(())
}
