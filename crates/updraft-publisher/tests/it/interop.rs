//! python-tuf and updraft read each other's repositories.

use std::fs;
use std::path::Path;

use time::OffsetDateTime;
use updraft_test_support::{TestStore, python_with_tuf};

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
        .display()
        .to_string()
}

/// ECDSA P-256 and both RSA schemes, as updraft signs them, verify in
/// python-tuf (securesystemslib over pyca/cryptography).
#[test]
fn python_tuf_verifies_updraft_stores_signed_with_every_scheme() {
    use updraft_protocol::tuf::Scheme;
    for scheme in [
        Scheme::EcdsaP256,
        Scheme::RsaPssSha256,
        Scheme::RsaPkcs1v15Sha256,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = TestStore::with_scheme(dir.path(), scheme);
        let release = store.publish("1.0.0");
        let root: serde_json::Value =
            serde_json::from_slice(&fs::read(store.store.join("metadata/1.root.json")).unwrap())
                .unwrap();
        let schemes: Vec<&str> = root["signed"]["keys"]
            .as_object()
            .unwrap()
            .values()
            .map(|k| k["scheme"].as_str().unwrap())
            .collect();
        assert!(schemes.iter().all(|s| *s == scheme.as_str()), "{schemes:?}");
        let output = python_with_tuf()
            .arg(script("pytuf_client.py"))
            .arg(&store.store)
            .arg(dir.path().join("pytuf"))
            .arg(release.package.as_str())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "python-tuf refused the {scheme} store: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            result["downloaded"][release.package.as_str()]["length"],
            release.length
        );
    }
}

#[test]
fn python_tuf_verifies_and_downloads_an_updraft_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let first = store.publish("1.0.0");
    let second = store.publish("1.1.0");
    updraft_publisher::refresh(
        &store.store,
        &store.keys,
        OffsetDateTime::now_utc(),
        &updraft_publisher::ExpiryPolicy::default(),
    )
    .unwrap();

    let work = dir.path().join("pytuf");
    let output = python_with_tuf()
        .arg(script("pytuf_client.py"))
        .arg(&store.store)
        .arg(&work)
        .args([
            first.package.as_str(),
            second.package.as_str(),
            second.manifest.as_str(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python-tuf refused the store: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["targets_version"], 3);
    let downloaded = &result["downloaded"][second.package.as_str()];
    assert_eq!(downloaded["length"], second.length);
    assert_eq!(
        downloaded["custom"]["updraft"]["version"], "1.1.0",
        "python-tuf sees the release info in custom"
    );
    let bytes = fs::read(downloaded["file"].as_str().unwrap()).unwrap();
    assert_eq!(updraft_protocol::Sha256Digest::of(&bytes), second.sha256);

    // Flip one byte of the package: python-tuf must now refuse it.
    let package = store.store.join(second.package.as_str());
    let mut bytes = fs::read(&package).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let hashed = store.store.join(second.package.as_str().replace(
        "kuzflow_v1.1.0",
        &format!("{}.kuzflow_v1.1.0", second.sha256),
    ));
    fs::remove_file(&hashed).unwrap();
    fs::write(&hashed, &bytes).unwrap();
    let output = python_with_tuf()
        .arg(script("pytuf_client.py"))
        .arg(&store.store)
        .arg(dir.path().join("pytuf-2"))
        .arg(second.package.as_str())
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "python-tuf accepted a tampered package"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Length")
            || String::from_utf8_lossy(&output.stdout).contains("hash")
    );
}

#[test]
fn updraft_verifies_repositories_written_by_python_tuf() {
    for flags in [&[][..], &["--no-consistent-snapshot"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let output = python_with_tuf()
            .arg(script("pytuf_write_repo.py"))
            .arg(&repo)
            .args(flags)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let report = updraft_publisher::verify(&repo, OffsetDateTime::now_utc()).unwrap();
        assert!(
            report.problems.is_empty(),
            "{flags:?}: {:?}",
            report.problems
        );
        assert_eq!(
            report.root_version, 3,
            "both python-tuf root rotations were followed"
        );
        assert!(report.targets_checked >= 2);

        // Tamper with a target python-tuf signed: updraft names it.
        let target = repo.join("notes/readme.txt");
        fs::write(&target, b"tampered").unwrap();
        let report = updraft_publisher::verify(&repo, OffsetDateTime::now_utc()).unwrap();
        assert!(
            report.problems.iter().any(|p| p.path == "notes/readme.txt"),
            "{:?}",
            report.problems
        );
        // And a week later its metadata has expired.
        let later = OffsetDateTime::now_utc() + time::Duration::days(8);
        let report = updraft_publisher::verify(&repo, later).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path == "metadata/timestamp.json" && p.message.contains("expired")),
            "{:?}",
            report.problems
        );
    }
}

/// Scenarios where updraft is deliberately stricter than python-tuf: python-tuf
/// counts distinct key ids towards a threshold, updraft counts distinct key material.
const STRICTER_THAN_PYTHON_TUF: &[&str] = &["duplicate-key-ids"];

/// Scenarios where python-tuf 7 refuses what the spec tells a client to
/// ignore: a key of an unknown type or scheme in root (securesystemslib
/// refuses to parse it), and an unknown hash algorithm beside a known one.
/// Each pair is the scenario and the step python-tuf stops at.
const PYTHON_TUF_REFUSES_THE_UNKNOWN: &[(&str, &str)] = &[
    ("unknown-hash-ignored", "targets"),
    ("unknown-scheme-does-not-count", "root"),
    ("unknown-scheme-ignored", "root"),
];

#[test]
fn python_tuf_stops_where_updraft_stops_on_every_fixture() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../updraft-protocol/tests/data");
    let output = python_with_tuf()
        .arg(script("pytuf_fixtures.py"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).unwrap();
    assert!(steps.len() >= 20);
    let mut disagreements = Vec::new();
    for (scenario, python_step) in &steps {
        let expected: serde_json::Value =
            serde_json::from_slice(&fs::read(data.join(scenario).join("expected.json")).unwrap())
                .unwrap();
        let updraft_step = expected["step"].as_str().unwrap();
        let python_step = python_step.as_str().unwrap();
        if let Some((_, step)) = PYTHON_TUF_REFUSES_THE_UNKNOWN
            .iter()
            .find(|(name, _)| name == scenario)
        {
            assert_eq!(
                python_step, *step,
                "{scenario}: python-tuf changed its behaviour; update the list"
            );
        } else if STRICTER_THAN_PYTHON_TUF.contains(&scenario.as_str()) {
            assert_eq!(
                python_step, "done",
                "{scenario}: python-tuf changed its behaviour; update the list"
            );
            assert_ne!(updraft_step, "done");
        } else if python_step != updraft_step {
            disagreements.push(format!(
                "{scenario}: python-tuf stops at {python_step}, updraft at {updraft_step}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// A CI key signs beta releases through a delegation while the targets key
/// stays offline; python-tuf resolves the delegation and downloads the beta,
/// and the delegated key cannot sign a stable release.
#[test]
#[allow(clippy::result_large_err)]
fn a_delegated_ci_key_publishes_betas_that_python_tuf_resolves() {
    use updraft_protocol::tuf::{Scheme, SigningKey};
    use updraft_publisher::{DelegationRequest, ExpiryPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let stable = store.publish("1.0.0");
    let ci = dir.path().join("ci-keys");
    fs::create_dir_all(&ci).unwrap();
    let ci_key = SigningKey::generate(Scheme::EcdsaP256).unwrap();
    updraft_publisher::keys::write_key_file(&ci.join("beta.key"), &ci_key).unwrap();
    for online in ["snapshot.key", "timestamp.key"] {
        fs::copy(store.keys.join(online), ci.join(online)).unwrap();
    }
    let now = OffsetDateTime::now_utc();
    updraft_publisher::delegate(
        &store.store,
        &store.keys,
        &DelegationRequest {
            name: "beta".into(),
            paths: vec!["releases/*-beta*/*".into(), "changelog/*-beta*".into()],
            keys: vec![updraft_publisher::keys::read_public_key(&ci.join("beta.key")).unwrap()],
            threshold: 1,
            terminating: true,
        },
        now,
        &ExpiryPolicy::default(),
    )
    .unwrap();
    let publish_with_ci = |version: &str| {
        let source = dir.path().join(format!("src-{version}"));
        updraft_test_support::write_app(&source, version);
        updraft_publisher::publish_as(
            &store.store,
            &ci,
            &TestStore::request(version, &source),
            Some("beta"),
            now,
            &ExpiryPolicy::default(),
        )
    };
    let beta = publish_with_ci("1.1.0-beta.1").unwrap();
    assert_eq!(
        beta.targets_version, 1,
        "the first version of the beta role"
    );
    let refused = publish_with_ci("1.1.0").unwrap_err();
    assert!(refused.to_string().contains("may not sign"), "{refused}");

    let report = updraft_publisher::verify(&store.store, now).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let current = updraft_publisher::store::load_chain(&store.store, None).unwrap();
    assert!(
        current
            .resolved()
            .targets
            .contains_key(beta.package.as_str())
    );
    assert!(
        !current
            .targets()
            .signed
            .targets
            .contains_key(beta.package.as_str()),
        "the beta is signed by the delegated role, not the top-level targets"
    );
    let versions = fs::read_to_string(store.store.join("metadata/versions.json")).unwrap();
    assert!(versions.contains("1.1.0-beta.1"), "{versions}");

    let output = python_with_tuf()
        .arg(script("pytuf_client.py"))
        .arg(&store.store)
        .arg(dir.path().join("pytuf"))
        .args([beta.package.as_str(), stable.package.as_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python-tuf refused the delegated beta: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        result["downloaded"][beta.package.as_str()]["length"],
        beta.length
    );
}

/// python-tuf (bootstrapped from root 1) reads an updraft store after
/// `repo rotate-root` replaced every key, after offline targets signing and
/// after an offline root renewal signed by two root keys one after the other.
#[test]
fn python_tuf_follows_updraft_rotations_and_offline_signing() {
    use updraft_protocol::tuf::{RoleName, Scheme};
    use updraft_publisher::{ExpiryPolicy, KeygenOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let first = store.publish("1.0.0");
    let now = OffsetDateTime::now_utc();
    let policy = ExpiryPolicy::default();
    let new_keys = dir.path().join("new-keys");
    updraft_publisher::keys::generate(
        &new_keys,
        KeygenOptions {
            root_keys: 2,
            root_threshold: 2,
            scheme: Scheme::EcdsaP256,
        },
    )
    .unwrap();
    updraft_publisher::rotate_root(&store.store, &store.keys, &new_keys, now, &policy).unwrap();

    let pytuf = |work: &str, targets: &[&str]| {
        let output = python_with_tuf()
            .arg(script("pytuf_client.py"))
            .arg(&store.store)
            .arg(dir.path().join(work))
            .args(targets)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "python-tuf refused the store ({work}): {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let result = pytuf("after-rotation", &[first.package.as_str()]);
    assert_eq!(result["root_version"], 2);

    // Offline: targets renewed, signed by the new targets key alone.
    let file = dir.path().join("targets.unsigned.json");
    updraft_publisher::export_unsigned(&store.store, RoleName::Targets, None, &file, now, &policy)
        .unwrap();
    updraft_publisher::sign(&file, &new_keys.join("targets.key")).unwrap();
    updraft_publisher::import_signed(&store.store, &file, Some(&new_keys), now, &policy).unwrap();
    // Offline: root renewed, threshold 2 met by two signers in turn.
    let file = dir.path().join("root.unsigned.json");
    updraft_publisher::export_unsigned(&store.store, RoleName::Root, None, &file, now, &policy)
        .unwrap();
    updraft_publisher::sign(&file, &new_keys.join("root-1.key")).unwrap();
    updraft_publisher::sign(&file, &new_keys.join("root-2.key")).unwrap();
    updraft_publisher::import_signed(&store.store, &file, None, now, &policy).unwrap();
    let report = updraft_publisher::verify(&store.store, now).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let result = pytuf("after-offline-signing", &[first.package.as_str()]);
    assert_eq!(result["root_version"], 3);
    assert_eq!(result["targets_version"], 4);
    assert_eq!(
        result["downloaded"][first.package.as_str()]["length"],
        first.length
    );
}
