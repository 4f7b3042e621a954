//! updraft's publisher: keys, the signed release store, packing and publishing.
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use time::OffsetDateTime;
//! use updraft_publisher::{DeltaPolicy, ExpiryPolicy, KeygenOptions, PublishRequest, PackOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (keys, store) = (Path::new("keys"), Path::new("store"));
//! let now = OffsetDateTime::now_utc();
//! updraft_publisher::keys::generate(keys, KeygenOptions::default())?;
//! updraft_publisher::init(store, keys, now, &ExpiryPolicy::default())?;
//! let request = PublishRequest {
//!     app: "kuzflow".parse()?,
//!     version: "1.1.0".parse()?,
//!     platform: "linux".parse()?,
//!     arch: "x86_64".parse()?,
//!     channel: "stable".parse()?,
//!     main: "bin/kuzflow".parse()?,
//!     notes: None,
//!     rollout_percent: 100,
//!     force: false,
//!     min_supported_version: None,
//!     auto_halt: None,
//!     source: PathBuf::from("dist/kuzflow"),
//!     pack: PackOptions::default(),
//!     deltas: DeltaPolicy::default(),
//! };
//! updraft_publisher::publish(store, keys, &request, now, &ExpiryPolicy::default())?;
//! assert!(updraft_publisher::verify(store, now)?.problems.is_empty());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod announce;
mod delta;
mod error;
mod keymgmt;
pub mod keys;
pub mod layout;
mod location;
pub mod pack;
mod repo;
pub mod s3;
pub mod store;
mod verify;

pub use delta::{DeltaPolicy, PublishedPatch, SkippedPatch};
pub use error::{Error, ErrorKind, Result};
pub use keymgmt::{
    ExportReport, ImportReport, RotateReport, SignReport, UNSIGNED_FORMAT_VERSION, export_unsigned,
    import_signed, rotate_role, rotate_root, sign,
};
pub use keys::KeygenOptions;
pub use location::Location;
pub use pack::{ModeChange, PackOptions};
pub use repo::{
    DelegateReport, DelegationRequest, ExpiryPolicy, InitReport, PublishReport, PublishRequest,
    RefreshReport, RolloutAction, RolloutReport, delegate, init, publish, publish_as,
    publish_unsigned, refresh, rollout, rollout_all,
};
pub use verify::{Problem, VerifyReport, verify};
