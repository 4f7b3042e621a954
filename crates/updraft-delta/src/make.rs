//! Making a patch (the publisher's side).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use updraft_protocol::{ReleaseManifest, Sha256Digest};

use crate::bsdiff;
use crate::error::{Error, Result};
use crate::format::{Codec, Entry, FORMAT_VERSION, Header, MAGIC, Segment, WINDOW_LOG_MAX};
use crate::tree::read_verified;

/// A release on disk: its folder and its signed manifest.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// The folder holding the release's files.
    pub root: &'a Path,
    /// The release's signed manifest.
    pub manifest: &'a ReleaseManifest,
    /// SHA-256 of the manifest file as signed (its target digest).
    pub manifest_sha256: Sha256Digest,
}

/// How hard [`make`] works, and within which bounds.
#[derive(Debug, Clone)]
pub struct MakeOptions {
    /// zstd level of the segments and of the per-file trials (19; up to 22).
    pub level: i32,
    /// Files (old or new) larger than this are never bsdiffed, only
    /// zstd-patched: bsdiff holds about 6x the old file and 3x the new one
    /// (128 MiB: about 1.2 GiB at most).
    pub bsdiff_max: u64,
    /// Time one file's bsdiff may take before it is abandoned for zstd.
    pub file_budget: Duration,
    /// Bytes of references plus new bytes per segment (several files share
    /// one zstd window up to this; a larger file gets a segment of its own).
    /// The applying side holds one segment's references in memory.
    pub segment_max: u64,
    /// Also try LZMA2 for each segment (slower to make and apply; often
    /// smaller on code), keeping whichever codec is smaller.
    pub lzma2: bool,
}

impl Default for MakeOptions {
    fn default() -> Self {
        Self {
            level: 19,
            bsdiff_max: 128 << 20,
            file_budget: Duration::from_mins(2),
            segment_max: 128 << 20,
            lzma2: true,
        }
    }
}

/// How each file of the new release was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// Identical to an old file (same path, or moved): no bytes.
    Reuse,
    /// zstd with the old file (and the rest of its segment) as reference.
    Zstd,
    /// New: compressed without an old file of its own.
    Whole,
    /// bsdiff's three streams, then zstd.
    Bsdiff,
}

/// What [`make`] did.
#[derive(Debug, Clone, Default)]
pub struct MakeReport {
    /// Bytes of the patch.
    pub length: u64,
    /// Files per engine.
    pub files: BTreeMap<Engine, u64>,
    /// New bytes per engine (uncompressed).
    pub bytes: BTreeMap<Engine, u64>,
    /// Segments (zstd frames).
    pub segments: usize,
}

/// One segment to be: its references and its files (with their reference).
type Plan = (Vec<u32>, Vec<(usize, Option<u32>)>);

/// Reference of a changed file: the old file of the same path, else one of
/// the same name elsewhere (a moved and changed file).
fn reference_of(
    new: &ReleaseManifest,
    old: &ReleaseManifest,
    index: usize,
    by_path: &HashMap<&str, u32>,
    by_name: &HashMap<&str, u32>,
) -> Option<u32> {
    let path = &new.files[index].path;
    let found = by_path
        .get(path.as_str())
        .or_else(|| by_name.get(path.file_name()))
        .copied()?;
    let window = 1u64 << WINDOW_LOG_MAX;
    (old.files[found as usize].size + new.files[index].size <= window).then_some(found)
}

/// zstd's window for `bytes` of prefix and content.
fn window_log(bytes: u64) -> u32 {
    let log = 64 - bytes.max(1).saturating_sub(1).leading_zeros();
    log.clamp(10, WINDOW_LOG_MAX)
}

/// Compresses `data` as one frame with `prefix` as its reference.
pub(crate) fn compress(data: &[u8], prefix: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, prefix)?;
    encoder.window_log(window_log((prefix.len() + data.len()) as u64))?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(false)?;
    encoder.set_pledged_src_size(Some(data.len() as u64))?;
    encoder.write_all(data)?;
    encoder.finish()
}

/// LZMA2's dictionary for `bytes` of reference and content.
pub(crate) fn dict_size(bytes: u64) -> u32 {
    1u32 << window_log(bytes).max(12)
}

/// Compresses `data` as raw LZMA2 (xz's `-9e` settings) with `prefix` as
/// the preset dictionary.
fn compress_lzma2(data: &[u8], prefix: &[u8], dict_size: u32) -> io::Result<Vec<u8>> {
    let mut options = lzma_rust2::Lzma2Options::with_preset(9);
    let lzma = &mut options.lzma_options;
    lzma.dict_size = dict_size;
    lzma.nice_len = lzma_rust2::LzmaOptions::NICE_LEN_MAX;
    lzma.depth_limit = 512;
    if !prefix.is_empty() {
        lzma.preset_dict = Some(prefix.to_vec());
    }
    let mut writer = lzma_rust2::Lzma2Writer::new(Vec::new(), options);
    writer.write_all(data)?;
    writer.finish().map_err(io::Error::other)
}

/// A segment compressed both ways (on two threads); the smaller wins.
fn compress_segment(
    data: &[u8],
    prefix: &[u8],
    options: &MakeOptions,
) -> io::Result<(Vec<u8>, Codec)> {
    if !options.lzma2 {
        return Ok((compress(data, prefix, options.level)?, Codec::Zstd));
    }
    let dict_size = dict_size((prefix.len() + data.len()) as u64);
    let (zstd, lzma2) = std::thread::scope(|scope| {
        let lzma2 = scope.spawn(|| compress_lzma2(data, prefix, dict_size));
        let zstd = compress(data, prefix, options.level);
        (
            zstd,
            lzma2.join().expect("the LZMA2 encoder does not panic"),
        )
    });
    let (zstd, lzma2) = (zstd?, lzma2?);
    Ok(if lzma2.len() < zstd.len() {
        (lzma2, Codec::Lzma2 { dict_size })
    } else {
        (zstd, Codec::Zstd)
    })
}

fn bsdiff_record(diff: &bsdiff::Diff) -> Vec<u8> {
    let mut record =
        Vec::with_capacity(24 + diff.controls.len() + diff.diff.len() + diff.extra.len());
    for part in [&diff.controls, &diff.diff, &diff.extra] {
        record.extend_from_slice(&(part.len() as u64).to_le_bytes());
    }
    for part in [&diff.controls, &diff.diff, &diff.extra] {
        record.extend_from_slice(part);
    }
    record
}

/// Writes to `out` a patch that rebuilds `new` from `old`.
///
/// Unchanged files (by digest, wherever they moved) are reused; every
/// changed file is encoded both with zstd against its old self and with
/// bsdiff (within [`MakeOptions::bsdiff_max`] and the time budget), and the
/// smaller wins (judged by a cheap zstd level first, and at the full level
/// only when that is close); new files are shipped whole. The chosen
/// payloads are then compressed together, segment by segment, with the old
/// files they refer to as zstd's reference (and LZMA2's dictionary, on a
/// second thread), so redundancy across files is shared too.
///
/// Memory: one segment's references and payloads (at most about 2x
/// [`MakeOptions::segment_max`]) plus the zstd and LZMA2 encoders of that
/// segment at once (LZMA2's match finder: about 10x the segment), or, for a
/// bsdiffed file, about 6x the old and 3x the new file; the compressed patch
/// is kept until written.
pub fn make(
    old: &Release<'_>,
    new: &Release<'_>,
    options: &MakeOptions,
    out: &mut dyn Write,
) -> Result<MakeReport> {
    let from_version = old.manifest.release.version.to_string();
    let to_version = new.manifest.release.version.to_string();
    let old_files = &old.manifest.files;
    let by_hash: HashMap<Sha256Digest, u32> = old_files
        .iter()
        .enumerate()
        .rev()
        .map(|(i, f)| (f.sha256, index_u32(i)))
        .collect();
    let by_path: HashMap<&str, u32> = old_files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), index_u32(i)))
        .collect();
    let by_name: HashMap<&str, u32> = old_files
        .iter()
        .enumerate()
        .rev()
        .map(|(i, f)| (f.path.file_name(), index_u32(i)))
        .collect();

    let mut report = MakeReport::default();
    let mut entries: Vec<Option<Entry>> = vec![None; new.manifest.files.len()];
    // Files that need bytes, with their reference.
    let mut pending: Vec<(usize, Option<u32>)> = Vec::new();
    for (i, file) in new.manifest.files.iter().enumerate() {
        if let Some(&found) = by_hash.get(&file.sha256)
            && old_files[found as usize].size == file.size
        {
            entries[i] = Some(Entry::Reuse { old: found });
            *report.files.entry(Engine::Reuse).or_default() += 1;
            *report.bytes.entry(Engine::Reuse).or_default() += file.size;
        } else {
            pending.push((
                i,
                reference_of(new.manifest, old.manifest, i, &by_path, &by_name),
            ));
        }
    }

    // Segments: consecutive files while their references and bytes fit.
    let mut plans: Vec<Plan> = Vec::new();
    let mut used = 0u64;
    for (i, reference) in pending {
        let extra_ref = reference
            .filter(|r| plans.last().is_none_or(|(refs, _)| !refs.contains(r)))
            .map_or(0, |r| old_files[r as usize].size);
        let cost = extra_ref + new.manifest.files[i].size;
        let start_new = plans
            .last()
            .is_none_or(|(_, files)| !files.is_empty() && used + cost > options.segment_max);
        if start_new {
            plans.push((Vec::new(), Vec::new()));
            used = 0;
        }
        let (refs, files) = plans.last_mut().expect("pushed above");
        if let Some(r) = reference
            && !refs.contains(&r)
        {
            refs.push(r);
            used += old_files[r as usize].size;
        }
        used += new.manifest.files[i].size;
        files.push((i, reference));
    }

    let mut segments = Vec::new();
    let mut frames = Vec::new();
    for (segment_index, (refs, files)) in plans.into_iter().enumerate() {
        let segment = index_u32(segment_index);
        let mut prefix = Vec::new();
        let mut ranges = HashMap::new();
        for &r in &refs {
            let bytes = read_verified(old.root, &old_files[r as usize], &from_version)?;
            ranges.insert(r, prefix.len()..prefix.len() + bytes.len());
            prefix.extend_from_slice(&bytes);
        }
        let mut content = Vec::new();
        for (i, reference) in files {
            let entry = &new.manifest.files[i];
            let bytes = read_verified(new.root, entry, &to_version).map_err(|_| {
                Error::Sink(format!(
                    "`{}` in `{}` differs from the new manifest",
                    entry.path,
                    new.root.display()
                ))
            })?;
            let (chosen, engine) = match reference {
                None => (Entry::Data { segment }, Engine::Whole),
                Some(r) => {
                    let old_bytes = &prefix[ranges[&r].clone()];
                    choose(old_bytes, &bytes, options)
                        .map_err(|e| Error::io("compress", new.root.join(entry.path.as_str()), e))?
                        .map_or((Entry::Data { segment }, Engine::Zstd), |record| {
                            content.extend_from_slice(&record);
                            (Entry::Bsdiff { segment, old: r }, Engine::Bsdiff)
                        })
                }
            };
            if matches!(chosen, Entry::Data { .. }) {
                content.extend_from_slice(&bytes);
            }
            entries[i] = Some(chosen);
            *report.files.entry(engine).or_default() += 1;
            *report.bytes.entry(engine).or_default() += entry.size;
        }
        let (frame, codec) = compress_segment(&content, &prefix, options)
            .map_err(|e| Error::io("compress", new.root, e))?;
        segments.push(Segment {
            refs,
            length: frame.len() as u64,
            codec,
        });
        frames.push(frame);
    }

    let header = Header {
        from_version,
        to_version,
        from_manifest: old.manifest_sha256,
        to_manifest: new.manifest_sha256,
        files: entries
            .into_iter()
            .map(|e| e.expect("every file has an entry"))
            .collect(),
        segments,
    };
    let header_bytes = serde_json::to_vec(&header).expect("headers serialise");
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| Error::io("write", "the patch", e))
    };
    write(out, MAGIC)?;
    write(out, &FORMAT_VERSION.to_le_bytes())?;
    write(
        out,
        &u32::try_from(header_bytes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    )?;
    write(out, &header_bytes)?;
    for frame in &frames {
        write(out, frame)?;
    }
    report.segments = frames.len();
    report.length = (MAGIC.len() + 8 + header_bytes.len()) as u64
        + frames.iter().map(|f| f.len() as u64).sum::<u64>();
    Ok(report)
}

/// zstd level of the first, cheap trial of each changed file.
const ESTIMATE_LEVEL: i32 = 6;

/// When the cheap trials of the two encodings differ by less than this
/// (in 1/1000), both are tried again at [`MakeOptions::level`].
const ESTIMATE_MARGIN: usize = 100;

/// Below this many bytes the cheap trials are no guide (zstd's high levels
/// gain most on small outputs): both are tried again at the full level.
const ESTIMATE_MIN: usize = 4096;

/// For a changed file: `Some(bsdiff record)` when bsdiff compresses smaller
/// than zstd against the old file, `None` for zstd.
///
/// Both are first compressed at a cheap level ([`ESTIMATE_LEVEL`]); only
/// when those are within [`ESTIMATE_MARGIN`] of each other, or small, is
/// the choice made at the segment's level (both trials on two threads).
fn choose(old: &[u8], new: &[u8], options: &MakeOptions) -> io::Result<Option<Vec<u8>>> {
    if old.len() as u64 > options.bsdiff_max || new.len() as u64 > options.bsdiff_max {
        return Ok(None);
    }
    let Ok(diff) = bsdiff::diff(old, new, options.file_budget) else {
        return Ok(None);
    };
    let record = bsdiff_record(&diff);
    drop(diff);
    let trials = |level: i32| -> io::Result<(usize, usize)> {
        let (with_bsdiff, with_zstd) = std::thread::scope(|scope| {
            let with_zstd = scope.spawn(|| compress(new, old, level));
            let with_bsdiff = compress(&record, old, level);
            (with_bsdiff, with_zstd.join().expect("zstd does not panic"))
        });
        Ok((with_bsdiff?.len(), with_zstd?.len()))
    };
    let (mut with_bsdiff, mut with_zstd) = trials(ESTIMATE_LEVEL.min(options.level))?;
    let (small, large) = (with_bsdiff.min(with_zstd), with_bsdiff.max(with_zstd));
    let close = (large - small) * 1000 < large * ESTIMATE_MARGIN || small < ESTIMATE_MIN;
    if close && options.level > ESTIMATE_LEVEL {
        (with_bsdiff, with_zstd) = trials(options.level)?;
    }
    Ok((with_bsdiff < with_zstd).then_some(record))
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("manifests have far fewer than 2^32 files")
}
