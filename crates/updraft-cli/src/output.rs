//! Exit codes and error printing (PRODUCT.md's contract).

use std::io::IsTerminal;
use std::process::ExitCode;

use updraft_publisher::ErrorKind;

/// Bad command-line input.
pub(crate) const EXIT_USAGE: u8 = 2;
/// A network or download error.
pub(crate) const EXIT_NETWORK: u8 = 3;
/// Installing failed; the previous version is intact.
pub(crate) const EXIT_INSTALL: u8 = 5;
/// Tampered, unsigned, expired, rolled-back or wrong-target data.
pub(crate) const EXIT_VERIFICATION: u8 = 4;
/// Anything else.
pub(crate) const EXIT_OTHER: u8 = 1;

/// Prints `error` to stderr as one sentence (plus its causes when they add
/// something) and returns the exit code for its kind.
pub(crate) fn report_error(error: &anyhow::Error) -> ExitCode {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    eprintln!("error: {message}");
    ExitCode::from(exit_code(error))
}

fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(error) = error.downcast_ref::<updraft_publisher::Error>() {
        return match error.kind() {
            ErrorKind::Usage => EXIT_USAGE,
            ErrorKind::Verification => EXIT_VERIFICATION,
            ErrorKind::Other => EXIT_OTHER,
        };
    }
    if let Some(error) = error.downcast_ref::<updraft_client::Error>() {
        return match error.kind() {
            updraft_client::ErrorKind::Usage => EXIT_USAGE,
            updraft_client::ErrorKind::Network => EXIT_NETWORK,
            updraft_client::ErrorKind::Verification => EXIT_VERIFICATION,
            updraft_client::ErrorKind::Install => EXIT_INSTALL,
            updraft_client::ErrorKind::Other => EXIT_OTHER,
        };
    }
    if let Some(error) = error.downcast_ref::<updraft_installer::Error>() {
        return match error.kind() {
            updraft_installer::ErrorKind::Usage => EXIT_USAGE,
            updraft_installer::ErrorKind::Install => EXIT_INSTALL,
            updraft_installer::ErrorKind::Verification => EXIT_VERIFICATION,
            _ => EXIT_OTHER,
        };
    }
    if let Some(error) = error.downcast_ref::<updraft_server::Error>() {
        return match error {
            updraft_server::Error::Config(_)
            | updraft_server::Error::AddressInUse { .. }
            | updraft_server::Error::SchemaTooNew { .. } => EXIT_USAGE,
            updraft_server::Error::Postgres { .. } => EXIT_NETWORK,
            updraft_server::Error::Store(error) => match error.kind() {
                ErrorKind::Usage => EXIT_USAGE,
                ErrorKind::Verification => EXIT_VERIFICATION,
                ErrorKind::Other => EXIT_OTHER,
            },
            _ => EXIT_OTHER,
        };
    }
    if let Some(error) = error.downcast_ref::<updraft_protocol::Error>() {
        return if error.is_verification() {
            EXIT_VERIFICATION
        } else {
            EXIT_USAGE
        };
    }
    EXIT_OTHER
}

/// Prints the libraries' warnings (a bad setting, an unknown configuration
/// key, `verify_ssl: false`) to stderr, one line each; `UPDRAFT_LOG` (an
/// `EnvFilter`) shows more.
pub(crate) fn show_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UPDRAFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(interactive())
        .without_time()
        .with_target(false)
        .try_init();
}

/// True when stderr is a terminal, so progress and colour are welcome.
pub(crate) fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar on a terminal, nothing when piped.
/// A download progress callback that moves `bar`, if there is one.
pub(crate) fn progress_fn(
    bar: Option<&indicatif::ProgressBar>,
) -> Option<updraft_client::download::ProgressFn> {
    let bar = bar?.clone();
    Some(std::sync::Arc::new(move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }))
}

pub(crate) fn progress_bar(message: &str) -> Option<indicatif::ProgressBar> {
    if !interactive() {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_owned());
    Some(bar)
}

/// Formats a byte count for people (`36.9 MB`).
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
