use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use updraft_server::{EscapedFields, Server, ServerConfig, shutdown_signal};

use crate::{LogFormat, ServeArgs};

/// `updraft serve`: runs until Ctrl-C or SIGTERM, then shuts down gracefully.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let filter = EnvFilter::try_from_env("UPDRAFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        // Values are escaped so that client-sent text cannot forge lines.
        LogFormat::Text => builder.fmt_fields(EscapedFields).init(),
    }
    let location = updraft_publisher::Location::open(&args.repo)?;
    let mut config = ServerConfig::new(std::path::PathBuf::from(&args.repo));
    if let updraft_publisher::Location::S3(bucket) = location {
        config.bucket = Some(bucket);
    }
    config.files_url = args.files_url;
    config.listen = args.listen;
    config.database = args.database.map(updraft_server::DatabaseUrl::from);
    config.admin_token_file = args.admin_token_file;
    config.signing_key_file = args.signing_key_file;
    config.require_signed_reports = args.require_signed_reports;
    config.public_url = args.public_url;
    config.keys = args.keys;
    config.tls = args.tls_cert.zip(args.tls_key);
    config.max_concurrency = args.max_concurrency.max(1);
    config.max_connections = args.max_connections.max(1);
    config.max_connections_per_address = args.max_connections_per_address.max(1);
    config.header_timeout = std::time::Duration::from_secs(args.header_timeout);
    let runtime = crate::commands::runtime()?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let shutdown = shutdown_signal();
        let scheme = if server.uses_tls() { "https" } else { "http" };
        eprintln!(
            "updraft serving on {scheme}://{} (Ctrl-C to stop)",
            server.local_addr()
        );
        server.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
