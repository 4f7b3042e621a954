//! The install's journal: the one crash-safe switch every version change goes
//! through ([`commit_switch`]), and [`recover`], which finishes or undoes
//! whatever a killed process left half done. Both are built on
//! `updraft-fs` ([`updraft_fs::Intent`] for the intent record, an atomic
//! symlink replace for `current`), and both run only under the install's
//! lock, through [`Install`](crate::Install).

use std::fs;

use updraft_fs::Intent;

use crate::error::{Error, Result};
use crate::layout::{InstallState, Layout};
use crate::os;

/// Staged downloads untouched this long are abandoned and removed.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_hours(7 * 24);

/// The journal's intent: `state.next.json`, committed over `state.json`.
fn intent(layout: &Layout) -> Intent {
    Intent::new(layout.next_state(), layout.state())
}

/// Makes `next` the install's state and points `current` at
/// `next.current_version`, as one crash-safe step:
///
/// 1. write `state.next.json` (the intent) durably;
/// 2. switch `current` with one atomic rename;
/// 3. rename `state.next.json` over `state.json`.
///
/// A process killed anywhere in between is finished or undone by
/// [`recover`]: if `current` already points at the new version the intent is
/// committed, otherwise it is dropped.
pub(crate) fn commit_switch(layout: &Layout, next: &InstallState) -> Result<()> {
    let intent = intent(layout);
    intent.write(&next.to_bytes())?;
    updraft_fs::fault::point("switch.intent");
    os::switch_current(&layout.current(), &next.current_version)?;
    updraft_fs::fault::point("switch.switched");
    intent.commit()?;
    updraft_fs::fault::point("switch.committed");
    Ok(())
}

/// Finishes or undoes whatever a killed process left half done, then cleans
/// up. [`Install`](crate::Install) runs it once, under the lock, whenever an
/// install is opened:
///
/// - a switch with its intent written ([`commit_switch`]) is committed if
///   `current` already points at the new version, and dropped otherwise;
/// - half-unpacked `versions/.*.partial` folders, a stray `.current.new`
///   link, and version folders the state no longer names (half-made
///   releases, versions pruned or rolled back from) are removed;
/// - a `prepared` version whose folder is gone is forgotten;
/// - staged downloads untouched for 7 days are removed.
///
/// Returns true when it changed something.
pub(crate) fn recover(layout: &Layout) -> Result<bool> {
    let mut changed = false;
    let intent = intent(layout);
    if let Some(bytes) = intent.pending()? {
        let next: Option<InstallState> = serde_json::from_slice(&bytes).ok();
        let linked = os::linked_version(&layout.current());
        let done = next
            .as_ref()
            .is_some_and(|next| linked.as_deref() == Some(next.current_version.as_str()));
        if done {
            intent.commit()?;
        } else {
            intent.discard()?;
        }
        changed = true;
    }
    changed |= updraft_fs::discard_symlink_temp(&layout.current())?;
    let Ok(mut state) = InstallState::read(layout) else {
        return Ok(changed);
    };
    if let Some(prepared) = state.prepared.clone()
        && !layout.versions().join(&prepared).is_dir()
    {
        state.prepared = None;
        state.mains.remove(&prepared);
        state.save(layout)?;
        changed = true;
    }
    // Whatever `current` points at is never removed, whatever the state says.
    let linked = os::linked_version(&layout.current());
    if let Ok(entries) = fs::read_dir(layout.versions()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = name == state.current_version
                || state.prepared.as_deref() == Some(name.as_str())
                || state.previous_versions.contains(&name)
                || linked.as_deref() == Some(name.as_str());
            if !named && !in_use(layout, &name) {
                let path = entry.path();
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.map_err(|e| Error::io("remove", &path, e))?;
                changed = true;
            }
        }
    }
    if let Ok(entries) = fs::read_dir(layout.staging()) {
        let now = std::time::SystemTime::now();
        for entry in entries.flatten() {
            // A lock file may be held however old it is (its mtime never moves).
            if entry.file_name().to_string_lossy().ends_with(".lock") {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > STALE_STAGING);
            if stale {
                let path = entry.path();
                // An abandoned download, or a release unpacked from one.
                let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Some `updraft run` of `version` is still running.
fn in_use(layout: &Layout, version: &str) -> bool {
    os::held_elsewhere(&layout.running_lock(version))
}

/// Removes `versions/{version}`, which no state names any more, unless a
/// copy of it is still running (recovery removes it once it has exited).
pub(crate) fn remove_version(layout: &Layout, version: &str) -> Result<()> {
    if in_use(layout, version) {
        return Ok(());
    }
    let dir = layout.versions().join(version);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &dir, e)),
        _ => Ok(()),
    }
}

/// Drops versions beyond the newest `keep` previous ones from `state` and
/// returns them; delete their folders once the new state is committed.
pub(crate) fn prune(state: &mut InstallState, keep: usize) -> Vec<String> {
    let mut removed = Vec::new();
    while state.previous_versions.len() > keep {
        if let Some(old) = state.previous_versions.pop() {
            state.mains.remove(&old);
            removed.push(old);
        }
    }
    removed
}
