//! Putting a verified release in place. The client unpacks the package into
//! a private staging folder while it downloads, every entry checked against
//! the signed manifest and every file synced (`updraft_package::Unpack`);
//! here the complete tree becomes `versions/{version}` with one rename.

use std::fs;
use std::path::Path;

use updraft_protocol::ReleaseManifest;

use crate::error::{Error, Result};
use crate::layout::Layout;

/// Moves `staged`, a release unpacked and checked against its signed
/// `manifest` and synced, into `versions/{version}` with one durable rename.
/// Call it with the install open ([`Install`](crate::Install)) and
/// `versions/{version}` unreferenced by the state.
pub fn install_release(layout: &Layout, staged: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let version = manifest.release.version.to_string();
    if !staged.is_dir() {
        return Err(Error::Install {
            version,
            reason: format!("its unpacked files `{}` are missing", staged.display()),
        });
    }
    updraft_fs::create_dir_all_durable(&layout.versions())?;
    let final_dir = layout.versions().join(&version);
    updraft_fs::fault::point("prepare.unpacked");
    // The version folder is 0755 whatever the umask its staging folder was
    // made under (its contents' modes were set by the unpack).
    crate::os::set_mode(staged, updraft_fs::DIR_MODE);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io("replace", &final_dir, e))?;
    }
    updraft_fs::rename_durable(staged, &final_dir)?;
    updraft_fs::fault::point("prepare.placed");
    Ok(())
}
