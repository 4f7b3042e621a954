//! `repo verify`: checks every signature, version, hash and length in a store,
//! the seed-layout copies and views, and each package's contents against its
//! manifest. It reads only; it reports every problem it finds, not just the first.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use updraft_protocol::manifest::{PackageChunks, PatchCustom};
use updraft_protocol::tuf::{Role, TargetFile};
use updraft_protocol::{ReleaseManifest, Sha256Digest, TargetPath};

use crate::error::{Error, Result};
use crate::layout;
use crate::store::{METADATA_DIR, Store, load_chain, metadata_name};

/// One thing wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned, relative to the store.
    pub path: String,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
    /// The trusted root version reached.
    pub root_version: u64,
    /// Target files whose bytes were checked.
    pub targets_checked: usize,
    /// Packages whose contents were checked against their manifest.
    pub packages_checked: usize,
    /// An interrupted publish was found and undone before checking.
    pub recovered: bool,
    /// S3 stores only: objects no signed metadata refers to (left by an
    /// interrupted publish, or still being uploaded by a running one), with
    /// their size and last modification (Unix seconds). `repo gc` removes
    /// them once older than its grace period. They are not problems:
    /// clients never read them.
    pub orphans: Vec<(String, u64, i64)>,
    /// S3 stores only: browsing views (`versions.json`, `releases/latest/`,
    /// changelog pages, feeds) that do not match the signed targets. A
    /// bucket has no transaction, so a publish killed after it signed its
    /// timestamp leaves them behind; nothing trusts them, and the next
    /// publish or `repo refresh` rewrites them. Not problems.
    pub stale_views: Vec<Problem>,
}

impl VerifyReport {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Verifies the store (or any TUF repository laid out the same way: metadata
/// in `metadata/`, targets relative to the top) at `reference_time`.
pub fn verify(store_dir: &Path, reference_time: OffsetDateTime) -> Result<VerifyReport> {
    let metadata = store_dir.join(METADATA_DIR);
    if !metadata.is_dir() {
        return Err(Error::NotAStore {
            path: store_dir.to_path_buf(),
            reason: "it has no `metadata` folder".into(),
        });
    }
    let mut report = VerifyReport::default();
    // An updraft store is recovered first (an interrupted publish is undone),
    // unless it cannot be written (a read-only mount), in which case the
    // pending transaction is reported instead.
    let _store = if store_dir.join(".updraft").is_dir() {
        match Store::open(store_dir) {
            Ok(store) => {
                report.recovered = store.recovery() == updraft_fs::Recovery::RolledBack;
                Some(store)
            }
            Err(error @ Error::Fs(updraft_fs::Error::Locked { .. })) => return Err(error),
            Err(_) => None,
        }
    } else {
        None
    };
    if store_dir.join(".updraft/tx/journal.json").exists() {
        report.problem(".updraft/tx", "a publish was interrupted; the next `updraft publish` or `updraft repo refresh` undoes it");
    }
    let current = match load_chain(store_dir, None) {
        Ok(current) => current,
        Err(Error::Verification { path, source }) => {
            report.problem(relative(store_dir, &path), source.to_string());
            return Ok(report);
        }
        Err(error) => return Err(error),
    };
    report.root_version = current.root().signed.version;
    let consistent = current.consistent_snapshot;

    check_expiry(
        &mut report,
        &format!("{METADATA_DIR}/{}.root.json", current.root().signed.version),
        &current.root().signed,
        reference_time,
    );
    check_expiry(
        &mut report,
        &format!("{METADATA_DIR}/timestamp.json"),
        &current.timestamp().signed,
        reference_time,
    );
    let snapshot_file = metadata_name("snapshot", current.snapshot().signed.version, consistent);
    check_expiry(
        &mut report,
        &format!("{METADATA_DIR}/{snapshot_file}"),
        &current.snapshot().signed,
        reference_time,
    );
    let targets_file = metadata_name("targets", current.targets().signed.version, consistent);
    check_expiry(
        &mut report,
        &format!("{METADATA_DIR}/{targets_file}"),
        &current.targets().signed,
        reference_time,
    );

    for (role, envelope) in current.trusted.delegated_roles() {
        let file = crate::store::delegated_name(role, envelope.signed.version, consistent);
        check_expiry(
            &mut report,
            &format!("{METADATA_DIR}/{file}"),
            &envelope.signed,
            reference_time,
        );
    }

    let newest_root = metadata.join(format!("{}.root.json", current.root().signed.version));
    if let Ok(plain) = fs::read(metadata.join("root.json"))
        && fs::read(&newest_root).ok().as_deref() != Some(plain.as_slice())
    {
        report.problem(
            format!("{METADATA_DIR}/root.json"),
            format!(
                "it differs from the newest root `{}`",
                relative(store_dir, &newest_root)
            ),
        );
    }

    let resolved = current.resolved();
    let targets = &resolved;
    let updraft_store = metadata.join("versions.json").exists();
    for (name, target) in &targets.targets {
        let Ok(path) = TargetPath::new(name) else {
            report.problem(name.clone(), "the target path is not a safe relative path");
            continue;
        };
        let mut locations = Vec::new();
        match (consistent, target.sha256()) {
            (true, Some(digest)) => locations.push((path.with_hash_prefix(&digest), true)),
            (true, None) => report.problem(
                name.clone(),
                "the target lists no sha256, so its consistent-snapshot copy cannot be found",
            ),
            (false, _) => {}
        }
        // The seed-layout copy under the plain name: required in an updraft
        // store, checked whenever it exists.
        let plain_required = !consistent || updraft_store;
        locations.push((path.to_string(), plain_required));
        for (location, required) in locations {
            let file = store_dir.join(&location);
            if !file.exists() {
                if required {
                    report.problem(location, "the signed target is missing");
                }
                continue;
            }
            report.targets_checked += 1;
            if let Err(message) = check_target(&file, &location, target) {
                report.problem(location, message);
            }
        }
    }

    let (releases, errors) = layout::releases(targets);
    for (path, error) in errors {
        report.problem(path, format!("its release info cannot be read: {error}"));
    }
    for release in &releases {
        check_release(store_dir, targets, release, &mut report);
    }
    for (path, target) in &targets.targets {
        match PatchCustom::from_custom(path, target.custom.as_ref()) {
            Ok(Some(patch)) => check_patch(store_dir, targets, path, target, &patch, &mut report),
            Ok(None) => {}
            Err(error) => report.problem(
                path.clone(),
                format!("its patch info cannot be read: {error}"),
            ),
        }
    }

    if updraft_store {
        let expected = layout::versions_json(targets);
        if fs::read(metadata.join("versions.json")).ok() != Some(expected) {
            report.problem(
                format!("{METADATA_DIR}/versions.json"),
                "it does not match the signed targets; `updraft repo refresh` rewrites it",
            );
        }
        let expected = layout::latest_files(targets);
        for (path, bytes) in &expected {
            if fs::read(store_dir.join(path)).ok().as_ref() != Some(bytes) {
                report.problem(path.clone(), "it is missing or does not match the signed targets; `updraft repo refresh` rewrites it");
            }
        }
        let latest_dir = store_dir.join("releases/latest");
        if let Ok(entries) = fs::read_dir(&latest_dir) {
            for entry in entries.flatten() {
                let path = format!("releases/latest/{}", entry.file_name().to_string_lossy());
                if !expected.contains_key(&path) {
                    report.problem(path, "no signed release corresponds to this file");
                }
            }
        }
    }
    report_links(store_dir, store_dir, &mut report);
    Ok(report)
}

/// Reports every symbolic link in the store (outside `.updraft/`): the
/// server never follows one, so a link is either planted or a mistake.
fn report_links(store_dir: &Path, dir: &Path, report: &mut VerifyReport) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if dir == store_dir && entry.file_name() == ".updraft" {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            let target = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            report.problem(
                relative(store_dir, &path),
                format!("it is a symbolic link to `{target}`; the server never follows links, so it is not served (replace it with the file itself, or remove it)"),
            );
        } else if file_type.is_dir() {
            report_links(store_dir, &path, report);
        }
    }
}

fn relative(store_dir: &Path, path: &Path) -> String {
    path.strip_prefix(store_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn check_expiry<T: Role>(report: &mut VerifyReport, path: &str, role: &T, now: OffsetDateTime) {
    if role.expires().is_expired(now) {
        let hint = if T::NAME.as_str() == "timestamp" {
            "; run `updraft repo refresh`"
        } else {
            ""
        };
        report.problem(path, format!("it expired at {}{hint}", role.expires()));
    }
}

fn check_target(
    file: &Path,
    location: &str,
    target: &TargetFile,
) -> std::result::Result<(), String> {
    let mut checker = target.checker(location).map_err(|e| e.to_string())?;
    let mut reader = File::open(file).map_err(|e| format!("it cannot be read: {e}"))?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| format!("it cannot be read: {e}"))?;
        if n == 0 {
            break;
        }
        checker
            .update(location, &buffer[..n])
            .map_err(|e| e.to_string())?;
    }
    checker.finish(location, target).map_err(|e| e.to_string())
}

fn check_release(
    store_dir: &Path,
    targets: &updraft_protocol::tuf::Targets,
    release: &layout::PublishedRelease,
    report: &mut VerifyReport,
) {
    let custom = &release.custom;
    let manifest_ref = &custom.manifest;
    match targets.targets.get(manifest_ref.path.as_str()) {
        Some(target)
            if target.length == manifest_ref.length
                && target.sha256() == Some(manifest_ref.sha256) => {}
        Some(_) => report.problem(
            release.path.clone(),
            format!(
                "its manifest reference does not match the signed target `{}`",
                manifest_ref.path
            ),
        ),
        None => {
            report.problem(
                release.path.clone(),
                format!(
                    "its manifest `{}` is not a signed target",
                    manifest_ref.path
                ),
            );
            return;
        }
    }
    if let Some(changelog) = &custom.changelog {
        let signed = targets.targets.get(changelog.path.as_str());
        if signed
            .is_none_or(|t| t.length != changelog.length || t.sha256() != Some(changelog.sha256))
        {
            report.problem(
                release.path.clone(),
                format!(
                    "its changelog reference does not match the signed target `{}`",
                    changelog.path
                ),
            );
        }
    }
    let manifest_path = store_dir.join(manifest_ref.path.as_str());
    let Ok(bytes) = fs::read(&manifest_path) else {
        return;
    }; // already reported as missing
    if Sha256Digest::of(&bytes) != manifest_ref.sha256 {
        return; // already reported as a hash mismatch
    }
    let manifest = match ReleaseManifest::from_slice(manifest_ref.path.as_str(), &bytes) {
        Ok(manifest) => manifest,
        Err(error) => {
            report.problem(manifest_ref.path.to_string(), error.to_string());
            return;
        }
    };
    if !manifest.release.same_release(&custom.release) {
        report.problem(
            manifest_ref.path.to_string(),
            format!(
                "its release info differs from the signed target `{}`",
                release.path
            ),
        );
    }
    if manifest.files.len() as u64 != custom.file_count
        || manifest.installed_size() != custom.installed_size
    {
        report.problem(
            manifest_ref.path.to_string(),
            "its file count or size differs from the signed target",
        );
    }
    if !manifest.files.iter().any(|f| f.path == custom.release.main) {
        report.problem(
            manifest_ref.path.to_string(),
            format!(
                "the main program `{}` is not among its files",
                custom.release.main
            ),
        );
    }
    let package = store_dir.join(&release.path);
    if release
        .sha256
        .is_some_and(|digest| !file_matches(&package, release.length, digest))
    {
        return; // already reported
    }
    report.packages_checked += 1;
    if let Some(chunks) = &manifest.chunks
        && let Err(message) = check_chunks(&package, release.length, chunks)
    {
        report.problem(release.path.clone(), message);
    }
    if let Err(message) = check_package_contents(&package, &manifest) {
        report.problem(release.path.clone(), message);
    }
}

/// A patch target: the manifests and the full package it names are signed
/// targets (else no client can ever use it), and its chunk digests, which
/// clients keep a resumed download by, match its bytes.
fn check_patch(
    store_dir: &Path,
    targets: &updraft_protocol::tuf::Targets,
    path: &str,
    target: &TargetFile,
    patch: &PatchCustom,
    report: &mut VerifyReport,
) {
    for (what, reference) in [("from", &patch.from_manifest), ("to", &patch.to_manifest)] {
        let signed = targets.targets.get(reference.path.as_str());
        if signed
            .is_none_or(|t| t.length != reference.length || t.sha256() != Some(reference.sha256))
        {
            report.problem(
                path,
                format!(
                    "its {what} manifest `{}` is not the signed target of that name",
                    reference.path
                ),
            );
        }
    }
    if !targets.targets.contains_key(patch.full.as_str()) {
        report.problem(
            path,
            format!(
                "its fallback full package `{}` is not a signed target",
                patch.full
            ),
        );
    }
    let file = store_dir.join(path);
    if target
        .sha256()
        .is_some_and(|digest| file_matches(&file, target.length, digest))
        && let Err(message) = check_chunks(&file, target.length, &patch.chunks)
    {
        report.problem(path, message);
    }
}

/// Checks every signed chunk digest of a package of `length` bytes.
fn check_chunks(
    file: &Path,
    length: u64,
    chunks: &PackageChunks,
) -> std::result::Result<(), String> {
    chunks.check("it", length).map_err(|e| e.to_string())?;
    let mut reader = File::open(file).map_err(|e| format!("it cannot be read: {e}"))?;
    for (index, expected) in chunks.sha256.iter().enumerate() {
        let range = chunks.range(index, length);
        let mut hasher = Sha256::new();
        let copied = io::copy(
            &mut (&mut reader).take(range.end - range.start),
            &mut hasher,
        )
        .map_err(|e| format!("it cannot be read: {e}"))?;
        if copied != range.end - range.start
            || Sha256Digest::from_bytes(hasher.finalize().into()) != *expected
        {
            return Err(format!(
                "its bytes {}..{} do not match their signed chunk digest (chunk {index}); clients would refuse them",
                range.start, range.end
            ));
        }
    }
    Ok(())
}

fn file_matches(path: &Path, length: u64, digest: Sha256Digest) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let mut hasher = Sha256::new();
    let Ok(copied) = io::copy(&mut file, &mut hasher) else {
        return false;
    };
    copied == length && Sha256Digest::from_bytes(hasher.finalize().into()) == digest
}

/// Streams the package and checks every entry against the manifest (the
/// same check the client runs while unpacking), writing nothing.
fn check_package_contents(
    package: &Path,
    manifest: &ReleaseManifest,
) -> std::result::Result<(), String> {
    updraft_package::walk(package, manifest, &mut updraft_package::CheckOnly)
}
