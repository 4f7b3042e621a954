//! Runs the TUF client workflow over every scenario in `tests/data/`
//! (regenerate with `python3 scripts/gen-tuf-fixtures.py`) and checks that it
//! stops at the expected step with the expected error, or accepts everything.

use std::fs;
use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use updraft_protocol::Error;
use updraft_protocol::tuf::TrustedSet;

fn error_name(error: &Error) -> &'static str {
    match error {
        Error::Json { .. } => "Json",
        Error::Invalid { .. } => "Invalid",
        Error::BadCanonicalForm { .. } => "BadCanonicalForm",
        Error::UnsupportedFormat { .. } => "UnsupportedFormat",
        Error::WrongType { .. } => "WrongType",
        Error::Threshold { .. } => "Threshold",
        Error::Expired { .. } => "Expired",
        Error::BadVersion { .. } => "BadVersion",
        Error::EqualVersion { .. } => "EqualVersion",
        Error::LengthMismatch { .. } => "LengthMismatch",
        Error::HashMismatch { .. } => "HashMismatch",
        _ => "Other",
    }
}

/// The client workflow, in TUF spec order; returns the step that failed.
fn run(dir: &Path, reference_time: OffsetDateTime) -> Result<(), (&'static str, Error)> {
    let read = |name: &str| fs::read(dir.join(name)).unwrap();
    let mut set = TrustedSet::new(&read("root.json"), reference_time).map_err(|e| ("root", e))?;
    let mut version = 2;
    while dir.join(format!("roots/{version}.root.json")).exists() {
        set.update_root(&read(&format!("roots/{version}.root.json")))
            .map_err(|e| ("root", e))?;
        version += 1;
    }
    if dir.join("trusted/timestamp.json").exists() {
        set.load_trusted_timestamp(&read("trusted/timestamp.json"))
            .unwrap();
    }
    set.update_timestamp(&read("timestamp.json"))
        .map_err(|e| ("timestamp", e))?;
    if dir.join("trusted/snapshot.json").exists() {
        // As python-tuf does: a cached snapshot that no longer matches the new
        // timestamp is still kept as the rollback reference.
        let _ = set.update_snapshot(&read("trusted/snapshot.json"), true);
    }
    set.update_snapshot(&read("snapshot.json"), false)
        .map_err(|e| ("snapshot", e))?;
    set.update_targets(&read("targets.json"))
        .map_err(|e| ("targets", e))?;
    Ok(())
}

#[test]
fn every_scenario_ends_as_expected() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut scenarios: Vec<_> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scenarios.sort();
    assert!(
        scenarios.len() >= 20,
        "fixtures missing: run `python3 scripts/gen-tuf-fixtures.py`"
    );
    let mut failures = Vec::new();
    for dir in &scenarios {
        let expected: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let time =
            OffsetDateTime::parse(expected["reference_time"].as_str().unwrap(), &Rfc3339).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = match run(dir, time) {
            Ok(()) => ("done".to_owned(), String::new(), String::new()),
            Err((step, error)) => (
                step.to_owned(),
                error_name(&error).to_owned(),
                error.to_string(),
            ),
        };
        let want_step = expected["step"].as_str().unwrap();
        let want_error = expected.get("error").and_then(|e| e.as_str()).unwrap_or("");
        if outcome.0 != want_step || outcome.1 != want_error {
            failures.push(format!(
                "{name}: expected {want_step}/{want_error}, got {}/{} ({})",
                outcome.0, outcome.1, outcome.2
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_accepted_chain_exposes_the_signed_targets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/root-rotation");
    let time = OffsetDateTime::parse("2026-06-01T00:00:00Z", &Rfc3339).unwrap();
    let read = |name: &str| fs::read(dir.join(name)).unwrap();
    let mut set = TrustedSet::new(&read("root.json"), time).unwrap();
    set.update_root(&read("roots/2.root.json")).unwrap();
    assert_eq!(set.root().signed.version, 2);
    set.update_timestamp(&read("timestamp.json")).unwrap();
    set.update_snapshot(&read("snapshot.json"), false).unwrap();
    set.update_targets(&read("targets.json")).unwrap();
    let targets = &set.targets().unwrap().signed.targets;
    assert_eq!(targets["releases/v1.0.0/app.tar.zst"].length, 14);
    // Clock skew: the same metadata, checked four years later, is expired.
    let late = OffsetDateTime::parse("2030-06-01T00:00:00Z", &Rfc3339).unwrap();
    let mut set = TrustedSet::new(&read("root.json"), late).unwrap();
    set.update_root(&read("roots/2.root.json")).unwrap();
    assert!(matches!(
        set.update_timestamp(&read("timestamp.json")),
        Err(Error::Expired { .. })
    ));
}
