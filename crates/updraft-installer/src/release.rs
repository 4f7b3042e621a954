//! Putting a verified release in place: the package is unpacked into a
//! fresh, private `versions/.{version}.partial`, every entry checked against
//! the signed manifest, synced, and only then renamed to `versions/{version}`.

use std::fs;
use std::io::Write;
use std::path::Path;

use updraft_protocol::manifest::FileEntry;
use updraft_protocol::{ReleaseManifest, TargetPath};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::os;

/// Unpacks `package` into `versions/{version}` checking every entry against
/// the signed `manifest` (paths, sizes, hashes, modes, links; nothing extra,
/// nothing missing, no special files). The folder only appears, renamed from
/// `versions/.{version}.partial`, once it is complete and synced. Call it
/// with the install open ([`Install`](crate::Install)) and `versions/{version}`
/// unreferenced by the state.
pub fn install_release(layout: &Layout, package: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let version = manifest.release.version.to_string();
    let failed = |reason: String| Error::Install {
        version: version.clone(),
        reason,
    };
    updraft_fs::create_dir_all_durable(&layout.versions())?;
    let final_dir = layout.versions().join(&version);
    let partial = layout.versions().join(format!(".{version}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| Error::io("remove", &partial, e))?;
    }
    fs::create_dir(&partial).map_err(|e| Error::io("create", &partial, e))?;
    let outcome = unpack(package, &partial, manifest).map_err(failed);
    if let Err(error) = outcome {
        let _ = fs::remove_dir_all(&partial);
        return Err(error);
    }
    updraft_fs::fault::point("prepare.unpacked");
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io("replace", &final_dir, e))?;
    }
    updraft_fs::rename_durable(&partial, &final_dir)?;
    updraft_fs::fault::point("prepare.placed");
    Ok(())
}

/// Writes a checked package into a fresh folder: folders and links as listed,
/// files created new (never through an existing path) with the manifest's mode.
struct Unpacker<'a> {
    into: &'a Path,
}

impl updraft_package::Sink for Unpacker<'_> {
    fn dir(&mut self, path: &TargetPath, mode: u32) -> std::result::Result<(), String> {
        let dest = self.into.join(path.as_str());
        fs::create_dir_all(&dest).map_err(|e| format!("cannot create `{path}`: {e}"))?;
        set_mode(&dest, mode)
    }

    fn open_file(
        &mut self,
        path: &TargetPath,
        _: &FileEntry,
    ) -> std::result::Result<Box<dyn Write + '_>, String> {
        let dest = self.into.join(path.as_str());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| format!("cannot write `{path}`: {e}"))?;
        Ok(Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            file,
        )))
    }

    fn close_file(
        &mut self,
        path: &TargetPath,
        entry: &FileEntry,
    ) -> std::result::Result<(), String> {
        set_mode(&self.into.join(path.as_str()), entry.mode)
    }

    fn symlink(&mut self, path: &TargetPath, target: &str) -> std::result::Result<(), String> {
        let dest = self.into.join(path.as_str());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        os::symlink(target, &dest).map_err(|e| format!("cannot create link `{path}`: {e}"))
    }
}

/// Unpacks `package` into `into`, every entry checked against the signed
/// manifest by [`updraft_package::walk`], then makes the tree durable with one
/// syncfs (the folder only becomes visible, renamed, after this returns).
fn unpack(
    package: &Path,
    into: &Path,
    manifest: &ReleaseManifest,
) -> std::result::Result<(), String> {
    updraft_package::walk(package, manifest, &mut Unpacker { into })?;
    os::sync_tree(into).map_err(|e| format!("cannot sync the new version: {e}"))
}

fn set_mode(path: &Path, mode: u32) -> std::result::Result<(), String> {
    os::set_mode(path, mode)
        .map_err(|e| format!("cannot set the mode of `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use updraft_protocol::Sha256Digest;
    use updraft_protocol::manifest::FORMAT_VERSION;

    fn manifest(files: &[FileEntry]) -> ReleaseManifest {
        let json = serde_json::json!({
            "format_version": FORMAT_VERSION, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
            "platform": "linux", "arch": "x86_64", "main": "bin/app", "release_date": "2026-01-01T00:00:00Z",
            "files": files,
        });
        serde_json::from_value(json).unwrap()
    }

    /// Name, type, content, link target.
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a str>);

    /// Writes a tar.zst with raw headers, so hostile names survive.
    fn package(dir: &Path, entries: &[RawEntry<'_>]) -> PathBuf {
        let path = dir.join("p.tar.zst");
        let file = fs::File::create(&path).unwrap();
        let encoder = zstd::stream::write::Encoder::new(file, 3)
            .unwrap()
            .auto_finish();
        let mut builder = tar::Builder::new(encoder);
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap();
        path
    }

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.parse().unwrap(),
            size: data.len() as u64,
            sha256: Sha256Digest::of(data),
            mode: 0o644,
        }
    }

    #[test]
    fn hostile_archives_are_refused_and_nothing_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let signed = manifest(&[entry("bin/app", b"ok")]);
        let cases: Vec<(Vec<RawEntry<'_>>, &str)> = vec![
            (
                vec![("../evil", tar::EntryType::Regular, b"x", None)],
                "`..`",
            ),
            (
                vec![("/etc/evil", tar::EntryType::Regular, b"x", None)],
                "relative",
            ),
            (
                vec![("C:/evil", tar::EntryType::Regular, b"x", None)],
                "drive",
            ),
            (
                vec![("bin/app", tar::EntryType::Symlink, b"", Some("/etc/passwd"))],
                "not in the manifest",
            ),
            (
                vec![("bin/app", tar::EntryType::Link, b"", Some("bin/other"))],
                "never installed",
            ),
            (
                vec![("dev", tar::EntryType::Char, b"", None)],
                "never installed",
            ),
            (
                vec![("bin/app", tar::EntryType::Regular, b"tampered", None)],
                "larger than the manifest says",
            ),
            (
                vec![("bin/app", tar::EntryType::Regular, b"no", None)],
                "differs from the signed manifest",
            ),
            (
                vec![("bin/extra", tar::EntryType::Regular, b"x", None)],
                "not in the manifest",
            ),
            (vec![], "lacks `bin/app`"),
        ];
        for (entries, words) in cases {
            let work = tempfile::tempdir_in(dir.path()).unwrap();
            let package = package(work.path(), &entries);
            let into = work.path().join("into");
            fs::create_dir(&into).unwrap();
            let error = unpack(&package, &into, &signed).unwrap_err();
            assert!(error.contains(words), "{entries:?}: {error}");
            assert!(!dir.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        }
        let work = tempfile::tempdir_in(dir.path()).unwrap();
        let good = package(
            work.path(),
            &[("bin/app", tar::EntryType::Regular, b"ok", None)],
        );
        let into = work.path().join("into");
        fs::create_dir(&into).unwrap();
        unpack(&good, &into, &signed).unwrap();
        assert_eq!(fs::read(into.join("bin/app")).unwrap(), b"ok");
    }
}
