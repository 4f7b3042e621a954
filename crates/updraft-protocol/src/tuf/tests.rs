use std::collections::BTreeMap;

use serde_json::{Map, json};
use time::macros::datetime;

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn targets(version: u64) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires::at(datetime!(2030-01-01 0:00 UTC)),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Map::new(),
    }
}

fn role(keys: &[&SigningKey], threshold: u64) -> (BTreeMap<String, PublicKey>, RoleKeys) {
    let map: BTreeMap<_, _> = keys
        .iter()
        .map(|k| (k.public().key_id(), k.public()))
        .collect();
    let ids = map.keys().cloned().collect();
    (
        map,
        RoleKeys {
            keyids: ids,
            threshold,
            unrecognized: Map::new(),
        },
    )
}

#[test]
fn signed_metadata_round_trips_through_bytes() {
    let signer = key(1);
    let envelope = Envelope::sign(targets(3), &[&signer]);
    let parsed = Envelope::<Targets>::from_slice("targets.json", &envelope.to_bytes()).unwrap();
    let (keys, role_keys) = role(&[&signer], 1);
    parsed.verify_with(&keys, &role_keys).unwrap();
    assert_eq!(parsed.signed.version, 3);
    assert_eq!(parsed.canonical_bytes(), envelope.canonical_bytes());
}

#[test]
fn unknown_fields_are_kept_so_signatures_still_verify() {
    let signer = key(1);
    let mut value = serde_json::to_value(targets(1)).unwrap();
    value["x-future"] = json!({"nested": [1, 2]});
    let canonical = to_canonical(&value).unwrap();
    let file = json!({"signatures": [{"keyid": signer.public().key_id(), "sig": hex::encode(signer.sign(&canonical))}], "signed": value});
    let parsed =
        Envelope::<Targets>::from_slice("targets.json", &serde_json::to_vec(&file).unwrap())
            .unwrap();
    let (keys, role_keys) = role(&[&signer], 1);
    parsed.verify_with(&keys, &role_keys).unwrap();
    assert!(parsed.signed.unrecognized.contains_key("x-future"));
    // And a re-serialised copy still carries it.
    assert!(
        String::from_utf8(parsed.to_bytes())
            .unwrap()
            .contains("x-future")
    );
}

#[test]
fn a_repeated_signature_counts_once() {
    let signer = key(1);
    let other = key(2);
    let mut envelope = Envelope::sign(targets(1), &[&signer]);
    envelope.signatures.push(envelope.signatures[0].clone());
    let (keys, role_keys) = role(&[&signer, &other], 2);
    let error = envelope.verify_with(&keys, &role_keys).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Threshold {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn one_key_under_two_ids_counts_once() {
    let signer = key(1);
    let mut envelope = Envelope::sign(targets(1), &[&signer]);
    let mut keys = BTreeMap::new();
    keys.insert("id-a".to_owned(), signer.public());
    keys.insert("id-b".to_owned(), signer.public());
    envelope.signatures = ["id-a", "id-b"]
        .iter()
        .map(|id| Signature {
            keyid: (*id).into(),
            sig: envelope.signatures[0].sig.clone(),
            unrecognized: Map::new(),
        })
        .collect();
    let role_keys = RoleKeys {
        keyids: vec!["id-a".into(), "id-b".into()],
        threshold: 2,
        unrecognized: Map::new(),
    };
    assert!(matches!(
        envelope.verify_with(&keys, &role_keys),
        Err(Error::Threshold { valid: 1, .. })
    ));
}

#[test]
fn a_signature_from_a_key_outside_the_role_does_not_count() {
    let (signer, intruder) = (key(1), key(9));
    let envelope = Envelope::sign(targets(1), &[&intruder]);
    let (mut keys, role_keys) = role(&[&signer], 1);
    keys.insert(intruder.public().key_id(), intruder.public());
    assert!(matches!(
        envelope.verify_with(&keys, &role_keys),
        Err(Error::Threshold { valid: 0, .. })
    ));
}

#[test]
fn expiry_is_strict_and_written_in_tuf_form() {
    let expires = Expires::parse("2030-01-01T00:00:00Z").unwrap();
    assert_eq!(expires.to_string(), "2030-01-01T00:00:00Z");
    assert!(expires.is_expired(datetime!(2030-01-01 0:00 UTC)));
    assert!(!expires.is_expired(datetime!(2029-12-31 23:59:59 UTC)));
    for bad in [
        "2030-01-01",
        "2030-01-01T00:00:00+01:00",
        "2030-01-01T00:00:00.5Z",
    ] {
        assert!(Expires::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_target_checker_stops_at_the_signed_length() {
    let target = TargetFile::new(3, &crate::Sha256Digest::of(b"abc"), None);
    let mut checker = target.checker("t").unwrap();
    checker.update("t", b"ab").unwrap();
    assert!(matches!(
        checker.update("t", b"cd"),
        Err(Error::LengthMismatch {
            expected: 3,
            actual: 4,
            ..
        })
    ));
    let mut checker = target.checker("t").unwrap();
    checker.update("t", b"abd").unwrap();
    assert!(matches!(
        checker.finish("t", &target),
        Err(Error::HashMismatch { .. })
    ));
}

/// Two signers meeting a threshold of 2 one after the other, over the bytes
/// as received (unknown fields kept): the first signature alone falls short,
/// signing twice with one key still counts once.
#[test]
fn signatures_added_one_after_the_other_meet_a_threshold() {
    let (a, b) = (key(1), key(2));
    let (keys, role_keys) = role(&[&a, &b], 2);
    let mut value = serde_json::to_value(targets(3)).unwrap();
    value["x-note"] = json!("kept");
    let bytes = serde_json::to_vec(&json!({"signatures": [], "signed": value})).unwrap();
    let mut envelope = Envelope::<Targets>::from_slice("targets.json", &bytes).unwrap();
    envelope.add_signature(&a);
    envelope.add_signature(&a);
    assert_eq!(envelope.signatures.len(), 1);
    let envelope = Envelope::<Targets>::from_slice("targets.json", &envelope.to_bytes()).unwrap();
    assert!(matches!(
        envelope.verify_with(&keys, &role_keys),
        Err(Error::Threshold { valid: 1, .. })
    ));
    let mut envelope = envelope;
    envelope.add_signature(&b);
    let envelope = Envelope::<Targets>::from_slice("targets.json", &envelope.to_bytes()).unwrap();
    envelope.verify_with(&keys, &role_keys).unwrap();
    assert!(String::from_utf8_lossy(&envelope.to_bytes()).contains("x-note"));
}
