//! The crate's error type, and the checks that keep windowing errors readable.

/// Why the update window could not be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The native window could not be opened (no display, no OpenGL).
    #[error("Could not open the update window: {}", plain(.0))]
    Window(#[source] eframe::Error),
}

/// True unless this is Linux or another Unix desktop without X11 or Wayland
/// (a server, an SSH session, CI): a window cannot open there, so callers
/// fall back to the terminal (or say so) instead of failing in winit.
pub fn display_available() -> bool {
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    } else {
        true
    }
}

/// One sentence for a windowing error, without the source locations winit
/// puts in it (`os error at /home/…/winit-0.30/src/…/mod.rs:765: …`): a
/// user sees what went wrong, not the builder's file system.
pub fn plain(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .split(": ")
        .filter(|part| !part.contains(".rs:"))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn source_locations_are_left_out() {
        let error = "EventLoopError: os error at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/winit-0.30.13/src/platform_impl/linux/mod.rs:765: neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set.";
        assert_eq!(
            plain(&error),
            "EventLoopError: neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set."
        );
        assert_eq!(plain(&"no OpenGL: context lost"), "no OpenGL: context lost");
    }
}
