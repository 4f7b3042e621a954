//! One module per command; each returns the process exit code.

pub(crate) mod apply;
pub(crate) mod check;
pub(crate) mod health;
pub(crate) mod install;
pub(crate) mod keygen;
pub(crate) mod publish;
pub(crate) mod quickstart;
pub(crate) mod repo;
pub(crate) mod rollout;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod update;

/// The async runtime a command runs the client library on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
