//! `updraft`: publish, serve and install signed updates for desktop apps.
//!
//! This file only parses arguments and maps errors to exit codes; each
//! command lives in `commands/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use updraft_protocol::{AppId, Arch, Channel, Platform, TargetPath, Version};

mod commands;
mod output;

/// Signed, crash-safe online updates for desktop apps.
#[derive(Debug, Parser)]
#[command(name = "updraft", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole publishing flow on a demo app in a fresh folder.
    Quickstart(QuickstartArgs),
    /// Create a new set of signing keys.
    Keygen(KeygenArgs),
    /// Create, verify or refresh a release store.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Pack, sign and add a release to a store.
    Publish(Box<PublishArgs>),
    /// Change a published release's staged rollout in the signed metadata.
    Rollout(RolloutArgs),
    /// Serve a store: the update API, the signed files, admin and metrics.
    Serve(Box<ServeArgs>),
    /// Create a fresh install of an app from an update server.
    Install(InstallArgs),
    /// Check an install for an update.
    Check(CheckArgs),
    /// Check, download, verify and install an update.
    Update(UpdateArgs),
    /// Switch to a prepared update once the app has exited (the updater's hand-off entry point).
    Apply(ApplyArgs),
    /// Show an install's versions and state.
    Status(DirArgs),
    /// Launch the installed version (rolling back a new version that fails its health check).
    Run(RunArgs),
    /// Confirm that the new version started healthy.
    Confirm(PlainDirArgs),
    /// Return to the previous version.
    Rollback(PlainDirArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
    /// Arguments for the app.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct PlainDirArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// Update server (or static store) URL.
    #[arg(long, value_name = "URL")]
    server: String,
    /// Another copy of the same store (an http(s):// server or a file://
    /// folder), tried when the server cannot be reached; repeatable
    /// (`update_server.mirrors`).
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
    /// Application id.
    #[arg(long)]
    app: AppId,
    /// Folder to install into (missing or empty).
    #[arg(long)]
    dir: PathBuf,
    /// The root metadata to trust (the store's `metadata/root.json`, shipped with the app).
    #[arg(long, value_name = "ROOT_JSON")]
    trusted_root: PathBuf,
    /// Release channel.
    #[arg(long, default_value = "stable")]
    channel: Channel,
    /// Version to install (default: the newest offered).
    #[arg(long = "version", value_name = "VER")]
    release_version: Option<Version>,
    /// Accept a plain http:// server that is not on loopback (sets
    /// `update_server.allow_insecure_http`): anyone on the way sees which app
    /// and version this is.
    #[arg(long)]
    allow_insecure_http: bool,
}

#[derive(Debug, Args)]
struct DirArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Show the update dialog when an update is available (and not skipped or snoozed).
    #[arg(long)]
    gui: bool,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
    /// Install without asking.
    #[arg(long)]
    yes: bool,
    /// Print JSON lines: progress events, then the result.
    #[arg(long)]
    json: bool,
    /// Ask with the update dialog (Install now / Remind me later / Skip this version) and show its progress.
    #[arg(long, conflicts_with = "yes")]
    gui: bool,
    #[command(flatten)]
    handoff: HandoffArgs,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The install folder.
    #[arg(long)]
    dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    handoff: HandoffArgs,
}

/// How the updater waits for a running app and restarts it.
#[derive(Debug, Args)]
struct HandoffArgs {
    /// Prepare the update now, then wait for this process (the running app) to exit before switching.
    #[arg(long, value_name = "PID")]
    wait_pid: Option<u32>,
    /// How long to wait for it; the update then stays prepared for the next `updraft run`.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    wait_timeout: u64,
    /// Restart the app after the switch (when `install_settings.auto_restart` is on).
    #[arg(long)]
    restart: bool,
    /// Arguments for the restarted app.
    #[arg(last = true)]
    args: Vec<String>,
}

impl HandoffArgs {
    /// No running app: switch at once, restart nothing.
    fn none() -> Self {
        Self {
            wait_pid: None,
            wait_timeout: 60,
            restart: false,
            args: Vec::new(),
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The store: a folder, or `s3://BUCKET/PREFIX` (endpoint and credentials
    /// from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY;
    /// then --database is needed).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    repo: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Server state (statistics, overrides, audit): `sqlite://PATH` (default:
    /// REPO/.updraft/server.sqlite) or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (several servers may share one). Prefer the environment variable: a
    /// command line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "URL",
        env = "UPDRAFT_DATABASE",
        hide_env_values = true
    )]
    database: Option<String>,
    /// File with admin tokens (one per line, optionally `name:token`); enables /api/admin.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// File of `key_id:secret` HMAC-SHA256 keys (mode 0600): admin requests and
    /// install reports may then be signed instead (docs/server.md).
    #[arg(long, value_name = "FILE")]
    signing_key_file: Option<PathBuf>,
    /// Refuse install reports that are not signed (needs --signing-key-file).
    #[arg(long, requires = "signing_key_file")]
    require_signed_reports: bool,
    /// Base URL clients reach this server at (behind a proxy or CDN).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Base URL of a CDN or static host serving the same store (the bucket
    /// behind it): downloads and store files are redirected there. Clients
    /// verify every byte, so that host needs no trust.
    #[arg(long, value_name = "URL")]
    files_url: Option<String>,
    /// Keys folder holding `timestamp.key`: the server re-signs the timestamp before it expires.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// PEM certificate chain for built-in TLS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for built-in TLS (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Requests handled at once.
    #[arg(long, default_value_t = 1024)]
    max_concurrency: usize,
    /// Connections open at once; more are refused with 503.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Connections open at once from one IP address (raise it behind a reverse proxy).
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,
    /// Seconds a connection has to send a complete request head (idle keep-alive connections too).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=60))]
    header_timeout: u64,
}

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).multiple(true).args(["percent", "halt", "resume", "yank", "halt_failure_rate", "no_auto_halt"])))]
#[command(group(clap::ArgGroup::new("state").multiple(false).args(["halt", "resume", "yank"])))]
#[allow(clippy::struct_excessive_bools)] // clap flags, one per action
struct RolloutArgs {
    /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/deploy-s3.md).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    repo: String,
    /// The keys folder (targets, snapshot and timestamp keys).
    #[arg(long)]
    keys: PathBuf,
    /// Application id.
    #[arg(long)]
    app: AppId,
    /// The published version.
    #[arg(long = "version", value_name = "VER")]
    release_version: Version,
    /// Offer the release to this share of installs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    percent: Option<u8>,
    /// Pause the rollout: nobody is offered the release until --resume.
    #[arg(long)]
    halt: bool,
    /// Resume a halted rollout.
    #[arg(long)]
    resume: bool,
    /// Withdraw the release; it is never offered again.
    #[arg(long)]
    yank: bool,
    /// Let the server halt the rollout once more than R % of install reports
    /// are `failed` or `rolled_back` (with --halt-min-reports).
    #[arg(long, value_name = "R", requires = "halt_min_reports", conflicts_with = "no_auto_halt", value_parser = parse_failure_rate)]
    halt_failure_rate: Option<u32>,
    /// Install reports needed before --halt-failure-rate applies.
    #[arg(long, value_name = "N", requires = "halt_failure_rate", value_parser = clap::value_parser!(u64).range(1..))]
    halt_min_reports: Option<u64>,
    /// Remove the rule that halts the rollout by itself.
    #[arg(long)]
    no_auto_halt: bool,
}

/// `--grace`: a number of seconds, minutes, hours or days.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}`: use a number followed by s, m, h or d, such as `24h`"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: use a number followed by s, m, h or d, such as `24h`"))?;
    Ok(std::time::Duration::from_secs(
        number.saturating_mul(seconds_per),
    ))
}

/// `--halt-failure-rate`: a percentage, kept in basis points.
fn parse_failure_rate(text: &str) -> Result<u32, String> {
    updraft_protocol::AutoHalt::parse_percent(text).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
struct QuickstartArgs {
    /// Folder to create the demo in (must be missing or empty).
    #[arg(long, default_value = "updraft-quickstart")]
    dir: PathBuf,
    /// Show the update dialog for the update step (needs a display).
    #[arg(long)]
    gui: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Folder for the key files (created 0700; existing keys are never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Number of root keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    root_keys: u32,
    /// How many root keys must sign a new root.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    root_threshold: u32,
    /// Create only one key, `OUT/ROLE.key`, for a delegated role (`repo delegate --key`),
    /// or a new targets, snapshot or timestamp key for `repo rotate`.
    #[arg(long)]
    role: Option<String>,
    /// Signature scheme of the new keys: ed25519, ecdsa-sha2-nistp256,
    /// rsassa-pss-sha256 or rsa-pkcs1v15-sha256.
    #[arg(long, default_value = "ed25519")]
    scheme: updraft_protocol::tuf::Scheme,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Create an empty signed store.
    Init {
        /// The store: a missing or empty folder, or `s3://BUCKET/PREFIX` with no store in it.
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        repo: String,
        /// The keys folder made by `updraft keygen`.
        #[arg(long)]
        keys: PathBuf,
    },
    /// Check every signature, hash and length in a store.
    Verify {
        /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/deploy-s3.md).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        repo: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-sign the short-lived timestamp (run it from cron).
    Refresh {
        /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/deploy-s3.md).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        repo: String,
        /// The keys folder (only the timestamp key is needed, and the snapshot
        /// or targets key when those are close to expiry).
        #[arg(long)]
        keys: PathBuf,
    },
    /// Remove the orphans of an S3 store: objects that no signed metadata
    /// refers to (an interrupted publish left them), once older than --grace.
    ///
    /// Orphans younger than the grace period are kept: a publisher running at
    /// the same time uploads its objects before it signs them, and they look
    /// like orphans until then. Make the grace period longer than your
    /// longest publish.
    Gc {
        /// The store (`s3://BUCKET/PREFIX`).
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        repo: String,
        /// Keep orphans younger than this: `90s`, `30m`, `24h`, `7d` (seconds without a unit).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delegate target paths to another key (a CI key for a beta channel, say).
    Delegate {
        /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/deploy-s3.md).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        repo: String,
        /// The keys folder (targets, snapshot and timestamp keys).
        #[arg(long)]
        keys: PathBuf,
        /// The delegated role's name (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        name: String,
        /// Shell-style patterns of the paths it may sign (`*` does not cross `/`),
        /// such as `releases/*-beta*/*`.
        #[arg(long, num_args = 1.., required = true)]
        paths: Vec<String>,
        /// A key file whose public key signs for the role (repeatable).
        #[arg(long = "key", required = true)]
        key_files: Vec<PathBuf>,
        /// How many of those keys must sign.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// Stop the search at this role for the paths it matches.
        #[arg(long)]
        terminating: bool,
    },
    /// Write root N+1 with new root keys and/or new online keys, signed by the
    /// old root threshold and the new one; re-signs what the new keys must sign.
    RotateRoot {
        /// The store folder.
        #[arg(long)]
        repo: PathBuf,
        /// The folder with the current root keys (`root-N.key`, enough for
        /// the current threshold).
        #[arg(long, value_name = "OLD_KEYS_DIR")]
        keys: PathBuf,
        /// A folder made by `updraft keygen`: its `root-N.key` files (with
        /// the threshold of its keyset.json) replace the root keys, and each
        /// `targets.key`, `snapshot.key`, `timestamp.key` it holds replaces
        /// that role's key. Remove the files of keys you keep.
        #[arg(long, value_name = "NEW_KEYS_DIR")]
        new_keys: PathBuf,
    },
    /// Replace the key of one online role (the old key is revoked) and re-sign
    /// its metadata, so the store is consistent after one command.
    Rotate {
        /// The store folder.
        #[arg(long)]
        repo: PathBuf,
        /// The role whose key changes.
        #[arg(long, value_parser = ["targets", "snapshot", "timestamp"])]
        role: String,
        /// The keys folder: root keys (enough for the threshold) and the
        /// other online keys the re-signing needs.
        #[arg(long, value_name = "ROOT_KEYS_DIR")]
        keys: PathBuf,
        /// The new key file (`updraft keygen --out DIR --role ROLE`).
        #[arg(long, value_name = "NEWKEY")]
        new_key: PathBuf,
    },
    /// Write the next root or targets version, unsigned, for `repo sign` on
    /// offline machines.
    ExportUnsigned {
        /// The store folder.
        #[arg(long)]
        repo: PathBuf,
        /// `root` (renewed, or rotated with --new-keys) or `targets` (renewed).
        #[arg(long, value_parser = ["root", "targets"])]
        role: String,
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// With `--role root`: a keys folder whose public keys the new root
        /// lists, as `repo rotate-root --new-keys` (public key files suffice).
        #[arg(long, value_name = "NEW_KEYS_DIR")]
        new_keys: Option<PathBuf>,
    },
    /// Add one key's signature to an exported file (on the offline machine;
    /// no store needed).
    Sign {
        /// The file written by `repo export-unsigned`, updated in place.
        #[arg(long)]
        file: PathBuf,
        /// The private key file (any scheme `keygen` writes).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a signed file against the store's thresholds and install it.
    ImportSigned {
        /// The store folder.
        #[arg(long)]
        repo: PathBuf,
        /// The file `repo sign` completed.
        #[arg(long)]
        file: PathBuf,
        /// Online keys to re-sign snapshot and timestamp (and the roles a new
        /// root gives new keys).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/deploy-s3.md).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    repo: String,
    /// The keys folder (targets, snapshot and timestamp keys; with `--role`,
    /// that role's key instead of the targets key).
    #[arg(long)]
    keys: PathBuf,
    /// Sign the release into this delegated role (`repo delegate`) with
    /// `KEYS/ROLE.key`; the targets key is not needed.
    #[arg(long)]
    role: Option<String>,
    /// Keep the targets key offline: add the release's files, and write the
    /// next targets version, unsigned, to FILE for `repo sign` and `repo
    /// import-signed` (KEYS needs only snapshot.key and timestamp.key then).
    #[arg(long, value_name = "FILE", conflicts_with = "role")]
    export_unsigned: Option<PathBuf>,
    /// Application id, such as `kuzflow`.
    #[arg(long)]
    app: AppId,
    /// SemVer 2.0 version, such as `1.1.0` or `1.2.0-beta.1`.
    #[arg(long = "version", value_name = "VER")]
    release_version: Version,
    /// Operating system: linux, windows or macos (aliases such as darwin, win32 work).
    #[arg(long)]
    platform: Platform,
    /// CPU architecture: x86_64, aarch64 or x86 (aliases such as amd64, arm64 work).
    #[arg(long)]
    arch: Arch,
    /// The main program, relative to SOURCE_DIR.
    #[arg(long, value_name = "REL_PATH")]
    main: TargetPath,
    /// Release channel.
    #[arg(long, default_value = "stable")]
    channel: Channel,
    /// Release notes (Markdown file).
    #[arg(long, value_name = "NOTES.md")]
    notes: Option<PathBuf>,
    /// Share of installs offered this release (0–100).
    #[arg(long, value_name = "PERCENT", default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    rollout: u8,
    /// Make the update mandatory.
    #[arg(long)]
    force: bool,
    /// Installs older than this version must update.
    #[arg(long, value_name = "VER")]
    min_supported: Option<Version>,
    /// Let the server halt the rollout once more than R % of install reports
    /// are `failed` or `rolled_back` (with --halt-min-reports).
    #[arg(long, value_name = "R", requires = "halt_min_reports", value_parser = parse_failure_rate)]
    halt_failure_rate: Option<u32>,
    /// Install reports needed before --halt-failure-rate applies.
    #[arg(long, value_name = "N", requires = "halt_failure_rate", value_parser = clap::value_parser!(u64).range(1..))]
    halt_min_reports: Option<u64>,
    /// zstd compression level for the package (1–22).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,
    /// Compression threads; more is faster but memory then grows with the app.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Build a delta package from this earlier version (repeatable; default:
    /// the last 3 of the same app, channel, platform and arch).
    #[arg(long = "delta-from", value_name = "VER", conflicts_with = "no_delta")]
    delta_from: Vec<Version>,
    /// Build no delta packages.
    #[arg(long)]
    no_delta: bool,
    /// The folder to publish.
    #[arg(value_name = "SOURCE_DIR")]
    source: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its own logging; every other command prints warnings.
    if !matches!(cli.command, Command::Serve(_)) {
        output::show_warnings();
    }
    let result = match cli.command {
        Command::Quickstart(args) => commands::quickstart::run(&args.dir, args.gui),
        Command::Keygen(args) => match &args.role {
            Some(role) => commands::keygen::one(&args.out, role, args.scheme),
            None => {
                commands::keygen::run(&args.out, args.root_keys, args.root_threshold, args.scheme)
            }
        },
        Command::Repo(RepoCommand::Init { repo, keys }) => commands::repo::init(&repo, &keys),
        Command::Repo(RepoCommand::Verify { repo, json }) => commands::repo::verify(&repo, json),
        Command::Repo(RepoCommand::Refresh { repo, keys }) => commands::repo::refresh(&repo, &keys),
        Command::Repo(RepoCommand::Gc {
            repo,
            grace,
            dry_run,
        }) => commands::repo::gc(&repo, grace, dry_run),
        Command::Repo(RepoCommand::Delegate {
            repo,
            keys,
            name,
            paths,
            key_files,
            threshold,
            terminating,
        }) => commands::repo::delegate(
            &repo,
            &keys,
            name,
            paths,
            &key_files,
            threshold,
            terminating,
        ),
        Command::Repo(RepoCommand::RotateRoot {
            repo,
            keys,
            new_keys,
        }) => commands::repo::rotate_root(&repo, &keys, &new_keys),
        Command::Repo(RepoCommand::Rotate {
            repo,
            role,
            keys,
            new_key,
        }) => commands::repo::rotate(&repo, &role, &keys, &new_key),
        Command::Repo(RepoCommand::ExportUnsigned {
            repo,
            role,
            out,
            new_keys,
        }) => commands::repo::export_unsigned(&repo, &role, &out, new_keys.as_deref()),
        Command::Repo(RepoCommand::Sign { file, key }) => commands::repo::sign(&file, &key),
        Command::Repo(RepoCommand::ImportSigned { repo, file, keys }) => {
            commands::repo::import_signed(&repo, &file, keys.as_deref())
        }
        Command::Publish(args) => commands::publish::run(&args),
        Command::Rollout(args) => commands::rollout::run(&args),
        Command::Serve(args) => commands::serve::run(*args),
        Command::Install(args) => commands::install::run(&args),
        Command::Check(args) => commands::check::run(&args),
        Command::Update(args) => commands::update::run(&args),
        Command::Apply(args) => commands::apply::run(&args),
        Command::Status(args) => commands::status::run(&args.dir, args.json),
        Command::Run(args) => commands::health::run(&args.dir, &args.args),
        Command::Confirm(args) => commands::health::confirm(&args.dir),
        Command::Rollback(args) => commands::health::rollback(&args.dir),
    };
    match result {
        Ok(code) => code,
        Err(error) => output::report_error(&error),
    }
}
