//! Publishing and verifying a store through the library: every refusal names
//! what was wrong and leaves the store byte-identical.

use std::fs;
use std::path::Path;

use time::OffsetDateTime;
use updraft_publisher::{Error, ErrorKind, ExpiryPolicy};
use updraft_test_support::{TestStore, write_app};

fn publish_err(store: &TestStore, request: &updraft_publisher::PublishRequest) -> Error {
    let before = store.snapshot();
    let error = updraft_publisher::publish(
        &store.store,
        &store.keys,
        request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(
        store.snapshot(),
        before,
        "a refused publish changed the store ({error})"
    );
    assert!(
        !store.store.join(".updraft/tx").exists(),
        "staging left behind"
    );
    error
}

/// The manifest `report` wrote, as JSON.
fn manifest_of(store: &TestStore, report: &updraft_publisher::PublishReport) -> serde_json::Value {
    serde_json::from_slice(&fs::read(store.store.join(report.manifest.as_str())).unwrap()).unwrap()
}

/// A store and the test app at 1.0.0 in `src-1.0.0`, not yet published.
fn store_with_app(dir: &Path) -> (TestStore, std::path::PathBuf) {
    let store = TestStore::new(dir);
    let source = store.dir.join("src-1.0.0");
    write_app(&source, "1.0.0");
    (store, source)
}

fn publish_ok(
    store: &TestStore,
    request: &updraft_publisher::PublishRequest,
) -> updraft_publisher::PublishReport {
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap()
}

/// The paths of a manifest's regular files, in order.
fn file_paths(manifest: &serde_json::Value) -> Vec<&str> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

#[test]
fn a_published_store_verifies_and_lays_out_the_seed_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let report = store.publish("1.1.0");
    assert_eq!(
        report.package.as_str(),
        "releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_full.tar.zst"
    );
    for path in [
        "releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_full.tar.zst",
        "releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_manifest.json",
        "releases/latest/kuzflow_stable_linux_x86_64.json",
        "metadata/versions.json",
        "metadata/2.targets.json",
        "metadata/timestamp.json",
    ] {
        assert!(store.store.join(path).is_file(), "{path} missing");
    }
    let manifest = manifest_of(&store, &report);
    let files = file_paths(&manifest);
    assert_eq!(files, ["bin/app", "lib/libcore.so.1", "share/data.bin"]);
    assert_eq!(manifest["files"][0]["mode"], 0o755);
    assert_eq!(manifest["symlinks"][0]["target"], "libcore.so.1");
    let versions: serde_json::Value =
        serde_json::from_slice(&fs::read(store.store.join("metadata/versions.json")).unwrap())
            .unwrap();
    assert_eq!(versions["apps"]["kuzflow"][0]["version"], "1.1.0");

    let verified = updraft_publisher::verify(&store.store, OffsetDateTime::now_utc()).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    assert_eq!(verified.packages_checked, 1);
}

#[test]
fn republishing_the_same_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let mut request = TestStore::request("1.0.0+rebuild.2", &dir.path().join("src-1.0.0"));
    request.channel = "beta".parse().unwrap();
    let error = publish_err(&store, &request);
    assert!(matches!(error, Error::AlreadyPublished { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("kuzflow 1.0.0+rebuild.2 for linux/x86_64 is already published"),
        "{error}"
    );
    // Another platform of the same version is a different release.
    let mut request = TestStore::request("1.0.0", &dir.path().join("src-1.0.0"));
    request.platform = "windows".parse().unwrap();
    updraft_publisher::publish(
        &store.store,
        &store.keys,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap();
}

#[test]
fn bad_sources_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());

    let missing = dir.path().join("no-such-folder");
    let error = publish_err(&store, &TestStore::request("1.0.0", &missing));
    assert!(
        error.to_string().contains("no-such-folder")
            && error.to_string().contains("does not exist"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Usage);

    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("sub")).unwrap();
    let error = publish_err(&store, &TestStore::request("1.0.0", &empty));
    assert!(error.to_string().contains("is empty"), "{error}");

    let source = dir.path().join("app");
    write_app(&source, "1.0.0");
    let mut request = TestStore::request("1.0.0", &source);
    request.main = "bin/missing".parse().unwrap();
    let error = publish_err(&store, &request);
    assert!(error.to_string().contains("`bin/missing`"), "{error}");

    request.main = "lib".parse().unwrap();
    let error = publish_err(&store, &request);
    assert!(
        matches!(error, Error::MainNotFound { .. }),
        "a folder is not a main program: {error}"
    );

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("../../../etc/passwd", source.join("lib/escape")).unwrap();
        let error = publish_err(&store, &TestStore::request("1.0.0", &source));
        assert!(matches!(error, Error::SymlinkOutside { .. }), "{error}");
        assert!(
            error.to_string().contains("lib/escape")
                && error.to_string().contains("../../../etc/passwd"),
            "{error}"
        );
        fs::remove_file(source.join("lib/escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", source.join("abs")).unwrap();
        assert!(matches!(
            publish_err(&store, &TestStore::request("1.0.0", &source)),
            Error::SymlinkOutside { .. }
        ));
        fs::remove_file(source.join("abs")).unwrap();

        let fifo = source.join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let error = publish_err(&store, &TestStore::request("1.0.0", &source));
        assert!(
            error.to_string().contains("named pipe") && error.to_string().contains("pipe"),
            "{error}"
        );
        fs::remove_file(&fifo).unwrap();
    }

    let mut request = TestStore::request("1.0.0", &source);
    request.min_supported_version = Some("2.0.0".parse().unwrap());
    let error = publish_err(&store, &request);
    assert!(error.to_string().contains("`2.0.0`"), "{error}");
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let source = dir.path().join("app");
    write_app(&source, "1.0.0");
    let secret = source.join("share/data.bin");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&secret).is_ok() {
        // Root reads files whatever their mode, so this machine cannot make an
        // unreadable file; the check runs wherever the tests run unprivileged.
        eprintln!("skipped: running as root, file permissions do not stop reads");
        return;
    }
    let error = publish_err(&store, &TestStore::request("1.0.0", &source));
    assert!(error.to_string().contains("share/data.bin"), "{error}");
}

#[test]
fn missing_and_wrong_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let source = dir.path().join("app");
    write_app(&source, "1.0.0");
    let request = TestStore::request("1.0.0", &source);

    let partial = dir.path().join("partial-keys");
    fs::create_dir(&partial).unwrap();
    fs::copy(store.keys.join("targets.key"), partial.join("targets.key")).unwrap();
    let before = store.snapshot();
    let error = updraft_publisher::publish(
        &store.store,
        &partial,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, Error::MissingKey { .. }) && error.to_string().contains("snapshot.key"),
        "{error}"
    );

    let other = dir.path().join("other-keys");
    updraft_publisher::keys::generate(&other, updraft_publisher::KeygenOptions::default()).unwrap();
    let error = updraft_publisher::publish(
        &store.store,
        &other,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::WrongKey { .. }), "{error}");
    assert!(
        error.to_string().contains("targets.key")
            && error.to_string().contains("not among the targets keys"),
        "{error}"
    );
    assert_eq!(store.snapshot(), before);
}

#[test]
fn a_second_publisher_is_refused_while_the_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let held = updraft_publisher::store::Store::open(&store.store).unwrap();
    let source = dir.path().join("app");
    write_app(&source, "1.0.0");
    let error = publish_err(&store, &TestStore::request("1.0.0", &source));
    assert!(
        error
            .to_string()
            .contains("locked by another updraft process"),
        "{error}"
    );
    drop(held);
    store.publish("1.0.0");
}

fn tamper(path: &Path) {
    // Replace rather than write in place, as an attacker with write access to
    // one name would; hard-linked names keep the signed bytes.
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::remove_file(path).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn verify_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let report = store.publish("1.0.0");
    store.publish("1.1.0");
    let package = report.package.as_str().to_owned();
    tamper(&store.store.join(&package));
    tamper(&store.store.join(report.manifest.as_str()));
    fs::remove_file(
        store
            .store
            .join("releases/latest/kuzflow_stable_linux_x86_64.json"),
    )
    .unwrap();
    fs::write(
        store
            .store
            .join("releases/latest/evil_stable_linux_x86_64.json"),
        b"{}",
    )
    .unwrap();
    let versions = store.store.join("metadata/versions.json");
    fs::write(
        &versions,
        fs::read_to_string(&versions)
            .unwrap()
            .replace("1.1.0", "9.9.9"),
    )
    .unwrap();

    let report = updraft_publisher::verify(
        &store.store,
        OffsetDateTime::now_utc() + time::Duration::days(2),
    )
    .unwrap();
    let found = |path: &str, words: &str| {
        report
            .problems
            .iter()
            .any(|p| p.path == path && p.message.contains(words))
    };
    assert!(
        found(&package, "failed verification"),
        "{:?}",
        report.problems
    );
    assert!(
        found(
            "releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_manifest.json",
            "failed verification"
        ),
        "{:?}",
        report.problems
    );
    assert!(
        found(
            "releases/latest/kuzflow_stable_linux_x86_64.json",
            "missing"
        ),
        "{:?}",
        report.problems
    );
    assert!(
        found(
            "releases/latest/evil_stable_linux_x86_64.json",
            "no signed release"
        ),
        "{:?}",
        report.problems
    );
    assert!(
        found("metadata/versions.json", "does not match"),
        "{:?}",
        report.problems
    );
    assert!(
        found("metadata/timestamp.json", "expired"),
        "{:?}",
        report.problems
    );
    assert_eq!(report.problems.len(), 6, "{:?}", report.problems);
}

#[test]
fn verify_refuses_metadata_signed_by_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    // Re-sign targets with a key the root does not trust, and re-pin it.
    let other = dir.path().join("other");
    updraft_publisher::keys::generate(&other, updraft_publisher::KeygenOptions::default()).unwrap();
    let path = store.store.join("metadata/2.targets.json");
    let mut envelope =
        updraft_protocol::tuf::Envelope::<updraft_protocol::tuf::Targets>::from_slice(
            "t",
            &fs::read(&path).unwrap(),
        )
        .unwrap();
    let key = updraft_publisher::keys::KeyDir::open(&other)
        .unwrap()
        .role_key(updraft_protocol::tuf::RoleName::Targets)
        .unwrap();
    envelope = updraft_protocol::tuf::Envelope::sign(envelope.signed, &[&key.key]);
    fs::write(&path, envelope.to_bytes()).unwrap();
    let report = updraft_publisher::verify(&store.store, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, "metadata/2.targets.json");
    // The snapshot pins the targets bytes, so the swap is caught before signatures.
    assert!(
        report.problems[0].message.contains("signed metadata says")
            || report.problems[0].message.contains("expected sha256"),
        "{:?}",
        report.problems
    );
    // And the publisher refuses to sign on top of it.
    let source = dir.path().join("src-1.1.0");
    write_app(&source, "1.1.0");
    let error = updraft_publisher::publish(
        &store.store,
        &store.keys,
        &TestStore::request("1.1.0", &source),
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
}

#[test]
fn refresh_renews_an_expired_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let later = OffsetDateTime::now_utc() + time::Duration::days(3);
    assert!(
        !updraft_publisher::verify(&store.store, later)
            .unwrap()
            .problems
            .is_empty()
    );
    updraft_publisher::refresh(&store.store, &store.keys, later, &ExpiryPolicy::default()).unwrap();
    let report = updraft_publisher::verify(&store.store, later).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn rollout_changes_are_signed_and_yanked_releases_leave_latest() {
    use updraft_publisher::RolloutAction;
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    store.publish("1.1.0");
    let (app, version) = ("kuzflow".parse().unwrap(), "1.1.0".parse().unwrap());
    let now = OffsetDateTime::now_utc();
    let change = |action| {
        updraft_publisher::rollout(
            &store.store,
            &store.keys,
            &app,
            &version,
            action,
            now,
            &ExpiryPolicy::default(),
        )
        .unwrap()
    };
    change(RolloutAction::Percent(20));
    change(RolloutAction::Halt);
    let current = updraft_publisher::store::load_chain(&store.store, Some(now)).unwrap();
    let (releases, _) = updraft_publisher::layout::releases(&current.targets().signed);
    let info = &releases
        .iter()
        .find(|r| r.custom.release.version == version)
        .unwrap()
        .custom
        .release;
    assert_eq!(
        (info.rollout_percent, info.halted, info.yanked),
        (20, true, false)
    );
    change(RolloutAction::Resume);
    change(RolloutAction::Yank);
    let latest: serde_json::Value = serde_json::from_slice(
        &fs::read(
            store
                .store
                .join("releases/latest/kuzflow_stable_linux_x86_64.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        latest["entry"]["version"], "1.0.0",
        "a yanked release is not the latest"
    );
    let report = updraft_publisher::verify(&store.store, now).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let missing = updraft_publisher::rollout(
        &store.store,
        &store.keys,
        &app,
        &"9.0.0".parse().unwrap(),
        RolloutAction::Halt,
        now,
        &ExpiryPolicy::default(),
    );
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("kuzflow 9.0.0 is not published")
    );
}

/// THREATS.md "local privilege escalation": setuid, setgid and sticky bits
/// and group/other-writable modes never reach the manifest or the package;
/// the report names each entry and what was dropped.
#[cfg(unix)]
#[test]
fn unsafe_modes_are_dropped_and_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (store, source) = store_with_app(dir.path());
    let chmod = |path: &str, mode: u32| {
        fs::set_permissions(source.join(path), fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod("bin/app", 0o4755);
    chmod("lib", 0o2777);
    chmod("share", 0o1777);
    fs::write(source.join("lib/shared.txt"), "x").unwrap();
    chmod("lib/shared.txt", 0o666);
    chmod("bin", 0o777);
    let report = publish_ok(&store, &TestStore::request("1.0.0", &source));
    let changes: Vec<String> = report
        .mode_changes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        changes,
        [
            "`bin` has mode 0777 (writable by its group, writable by others); published as 0755",
            "`bin/app` has mode 4755 (setuid); published as 0755",
            "`lib` has mode 2777 (setgid, writable by its group, writable by others); published as 0755",
            "`lib/shared.txt` has mode 0666 (writable by its group, writable by others); published as 0644",
            "`share` has mode 1777 (sticky, writable by its group, writable by others); published as 0755",
        ]
    );
    let manifest = manifest_of(&store, &report);
    for entry in manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .chain(manifest["dirs"].as_array().unwrap())
    {
        let mode = entry["mode"].as_u64().unwrap();
        assert_eq!(mode & 0o7022, 0, "{entry}");
    }
    // The package's own headers carry the safe modes too.
    let package = fs::File::open(store.store.join(report.package.as_str())).unwrap();
    let mut archive = tar::Archive::new(zstd::stream::read::Decoder::new(package).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let mode = entry.header().mode().unwrap();
        if entry.header().entry_type() != tar::EntryType::Symlink {
            assert_eq!(mode & 0o7022, 0, "{:?}", entry.path().unwrap());
        }
    }
}

/// `--main` must be a program: an empty file or one without an execute bit
/// is refused, naming it and the fix (a Windows package needs no execute bit).
#[cfg(unix)]
#[test]
fn main_must_be_a_non_empty_executable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (store, source) = store_with_app(dir.path());
    fs::set_permissions(source.join("bin/app"), fs::Permissions::from_mode(0o644)).unwrap();
    let request = TestStore::request("1.0.0", &source);
    let error = publish_err(&store, &request).to_string();
    assert!(
        error.contains("`bin/app`")
            && error.contains("not executable (mode 0644)")
            && error.contains("chmod +x"),
        "{error}"
    );
    let mut windows = request.clone();
    windows.platform = "windows".parse().unwrap();
    publish_ok(&store, &windows);
    fs::write(source.join("bin/app"), "").unwrap();
    fs::set_permissions(source.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
    let error = publish_err(&store, &TestStore::request("1.0.0", &source)).to_string();
    assert!(
        error.contains("`bin/app`") && error.contains("is empty"),
        "{error}"
    );
}

/// Names that merely start with dots (`..foo`, `...`, `.config`) are
/// ordinary names (docs/store.md): published, listed in the manifest.
#[test]
fn names_starting_with_dots_are_ordinary_names() {
    let dir = tempfile::tempdir().unwrap();
    let (store, source) = store_with_app(dir.path());
    for name in ["..foo", "...", ".config"] {
        fs::write(source.join(name), name).unwrap();
    }
    let report = publish_ok(&store, &TestStore::request("1.0.0", &source));
    let manifest = manifest_of(&store, &report);
    let paths = file_paths(&manifest);
    for name in ["..foo", "...", ".config"] {
        assert!(paths.contains(&name), "{name} missing from {paths:?}");
    }
}

/// The store is served to everyone; its own state (locks, the publish
/// journal, the server's database) is its owner's alone, whatever the umask.
#[cfg(unix)]
#[test]
fn the_stores_own_state_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.store.join(".updraft")), 0o700);
    assert_eq!(mode(&store.store.join("metadata")), 0o755);
}

/// Issue 17: a keys folder that does not exist is named as such, with what
/// to do, not as a key of role "any".
#[test]
fn a_missing_keys_folder_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let source = dir.path().join("app");
    write_app(&source, "1.0.0");
    let request = TestStore::request("1.0.0", &source);
    let missing = dir.path().join("no-such-keys");
    let error = updraft_publisher::publish(
        &store.store,
        &missing,
        &request,
        OffsetDateTime::now_utc(),
        &ExpiryPolicy::default(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::MissingKeysFolder { .. }), "{text}");
    assert!(
        text.contains("no-such-keys") && text.contains("--keys") && !text.contains("any key"),
        "{text}"
    );
    assert_eq!(error.kind(), ErrorKind::Usage);
}

#[test]
fn verify_checks_patches_and_every_chunk_digest() {
    use updraft_protocol::manifest::PatchCustom;
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    store.publish("1.1.0");
    let clean = updraft_publisher::verify(&store.store, OffsetDateTime::now_utc()).unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);

    // A publisher that signed a patch naming a manifest that is not signed,
    // with a wrong digest for one of its chunks.
    let current = updraft_publisher::store::load_chain(&store.store, None).unwrap();
    let mut targets = current.targets().signed.clone();
    let (path, target) = targets
        .targets
        .iter_mut()
        .find(|(p, _)| p.ends_with("_patch.delta"))
        .expect("1.1.0 has a patch from 1.0.0");
    let path = path.clone();
    let mut patch = PatchCustom::from_custom(&path, target.custom.as_ref())
        .unwrap()
        .unwrap();
    patch.from_manifest.path =
        updraft_protocol::TargetPath::new("releases/v0.9.0/gone.json").unwrap();
    let last = patch.chunks.sha256.len() - 1;
    patch.chunks.sha256[last] = updraft_protocol::Sha256Digest::of(b"not these bytes");
    target.custom = Some(patch.to_custom());
    store.sign_targets(&current, targets);

    let report = updraft_publisher::verify(&store.store, OffsetDateTime::now_utc()).unwrap();
    let found = |words: &str| {
        report
            .problems
            .iter()
            .any(|p| p.path == path && p.message.contains(words))
    };
    assert!(
        found("from manifest `releases/v0.9.0/gone.json`"),
        "{:?}",
        report.problems
    );
    assert!(
        found(&format!("chunk digest (chunk {last})")),
        "{:?}",
        report.problems
    );
    // Exactly those two about the patch (versions.json names the old targets
    // version: that is the third).
    assert_eq!(
        report.problems.iter().filter(|p| p.path == path).count(),
        2,
        "{:?}",
        report.problems
    );
}
