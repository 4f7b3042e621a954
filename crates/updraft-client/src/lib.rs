//! updraft's client: what runs on end users' machines.
//!
//! - [`UpdateManager`], which checks, downloads, installs, skips, reminds later, reports,
//!   and schedules checks for embedding apps.
//! - [`Repository`], the TUF client workflow over the install's trusted metadata.
//! - The [`download`] module, for resumable, parallel, verified downloads that never hang.
//! - [`UpdateConfig`], the install's `update_config.json`, and the other
//!   installer types an app meets through [`UpdateManager`], re-exported from
//!   `updraft-installer`, which installs, switches, rolls back and recovers.
//!
//! Nothing is installed unless the signed metadata pins it: the server only
//! chooses which signed release to offer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), updraft_client::Error> {
//! use updraft_client::{CheckOutcome, UpdateManager};
//! let manager = UpdateManager::builder("/opt/kuzflow").build()?;
//! match manager.check().await? {
//!     CheckOutcome::Available(offer) => println!("{} is available: {}", offer.version, offer.changelog),
//!     other => println!("{other:?}"),
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod download;
mod error;
mod manager;
mod repository;
mod transport;
mod workflow;

pub use error::{Error, ErrorKind, Result};
pub use manager::{
    CheckOutcome, DownloadPath, Downloaded, Event, InstallRequest, Offer, OfferPatch,
    UpdateManager, UpdateManagerBuilder, bootstrap,
};
pub use repository::{
    MAX_ROOT_BYTES, MAX_ROOT_ROTATIONS, MAX_SNAPSHOT_BYTES, MAX_TARGETS_BYTES, MAX_TIMESTAMP_BYTES,
    Repository, verify_bytes,
};
pub use tokio_util::sync::CancellationToken;
pub use transport::{
    Body, BoxFuture, Fetcher, FileTransport, HttpTransport, Response, Transport, insecure_http,
};
pub use updraft_installer::{
    CheckSettings, DownloadSettings, Handoff, Install, InstallSettings, InstallState, Loaded,
    RollbackReason, ServerSettings, Switched, UiSettings, UpdateConfig,
};
pub use updraft_protocol::host;
pub use workflow::{
    Applied, EventSink, FailureKind, Finish, Outcome, Phase, Progress, UpdateEvent,
};

use updraft_protocol::PackageCustom;
use updraft_protocol::tuf::{TargetFile, Targets};

/// Every updraft package among `targets`: (path, signed file, release data),
/// and the paths whose release data cannot be read.
pub(crate) fn releases(
    targets: &Targets,
) -> (Vec<(String, TargetFile, PackageCustom)>, Vec<String>) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    for (path, target) in &targets.targets {
        match PackageCustom::from_custom(path, target.custom.as_ref()) {
            Ok(Some(custom)) => found.push((path.clone(), target.clone(), custom)),
            Ok(None) => {}
            Err(_) => bad.push(path.clone()),
        }
    }
    (found, bad)
}
