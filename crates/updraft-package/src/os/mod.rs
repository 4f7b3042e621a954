//! What unpacking asks of the operating system beyond `std`, one module per
//! OS so a port is a contained change.
//!
//! | call | Linux | Windows / macOS (to write) |
//! |---|---|---|
//! | [`start_writeback`] | `sync_file_range(SYNC_FILE_RANGE_WRITE)` | nothing (`FlushFileBuffers` / `F_FULLFSYNC` are the waiting syncs `std` already makes) |

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::start_writeback;

/// Elsewhere a file's bytes start for the disk when its sync asks for them.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &std::fs::File) {}
