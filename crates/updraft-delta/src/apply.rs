//! Applying a patch (the client's side), streaming.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};

use updraft_package::Sink;
use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{ReleaseManifest, Sha256Digest};

use crate::bsdiff;
use crate::error::{Error, Result};
use crate::format::{Codec, Entry, FORMAT_VERSION, Header, MAGIC, MAX_HEADER, WINDOW_LOG_MAX};
use crate::make::Release;
use crate::tree::{Hashing, open_beneath, read_verified};

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Files copied from the installed version.
    pub reused_files: u64,
    /// Their bytes.
    pub reused_bytes: u64,
    /// Files rebuilt from the patch's bytes.
    pub patched_files: u64,
    /// Their bytes.
    pub patched_bytes: u64,
}

/// The patch's header, checked against the two manifests.
fn read_header(
    patch: &mut impl Read,
    old: &Release<'_>,
    new: &ReleaseManifest,
    new_manifest_sha256: Sha256Digest,
) -> Result<Header> {
    let mut start = [0u8; 16];
    patch
        .read_exact(&mut start)
        .map_err(|_| Error::Corrupt("it is shorter than its header".into()))?;
    if &start[..8] != MAGIC {
        return Err(Error::Corrupt("it is not an updraft patch".into()));
    }
    let word = |i: usize| u32::from_le_bytes([start[i], start[i + 1], start[i + 2], start[i + 3]]);
    let (version, length) = (word(8), word(12));
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if length > MAX_HEADER {
        return Err(Error::Corrupt(format!("its header claims {length} bytes")));
    }
    let mut bytes = vec![0u8; length as usize];
    patch
        .read_exact(&mut bytes)
        .map_err(|_| Error::Corrupt("its header is truncated".into()))?;
    let header: Header = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Corrupt(format!("its header is not valid: {e}")))?;
    let (from, to) = (
        old.manifest.release.version.to_string(),
        new.release.version.to_string(),
    );
    if header.from_manifest != old.manifest_sha256
        || header.to_manifest != new_manifest_sha256
        || header.from_version != from
        || header.to_version != to
    {
        return Err(Error::WrongRelease(format!(
            "it goes from {} to {}, not from the signed {from} to {to}",
            header.from_version, header.to_version
        )));
    }
    check_header(&header, old.manifest, new)?;
    Ok(header)
}

/// Every index in range, every file accounted for, every segment's
/// references within the decoder's window.
fn check_header(header: &Header, old: &ReleaseManifest, new: &ReleaseManifest) -> Result<()> {
    let corrupt = |what: String| Err(Error::Corrupt(what));
    if header.files.len() != new.files.len() {
        return corrupt(format!(
            "it lists {} files; the new release has {}",
            header.files.len(),
            new.files.len()
        ));
    }
    let old_file = |i: u32| old.files.get(i as usize);
    for (i, segment) in header.segments.iter().enumerate() {
        let mut total = 0u64;
        for &r in &segment.refs {
            let Some(file) = old_file(r) else {
                return corrupt(format!(
                    "segment {i} refers to old file {r}, which does not exist"
                ));
            };
            total = total.saturating_add(file.size);
        }
        if total > 1u64 << WINDOW_LOG_MAX {
            return corrupt(format!("segment {i} refers to {total} bytes of old files"));
        }
        if let Codec::Lzma2 { dict_size } = segment.codec
            && (u64::from(dict_size) > 1u64 << WINDOW_LOG_MAX || u64::from(dict_size) < total)
        {
            return corrupt(format!(
                "segment {i} needs a dictionary of {dict_size} bytes"
            ));
        }
    }
    for (i, entry) in header.files.iter().enumerate() {
        let new_file = &new.files[i];
        match *entry {
            Entry::Reuse { old } => match old_file(old) {
                Some(file) if file.sha256 == new_file.sha256 && file.size == new_file.size => {}
                _ => return corrupt(format!("it reuses a wrong file for `{}`", new_file.path)),
            },
            Entry::Data { segment } => {
                if header.segments.get(segment as usize).is_none() {
                    return corrupt(format!(
                        "`{}` is in a segment that does not exist",
                        new_file.path
                    ));
                }
            }
            Entry::Bsdiff { segment, old } => {
                let fine = header
                    .segments
                    .get(segment as usize)
                    .is_some_and(|s| s.refs.contains(&old));
                if !fine {
                    return corrupt(format!(
                        "`{}` refers to an old file outside its segment",
                        new_file.path
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Rebuilds the release `new` into `sink` from the installed release `old`
/// and the patch bytes `patch` yields, reading them once, in order, to their
/// end (so a reader that verifies what passes sees every byte).
///
/// Folders and links come from the new manifest, never from the patch, and
/// every path is one of the manifests'. Every old file is read without
/// following links and checked against `old.manifest` before it is used (a
/// locally modified file is [`Error::ModifiedOldFile`], naming it); every
/// file written is checked against `new` (size and SHA-256) before it is
/// closed.
///
/// Memory: one segment's references (at most 256 MiB; about the changed
/// files of the segment, 128 MiB by default) and zstd's window for them,
/// plus, for a bsdiffed file, its controls and differences (at most the file).
pub fn apply(
    patch: impl Read,
    old: &Release<'_>,
    new: &ReleaseManifest,
    new_manifest_sha256: Sha256Digest,
    sink: &mut impl Sink,
) -> Result<ApplyReport> {
    let mut patch = BufReader::with_capacity(256 * 1024, patch);
    let header = read_header(&mut patch, old, new, new_manifest_sha256)?;
    let from = old.manifest.release.version.to_string();
    let to = new.release.version.to_string();
    let mut report = ApplyReport::default();
    for dir in &new.dirs {
        sink.dir(&dir.path, dir.mode).map_err(Error::Sink)?;
    }
    for (i, entry) in header.files.iter().enumerate() {
        if let Entry::Reuse { old: index } = *entry {
            let old_entry = &old.manifest.files[index as usize];
            reuse(old, old_entry, &new.files[i], &from, &to, sink)?;
            report.reused_files += 1;
            report.reused_bytes += old_entry.size;
        }
    }
    let mut by_segment: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, entry) in header.files.iter().enumerate() {
        match *entry {
            Entry::Data { segment } | Entry::Bsdiff { segment, .. } => {
                by_segment.entry(segment).or_default().push(i);
            }
            Entry::Reuse { .. } => {}
        }
    }
    for (s, segment) in header.segments.iter().enumerate() {
        let mut prefix = Vec::new();
        let mut ranges = HashMap::new();
        for &r in &segment.refs {
            let bytes = read_verified(old.root, &old.manifest.files[r as usize], &from)?;
            ranges.insert(r, prefix.len()..prefix.len() + bytes.len());
            prefix.extend_from_slice(&bytes);
        }
        let mut frame = BufReader::new((&mut patch).take(segment.length));
        let mut reader: Box<dyn Read + '_> = match segment.codec {
            Codec::Zstd => {
                let mut decoder = zstd::stream::raw::Decoder::with_ref_prefix(&prefix)
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                decoder
                    .set_parameter(zstd::stream::raw::DParameter::WindowLogMax(WINDOW_LOG_MAX))
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                let mut reader = zstd::stream::zio::Reader::new(&mut frame, decoder);
                reader.set_single_frame();
                Box::new(reader)
            }
            Codec::Lzma2 { dict_size } => {
                // The header was checked: the dictionary is within the bound
                // and holds the whole reference.
                Box::new(lzma_rust2::Lzma2Reader::new(
                    &mut frame,
                    dict_size,
                    (!prefix.is_empty()).then_some(prefix.as_slice()),
                ))
            }
        };
        let corrupt = |e: io::Error| Error::Corrupt(format!("segment {s}: {e}"));
        for &i in by_segment.get(&index_u32(s)).map_or(&[][..], Vec::as_slice) {
            let entry = &new.files[i];
            let mut out = Hashing::new(
                sink.open_file(&entry.path, entry).map_err(Error::Sink)?,
                entry.size,
            );
            match header.files[i] {
                Entry::Data { .. } => {
                    let copied =
                        io::copy(&mut (&mut reader).take(entry.size), &mut out).map_err(corrupt)?;
                    if copied != entry.size {
                        return Err(Error::Corrupt(format!(
                            "segment {s} ends inside `{}`",
                            entry.path
                        )));
                    }
                }
                Entry::Bsdiff { old: r, .. } => {
                    let old_bytes = &prefix[ranges[&r].clone()];
                    rebuild(&mut reader, old_bytes, entry, &mut out).map_err(|e| {
                        Error::Corrupt(format!("the diff of `{}`: {e}", entry.path))
                    })?;
                }
                Entry::Reuse { .. } => unreachable!("grouped above"),
            }
            out.flush()
                .map_err(|e| Error::Sink(format!("cannot write `{}`: {e}", entry.path)))?;
            if !out.matches(entry) {
                return Err(Error::OutputMismatch {
                    path: entry.path.to_string(),
                    version: to.clone(),
                });
            }
            sink.close_file(&entry.path, entry).map_err(Error::Sink)?;
            report.patched_files += 1;
            report.patched_bytes += entry.size;
        }
        // The frame holds nothing more, and is exactly as long as the header says.
        let mut rest = [0u8; 1];
        if reader.read(&mut rest).map_err(corrupt)? != 0 {
            return Err(Error::Corrupt(format!(
                "segment {s} holds more than its files"
            )));
        }
        drop(reader);
        if io::copy(&mut frame, &mut io::sink()).map_err(corrupt)? != 0 {
            return Err(Error::Corrupt(format!(
                "segment {s} is shorter than its header says"
            )));
        }
    }
    if io::copy(&mut patch, &mut io::sink()).map_err(|e| Error::Corrupt(e.to_string()))? != 0 {
        return Err(Error::Corrupt("bytes follow its last segment".into()));
    }
    for link in &new.symlinks {
        sink.symlink(&link.path, &link.target)
            .map_err(Error::Sink)?;
    }
    Ok(report)
}

/// Copies an unchanged file from the installed version, checking it on the way.
fn reuse(
    old: &Release<'_>,
    old_entry: &FileEntry,
    new_entry: &FileEntry,
    from: &str,
    to: &str,
    sink: &mut impl Sink,
) -> Result<()> {
    let modified = || Error::ModifiedOldFile {
        path: old_entry.path.to_string(),
        version: from.to_owned(),
    };
    let mut file = open_beneath(old.root, &old_entry.path).map_err(|_| modified())?;
    {
        let mut out = Hashing::new(
            sink.open_file(&new_entry.path, new_entry)
                .map_err(Error::Sink)?,
            new_entry.size,
        );
        let copied = io::copy(&mut (&mut file).take(old_entry.size + 1), &mut out);
        if let Some(reason) = &out.failed {
            return Err(Error::Sink(format!(
                "cannot write `{}`: {reason}",
                new_entry.path
            )));
        }
        if copied.is_err() || !out.matches(new_entry) {
            // Over-long, short or different: the installed file was changed.
            let _ = to;
            return Err(modified());
        }
    }
    sink.close_file(&new_entry.path, new_entry)
        .map_err(Error::Sink)
}

/// Reads one bsdiff record from `reader` and writes the file it rebuilds.
fn rebuild(
    reader: &mut impl Read,
    old: &[u8],
    entry: &FileEntry,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut lengths = [0u8; 24];
    reader.read_exact(&mut lengths).map_err(|e| e.to_string())?;
    let length = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&lengths[i * 8..i * 8 + 8]);
        u64::from_le_bytes(bytes)
    };
    let (controls, diff, extra) = (length(0), length(1), length(2));
    // Each control moves at least one byte, but for the last.
    if controls > entry.size.saturating_add(1).saturating_mul(24)
        || diff > entry.size
        || extra > entry.size
    {
        return Err("its lengths exceed the file".into());
    }
    let read_block = |reader: &mut dyn Read, n: u64| -> Result<Vec<u8>, String> {
        let mut block = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        reader
            .take(n)
            .read_to_end(&mut block)
            .map_err(|e| e.to_string())?;
        if block.len() as u64 == n {
            Ok(block)
        } else {
            Err("it is truncated".into())
        }
    };
    let controls = read_block(reader, controls)?;
    let diff = read_block(reader, diff)?;
    let mut extra_stream = reader.take(extra);
    bsdiff::apply(old, &controls, &diff, &mut extra_stream, entry.size, out)?;
    if extra_stream.limit() != 0 {
        return Err("its extra stream is longer than it uses".into());
    }
    Ok(())
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}
