//! The crate's error type.

/// Why the update window could not be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The native window could not be opened (no display, no OpenGL).
    #[error("Could not open the update window: {0}")]
    Window(#[source] eframe::Error),
}
