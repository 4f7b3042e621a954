//! Delta packages: a patch that rebuilds one signed release from another,
//! per file, keyed on the two signed manifests.
//!
//! [`make`] (the publisher) reuses unchanged files (wherever they moved),
//! ships new ones whole, and encodes each changed file with whichever engine
//! gives fewer bytes: zstd with the old file as reference and long matching,
//! or a bsdiff-family diff (suffix-array matching) whose streams zstd then
//! compresses; all payloads of a segment share one zstd frame whose
//! reference is the old files they came from. [`apply`] (the client)
//! streams a patch into an [`updraft_package::Sink`] (the same sink that
//! unpacks full packages), checking every old file it reads against the
//! installed version's manifest and every file it writes against the new
//! one. The format is in [`format`].
//!
//! ```no_run
//! # fn demo(old: &updraft_protocol::ReleaseManifest, new: &updraft_protocol::ReleaseManifest,
//! #         old_sha: updraft_protocol::Sha256Digest, new_sha: updraft_protocol::Sha256Digest)
//! #         -> Result<(), updraft_delta::Error> {
//! use std::path::Path;
//! use updraft_delta::{MakeOptions, Release};
//! let old_release = Release { root: Path::new("v1.0.0"), manifest: old, manifest_sha256: old_sha };
//! let new_release = Release { root: Path::new("v1.1.0"), manifest: new, manifest_sha256: new_sha };
//! let mut patch = Vec::new();
//! updraft_delta::make(&old_release, &new_release, &MakeOptions::default(), &mut patch)?;
//! updraft_package::create_root(Path::new("staging")).unwrap();
//! let mut sink = updraft_package::Unpack::new(Path::new("staging"));
//! updraft_delta::apply(patch.as_slice(), &old_release, new, new_sha, &mut sink)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod apply;
mod bsdiff;
mod error;
pub mod format;
mod make;
mod tree;

pub use apply::{ApplyReport, apply};
pub use error::{Error, Result};
pub use make::{Engine, MakeOptions, MakeReport, Release, make};
