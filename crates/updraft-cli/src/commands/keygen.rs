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

/// `updraft keygen --role NAME`: one key for a delegated role.
pub(crate) fn one(out: &Path, role: &str, scheme: Scheme) -> anyhow::Result<ExitCode> {
    let path = out.join(format!("{role}.key"));
    if path.exists() {
        anyhow::bail!(
            "`{}` already exists; keys are never overwritten",
            path.display()
        );
    }
    updraft_fs::create_dir_all_durable_with_mode(out, 0o700)?;
    let key = updraft_protocol::tuf::SigningKey::generate(scheme)?;
    let keyid = updraft_publisher::keys::write_key_file(&path, &key)?;
    if ["targets", "snapshot", "timestamp"].contains(&role) {
        println!(
            "Created the {scheme} key `{}` ({}). Make it the store's {role} key with `updraft repo rotate --role {role} --new-key {}`.",
            path.display(),
            &keyid[..16],
            path.display()
        );
    } else {
        println!(
            "Created the {scheme} key `{}` ({}). Give it to the machine that signs for `{role}`; `updraft repo delegate --key {}` reads its public half.",
            path.display(),
            &keyid[..16],
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
