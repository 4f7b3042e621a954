//! `updraft-conformance` speaks the TUF conformance suite's client protocol;
//! `tests/conformance/run.py` drives it against honest and attacked
//! repositories written by python-tuf.

use std::path::Path;

#[test]
fn the_conformance_client_passes_every_python_tuf_scenario() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/run.py");
    let output = updraft_test_support::python_with_tuf()
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_updraft-conformance"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    assert!(summary["scenarios"].as_u64().unwrap() >= 32);
    assert!(
        output.status.success(),
        "failed scenarios: {}",
        serde_json::to_string_pretty(&summary).unwrap()
    );
}
