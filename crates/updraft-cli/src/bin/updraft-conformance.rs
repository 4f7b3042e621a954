//! `updraft-conformance`: updraft's TUF client behind the command-line
//! protocol of the TUF conformance test suite (CLIENT-CLI.md):
//!
//! ```text
//! updraft-conformance --metadata-dir DIR init TRUSTED_ROOT
//! updraft-conformance --metadata-dir DIR --metadata-url URL refresh
//! updraft-conformance --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH ...] \
//!     --target-base-url URL --target-dir DIR download
//! ```
//!
//! Exit 0 on success, 1 otherwise. Metadata is kept in DIR under
//! non-versioned names; a target already downloaded with the signed hashes
//! is not fetched again. Downloaded targets are named like python-tuf names
//! them: the target path percent-encoded with nothing safe.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use updraft_client::{Fetcher, Repository};

#[derive(Debug, Parser)]
#[command(
    name = "updraft-conformance",
    about = "updraft's TUF client for the TUF conformance suite"
)]
struct Cli {
    /// Where trusted metadata is kept.
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// Base URL of the repository's metadata.
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Targets to download.
    #[arg(long = "target-name", global = true)]
    target_names: Vec<String>,
    /// Base URL of the targets.
    #[arg(long, global = true)]
    target_base_url: Option<String>,
    /// Where to put downloaded targets.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trust TRUSTED_ROOT.
    Init {
        /// The root metadata to trust.
        trusted_root: PathBuf,
    },
    /// Run the update workflow.
    Refresh,
    /// Refresh, then download the targets.
    Download,
}

/// Characters Python's `quote(path, safe="")` leaves alone.
const SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn required<T>(value: Option<T>, flag: &str) -> anyhow::Result<T> {
    value.ok_or_else(|| anyhow::anyhow!("`{flag}` is required"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let metadata_dir = required(cli.metadata_dir, "--metadata-dir")?;
    if let Command::Init { trusted_root } = &cli.command {
        let bytes = std::fs::read(trusted_root)
            .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", trusted_root.display()))?;
        Repository::init(&metadata_dir, &bytes)?;
        return Ok(());
    }
    let metadata_url = required(cli.metadata_url, "--metadata-url")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let fetcher = Fetcher::with(Duration::from_secs(15), true)?;
        let repository = Repository::refresh(
            &metadata_dir,
            &metadata_url,
            &fetcher,
            OffsetDateTime::now_utc(),
        )
        .await?;
        if let Command::Download = cli.command {
            let base = required(cli.target_base_url, "--target-base-url")?;
            let dir = required(cli.target_dir, "--target-dir")?;
            for name in &cli.target_names {
                let file = dir.join(percent_encoding::utf8_percent_encode(name, SAFE).to_string());
                repository
                    .download_small_target(&fetcher, &base, name, &file)
                    .await?;
            }
        }
        Ok(())
    })
}
