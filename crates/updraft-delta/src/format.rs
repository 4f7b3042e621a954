//! The patch file: a small header, then one zstd frame per segment.
//!
//! ```text
//! "UPDELTA\n"          8 bytes, magic
//! format version       u32 little-endian (FORMAT_VERSION)
//! header length        u32 little-endian, at most MAX_HEADER
//! header               JSON (Header)
//! segment 0 .. n-1     compressed streams of the lengths the header gives, each a zstd
//!                      frame or raw LZMA2 with the concatenation of its reference files
//!                      as prefix (zstd) or preset dictionary (LZMA2)
//! ```
//!
//! Nothing in a patch names a path: files are indices into the two signed
//! manifests, whose digests the header carries.

use serde::{Deserialize, Serialize};
use updraft_protocol::Sha256Digest;

/// The first bytes of every patch.
pub const MAGIC: &[u8; 8] = b"UPDELTA\n";

/// The patch format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest header accepted (a million files fit in well under this).
pub const MAX_HEADER: u32 = 64 << 20;

/// Largest zstd window or LZMA2 dictionary a patch may need (256 MiB):
/// what the applying side allows its decoder.
pub const WINDOW_LOG_MAX: u32 = 28;

/// The patch header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The old release's version.
    pub(crate) from_version: String,
    /// The new release's version.
    pub(crate) to_version: String,
    /// SHA-256 of the old release's signed manifest file.
    pub(crate) from_manifest: Sha256Digest,
    /// SHA-256 of the new release's signed manifest file.
    pub(crate) to_manifest: Sha256Digest,
    /// One entry per file of the new manifest, in its order.
    pub(crate) files: Vec<Entry>,
    /// The segments, in the order their frames follow the header.
    pub(crate) segments: Vec<Segment>,
}

/// How one new file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Entry {
    /// A copy of the old file with this index (same path, or moved).
    Reuse {
        /// Index into the old manifest's files.
        old: u32,
    },
    /// Its bytes, verbatim, in this segment's stream (compressed with the
    /// segment's references: a changed file "zstd-patched" against its old
    /// self, or a new file shipped whole).
    Data {
        /// Segment index.
        segment: u32,
    },
    /// A bsdiff record against the old file with this index, in this
    /// segment's stream: three little-endian `u64` lengths (controls,
    /// differences, extra), then the three streams.
    Bsdiff {
        /// Segment index.
        segment: u32,
        /// Index into the old manifest's files; one of the segment's references.
        old: u32,
    },
}

/// One compressed stream and the old files it was compressed against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    /// Old file indices whose bytes, concatenated in this order, are the
    /// stream's reference (zstd's prefix, LZMA2's preset dictionary).
    pub(crate) refs: Vec<u32>,
    /// Compressed length of the stream.
    pub(crate) length: u64,
    /// How it is compressed.
    pub(crate) codec: Codec,
}

/// A segment's compression: whichever was smaller for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub(crate) enum Codec {
    /// One zstd frame (its window is in the frame header, at most 2^28).
    Zstd,
    /// Raw LZMA2 chunks ending with the end marker.
    Lzma2 {
        /// Dictionary size: at most 2^28, at least the reference.
        dict_size: u32,
    },
}
