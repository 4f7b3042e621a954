//! updraft's installer: the install folder and its state, putting a verified
//! release in place beside the running one, the journaled switch of
//! `current`, rollback, health confirmation, the hand-off to the separate
//! updater process, and recovery of whatever a killed process left half done.
//!
//! - [`Install`], the one handle on an install: opening it takes the
//!   install's lock and recovers once; `prepare`, `activate`, `confirm`,
//!   `rollback` and every state change are its methods.
//! - [`run`], `updraft run`: launches the current version with the health
//!   rules around it.
//! - The hand-off: [`Handoff`], [`start_updater`], [`wait_for_exit`] (and
//!   [`wait_for_exit_unless`], which can be stopped),
//!   [`install_updater`].
//! - [`Layout`] and [`InstallState`], the folder's paths and the state kept in it.
//! - [`UpdateConfig`], the install's `update_config.json`.
//! - Trust: every folder and file is created with an explicit safe mode
//!   whatever the umask, and an install some path of which another user owns
//!   or can write, or whose `current` points outside `versions/`, is refused
//!   ([`Error::Untrusted`], [`Layout::check_trusted`]) before it is used.
//!
//! The client crate (`updraft-client`) checks, downloads and verifies; it
//! hands this crate a verified package and its signed manifest. Everything
//! the installer needs from the operating system (the symlink switch, waiting
//! for a process, shared running locks, file modes, `syncfs`) sits in one
//! module per OS, with the Windows and macOS mappings beside it.
//!
//! ```no_run
//! # fn demo(package: &std::path::Path, manifest: &updraft_protocol::ReleaseManifest) -> Result<(), updraft_installer::Error> {
//! use updraft_installer::{Install, UpdateConfig};
//! let dir = std::path::Path::new("/opt/kuzflow");
//! let install = Install::try_open(dir)?; // fails at once if another updraft is at work
//! install.prepare(package, manifest)?; // while the old version still runs
//! // ... the app exits ...
//! let settings = UpdateConfig::load(&install.layout().config())?.config.install_settings;
//! if let Some(switched) = install.activate(&settings)? {
//!     println!("{} -> {}", switched.from, switched.to);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod handoff;
mod health;
mod install;
mod journal;
mod layout;
mod os;
mod release;
mod trust;

pub use config::{
    CheckSettings, DownloadSettings, InstallSettings, Loaded, ServerSettings, UiSettings,
    UpdateConfig,
};
pub use error::{Error, ErrorKind, Result};
pub use handoff::{
    Handoff, install_updater, start_updater, updater_path, wait_for_exit, wait_for_exit_unless,
};
pub use health::{RunOutcome, run};
pub use install::{Install, RollbackReason, Switched};
pub use layout::{InstallState, Layout};
pub use os::own_process_group;
pub use release::install_release;
