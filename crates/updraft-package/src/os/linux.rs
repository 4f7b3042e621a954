//! Linux.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Starts writing `file`'s dirty pages to the disk without waiting for them
/// and without committing anything, so the disk is busy from the first
/// unpacked file on instead of from the first sync. The sync that makes the
/// file durable (`fdatasync`, on a sync thread) then waits for less. Only a
/// hint: an error is ignored, the sync reports any real failure.
pub(crate) fn start_writeback(file: &File) {
    // SAFETY: `sync_file_range` reads no memory of ours; the descriptor is
    // open for the duration of the call (borrowed from `file`).
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}
