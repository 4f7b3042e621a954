//! A bsdiff-family diff: Colin Percival's matching (a suffix array of the
//! old file, then approximate matches extended forwards and backwards), with
//! the three streams kept apart so the entropy coder after it sees
//! homogeneous data: the controls, the byte-wise differences of the
//! approximate matches (mostly zeros where code moved), and the bytes with
//! no match.
//!
//! Diffing holds the old file, its suffix array (4 bytes per byte) and the
//! new file: about 6x the old file plus 3x the new one. Applying holds the
//! controls and the difference stream of one file, never more than the file.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The controls and streams of one file's diff.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[allow(clippy::struct_field_names)] // bsdiff's own names for its streams
pub(crate) struct Diff {
    /// `(add, copy, seek)` triples, each an `i64` little-endian: add `add`
    /// bytes of the difference stream to the old bytes at the cursor, then
    /// copy `copy` bytes of the extra stream, then move the old cursor by
    /// `seek`.
    pub(crate) controls: Vec<u8>,
    /// Byte-wise differences (new minus old, wrapping).
    pub(crate) diff: Vec<u8>,
    /// Bytes with no match in the old file.
    pub(crate) extra: Vec<u8>,
}

/// The diff took longer than its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget;

fn match_len(old: &[u8], new: &[u8]) -> usize {
    old.iter().zip(new).take_while(|(a, b)| a == b).count()
}

/// The longest match of a prefix of `new` among the suffixes of `old`:
/// (length, position in `old`).
fn search(sa: &[i32], old: &[u8], new: &[u8]) -> (usize, usize) {
    let (mut start, mut end) = (0usize, sa.len() - 1);
    while end - start >= 2 {
        let middle = start + (end - start) / 2;
        let at = usize::try_from(sa[middle]).unwrap_or(0);
        let n = (old.len() - at).min(new.len());
        if old[at..at + n] < new[..n] {
            start = middle;
        } else {
            end = middle;
        }
    }
    let (a, b) = (
        usize::try_from(sa[start]).unwrap_or(0),
        usize::try_from(sa[end]).unwrap_or(0),
    );
    let (x, y) = (match_len(&old[a..], new), match_len(&old[b..], new));
    if x > y { (x, a) } else { (y, b) }
}

fn push_control(controls: &mut Vec<u8>, add: usize, copy: usize, seek: i64) {
    for value in [
        i64::try_from(add).unwrap_or(i64::MAX),
        i64::try_from(copy).unwrap_or(i64::MAX),
        seek,
    ] {
        controls.extend_from_slice(&value.to_le_bytes());
    }
}

/// Matches shorter than this are dropped from a diff: their bytes go to the
/// extra stream instead, where the segment's compressor (which has the old
/// file as its dictionary) finds them again for fewer bytes than a control
/// triple and a jump across the old file cost. Measured on ruff 0.17.5 →
/// 0.17.6 (bsdiff's streams, each xz -9e, extra with the old file as
/// dictionary): 3.35 MB keeping every match, 3.10 MB from 32 bytes, 3.05 MB
/// at 128 and 256, 3.13 MB at 1024; esbuild 0.28.1 → 0.28.2: 413 KB, 403 KB
/// at 32, 401 KB at 128.
pub(crate) const MIN_MATCH: usize = 128;

/// Diffs `new` against `old`, giving up once `budget` has passed, then
/// drops the matches shorter than [`MIN_MATCH`] (see [`prune`]).
pub(crate) fn diff(old: &[u8], new: &[u8], budget: Duration) -> Result<Diff, OverBudget> {
    Ok(prune(old, new, &percival(old, new, budget)?, MIN_MATCH))
}

/// Colin Percival's bsdiff matching, every match kept.
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // sizes are far below 2^63; every index used is checked non-negative by the algorithm
fn percival(old: &[u8], new: &[u8], budget: Duration) -> Result<Diff, OverBudget> {
    let mut out = Diff::default();
    if old.is_empty() {
        push_control(&mut out.controls, 0, new.len(), 0);
        out.extra.extend_from_slice(new);
        return Ok(out);
    }
    let started = Instant::now();
    let sa = divsufsort::sort(old).into_parts().1;
    let (old_len, new_len) = (old.len() as isize, new.len() as isize);
    let at = |buffer: &[u8], i: isize| buffer[i as usize];
    let (mut scan, mut len, mut pos) = (0isize, 0isize, 0isize);
    let (mut last_scan, mut last_pos, mut last_offset) = (0isize, 0isize, 0isize);
    let mut steps = 0u32;
    while scan < new_len {
        let mut old_score = 0isize;
        scan += len;
        let mut scsc = scan;
        while scan < new_len {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(4096) && started.elapsed() > budget {
                return Err(OverBudget);
            }
            let (found_len, found_pos) = search(&sa, old, &new[scan as usize..]);
            (len, pos) = (found_len as isize, found_pos as isize);
            while scsc < scan + len {
                if scsc + last_offset < old_len
                    && scsc + last_offset >= 0
                    && at(old, scsc + last_offset) == at(new, scsc)
                {
                    old_score += 1;
                }
                scsc += 1;
            }
            if (len == old_score && len != 0) || len > old_score + 8 {
                break;
            }
            if scan + last_offset < old_len
                && scan + last_offset >= 0
                && at(old, scan + last_offset) == at(new, scan)
            {
                old_score -= 1;
            }
            scan += 1;
        }
        if len != old_score || scan == new_len {
            // Extend the last match forwards, and this one backwards.
            let (mut s, mut best, mut len_forward) = (0isize, 0isize, 0isize);
            let mut i = 0isize;
            while last_scan + i < scan && last_pos + i < old_len {
                if at(old, last_pos + i) == at(new, last_scan + i) {
                    s += 1;
                }
                i += 1;
                if s * 2 - i > best * 2 - len_forward {
                    best = s;
                    len_forward = i;
                }
            }
            let mut len_backward = 0isize;
            if scan < new_len {
                let (mut s, mut best) = (0isize, 0isize);
                let mut i = 1isize;
                while scan >= last_scan + i && pos >= i {
                    if at(old, pos - i) == at(new, scan - i) {
                        s += 1;
                    }
                    if s * 2 - i > best * 2 - len_backward {
                        best = s;
                        len_backward = i;
                    }
                    i += 1;
                }
            }
            if last_scan + len_forward > scan - len_backward {
                let overlap = (last_scan + len_forward) - (scan - len_backward);
                let (mut s, mut best, mut len_split) = (0isize, 0isize, 0isize);
                for i in 0..overlap {
                    if at(new, last_scan + len_forward - overlap + i)
                        == at(old, last_pos + len_forward - overlap + i)
                    {
                        s += 1;
                    }
                    if at(new, scan - len_backward + i) == at(old, pos - len_backward + i) {
                        s -= 1;
                    }
                    if s > best {
                        best = s;
                        len_split = i + 1;
                    }
                }
                len_forward += len_split - overlap;
                len_backward -= len_split;
            }
            for i in 0..len_forward {
                out.diff
                    .push(at(new, last_scan + i).wrapping_sub(at(old, last_pos + i)));
            }
            let extra_start = last_scan + len_forward;
            let extra_len = (scan - len_backward) - extra_start;
            out.extra
                .extend_from_slice(&new[extra_start as usize..(extra_start + extra_len) as usize]);
            push_control(
                &mut out.controls,
                len_forward as usize,
                extra_len as usize,
                ((pos - len_backward) - (last_pos + len_forward)) as i64,
            );
            last_scan = scan - len_backward;
            last_pos = pos - len_backward;
            last_offset = pos - scan;
        }
    }
    Ok(out)
}

/// One match of a diff: `len` bytes of the new file from `new_at` are the
/// old file's from `old_at` plus the difference stream.
#[derive(Debug, Clone, Copy)]
struct Match {
    new_at: usize,
    old_at: usize,
    len: usize,
}

fn read_control(control: &[u8], i: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&control[i * 8..i * 8 + 8]);
    i64::from_le_bytes(bytes)
}

/// The matches of a diff made by [`percival`] (so well formed).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)] // well formed: non-negative and in bounds
fn matches(diff: &Diff) -> Vec<Match> {
    let (mut new_at, mut old_at) = (0usize, 0i64);
    let mut out = Vec::with_capacity(diff.controls.len() / 24);
    for control in diff.controls.chunks_exact(24) {
        let (add, copy, seek) = (
            read_control(control, 0) as usize,
            read_control(control, 1) as usize,
            read_control(control, 2),
        );
        if add > 0 {
            out.push(Match {
                new_at,
                old_at: old_at as usize,
                len: add,
            });
        }
        new_at += add + copy;
        old_at += add as i64 + seek;
    }
    out
}

/// `diff` (of `new` against `old`) without its matches shorter than
/// `min_len`: their bytes, and those between, are moved to the extra stream.
#[allow(clippy::cast_possible_wrap)] // positions are far below 2^63
pub(crate) fn prune(old: &[u8], new: &[u8], diff: &Diff, min_len: usize) -> Diff {
    let kept: Vec<Match> = matches(diff)
        .into_iter()
        .filter(|m| m.len >= min_len)
        .collect();
    let mut out = Diff::default();
    let first = kept
        .first()
        .map_or((new.len(), 0), |m| (m.new_at, m.old_at));
    if first != (0, 0) || kept.is_empty() {
        push_control(&mut out.controls, 0, first.0, first.1 as i64);
        out.extra.extend_from_slice(&new[..first.0]);
    }
    for (i, m) in kept.iter().enumerate() {
        let (next_new, next_old) = kept
            .get(i + 1)
            .map_or((new.len(), m.old_at + m.len), |n| (n.new_at, n.old_at));
        let end = m.old_at + m.len;
        out.diff.extend(
            new[m.new_at..m.new_at + m.len]
                .iter()
                .zip(&old[m.old_at..end])
                .map(|(n, o)| n.wrapping_sub(*o)),
        );
        let extra_at = m.new_at + m.len;
        out.extra.extend_from_slice(&new[extra_at..next_new]);
        push_control(
            &mut out.controls,
            m.len,
            next_new - extra_at,
            next_old as i64 - end as i64,
        );
    }
    out
}

/// Rebuilds a file of `size` bytes from `old`, the controls, the
/// difference stream and the extra stream (read from `extra` as needed),
/// writing it to `out`. Every control is checked against the bounds of the
/// old file, the streams and `size`: a corrupt diff is an error, never a
/// panic or a read out of bounds.
pub(crate) fn apply(
    old: &[u8],
    controls: &[u8],
    diff: &[u8],
    extra: &mut impl Read,
    size: u64,
    out: &mut dyn Write,
) -> Result<(), String> {
    if !controls.len().is_multiple_of(24) {
        return Err("its controls are truncated".into());
    }
    let corrupt = |what: &str| format!("its controls are corrupt ({what})");
    let mut written = 0u64;
    let mut cursor: i64 = 0;
    let mut diff_at = 0usize;
    let mut buffer = Vec::new();
    for control in controls.chunks_exact(24) {
        let read = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&control[i * 8..i * 8 + 8]);
            i64::from_le_bytes(bytes)
        };
        let (add, copy, seek) = (read(0), read(1), read(2));
        let add = u64::try_from(add).map_err(|_| corrupt("a negative length"))?;
        let copy = u64::try_from(copy).map_err(|_| corrupt("a negative length"))?;
        if written.saturating_add(add).saturating_add(copy) > size {
            return Err(corrupt("more bytes than the file has"));
        }
        let add_len = usize::try_from(add).map_err(|_| corrupt("a length too large"))?;
        let start = usize::try_from(cursor).map_err(|_| corrupt("a position before the start"))?;
        let old_part = start
            .checked_add(add_len)
            .and_then(|end| old.get(start..end))
            .ok_or_else(|| corrupt("a position past the old file's end"))?;
        let diff_part = diff_at
            .checked_add(add_len)
            .and_then(|end| diff.get(diff_at..end))
            .ok_or_else(|| corrupt("past the end of the difference stream"))?;
        buffer.clear();
        buffer.extend(
            old_part
                .iter()
                .zip(diff_part)
                .map(|(o, d)| o.wrapping_add(*d)),
        );
        out.write_all(&buffer).map_err(|e| e.to_string())?;
        diff_at += add_len;
        let copied = io::copy(&mut extra.by_ref().take(copy), out).map_err(|e| e.to_string())?;
        if copied != copy {
            return Err("its extra stream ends early".into());
        }
        written += add + copy;
        cursor = i64::try_from(start + add_len)
            .ok()
            .and_then(|c| c.checked_add(seek))
            .ok_or_else(|| corrupt("a seek out of range"))?;
    }
    if written != size || diff_at != diff.len() {
        return Err(format!(
            "it rebuilds {written} bytes of {size}, using {diff_at} of {} difference bytes",
            diff.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(old: &[u8], new: &[u8]) -> Vec<u8> {
        rebuild(old, new, &diff(old, new, Duration::from_mins(1)).unwrap())
    }

    fn rebuild(old: &[u8], new: &[u8], d: &Diff) -> Vec<u8> {
        let mut out = Vec::new();
        apply(
            old,
            &d.controls,
            &d.diff,
            &mut d.extra.as_slice(),
            new.len() as u64,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn a_small_edit_costs_few_extra_bytes() {
        let old: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i * 7).to_le_bytes())
            .collect();
        let mut new = old.clone();
        new[5000] ^= 0xff;
        new.splice(20_000..20_000, b"inserted".iter().copied());
        let d = diff(&old, &new, Duration::from_mins(1)).unwrap();
        assert!(d.extra.len() < 100, "{} extra bytes", d.extra.len());
        assert_eq!(round_trip(&old, &new), new);
    }

    #[test]
    fn corrupt_controls_are_refused_without_panicking() {
        let old = b"the old file".to_vec();
        let mut controls = Vec::new();
        push_control(&mut controls, 100, 0, 0);
        let error = apply(
            &old,
            &controls,
            &[0; 100],
            &mut io::empty(),
            100,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.contains("past the old file's end"), "{error}");
        let mut controls = Vec::new();
        push_control(&mut controls, 0, 5, -100);
        push_control(&mut controls, 1, 0, 0);
        let error = apply(
            &old,
            &controls,
            &[0],
            &mut &b"12345"[..],
            6,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.contains("before the start"), "{error}");
        let error = apply(&old, &[0; 23], &[], &mut io::empty(), 0, &mut Vec::new()).unwrap_err();
        assert!(error.contains("truncated"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_pair_round_trips(old in proptest::collection::vec(0u8..4, 0..2000),
                                edits in proptest::collection::vec((0usize..2000, any::<u8>()), 0..20),
                                tail in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut new = old.clone();
            for (at, byte) in edits {
                if !new.is_empty() { let i = at % new.len(); new[i] = byte; }
            }
            new.extend(tail);
            prop_assert_eq!(round_trip(&old, &new), new);
        }

        #[test]
        fn any_pruning_round_trips(old in proptest::collection::vec(0u8..4, 0..2000),
                                   edits in proptest::collection::vec((0usize..2000, any::<u8>()), 0..20),
                                   min_len in 0usize..300) {
            let mut new = old.clone();
            for (at, byte) in edits {
                if !new.is_empty() { let i = at % new.len(); new[i] = byte; }
            }
            let third = new.len() / 3;
            new.rotate_left(third);
            let every = percival(&old, &new, Duration::from_mins(1)).unwrap();
            let pruned = prune(&old, &new, &every, min_len);
            prop_assert!(matches(&pruned).iter().all(|m| m.len >= min_len));
            prop_assert_eq!(rebuild(&old, &new, &pruned), new);
        }
    }

    #[test]
    fn short_matches_move_to_the_extra_stream() {
        // Two long runs of the old file with a short one from elsewhere in between.
        let old: Vec<u8> = (0..50_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        let mut new = old[..40_000].to_vec();
        new.extend_from_slice(&old[150_000..150_040]);
        new.extend_from_slice(&old[40_000..100_000]);
        let every = percival(&old, &new, Duration::from_mins(1)).unwrap();
        assert!(
            matches(&every).iter().any(|m| m.len < MIN_MATCH),
            "{:?}",
            matches(&every)
        );
        let pruned = diff(&old, &new, Duration::from_mins(1)).unwrap();
        let kept = matches(&pruned);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.iter().all(|m| m.len >= MIN_MATCH));
        assert_eq!(pruned.extra, old[150_000..150_040]);
        assert_eq!(rebuild(&old, &new, &pruned), new);
    }
}
