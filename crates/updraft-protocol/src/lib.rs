//! updraft's protocol: the types every other part agrees on, with no I/O.
//!
//! - [`Version`]: SemVer 2.0.0 with precedence and [`UpdateType`].
//! - Validated names: [`AppId`], [`Channel`], [`TargetPath`], [`Sha256Digest`],
//!   [`Platform`], [`Arch`].
//! - [`ReleaseManifest`] and [`PackageCustom`]: what a release contains and the
//!   release info signed into its target.
//! - [`tuf`]: TUF 1.0 metadata, canonical JSON, Ed25519, and the client's
//!   [`tuf::TrustedSet`].
//!
//! ```
//! use updraft_protocol::{Arch, Platform, UpdateType, Version};
//!
//! let installed: Version = "1.2.3-beta.1".parse()?;
//! let offered: Version = "1.2.3+20240902.1".parse()?;
//! assert!(installed < offered);
//! assert_eq!(UpdateType::between(&installed, &offered), UpdateType::Patch);
//! assert_eq!(Platform::parse("darwin")?, Platform::Macos);
//! assert_eq!(Arch::parse("amd64")?.as_str(), "x86_64");
//! # Ok::<(), updraft_protocol::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod manifest;
mod names;
pub mod offer;
pub mod rollout;
pub mod tuf;
mod version;

pub use error::Error;
pub use manifest::{AutoHalt, PackageCustom, PatchCustom, ReleaseInfo, ReleaseManifest};
pub use names::{AppId, Arch, Channel, Platform, Sha256Digest, TargetPath, host};
pub use version::{UpdateType, Version};
