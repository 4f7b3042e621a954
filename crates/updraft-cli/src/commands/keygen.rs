use std::path::Path;
use std::process::ExitCode;

use updraft_protocol::tuf::Scheme;
use updraft_publisher::KeygenOptions;

/// `updraft keygen`: prints where each key went and its id, never the secret.
pub(crate) fn run(
    out: &Path,
    root_keys: u32,
    root_threshold: u32,
    scheme: Scheme,
) -> anyhow::Result<ExitCode> {
    let keys = updraft_publisher::keys::generate(
        out,
        KeygenOptions {
            root_keys,
            root_threshold,
            scheme,
        },
    )?;
    println!(
        "Created {} {scheme} keys in `{}` (root threshold {root_threshold} of {root_keys}):",
        keys.len(),
        out.display()
    );
    for key in &keys {
        println!(
            "  {:<9} {}  {}",
            key.role.as_str(),
            &key.keyid[..16],
            key.path.display()
        );
    }
    println!(
        "Keep the root keys offline once the store is initialised; publishing needs only targets, snapshot and timestamp."
    );
    Ok(ExitCode::SUCCESS)
}
