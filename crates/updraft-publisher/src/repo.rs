//! `repo init`, `publish` and `repo refresh`: every change to the store is
//! one [`Transaction`](updraft_fs::Transaction), so a crash or a full disk
//! leaves the store exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde_json::Map;
use time::{Duration, OffsetDateTime};
use updraft_fs::fault;
use updraft_protocol::manifest::{
    FORMAT_VERSION, FileRef, PackageFormat, PackageKind, PatchCustom,
};
use updraft_protocol::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, MetaFile, PublicKey, RoleKeys, RoleName, Root,
    SPEC_VERSION, SigningKey, Snapshot, TargetFile, Targets, Timestamp,
};
use updraft_protocol::{
    AppId, Arch, AutoHalt, Channel, PackageCustom, Platform, ReleaseInfo, ReleaseManifest,
    Sha256Digest, TargetPath, Version,
};

use crate::delta::{self, DeltaPolicy, PublishedPatch, SkippedPatch};
use crate::error::{Error, Result};
use crate::keys::{KeyDir, check_trusted};
use crate::layout;
use crate::pack::{self, ModeChange, PackOptions, SourceTree};
use crate::store::{Current, METADATA_DIR, ReleasePaths, Store, metadata_name};

/// How long each role's metadata stays valid after it is signed.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryPolicy {
    /// Root (signed offline): 365 days.
    pub root: Duration,
    /// Targets (signed at each publish): 365 days.
    pub targets: Duration,
    /// Snapshot (signed at each publish): 30 days; `refresh` renews it in its last 7.
    pub snapshot: Duration,
    /// Timestamp: 1 day; re-signed by `repo refresh` (cron) or the server.
    pub timestamp: Duration,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self {
            root: Duration::days(365),
            targets: Duration::days(365),
            snapshot: Duration::days(30),
            timestamp: Duration::days(1),
        }
    }
}

/// What `repo init` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The store.
    pub store: PathBuf,
    /// The root file clients must ship with (`metadata/root.json`).
    pub root_file: PathBuf,
    /// Root keys and threshold.
    pub root_threshold: u64,
    /// Number of root keys.
    pub root_keys: usize,
}

/// Creates an empty signed store in `store_dir` from the keys in `keys_dir`.
pub fn init(
    store_dir: &Path,
    keys_dir: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<InitReport> {
    let keys = KeyDir::open(keys_dir)?;
    let root_keys = keys.root_keys()?;
    let threshold = u64::from(keys.root_threshold()?);
    if (root_keys.len() as u64) < threshold {
        return Err(Error::MissingKey {
            role: format!("root (threshold {threshold})"),
            path: keys_dir.join(format!("root-{}.key", root_keys.len() + 1)),
        });
    }
    let online: Vec<(RoleName, SigningKey)> =
        [RoleName::Targets, RoleName::Snapshot, RoleName::Timestamp]
            .into_iter()
            .map(|role| keys.role_key(role).map(|loaded| (role, loaded.key)))
            .collect::<Result<_>>()?;

    let mut all_keys = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let root_ids: Vec<String> = root_keys.iter().map(|k| k.key.public().key_id()).collect();
    for key in &root_keys {
        all_keys.insert(key.key.public().key_id(), key.key.public());
    }
    roles.insert(
        "root".to_owned(),
        RoleKeys {
            keyids: root_ids,
            threshold,
            unrecognized: Map::new(),
        },
    );
    for (role, key) in &online {
        let public: PublicKey = key.public();
        all_keys.insert(public.key_id(), public.clone());
        roles.insert(
            role.as_str().to_owned(),
            RoleKeys {
                keyids: vec![public.key_id()],
                threshold: 1,
                unrecognized: Map::new(),
            },
        );
    }
    let root = Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires::at(now + policy.root),
        consistent_snapshot: true,
        keys: all_keys,
        roles,
        unrecognized: Map::new(),
    };
    let signers: Vec<&SigningKey> = root_keys.iter().map(|k| &k.key).collect();
    let root = Envelope::sign(root, &signers);
    let key_of = |role: RoleName| {
        &online
            .iter()
            .find(|(r, _)| *r == role)
            .expect("loaded above")
            .1
    };

    let targets = Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires::at(now + policy.targets),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Map::new(),
    };
    let targets = Envelope::sign(targets, &[key_of(RoleName::Targets)]);
    let (snapshot, timestamp) = sign_snapshot_and_timestamp(
        None,
        &targets,
        1,
        1,
        now,
        policy,
        key_of(RoleName::Snapshot),
        key_of(RoleName::Timestamp),
    );

    let store = Store::create(store_dir)?;
    let mut tx = store.begin()?;
    let root_bytes = root.to_bytes();
    tx.stage_bytes(&meta_path("1.root.json"), &root_bytes)?;
    tx.stage_bytes(&meta_path("root.json"), &root_bytes)?;
    tx.stage_bytes(
        &Path::new(METADATA_DIR).join("versions.json"),
        &layout::versions_json(&targets.signed),
    )?;
    stage_metadata(&mut tx, &targets, &snapshot, &timestamp)?;
    tx.commit()?;
    Ok(InitReport {
        store: store_dir.to_path_buf(),
        root_file: store_dir.join(METADATA_DIR).join("root.json"),
        root_threshold: threshold,
        root_keys: root_keys.len(),
    })
}

pub(crate) fn meta_path(name: &str) -> PathBuf {
    Path::new(METADATA_DIR).join(name)
}

#[allow(clippy::too_many_arguments)]
fn sign_snapshot_and_timestamp(
    previous: Option<&Snapshot>,
    targets: &Envelope<Targets>,
    snapshot_version: u64,
    timestamp_version: u64,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
    snapshot_key: &SigningKey,
    timestamp_key: &SigningKey,
) -> (Envelope<Snapshot>, Envelope<Timestamp>) {
    // Delegated roles stay pinned as they were.
    let mut meta = previous.map(|s| s.meta.clone()).unwrap_or_default();
    meta.insert(
        "targets.json".to_owned(),
        MetaFile::pinned(targets.signed.version, &targets.to_bytes()),
    );
    let snapshot = Snapshot {
        type_: "snapshot".into(),
        spec_version: SPEC_VERSION.into(),
        version: snapshot_version,
        expires: Expires::at(now + policy.snapshot),
        meta,
        unrecognized: Map::new(),
    };
    let snapshot = Envelope::sign(snapshot, &[snapshot_key]);
    let timestamp = sign_timestamp(&snapshot, timestamp_version, now, policy, timestamp_key);
    (snapshot, timestamp)
}

pub(crate) fn sign_timestamp(
    snapshot: &Envelope<Snapshot>,
    version: u64,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
    key: &SigningKey,
) -> Envelope<Timestamp> {
    let mut meta = BTreeMap::new();
    meta.insert(
        "snapshot.json".to_owned(),
        MetaFile::pinned(snapshot.signed.version, &snapshot.to_bytes()),
    );
    let timestamp = Timestamp {
        type_: "timestamp".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires::at(now + policy.timestamp),
        meta,
        unrecognized: Map::new(),
    };
    Envelope::sign(timestamp, &[key])
}

/// Stages targets, snapshot and timestamp in the order readers need: a
/// reader that sees the new timestamp finds everything it points to.
fn stage_metadata(
    tx: &mut updraft_fs::Transaction,
    targets: &Envelope<Targets>,
    snapshot: &Envelope<Snapshot>,
    timestamp: &Envelope<Timestamp>,
) -> Result<()> {
    tx.stage_bytes(
        &meta_path(&metadata_name("targets", targets.signed.version, true)),
        &targets.to_bytes(),
    )?;
    tx.stage_bytes(
        &meta_path(&metadata_name("snapshot", snapshot.signed.version, true)),
        &snapshot.to_bytes(),
    )?;
    tx.stage_bytes(&meta_path("timestamp.json"), &timestamp.to_bytes())?;
    Ok(())
}

/// Stages the seed-layout views that differ from what is on disk.
pub(crate) fn stage_views(
    store: &Store,
    tx: &mut updraft_fs::Transaction,
    targets: &Targets,
) -> Result<()> {
    let mut views = layout::latest_files(targets);
    views.insert(
        format!("{METADATA_DIR}/versions.json"),
        layout::versions_json(targets),
    );
    let (releases, _) = layout::releases(targets);
    let infos: Vec<&ReleaseInfo> = releases.iter().map(|r| &r.custom.release).collect();
    views.extend(crate::announce::store_files(&infos));
    for (path, bytes) in views {
        if fs::read(store.path().join(&path)).ok().as_deref() != Some(bytes.as_slice()) {
            tx.stage_bytes(Path::new(&path), &bytes)?;
        }
    }
    Ok(())
}

/// Everything `publish` needs to know about a release.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Application id.
    pub app: AppId,
    /// Version.
    pub version: Version,
    /// Operating system.
    pub platform: Platform,
    /// CPU architecture.
    pub arch: Arch,
    /// Channel (`stable` by default).
    pub channel: Channel,
    /// Main program, relative to the source folder.
    pub main: TargetPath,
    /// Release notes file (Markdown).
    pub notes: Option<PathBuf>,
    /// Rollout percentage, 0–100.
    pub rollout_percent: u8,
    /// Forced update.
    pub force: bool,
    /// Clients below this version must update.
    pub min_supported_version: Option<Version>,
    /// Halt the rollout by itself when too many installs fail (signed with the release).
    pub auto_halt: Option<AutoHalt>,
    /// The folder to publish.
    pub source: PathBuf,
    /// Packing options.
    pub pack: PackOptions,
    /// Earlier releases to build delta packages from.
    pub deltas: DeltaPolicy,
}

/// What `publish` wrote.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// Package target path.
    pub package: TargetPath,
    /// Package length.
    pub length: u64,
    /// Package digest.
    pub sha256: Sha256Digest,
    /// Manifest target path.
    pub manifest: TargetPath,
    /// Number of files in the release.
    pub file_count: usize,
    /// Sum of their sizes.
    pub installed_size: u64,
    /// New targets metadata version.
    pub targets_version: u64,
    /// Entries whose setuid/setgid/sticky or group/other-write bits were
    /// dropped: the package and manifest carry the safe mode.
    pub mode_changes: Vec<ModeChange>,
    /// Delta packages added beside the full package.
    pub patches: Vec<PublishedPatch>,
    /// Delta packages not added (no smaller than the full package, or the
    /// old release unusable), with why.
    pub skipped_patches: Vec<SkippedPatch>,
}

const MAX_NOTES: u64 = 1 << 20;

/// Packs, signs and adds a release to the store.
pub fn publish(
    store_dir: &Path,
    keys_dir: &Path,
    request: &PublishRequest,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<PublishReport> {
    publish_as(store_dir, keys_dir, request, None, now, policy)
}

/// [`publish`], signing the release into delegated role `role` (delegated
/// by the top-level targets with `repo delegate`) with `keys_dir/ROLE.key`
/// instead of the targets key, which can stay offline. Snapshot and
/// timestamp are re-signed with the keys in `keys_dir`.
pub fn publish_as(
    store_dir: &Path,
    keys_dir: &Path,
    request: &PublishRequest,
    role: Option<&str>,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<PublishReport> {
    publish_inner(store_dir, keys_dir, request, role, None, now, policy)
}

/// [`publish`] with the targets key offline: packs and adds the release's
/// files to the store (unreferenced until signed), and writes the next
/// targets version, unsigned, to `out` for `repo sign` and `repo
/// import-signed` (which re-signs snapshot and timestamp). Only the snapshot
/// and timestamp keys of `keys_dir` are checked, for the import.
pub fn publish_unsigned(
    store_dir: &Path,
    keys_dir: &Path,
    request: &PublishRequest,
    out: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<PublishReport> {
    publish_inner(store_dir, keys_dir, request, None, Some(out), now, policy)
}

#[allow(clippy::too_many_lines)]
fn publish_inner(
    store_dir: &Path,
    keys_dir: &Path,
    request: &PublishRequest,
    role: Option<&str>,
    export: Option<&Path>,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<PublishReport> {
    if let Some(out) = export
        && out.exists()
    {
        return Err(Error::AlreadyExists {
            path: out.to_path_buf(),
            hint: "choose another file for the unsigned targets (it is never overwritten)".into(),
        });
    }
    if request.rollout_percent > 100 {
        return Err(Error::InvalidArgument(
            updraft_protocol::Error::InvalidName {
                kind: "rollout percentage",
                value: request.rollout_percent.to_string(),
                reason: "it must be between 0 and 100".into(),
            },
        ));
    }
    if let Some(min) = &request.min_supported_version
        && min > &request.version
    {
        return Err(Error::InvalidArgument(
            updraft_protocol::Error::InvalidVersion {
                value: min.to_string(),
                reason: format!(
                    "the minimum supported version cannot be newer than the release itself ({})",
                    request.version
                ),
            },
        ));
    }
    let notes = match &request.notes {
        None => None,
        Some(path) => Some(read_notes(path)?),
    };
    let tree = SourceTree::scan(&request.source)?;
    let Some((main_size, main_mode)) = tree.file(&request.main) else {
        return Err(Error::MainNotFound {
            main: request.main.to_string(),
            source_dir: request.source.clone(),
        });
    };
    let unusable = if main_size == 0 {
        Some("is empty (0 bytes); point `--main` at the built program".to_owned())
    } else if cfg!(unix) && request.platform != Platform::Windows && main_mode & 0o111 == 0 {
        // Windows has no execute bit; a package for it may be built anywhere.
        Some(format!(
            "is not executable (mode {main_mode:04o}); run `chmod +x` on it before publishing"
        ))
    } else {
        None
    };
    if let Some(reason) = unusable {
        return Err(Error::MainNotRunnable {
            main: request.main.to_string(),
            source_dir: request.source.clone(),
            reason,
        });
    }

    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let keys = KeyDir::open(keys_dir)?;
    let root = &current.root().signed;
    // Check every key before packing, so a wrong folder fails fast.
    let signer = match role {
        None if export.is_some() => Signer::Targets,
        None => {
            keys.trusted_role_key(RoleName::Targets, root)?;
            Signer::Targets
        }
        Some(name) => {
            let delegation = delegation_of(&current, name)?;
            let key = keys.delegated_key(name)?;
            if !delegation.keyids.contains(&key.key.public().key_id()) {
                return Err(Error::WrongKey {
                    role: name.into(),
                    path: key.path.clone(),
                    reason: format!(
                        "its key id is not among the keys the targets role delegates `{name}` to"
                    ),
                });
            }
            Signer::Delegated(name.to_owned(), Box::new(delegation), Box::new(key))
        }
    };
    for role in [RoleName::Snapshot, RoleName::Timestamp] {
        keys.trusted_role_key(role, root)?;
    }

    let resolved = current.resolved();
    let (existing, _) = layout::releases(&resolved);
    if existing.iter().any(|r| {
        let info = &r.custom.release;
        info.app == request.app
            && info.version == request.version
            && info.platform == request.platform
            && info.arch == request.arch
    }) {
        return Err(Error::AlreadyPublished {
            app: request.app.to_string(),
            version: request.version.to_string(),
            platform: request.platform.to_string(),
            arch: request.arch.to_string(),
            store: store_dir.to_path_buf(),
        });
    }

    let format = PackageFormat::TarZst;
    let paths = ReleasePaths::new(
        &request.app,
        &request.version,
        &request.channel,
        request.platform,
        request.arch,
        format.extension(),
    );
    if let Signer::Delegated(name, delegation, _) = &signer {
        let mut paths_needed = vec![&paths.package, &paths.manifest];
        if notes.is_some() {
            paths_needed.push(&paths.changelog);
        }
        for path in paths_needed {
            if !delegation.is_delegated_path(path.as_str()) {
                return Err(Error::Conflict(format!(
                    "The role `{name}` may not sign `{path}`: its delegation covers only {}; publish with the targets key, or widen the delegation with `updraft repo delegate`",
                    describe_paths(delegation)
                )));
            }
        }
    }
    let release_date = Expires::at(now).to_string();
    let mut tx = store.begin()?;

    let staged = tx.stage_file(Path::new(paths.package.as_str()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, staged);
    let options = PackOptions {
        mtime: u64::try_from(now.unix_timestamp()).unwrap_or(0),
        ..request.pack
    };
    let packed = pack::pack(&tree, &mut writer, &options)?;
    let staged = writer.into_inner().map_err(|e| {
        Error::io(
            "write",
            store_dir.join(paths.package.as_str()),
            e.into_error(),
        )
    })?;
    staged.commit()?;
    fault::point("publish.packed");

    let release = ReleaseInfo {
        app: request.app.clone(),
        version: request.version.clone(),
        channel: request.channel.clone(),
        platform: request.platform,
        arch: request.arch,
        main: request.main.clone(),
        release_date,
        notes: notes.clone().unwrap_or_default(),
        min_supported_version: request.min_supported_version.clone(),
        force: request.force,
        rollout_percent: request.rollout_percent,
        halted: false,
        yanked: false,
        auto_halt: request.auto_halt,
    };
    let manifest = ReleaseManifest {
        format_version: FORMAT_VERSION,
        release: release.clone(),
        files: packed.files.clone(),
        dirs: packed.dirs.clone(),
        symlinks: packed.symlinks.clone(),
        chunks: Some(packed.chunks.clone()),
        // One frame has nowhere to restart but its start: no list.
        restarts: if packed.restarts.len() > 1 {
            packed.restarts.clone()
        } else {
            Vec::new()
        },
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    manifest_bytes.push(b'\n');
    let manifest_ref = FileRef {
        path: paths.manifest.clone(),
        length: manifest_bytes.len() as u64,
        sha256: Sha256Digest::of(&manifest_bytes),
    };
    tx.stage_bytes(Path::new(paths.manifest.as_str()), &manifest_bytes)?;

    let mut new_targets = match &signer {
        Signer::Targets => current.targets().signed.clone(),
        Signer::Delegated(name, _, _) => current.delegated(name).map_or_else(
            || Targets {
                type_: "targets".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: Expires::at(now + policy.targets),
                targets: BTreeMap::new(),
                delegations: None,
                unrecognized: Map::new(),
            },
            |e| e.signed.clone(),
        ),
    };
    let mut add_target =
        |tx: &mut updraft_fs::Transaction, path: &TargetPath, target: TargetFile| -> Result<()> {
            let digest = target.sha256().expect("sha256 set above");
            tx.stage_link(
                Path::new(&path.with_hash_prefix(&digest)),
                Path::new(path.as_str()),
            )?;
            new_targets.targets.insert(path.to_string(), target);
            Ok(())
        };

    let changelog = match notes {
        None => None,
        Some(text) => {
            let bytes = text.into_bytes();
            let reference = FileRef {
                path: paths.changelog.clone(),
                length: bytes.len() as u64,
                sha256: Sha256Digest::of(&bytes),
            };
            match resolved.targets.get(paths.changelog.as_str()) {
                Some(existing) if existing.sha256() == Some(reference.sha256) => {}
                Some(_) => {
                    return Err(Error::Conflict(format!(
                        "The notes for {} {} differ from those already published for another platform in `{}`; publish every platform of a version with the same notes",
                        request.app, request.version, paths.changelog
                    )));
                }
                None => {
                    tx.stage_bytes(Path::new(paths.changelog.as_str()), &bytes)?;
                    add_target(
                        &mut tx,
                        &paths.changelog,
                        TargetFile::new(reference.length, &reference.sha256, None),
                    )?;
                }
            }
            Some(reference)
        }
    };
    add_target(
        &mut tx,
        &paths.manifest,
        TargetFile::new(manifest_ref.length, &manifest_ref.sha256, None),
    )?;
    let (patches, skipped_patches) = stage_patches(
        &store,
        &mut tx,
        &mut add_target,
        &existing,
        request,
        (&manifest, &manifest_ref),
        &paths.package,
        packed.length,
    )?;
    let custom = PackageCustom {
        format_version: FORMAT_VERSION,
        kind: PackageKind::Full,
        format,
        release,
        installed_size: tree.total_size(),
        file_count: packed.files.len() as u64,
        manifest: manifest_ref,
        changelog,
    };
    add_target(
        &mut tx,
        &paths.package,
        TargetFile::new(packed.length, &packed.sha256, Some(custom.to_custom())),
    )?;

    if let Some(out) = export {
        // The files first: an exported targets file never names a file the
        // store lacks. Until it is imported they are unreferenced.
        new_targets.version = current.targets().signed.version + 1;
        new_targets.expires = Expires::at(now + policy.targets);
        fault::point("publish.staged");
        tx.commit()?;
        crate::keymgmt::write_unsigned_targets(&current, new_targets, out)?;
        return Ok(PublishReport {
            package: paths.package,
            length: packed.length,
            sha256: packed.sha256,
            manifest: paths.manifest,
            file_count: packed.files.len(),
            installed_size: tree.total_size(),
            targets_version: current.targets().signed.version + 1,
            mode_changes: tree.mode_changes().to_vec(),
            patches,
            skipped_patches,
        });
    }
    let targets_version = match &signer {
        Signer::Targets => {
            stage_new_targets(&store, &mut tx, &current, new_targets, &keys, now, policy)?
        }
        Signer::Delegated(name, _, key) => stage_new_delegated(
            &store,
            &mut tx,
            &current,
            (name, &key.key),
            new_targets,
            &keys,
            now,
            policy,
        )?,
    };
    fault::point("publish.staged");
    tx.commit()?;
    Ok(PublishReport {
        package: paths.package,
        length: packed.length,
        sha256: packed.sha256,
        manifest: paths.manifest,
        file_count: packed.files.len(),
        installed_size: tree.total_size(),
        targets_version,
        mode_changes: tree.mode_changes().to_vec(),
        patches,
        skipped_patches,
    })
}

/// Makes, stages and adds as targets the patches from the releases
/// `request.deltas` chooses to the one being published; a patch no smaller
/// than the full package, or whose old release cannot be used, is skipped.
#[allow(clippy::too_many_arguments)]
fn stage_patches(
    store: &Store,
    tx: &mut updraft_fs::Transaction,
    add_target: &mut impl FnMut(&mut updraft_fs::Transaction, &TargetPath, TargetFile) -> Result<()>,
    existing: &[layout::PublishedRelease],
    request: &PublishRequest,
    (manifest, manifest_ref): (&ReleaseManifest, &FileRef),
    full: &TargetPath,
    full_length: u64,
) -> Result<(Vec<PublishedPatch>, Vec<SkippedPatch>)> {
    let mut patches = Vec::new();
    let mut skipped = Vec::new();
    for base in delta::bases(existing, request)? {
        let from = base.custom.release.version.clone();
        let bytes = match delta::make(
            store.path(),
            base,
            &request.source,
            manifest,
            manifest_ref,
            request.pack.level,
        ) {
            Ok(bytes) => bytes,
            Err(reason) => {
                skipped.push(SkippedPatch { from, reason });
                continue;
            }
        };
        if bytes.len() as u64 >= full_length {
            skipped.push(SkippedPatch {
                reason: format!(
                    "the patch ({} bytes) is no smaller than the full package ({full_length} bytes)",
                    bytes.len()
                ),
                from,
            });
            continue;
        }
        let path = delta::patch_path(request, &from);
        let sha256 = Sha256Digest::of(&bytes);
        tx.stage_bytes(Path::new(path.as_str()), &bytes)?;
        let custom = PatchCustom {
            format_version: FORMAT_VERSION,
            kind: PackageKind::Patch,
            patch_format: updraft_delta::format::FORMAT_VERSION,
            app: request.app.clone(),
            channel: request.channel.clone(),
            platform: request.platform,
            arch: request.arch,
            from_version: from.clone(),
            to_version: request.version.clone(),
            from_manifest: base.custom.manifest.clone(),
            to_manifest: manifest_ref.clone(),
            full: full.clone(),
            chunks: delta::chunks(&bytes),
        };
        add_target(
            tx,
            &path,
            TargetFile::new(bytes.len() as u64, &sha256, Some(custom.to_custom())),
        )?;
        fault::point("publish.patched");
        patches.push(PublishedPatch {
            path,
            from,
            length: bytes.len() as u64,
            sha256,
        });
    }
    Ok((patches, skipped))
}

/// Signs `new_targets` as the next targets version, with a new snapshot and
/// timestamp, and stages them and the views after everything already staged.
fn stage_new_targets(
    store: &Store,
    tx: &mut updraft_fs::Transaction,
    current: &Current,
    mut new_targets: Targets,
    keys: &KeyDir,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<u64> {
    let root = &current.root().signed;
    let targets_key = keys.trusted_role_key(RoleName::Targets, root)?;
    new_targets.version = store.next_version("targets", current.targets().signed.version);
    new_targets.expires = Expires::at(now + policy.targets);
    let targets = Envelope::sign(new_targets, &[&targets_key.key]);
    stage_signed_targets(store, tx, current, &targets, keys, now, policy)?;
    Ok(targets.signed.version)
}

/// Stages `targets` (already signed, the next version) with a new snapshot
/// and timestamp signed by the keys in `keys`, and the views; returns the
/// snapshot and timestamp it staged.
pub(crate) fn stage_signed_targets(
    store: &Store,
    tx: &mut updraft_fs::Transaction,
    current: &Current,
    targets: &Envelope<Targets>,
    keys: &KeyDir,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<(Envelope<Snapshot>, Envelope<Timestamp>)> {
    let root = &current.root().signed;
    let snapshot_key = keys.trusted_role_key(RoleName::Snapshot, root)?;
    let timestamp_key = keys.trusted_role_key(RoleName::Timestamp, root)?;
    let (snapshot, timestamp) = sign_snapshot_and_timestamp(
        Some(&current.snapshot().signed),
        targets,
        store.next_version("snapshot", current.snapshot().signed.version),
        current.timestamp().signed.version + 1,
        now,
        policy,
        &snapshot_key.key,
        &timestamp_key.key,
    );
    stage_views(store, tx, &targets.signed)?;
    stage_metadata(tx, targets, &snapshot, &timestamp)?;
    Ok((snapshot, timestamp))
}

enum Signer {
    Targets,
    Delegated(String, Box<DelegatedRole>, Box<crate::keys::LoadedKey>),
}

fn describe_paths(role: &DelegatedRole) -> String {
    match (&role.paths, &role.path_hash_prefixes) {
        (Some(paths), _) => paths
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", "),
        (None, Some(prefixes)) => {
            format!("paths whose SHA-256 starts with {}", prefixes.join(", "))
        }
        (None, None) => "no path".into(),
    }
}

/// The top-level targets' delegation to `name`.
fn delegation_of(current: &Current, name: &str) -> Result<DelegatedRole> {
    current
        .targets()
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.roles.iter().find(|r| r.name == name))
        .cloned()
        .ok_or_else(|| {
            Error::Conflict(format!(
                "The targets role delegates nothing to `{name}`; run `updraft repo delegate --name {name} ...` first"
            ))
        })
}

/// Signs `new_targets` as the next version of delegated role `role`, with a
/// new snapshot (pinning it) and timestamp; the top-level targets stay as they are.
#[allow(clippy::too_many_arguments)]
fn stage_new_delegated(
    store: &Store,
    tx: &mut updraft_fs::Transaction,
    current: &Current,
    (role, role_key): (&str, &SigningKey),
    mut new_targets: Targets,
    keys: &KeyDir,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<u64> {
    let root = &current.root().signed;
    let snapshot_key = keys.trusted_role_key(RoleName::Snapshot, root)?;
    let timestamp_key = keys.trusted_role_key(RoleName::Timestamp, root)?;
    new_targets.version = store.next_version(
        &updraft_protocol::tuf::role_file_stem(role),
        new_targets.version,
    );
    new_targets.expires = Expires::at(now + policy.targets);
    let delegated = Envelope::sign(new_targets, &[role_key]);
    let bytes = delegated.to_bytes();
    let mut snapshot = current.snapshot().signed.clone();
    snapshot.version = store.next_version("snapshot", snapshot.version);
    snapshot.expires = Expires::at(now + policy.snapshot);
    snapshot.meta.insert(
        format!("{role}.json"),
        MetaFile::pinned(delegated.signed.version, &bytes),
    );
    let snapshot = Envelope::sign(snapshot, &[&snapshot_key.key]);
    let timestamp = sign_timestamp(
        &snapshot,
        current.timestamp().signed.version + 1,
        now,
        policy,
        &timestamp_key.key,
    );
    // The views show what clients will resolve, the new role included.
    let top = &current.targets().signed;
    let mut resolved = top.clone();
    resolved.targets = BTreeMap::new();
    let paths: Vec<&String> = top
        .targets
        .keys()
        .chain(
            current
                .trusted
                .delegated_roles()
                .values()
                .flat_map(|e| e.signed.targets.keys()),
        )
        .chain(delegated.signed.targets.keys())
        .collect();
    for path in paths {
        let found = updraft_protocol::tuf::find_target(path, top, |name| {
            if name == role {
                Some(&delegated.signed)
            } else {
                current.delegated(name).map(|e| &e.signed)
            }
        });
        if let updraft_protocol::tuf::Lookup::Found(target, _) = found {
            resolved.targets.insert(path.clone(), target.clone());
        }
    }
    stage_views(store, tx, &resolved)?;
    tx.stage_bytes(
        &meta_path(&crate::store::delegated_name(
            role,
            delegated.signed.version,
            true,
        )),
        &bytes,
    )?;
    tx.stage_bytes(
        &meta_path(&metadata_name("snapshot", snapshot.signed.version, true)),
        &snapshot.to_bytes(),
    )?;
    tx.stage_bytes(&meta_path("timestamp.json"), &timestamp.to_bytes())?;
    Ok(delegated.signed.version)
}

/// What `repo delegate` changed.
#[derive(Debug, Clone)]
pub struct DelegateReport {
    /// The new top-level targets version.
    pub targets_version: u64,
    /// The delegated key's id.
    pub keyid: String,
    /// True when the role existed and was replaced.
    pub replaced: bool,
}

/// A new (or replaced) delegation from the top-level targets.
#[derive(Debug, Clone)]
pub struct DelegationRequest {
    /// The role's name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Shell-style path patterns it may sign.
    pub paths: Vec<String>,
    /// The public key (or keys) that sign for it.
    pub keys: Vec<PublicKey>,
    /// How many of them must sign.
    pub threshold: u64,
    /// Stop the search at this role for the paths it matches.
    pub terminating: bool,
}

/// `repo delegate`: the top-level targets (signed with `targets.key` from
/// `keys_dir`) delegate `request.paths` to a role signed by `request.keys`.
pub fn delegate(
    store_dir: &Path,
    keys_dir: &Path,
    request: &DelegationRequest,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<DelegateReport> {
    let name = &request.name;
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !RoleName::ALL.iter().any(|r| r.as_str() == name);
    if !valid_name {
        return Err(Error::InvalidArgument(
            updraft_protocol::Error::InvalidName {
                kind: "delegated role name",
                value: name.clone(),
                reason: "it must be 1 to 64 letters, digits, `-`, `_` or `.`, not start with `.`, and not be a top-level role".into(),
            },
        ));
    }
    if request.paths.is_empty() || request.keys.is_empty() {
        return Err(Error::Conflict(
            "A delegation needs at least one --paths pattern and one --key".into(),
        ));
    }
    if request.threshold == 0 || request.threshold > request.keys.len() as u64 {
        return Err(Error::Conflict(format!(
            "A threshold of {} with {} key(s) is impossible",
            request.threshold,
            request.keys.len()
        )));
    }
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let keys = KeyDir::open(keys_dir)?;
    let mut new_targets = current.targets().signed.clone();
    let delegations = new_targets.delegations.get_or_insert_with(|| Delegations {
        keys: BTreeMap::new(),
        roles: Vec::new(),
        unrecognized: Map::new(),
    });
    let keyids: Vec<String> = request.keys.iter().map(PublicKey::key_id).collect();
    for key in &request.keys {
        delegations.keys.insert(key.key_id(), key.clone());
    }
    let role = DelegatedRole {
        name: name.clone(),
        keyids: keyids.clone(),
        threshold: request.threshold,
        terminating: request.terminating,
        paths: Some(request.paths.clone()),
        path_hash_prefixes: None,
        unrecognized: Map::new(),
    };
    let replaced = if let Some(existing) = delegations.roles.iter_mut().find(|r| r.name == *name) {
        *existing = role;
        true
    } else {
        delegations.roles.push(role);
        false
    };
    // Drop keys no delegation uses any more.
    let used: std::collections::HashSet<String> = delegations
        .roles
        .iter()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    delegations.keys.retain(|id, _| used.contains(id));
    let mut tx = store.begin()?;
    let targets_version =
        stage_new_targets(&store, &mut tx, &current, new_targets, &keys, now, policy)?;
    tx.commit()?;
    Ok(DelegateReport {
        targets_version,
        keyid: keyids[0].clone(),
        replaced,
    })
}

/// A change to a published release's rollout (`updraft rollout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// Offer the release to this share of installs (0–100).
    Percent(u8),
    /// Pause: offer it to nobody until resumed.
    Halt,
    /// Undo a halt.
    Resume,
    /// Withdraw it for good (it is never offered again).
    Yank,
    /// Set (or with `None` remove) the rule that halts the rollout by itself.
    AutoHalt(Option<AutoHalt>),
}

/// What `updraft rollout` changed.
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// Package targets changed (one per platform and arch).
    pub packages: Vec<String>,
    /// The new targets metadata version.
    pub targets_version: u64,
}

/// Writes a rollout change for every platform of `app` `version` into the
/// signed targets, for static-feed clients (and the server's default view).
pub fn rollout(
    store_dir: &Path,
    keys_dir: &Path,
    app: &AppId,
    version: &Version,
    action: RolloutAction,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RolloutReport> {
    rollout_all(store_dir, keys_dir, app, version, &[action], now, policy)
}

/// Like [`rollout`], with several changes signed as one targets version.
pub fn rollout_all(
    store_dir: &Path,
    keys_dir: &Path,
    app: &AppId,
    version: &Version,
    actions: &[RolloutAction],
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RolloutReport> {
    for action in actions {
        if let RolloutAction::Percent(percent) = action
            && *percent > 100
        {
            return Err(Error::InvalidArgument(
                updraft_protocol::Error::InvalidName {
                    kind: "rollout percentage",
                    value: percent.to_string(),
                    reason: "it must be between 0 and 100".into(),
                },
            ));
        }
        if let RolloutAction::AutoHalt(Some(rule)) = action
            && rule.max_failure_basis_points > 10_000
        {
            return Err(Error::InvalidArgument(
                updraft_protocol::Error::InvalidName {
                    kind: "failure rate",
                    value: rule.percent(),
                    reason: "it must be between 0 and 100 %".into(),
                },
            ));
        }
    }
    let store = Store::open(store_dir)?;
    let current = store.load_current()?;
    let keys = KeyDir::open(keys_dir)?;
    let mut new_targets = current.targets().signed.clone();
    let mut packages = Vec::new();
    for (path, target) in &mut new_targets.targets {
        let Some(mut custom) = PackageCustom::from_custom(path, target.custom.as_ref())? else {
            continue;
        };
        if custom.release.app != *app || custom.release.version != *version {
            continue;
        }
        for action in actions {
            match *action {
                RolloutAction::Percent(percent) => custom.release.rollout_percent = percent,
                RolloutAction::Halt => custom.release.halted = true,
                RolloutAction::Resume => custom.release.halted = false,
                RolloutAction::Yank => custom.release.yanked = true,
                RolloutAction::AutoHalt(rule) => custom.release.auto_halt = rule,
            }
        }
        target.custom = Some(custom.to_custom());
        packages.push(path.clone());
    }
    if packages.is_empty() {
        return Err(Error::Conflict(format!(
            "{app} {version} is not published in `{}`",
            store_dir.display()
        )));
    }
    let mut tx = store.begin()?;
    let targets_version =
        stage_new_targets(&store, &mut tx, &current, new_targets, &keys, now, policy)?;
    tx.commit()?;
    Ok(RolloutReport {
        packages,
        targets_version,
    })
}

fn read_notes(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(|e| Error::io("read the notes file", path, e))?;
    if meta.len() > MAX_NOTES {
        return Err(Error::Conflict(format!(
            "The notes file `{}` is {} bytes; the limit is {MAX_NOTES}",
            path.display(),
            meta.len()
        )));
    }
    let bytes = fs::read(path).map_err(|e| Error::io("read the notes file", path, e))?;
    String::from_utf8(bytes).map_err(|_| {
        Error::Conflict(format!(
            "The notes file `{}` is not UTF-8 text",
            path.display()
        ))
    })
}

/// What `repo refresh` re-signed.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    /// The new timestamp version.
    pub timestamp_version: u64,
    /// When it expires.
    pub timestamp_expires: Expires,
    /// Whether the snapshot was renewed too (it was close to expiry).
    pub renewed_snapshot: bool,
    /// Whether the targets were renewed too (close to expiry, targets key present).
    pub renewed_targets: bool,
}

/// Re-signs the timestamp (and the snapshot or targets when they are within
/// a quarter of their lifetime of expiring), and repairs the seed-layout views.
pub fn refresh(
    store_dir: &Path,
    keys_dir: &Path,
    now: OffsetDateTime,
    policy: &ExpiryPolicy,
) -> Result<RefreshReport> {
    let store = Store::open(store_dir)?;
    let current: Current = store.load_current()?;
    let keys = KeyDir::open(keys_dir)?;
    let root = &current.root().signed;
    let timestamp_key = keys.trusted_role_key(RoleName::Timestamp, root)?;
    let due = |expires: Expires, lifetime: Duration| expires.instant() - now < lifetime / 4;

    let mut targets = current.targets().clone();
    let mut snapshot = current.snapshot().clone();
    let renewed_targets = due(targets.signed.expires, policy.targets);
    if renewed_targets {
        let key = keys.trusted_role_key(RoleName::Targets, root)?;
        let mut signed = targets.signed.clone();
        signed.version = store.next_version("targets", signed.version);
        signed.expires = Expires::at(now + policy.targets);
        targets = Envelope::sign(signed, &[&key.key]);
    }
    let renewed_snapshot = renewed_targets || due(snapshot.signed.expires, policy.snapshot);
    if renewed_snapshot {
        let key = keys.role_key(RoleName::Snapshot)?;
        check_trusted(&key, RoleName::Snapshot, root)?;
        let mut signed = snapshot.signed.clone();
        signed.version = store.next_version("snapshot", signed.version);
        signed.expires = Expires::at(now + policy.snapshot);
        signed.meta.insert(
            "targets.json".to_owned(),
            MetaFile::pinned(targets.signed.version, &targets.to_bytes()),
        );
        snapshot = Envelope::sign(signed, &[&key.key]);
    }
    let timestamp = sign_timestamp(
        &snapshot,
        current.timestamp().signed.version + 1,
        now,
        policy,
        &timestamp_key.key,
    );

    let mut tx = store.begin()?;
    stage_views(&store, &mut tx, &targets.signed)?;
    if renewed_targets {
        tx.stage_bytes(
            &meta_path(&metadata_name("targets", targets.signed.version, true)),
            &targets.to_bytes(),
        )?;
    }
    if renewed_snapshot {
        tx.stage_bytes(
            &meta_path(&metadata_name("snapshot", snapshot.signed.version, true)),
            &snapshot.to_bytes(),
        )?;
    }
    tx.stage_bytes(&meta_path("timestamp.json"), &timestamp.to_bytes())?;
    tx.commit()?;
    Ok(RefreshReport {
        timestamp_version: timestamp.signed.version,
        timestamp_expires: timestamp.signed.expires,
        renewed_snapshot,
        renewed_targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeygenOptions, generate};

    #[test]
    fn refresh_bumps_the_timestamp_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, store) = (dir.path().join("keys"), dir.path().join("store"));
        generate(&keys, KeygenOptions::default()).unwrap();
        let now = OffsetDateTime::now_utc();
        init(&store, &keys, now, &ExpiryPolicy::default()).unwrap();
        let report = refresh(
            &store,
            &keys,
            now + Duration::hours(23),
            &ExpiryPolicy::default(),
        )
        .unwrap();
        assert_eq!(report.timestamp_version, 2);
        assert!(!report.renewed_snapshot && !report.renewed_targets);
        // Near the snapshot's expiry the snapshot is renewed too.
        let report = refresh(
            &store,
            &keys,
            now + Duration::days(28),
            &ExpiryPolicy::default(),
        )
        .unwrap();
        assert!(report.renewed_snapshot && !report.renewed_targets);
        let current = crate::store::load_chain(&store, Some(now + Duration::days(28))).unwrap();
        assert_eq!(current.snapshot().signed.version, 2);
    }
}
