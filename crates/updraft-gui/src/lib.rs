//! updraft's update dialog and progress widget, drawn with egui, in English
//! and Simplified Chinese.
//!
//! - [`show_update_dialog`] opens the dialog in a native window and returns
//!   how it ended: a Rust app shows an update in a few lines.
//! - [`UpdateDialog`] is the same dialog as a widget, to embed in an egui
//!   app's own window; [`DialogModel`] is its logic, without drawing.
//! - [`UpdateBackend`] is what the dialog asks of the updater;
//!   [`ManagerBackend`] implements it over [`updraft_client::UpdateManager`].
//! - [`ProgressSink`] carries progress from the install thread;
//!   [`ProgressWidget`] draws it.
//! - [`Language`] and [`LanguageSetting`]: English or Chinese, from the
//!   system locale or the `ui.language` setting (`auto`, `en`, `zh-CN`).
//!   Chinese needs a CJK font on the system ([`find_cjk_font`]).
//! - [`ThemeSetting`] and [`choose_theme`]: light or dark, as the desktop
//!   prefers (light when it cannot tell); [`ThemeFollower`] applies it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use updraft_client::{CheckOutcome, UpdateManager};
//! use updraft_gui::{DialogOptions, DialogOutcome, ManagerBackend, show_update_dialog};
//!
//! let manager = UpdateManager::builder("/opt/kuzflow").build()?;
//! if let CheckOutcome::Available(offer) = manager.check().await? {
//!     let backend = ManagerBackend::new(manager, offer.clone());
//!     // From the main thread:
//!     match show_update_dialog(&offer, backend, DialogOptions::new("Kuzflow"))? {
//!         DialogOutcome::Installed => { /* restart into the new version */ }
//!         DialogOutcome::Quit => std::process::exit(0),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod app;
mod backend;
mod dialog;
mod error;
mod fonts;
mod i18n;
mod icon;
mod markdown;
mod offer;
mod progress;
mod theme;

pub use app::{DialogOptions, show_update_dialog};
pub use backend::{InstallMode, ManagerBackend, UpdateBackend};
pub use dialog::{Action, Command, DialogModel, DialogOutcome, DialogState, UpdateDialog};
pub use error::{Error, display_available, plain};
pub use fonts::{CJK_FONT_ENV, CjkFont, find_cjk_font, install_cjk_font};
pub use i18n::{Language, LanguageSetting, ParseLanguageError};
pub use icon::update_icon;
pub use markdown::show_markdown;
pub use offer::OfferView;
pub use progress::{Progress, ProgressSink, ProgressWidget, Stage};
pub use theme::{
    DesktopPreference, ParseThemeError, THEME_ENV, ThemeFollower, ThemeSetting, choose_theme,
};

/// The egui version the widgets are built with, for embedding apps.
pub use eframe::egui;
