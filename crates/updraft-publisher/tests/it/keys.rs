//! Key management: root and role rotation, offline signing with a
//! threshold met on two machines, and everything they must refuse.

use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use updraft_protocol::tuf::{RoleName, Scheme, SigningKey};
use updraft_publisher::keys::{KeygenOptions, generate, write_key_file};
use updraft_publisher::{Error, ErrorKind, ExpiryPolicy};
use updraft_test_support::TestStore;

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::default()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A new keys folder of `scheme` with `root_keys` root keys (threshold `threshold`).
fn new_keys(dir: &Path, name: &str, root_keys: u32, threshold: u32, scheme: Scheme) -> PathBuf {
    let out = dir.join(name);
    generate(
        &out,
        KeygenOptions {
            root_keys,
            root_threshold: threshold,
            scheme,
        },
    )
    .unwrap();
    out
}

fn verify_clean(store: &Path) -> updraft_publisher::VerifyReport {
    let report = updraft_publisher::verify(store, now()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report
}

fn root_role_ids(store: &Path, role: &str) -> Vec<String> {
    let root: serde_json::Value =
        serde_json::from_slice(&fs::read(store.join("metadata/root.json")).unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Root 1 → 2 with every key new (ECDSA root keys, threshold 2 of 3): the
/// new root is signed by both thresholds, all online metadata is re-signed
/// by the new keys, `repo verify` walks the chain and the old online keys
/// can no longer publish.
#[test]
fn rotate_root_replaces_every_key_and_the_store_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let new = new_keys(dir.path(), "new-keys", 3, 2, Scheme::EcdsaP256);
    let report =
        updraft_publisher::rotate_root(&store.store, &store.keys, &new, now(), &policy()).unwrap();
    assert_eq!(report.root_version, 2);
    assert_eq!(report.changed_roles, RoleName::ALL.to_vec());
    assert_eq!(report.resigned, ["targets 3", "snapshot 3", "timestamp 3"]);
    let verified = verify_clean(&store.store);
    assert_eq!(verified.root_version, 2);
    assert_eq!(
        fs::read(store.store.join("metadata/root.json")).unwrap(),
        fs::read(store.store.join("metadata/2.root.json")).unwrap()
    );
    let root: serde_json::Value =
        serde_json::from_slice(&fs::read(store.store.join("metadata/2.root.json")).unwrap())
            .unwrap();
    assert_eq!(root["signed"]["roles"]["root"]["threshold"], 2);
    assert_eq!(
        root["signatures"].as_array().unwrap().len(),
        4,
        "1 old + 3 new root keys"
    );
    // Nothing of the old keys is left in the new root.
    let old_ids: Vec<String> = fs::read_dir(&store.keys)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "key").then(|| {
                updraft_publisher::keys::read_public_key(&path)
                    .unwrap()
                    .key_id()
            })
        })
        .collect();
    for id in &old_ids {
        assert!(root["signed"]["keys"].get(id).is_none(), "{id} kept");
    }
    // The old targets key is refused; the new folder publishes.
    let source = dir.path().join("src-1.1.0");
    updraft_test_support::write_app(&source, "1.1.0");
    let request = TestStore::request("1.1.0", &source);
    let error = updraft_publisher::publish(&store.store, &store.keys, &request, now(), &policy())
        .unwrap_err();
    assert!(
        error.to_string().contains("not among the targets keys"),
        "{error}"
    );
    updraft_publisher::publish(&store.store, &new, &request, now(), &policy()).unwrap();
    updraft_publisher::refresh(&store.store, &new, now(), &policy()).unwrap();
    verify_clean(&store.store);
}

/// Only the root keys change (the new folder holds nothing else): nothing
/// online is re-signed, and a second rotation needs the *new* root keys.
#[test]
fn rotate_root_of_root_keys_only_leaves_online_metadata_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let new = new_keys(dir.path(), "new-root", 2, 2, Scheme::Ed25519);
    for role in ["targets", "snapshot", "timestamp"] {
        fs::remove_file(new.join(format!("{role}.key"))).unwrap();
    }
    let timestamp_before = fs::read(store.store.join("metadata/timestamp.json")).unwrap();
    let report =
        updraft_publisher::rotate_root(&store.store, &store.keys, &new, now(), &policy()).unwrap();
    assert_eq!(report.changed_roles, [RoleName::Root]);
    assert!(report.resigned.is_empty());
    assert_eq!(
        fs::read(store.store.join("metadata/timestamp.json")).unwrap(),
        timestamp_before
    );
    verify_clean(&store.store);
    // The old root key alone is no longer enough.
    let newer = new_keys(dir.path(), "newer-root", 1, 1, Scheme::Ed25519);
    let error = updraft_publisher::rotate_root(&store.store, &store.keys, &newer, now(), &policy())
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::NotEnoughKeys {
                found: 0,
                threshold: 2,
                ..
            }
        ),
        "{error}"
    );
    let report =
        updraft_publisher::rotate_root(&store.store, &new, &newer, now(), &policy()).unwrap();
    assert_eq!(report.root_version, 3);
    assert_eq!(verify_clean(&store.store).root_version, 3);
}

/// Wrong or too few old root keys: a clear usage error (exit 2), and the
/// store is byte-identical.
#[test]
fn rotation_with_wrong_or_too_few_old_keys_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A store whose root needs 2 of 3 keys.
    let keys = new_keys(dir.path(), "keys", 3, 2, Scheme::Ed25519);
    let store = dir.path().join("store");
    updraft_publisher::init(&store, &keys, now(), &policy()).unwrap();
    let before = updraft_test_support::snapshot_tree(&store, &[".updraft"]);
    let new = new_keys(dir.path(), "new", 1, 1, Scheme::Ed25519);

    // One of the two root keys it needs.
    let partial = dir.path().join("partial");
    fs::create_dir(&partial).unwrap();
    fs::copy(keys.join("root-2.key"), partial.join("root-2.key")).unwrap();
    let error =
        updraft_publisher::rotate_root(&store, &partial, &new, now(), &policy()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NotEnoughKeys {
                found: 1,
                threshold: 2,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Usage);
    assert!(error.to_string().contains("1 of the root keys"), "{error}");

    // Another store's keys: none of them count.
    let stranger = new_keys(dir.path(), "stranger", 3, 2, Scheme::Ed25519);
    let error =
        updraft_publisher::rotate_root(&store, &stranger, &new, now(), &policy()).unwrap_err();
    assert!(
        matches!(error, Error::NotEnoughKeys { found: 0, .. }),
        "{error}"
    );
    // The same for one role's rotation.
    let targets = dir.path().join("targets-new.key");
    write_key_file(&targets, &SigningKey::generate(Scheme::Ed25519).unwrap()).unwrap();
    let error = updraft_publisher::rotate_role(
        &store,
        &partial,
        RoleName::Targets,
        &targets,
        now(),
        &policy(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NotEnoughKeys { .. }), "{error}");
    assert_eq!(
        updraft_test_support::snapshot_tree(&store, &[".updraft"]),
        before
    );
}

/// `repo rotate --role targets`: root 2 lists only the new key, targets,
/// snapshot and timestamp are re-signed in the same transaction, the old
/// key cannot publish, the new one can; the same for snapshot and
/// timestamp keys (RSA and ECDSA).
#[test]
fn rotating_one_role_revokes_its_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let old_targets = root_role_ids(&store.store, "targets");
    let key_dir = dir.path().join("rotated");
    fs::create_dir(&key_dir).unwrap();
    let new_targets = key_dir.join("targets.key");
    let id = write_key_file(
        &new_targets,
        &SigningKey::generate(Scheme::Ed25519).unwrap(),
    )
    .unwrap();
    let report = updraft_publisher::rotate_role(
        &store.store,
        &store.keys,
        RoleName::Targets,
        &new_targets,
        now(),
        &policy(),
    )
    .unwrap();
    assert_eq!(report.root_version, 2);
    assert_eq!(report.changed_roles, [RoleName::Targets]);
    assert_eq!(report.resigned, ["targets 3", "snapshot 3", "timestamp 3"]);
    assert_eq!(
        root_role_ids(&store.store, "targets"),
        std::slice::from_ref(&id)
    );
    assert_ne!(old_targets, [id]);
    verify_clean(&store.store);
    // The same key again is refused (nothing to rotate).
    let error = updraft_publisher::rotate_role(
        &store.store,
        &store.keys,
        RoleName::Targets,
        &new_targets,
        now(),
        &policy(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("already"), "{error}");
    // The old key folder now fails for targets; with the new key in place it publishes.
    let source = dir.path().join("src-1.1.0");
    updraft_test_support::write_app(&source, "1.1.0");
    let request = TestStore::request("1.1.0", &source);
    assert!(
        updraft_publisher::publish(&store.store, &store.keys, &request, now(), &policy()).is_err()
    );
    fs::copy(&new_targets, store.keys.join("targets.key")).unwrap();
    updraft_publisher::publish(&store.store, &store.keys, &request, now(), &policy()).unwrap();

    for (role, scheme) in [
        (RoleName::Snapshot, Scheme::RsaPssSha256),
        (RoleName::Timestamp, Scheme::EcdsaP256),
    ] {
        let path = key_dir.join(format!("{role}.key"));
        write_key_file(&path, &SigningKey::generate(scheme).unwrap()).unwrap();
        let report = updraft_publisher::rotate_role(
            &store.store,
            &store.keys,
            role,
            &path,
            now(),
            &policy(),
        )
        .unwrap();
        assert_eq!(report.changed_roles, [role]);
        assert!(
            report.resigned.iter().any(|r| r.starts_with(role.as_str())),
            "{:?}",
            report.resigned
        );
        fs::copy(&path, store.keys.join(format!("{role}.key"))).unwrap();
        verify_clean(&store.store);
    }
    assert_eq!(verify_clean(&store.store).root_version, 4);
    updraft_publisher::refresh(&store.store, &store.keys, now(), &policy()).unwrap();
    verify_clean(&store.store);
}

/// A rotation that cannot re-sign what the new root needs writes nothing
/// (kills at every step are in the CLI's tests).
#[test]
fn a_rotation_that_cannot_resign_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let before = store.snapshot();
    let new = new_keys(dir.path(), "new", 1, 1, Scheme::Ed25519);
    // A new keys folder whose snapshot key is unusable.
    fs::write(new.join("snapshot.key"), b"{}").unwrap();
    let error = updraft_publisher::rotate_root(&store.store, &store.keys, &new, now(), &policy())
        .unwrap_err();
    assert!(error.to_string().contains("snapshot"), "{error}");
    assert_eq!(store.snapshot(), before);
}

fn unsigned(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Offline root signing with a threshold of 2: exported on the online
/// machine, signed on two machines one after the other; with one signature
/// the import is refused (exit 4, store unchanged), with two it is accepted.
/// A key of the wrong role is refused at signing.
#[test]
fn a_root_threshold_of_two_is_met_on_two_machines() {
    let dir = tempfile::tempdir().unwrap();
    let keys = new_keys(dir.path(), "keys", 2, 2, Scheme::Ed25519);
    let store = dir.path().join("store");
    updraft_publisher::init(&store, &keys, now(), &policy()).unwrap();
    // The two root keys live on two machines; the online one keeps the rest.
    let (machine_a, machine_b, online) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("online"),
    );
    for (machine, files) in [
        (&machine_a, &["root-1.key"][..]),
        (&machine_b, &["root-2.key"][..]),
        (
            &online,
            &["targets.key", "snapshot.key", "timestamp.key"][..],
        ),
    ] {
        fs::create_dir(machine).unwrap();
        for file in files {
            fs::copy(keys.join(file), machine.join(file)).unwrap();
        }
    }
    let file = dir.path().join("root-2.unsigned.json");
    let report =
        updraft_publisher::export_unsigned(&store, RoleName::Root, None, &file, now(), &policy())
            .unwrap();
    assert_eq!(report.version, 2);
    assert!(report.needs.contains("2 of the 2"), "{}", report.needs);
    assert!(
        unsigned(&file)["metadata"]["signatures"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Exporting over an existing file is refused.
    assert!(matches!(
        updraft_publisher::export_unsigned(&store, RoleName::Root, None, &file, now(), &policy()),
        Err(Error::AlreadyExists { .. })
    ));

    // The targets key may not sign a root.
    let error = updraft_publisher::sign(&file, &online.join("targets.key")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);
    assert!(error.to_string().contains("not among the keys"), "{error}");

    let before = updraft_test_support::snapshot_tree(&store, &[".updraft"]);
    let first = updraft_publisher::sign(&file, &machine_a.join("root-1.key")).unwrap();
    assert!(!first.complete);
    assert!(first.progress[0].contains("1 of 2"), "{:?}", first.progress);
    let error = updraft_publisher::import_signed(&store, &file, Some(&online), now(), &policy())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
    assert!(error.to_string().contains("threshold"), "{error}");
    assert_eq!(
        updraft_test_support::snapshot_tree(&store, &[".updraft"]),
        before
    );

    let second = updraft_publisher::sign(&file, &machine_b.join("root-2.key")).unwrap();
    assert!(second.complete, "{:?}", second.progress);
    let imported =
        updraft_publisher::import_signed(&store, &file, Some(&online), now(), &policy()).unwrap();
    assert_eq!((imported.role, imported.version), (RoleName::Root, 2));
    assert!(
        imported.resigned.is_empty(),
        "the online keys did not change"
    );
    assert_eq!(verify_clean(&store).root_version, 2);
    // The same file again is stale: the store's root moved on.
    let error = updraft_publisher::import_signed(&store, &file, Some(&online), now(), &policy())
        .unwrap_err();
    assert!(
        error.to_string().contains("export and sign it again"),
        "{error}"
    );
}

/// Offline root *rotation*: the new root lists the public keys of a new
/// folder (new root key and timestamp key), so the old root key and the
/// new root key both sign; import re-signs the timestamp with the new key.
#[test]
fn an_offline_root_rotation_needs_old_and_new_root_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let new = new_keys(dir.path(), "new", 1, 1, Scheme::RsaPkcs1v15Sha256);
    fs::remove_file(new.join("targets.key")).unwrap();
    fs::remove_file(new.join("snapshot.key")).unwrap();
    // The online machine sees public keys only.
    let public = dir.path().join("new-public");
    fs::create_dir(&public).unwrap();
    for name in ["root-1.key", "timestamp.key"] {
        let key = updraft_publisher::keys::read_public_key(&new.join(name)).unwrap();
        fs::write(public.join(name), serde_json::to_vec(&key).unwrap()).unwrap();
    }
    let file = dir.path().join("rotation.json");
    let report = updraft_publisher::export_unsigned(
        &store.store,
        RoleName::Root,
        Some(&public),
        &file,
        now(),
        &policy(),
    )
    .unwrap();
    assert!(report.needs.contains("new one"), "{}", report.needs);
    let only_new = updraft_publisher::sign(&file, &new.join("root-1.key")).unwrap();
    // The signer is shown what changes: the root and timestamp keys.
    assert_eq!(only_new.changes.len(), 2, "{:?}", only_new.changes);
    assert!(
        only_new.changes[0].starts_with("root keys"),
        "{:?}",
        only_new.changes
    );
    assert!(
        only_new.changes[1].starts_with("timestamp keys"),
        "{:?}",
        only_new.changes
    );
    assert!(!only_new.complete, "{:?}", only_new.progress);
    let error =
        updraft_publisher::import_signed(&store.store, &file, Some(&store.keys), now(), &policy())
            .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
    let both = updraft_publisher::sign(&file, &store.keys.join("root-1.key")).unwrap();
    assert!(both.complete, "{:?}", both.progress);
    // The timestamp must be re-signed with the new timestamp key, which the
    // old keys folder does not hold: a clear error, nothing written.
    let before = store.snapshot();
    let error =
        updraft_publisher::import_signed(&store.store, &file, Some(&store.keys), now(), &policy())
            .unwrap_err();
    assert!(error.to_string().contains("timestamp"), "{error}");
    assert_eq!(store.snapshot(), before);
    fs::copy(new.join("timestamp.key"), store.keys.join("timestamp.key")).unwrap();
    let imported =
        updraft_publisher::import_signed(&store.store, &file, Some(&store.keys), now(), &policy())
            .unwrap();
    assert_eq!(imported.resigned, ["timestamp 3"]);
    assert_eq!(verify_clean(&store.store).root_version, 2);
}

/// Offline targets signing: the targets key never touches the online
/// machine; snapshot and timestamp are re-signed there at import.
/// A file tampered with after signing is refused, the store unchanged.
#[test]
fn offline_targets_signing_and_a_tampered_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let file = dir.path().join("targets.json");
    let report = updraft_publisher::export_unsigned(
        &store.store,
        RoleName::Targets,
        None,
        &file,
        now(),
        &policy(),
    )
    .unwrap();
    assert_eq!(report.version, 3);
    // Importing it unsigned is refused.
    let before = store.snapshot();
    let error =
        updraft_publisher::import_signed(&store.store, &file, Some(&store.keys), now(), &policy())
            .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
    let signed = updraft_publisher::sign(&file, &store.keys.join("targets.key")).unwrap();
    assert!(signed.complete);

    // Tampered after signing: a target's length changed.
    let tampered = dir.path().join("tampered.json");
    let mut value = unsigned(&file);
    let targets = value["metadata"]["signed"]["targets"]
        .as_object_mut()
        .unwrap();
    let (_, first) = targets.iter_mut().next().unwrap();
    first["length"] = serde_json::json!(1);
    fs::write(&tampered, serde_json::to_vec(&value).unwrap()).unwrap();
    let error = updraft_publisher::import_signed(
        &store.store,
        &tampered,
        Some(&store.keys),
        now(),
        &policy(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
    // Tampered trusted root (another store's root swapped in): refused too.
    let other = TestStore::new(&dir.path().join("other"));
    let mut value = unsigned(&file);
    value["trusted_root"] =
        serde_json::from_slice(&fs::read(other.store.join("metadata/root.json")).unwrap()).unwrap();
    fs::write(&tampered, serde_json::to_vec(&value).unwrap()).unwrap();
    let error = updraft_publisher::import_signed(
        &store.store,
        &tampered,
        Some(&store.keys),
        now(),
        &policy(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("export and sign it again"),
        "{error}"
    );
    // Not an exported file at all.
    fs::write(&tampered, b"{\"signed\": {}}").unwrap();
    let error = updraft_publisher::sign(&tampered, &store.keys.join("targets.key")).unwrap_err();
    assert!(error.to_string().contains("export-unsigned"), "{error}");
    assert_eq!(store.snapshot(), before);

    // Without the online keys the import says what it needs.
    let error =
        updraft_publisher::import_signed(&store.store, &file, None, now(), &policy()).unwrap_err();
    assert!(error.to_string().contains("--keys"), "{error}");
    let imported =
        updraft_publisher::import_signed(&store.store, &file, Some(&store.keys), now(), &policy())
            .unwrap();
    assert_eq!(imported.version, 3);
    assert_eq!(imported.resigned, ["snapshot 3", "timestamp 3"]);
    verify_clean(&store.store);
    // An export made before another publish is stale.
    let stale = dir.path().join("stale.json");
    updraft_publisher::export_unsigned(
        &store.store,
        RoleName::Targets,
        None,
        &stale,
        now(),
        &policy(),
    )
    .unwrap();
    updraft_publisher::sign(&stale, &store.keys.join("targets.key")).unwrap();
    store.publish("1.1.0");
    let error =
        updraft_publisher::import_signed(&store.store, &stale, Some(&store.keys), now(), &policy())
            .unwrap_err();
    assert!(
        error.to_string().contains("changed since the export"),
        "{error}"
    );
}

/// A root edited before signing so that clients would refuse it (already
/// expired) or look elsewhere for every file (`consistent_snapshot` off) is
/// refused at import even with every signature, and so are expired targets.
/// Short key ids in an edited file do not crash the signer.
#[test]
fn signed_but_unusable_metadata_is_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let before = store.snapshot();
    let cases: [(&str, &str, serde_json::Value, &str); 3] = [
        (
            "root",
            "expires",
            serde_json::json!("2001-01-01T00:00:00Z"),
            "expired",
        ),
        (
            "root",
            "consistent_snapshot",
            serde_json::json!(false),
            "consistent_snapshot",
        ),
        (
            "targets",
            "expires",
            serde_json::json!("2001-01-01T00:00:00Z"),
            "expired",
        ),
    ];
    for (n, (role, field, value, message)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("edited-{n}.json"));
        let role_name = if role == "root" {
            RoleName::Root
        } else {
            RoleName::Targets
        };
        updraft_publisher::export_unsigned(&store.store, role_name, None, &file, now(), &policy())
            .unwrap();
        let mut edited = unsigned(&file);
        edited["metadata"]["signed"][field] = value;
        fs::write(&file, serde_json::to_vec(&edited).unwrap()).unwrap();
        let key = if role == "root" {
            "root-1.key"
        } else {
            "targets.key"
        };
        assert!(
            updraft_publisher::sign(&file, &store.keys.join(key))
                .unwrap()
                .complete
        );
        let error = updraft_publisher::import_signed(
            &store.store,
            &file,
            Some(&store.keys),
            now(),
            &policy(),
        )
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Verification, "{error}");
        assert!(error.to_string().contains(message), "{error}");
        assert_eq!(store.snapshot(), before);
    }
    // A new root naming a one-character key id: refused by name, no panic.
    let file = dir.path().join("short-ids.json");
    updraft_publisher::export_unsigned(&store.store, RoleName::Root, None, &file, now(), &policy())
        .unwrap();
    let mut edited = unsigned(&file);
    let signed = &mut edited["metadata"]["signed"];
    let key = signed["keys"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    signed["keys"]["x"] = key;
    signed["roles"]["root"]["keyids"] = serde_json::json!(["x"]);
    fs::write(&file, serde_json::to_vec(&edited).unwrap()).unwrap();
    let report = updraft_publisher::sign(&file, &store.keys.join("root-1.key")).unwrap();
    assert!(report.changes[0].contains("[x]"), "{:?}", report.changes);
    assert!(!report.complete);
    assert_eq!(store.snapshot(), before);
}

/// A release published with the targets key offline: `publish_unsigned`
/// adds its files (clients do not see it yet, the store stays valid), the
/// offline machine signs the targets, and the import makes it visible; a
/// signed targets file naming a file the store lacks is refused; python-tuf
/// downloads the release.
#[test]
fn a_release_published_with_the_targets_key_offline() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    store.publish("1.0.0");
    let online = dir.path().join("online");
    fs::create_dir(&online).unwrap();
    for name in ["snapshot.key", "timestamp.key"] {
        fs::copy(store.keys.join(name), online.join(name)).unwrap();
    }
    let source = dir.path().join("src-1.1.0");
    updraft_test_support::write_app(&source, "1.1.0");
    let file = dir.path().join("release.json");
    let report = updraft_publisher::publish_unsigned(
        &store.store,
        &online,
        &TestStore::request("1.1.0", &source),
        &file,
        now(),
        &policy(),
    )
    .unwrap();
    assert_eq!(report.targets_version, 3);
    let current = updraft_publisher::store::load_chain(&store.store, None).unwrap();
    assert_eq!(current.targets().signed.version, 2, "not visible yet");
    assert!(
        !current
            .targets()
            .signed
            .targets
            .contains_key(report.package.as_str())
    );
    assert!(store.store.join(report.package.as_str()).is_file());
    verify_clean(&store.store);

    // A signed file naming a target the store does not hold is refused.
    let forged = dir.path().join("forged.json");
    let mut value = unsigned(&file);
    let mut extra = value["metadata"]["signed"]["targets"][report.package.as_str()].clone();
    extra["length"] = serde_json::json!(7);
    value["metadata"]["signed"]["targets"]["releases/v9.9.9/missing.tar.zst"] = extra;
    fs::write(&forged, serde_json::to_vec(&value).unwrap()).unwrap();
    updraft_publisher::sign(&forged, &store.keys.join("targets.key")).unwrap();
    let before = store.snapshot();
    let error =
        updraft_publisher::import_signed(&store.store, &forged, Some(&online), now(), &policy())
            .unwrap_err();
    assert!(error.to_string().contains("is missing"), "{error}");
    assert_eq!(store.snapshot(), before);

    // Signed on the offline machine; but the package changed after the export.
    assert!(
        updraft_publisher::sign(&file, &store.keys.join("targets.key"))
            .unwrap()
            .complete
    );
    let package = store.store.join(report.package.as_str());
    let original = fs::read(&package).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 1;
    fs::write(&package, &changed).unwrap();
    let error =
        updraft_publisher::import_signed(&store.store, &file, Some(&online), now(), &policy())
            .unwrap_err();
    assert!(error.to_string().contains("does not match"), "{error}");
    fs::write(&package, &original).unwrap();

    // Back online with the signed file.
    let imported =
        updraft_publisher::import_signed(&store.store, &file, Some(&online), now(), &policy())
            .unwrap();
    assert_eq!(imported.version, 3);
    verify_clean(&store.store);
    let current = updraft_publisher::store::load_chain(&store.store, None).unwrap();
    assert!(
        current
            .targets()
            .signed
            .targets
            .contains_key(report.package.as_str())
    );
    let versions = fs::read_to_string(store.store.join("metadata/versions.json")).unwrap();
    assert!(versions.contains("1.1.0"), "{versions}");

    let output = updraft_test_support::python_with_tuf()
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/interop/pytuf_client.py")
                .display()
                .to_string(),
        )
        .arg(&store.store)
        .arg(dir.path().join("pytuf"))
        .arg(report.package.as_str())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python-tuf refused the offline-signed release: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["targets_version"], 3);
    assert_eq!(
        result["downloaded"][report.package.as_str()]["length"],
        report.length
    );
}
