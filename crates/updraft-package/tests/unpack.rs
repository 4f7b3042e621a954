//! Hostile packages never escape the folder they are unpacked into, and
//! what is unpacked has safe modes.

mod unpack {
    use std::fs;
    use std::path::{Path, PathBuf};

    use updraft_package::{Unpack, walk};
    use updraft_protocol::manifest::{FORMAT_VERSION, FileEntry};
    use updraft_protocol::{ReleaseManifest, Sha256Digest};

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

    /// A file whose bytes differ from the manifest's digest is refused when
    /// the package is not yet trusted; with chunk-verified bytes the digest
    /// is not computed again, but every other check still holds.
    #[test]
    fn file_digests_are_checked_unless_chunks_covered_the_bytes() {
        use updraft_package::{CheckOnly, FileDigests, walk_reader_with};
        let dir = tempfile::tempdir().unwrap();
        let path = package(
            dir.path(),
            &[("app", tar::EntryType::Regular, b"good", None)],
        );
        let read = || fs::File::open(&path).unwrap();
        let mut other = entry("app", b"evil");
        let error = walk_reader_with(
            read(),
            &manifest(&[other.clone()]),
            &mut CheckOnly,
            FileDigests::Check,
        )
        .unwrap_err();
        assert!(
            error.contains("differs from the signed manifest"),
            "{error}"
        );
        walk_reader_with(
            read(),
            &manifest(&[other.clone()]),
            &mut CheckOnly,
            FileDigests::CoveredByChunks,
        )
        .unwrap();
        walk_reader_with(
            read(),
            &manifest(&[entry("app", b"good")]),
            &mut CheckOnly,
            FileDigests::Check,
        )
        .unwrap();
        other.size = 5;
        let error = walk_reader_with(
            read(),
            &manifest(&[other.clone()]),
            &mut CheckOnly,
            FileDigests::CoveredByChunks,
        )
        .unwrap_err();
        assert!(
            error.contains("differs from the signed manifest"),
            "{error}"
        );
        other.size = 4;
        other.mode = 0o755;
        let error = walk_reader_with(
            read(),
            &manifest(&[other]),
            &mut CheckOnly,
            FileDigests::CoveredByChunks,
        )
        .unwrap_err();
        assert!(error.contains("mode"), "{error}");
        let error = walk_reader_with(
            read(),
            &manifest(&[]),
            &mut CheckOnly,
            FileDigests::CoveredByChunks,
        )
        .unwrap_err();
        assert!(error.contains("not in the manifest"), "{error}");
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
            let error = walk(&package, &signed, &mut Unpack::new(&into)).unwrap_err();
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
        walk(&good, &signed, &mut Unpack::new(&into)).unwrap();
        assert_eq!(fs::read(into.join("bin/app")).unwrap(), b"ok");
    }
}

/// Unpacks, under `umask`, a package of folders `dirs` and files `files`
/// (path, mode; each file holds `ok`), the same modes in the package and the
/// signed manifest, into a fresh folder, which it returns.
#[cfg(unix)]
fn unpacked(
    dirs: &[(&str, u32)],
    files: &[(&str, u32)],
    umask: u32,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.zst");
    let encoder = zstd::stream::write::Encoder::new(std::fs::File::create(&path).unwrap(), 3)
        .unwrap()
        .auto_finish();
    let mut builder = tar::Builder::new(encoder);
    for (kind, entries, data) in [
        (tar::EntryType::Directory, dirs, &b""[..]),
        (tar::EntryType::Regular, files, &b"ok"[..]),
    ] {
        for (name, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(*mode);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, name, data).unwrap();
        }
    }
    builder.into_inner().unwrap();
    let digest = updraft_protocol::Sha256Digest::of(b"ok").to_hex();
    let manifest: updraft_protocol::ReleaseManifest = serde_json::from_value(serde_json::json!({
        "format_version": 1, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
        "platform": "linux", "arch": "x86_64", "main": files[0].0, "release_date": "2026-01-01T00:00:00Z",
        "files": files.iter().map(|(path, mode)| serde_json::json!({"path": path, "size": 2, "sha256": digest, "mode": mode})).collect::<Vec<_>>(),
        "dirs": dirs.iter().map(|(path, mode)| serde_json::json!({"path": path, "mode": mode})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let into = dir.path().join("into");
    std::fs::create_dir(&into).unwrap();
    let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
    let result = updraft_package::walk(&path, &manifest, &mut updraft_package::Unpack::new(&into));
    rustix::process::umask(previous);
    result.unwrap();
    (dir, into)
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// THREATS.md "local privilege escalation": whatever the signed manifest
/// says, nothing unpacked is setuid, setgid, sticky, or writable by others.
#[cfg(unix)]
#[test]
fn unpacked_modes_are_never_setuid_or_writable_by_others() {
    let (_dir, into) = unpacked(&[("bin", 0o1777)], &[("bin/app", 0o6777)], 0o022);
    assert_eq!(mode_of(&into.join("bin/app")), 0o755);
    assert_eq!(mode_of(&into.join("bin")), 0o755);
}

/// THREATS.md "local privilege escalation", folders made under a wide umask:
/// the folders a file needs but the manifest does not list are 0755 even
/// under `umask 000`.
#[cfg(unix)]
#[test]
fn folders_made_for_a_file_are_0755_whatever_the_umask() {
    let (_dir, into) = unpacked(&[], &[("lib/deep/data", 0o644)], 0o000);
    for (path, expected) in [
        ("lib", 0o755),
        ("lib/deep", 0o755),
        ("lib/deep/data", 0o644),
    ] {
        assert_eq!(mode_of(&into.join(path)), expected, "{path}");
    }
}

/// Resuming an interrupted unpack keeps files that hash right and rewrites
/// the rest, never trusting a file by its name alone.
#[test]
fn resumed_unpacks_keep_only_verified_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tar.zst");
    let encoder = zstd::stream::write::Encoder::new(std::fs::File::create(&path).unwrap(), 3)
        .unwrap()
        .auto_finish();
    let mut builder = tar::Builder::new(encoder);
    for (name, data) in [("a", &b"first"[..]), ("b", &b"second"[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap();
    let file = |p: &str, d: &[u8]| serde_json::json!({"path": p, "size": d.len(), "sha256": updraft_protocol::Sha256Digest::of(d).to_hex(), "mode": 0o644});
    let manifest: updraft_protocol::ReleaseManifest = serde_json::from_value(serde_json::json!({
        "format_version": 1, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
        "platform": "linux", "arch": "x86_64", "main": "a", "release_date": "2026-01-01T00:00:00Z",
        "files": [file("a", b"first"), file("b", b"second")],
    }))
    .unwrap();
    let into = dir.path().join("into");
    std::fs::create_dir(&into).unwrap();
    std::fs::write(into.join("a"), b"first").unwrap();
    std::fs::write(into.join("b"), b"secxnd").unwrap();
    let mut sink = updraft_package::Unpack::new(&into).reuse_verified(true);
    updraft_package::walk(&path, &manifest, &mut sink).unwrap();
    assert_eq!(sink.reused_bytes(), 5, "the good file is kept");
    assert_eq!(sink.written_bytes(), 6, "the bad one is written again");
    assert_eq!(std::fs::read(into.join("b")).unwrap(), b"second");
}

/// Three files in two zstd frames (`a` | `b`, `c`), the second a restart
/// point. A walk from it keeps `a` only once it hashes right, unpacks `b`
/// and `c`, and refuses a point the manifest does not list or one that
/// names the wrong first file.
#[test]
fn a_walk_from_a_restart_point_keeps_only_verified_files_before_it() {
    use updraft_protocol::manifest::RestartPoint;
    fn frame(entries: &[(&str, &[u8])], end: bool) -> Vec<u8> {
        let mut tar_bytes = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut tar_bytes);
            for (name, data) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, name, *data).unwrap();
            }
            if end {
                builder.finish().unwrap();
            }
        }
        if !end {
            // `Builder` writes the end blocks when dropped: keep only the entries.
            tar_bytes.truncate(
                entries
                    .iter()
                    .map(|(_, d)| 512 + d.len().div_ceil(512) * 512)
                    .sum(),
            );
        }
        zstd::encode_all(&tar_bytes[..], 3).unwrap()
    }
    let first = frame(&[("a", b"first")], false);
    let second = frame(&[("b", b"second"), ("c", b"third")], true);
    let package = [first.clone(), second.clone()].concat();
    let offset = first.len() as u64;
    let file = |p: &str, d: &[u8]| serde_json::json!({"path": p, "size": d.len(), "sha256": updraft_protocol::Sha256Digest::of(d).to_hex(), "mode": 0o644});
    let with_restarts = |restarts: serde_json::Value| -> updraft_protocol::ReleaseManifest {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
            "platform": "linux", "arch": "x86_64", "main": "a", "release_date": "2026-01-01T00:00:00Z",
            "files": [file("a", b"first"), file("b", b"second"), file("c", b"third")],
            "restarts": restarts,
        }))
        .unwrap()
    };
    let manifest =
        with_restarts(serde_json::json!([{"offset": 0, "file": 0}, {"offset": offset, "file": 1}]));
    let point = RestartPoint { offset, file: 1 };
    let digests = updraft_package::FileDigests::Check;
    let dir = tempfile::tempdir().unwrap();
    // The whole package still reads as one (old clients).
    let whole = dir.path().join("whole");
    std::fs::create_dir(&whole).unwrap();
    updraft_package::walk_reader(
        &package[..],
        &manifest,
        &mut updraft_package::Unpack::new(&whole),
    )
    .unwrap();
    assert_eq!(std::fs::read(whole.join("c")).unwrap(), b"third");

    let into = dir.path().join("into");
    std::fs::create_dir(&into).unwrap();
    std::fs::write(into.join("a"), b"first").unwrap();
    let mut sink = updraft_package::Unpack::new(&into);
    assert_eq!(sink.verify_prefix(&manifest.files), 1);
    updraft_package::walk_reader_from(&second[..], &manifest, &mut sink, digests, Some(point))
        .unwrap();
    assert_eq!(sink.reused_bytes(), 5);
    assert_eq!(sink.written_bytes(), 11);
    assert_eq!(std::fs::read(into.join("b")).unwrap(), b"second");

    // A kept file that does not hash right is refused, not trusted.
    std::fs::write(into.join("a"), b"firsT").unwrap();
    let error = updraft_package::walk_reader_from(
        &second[..],
        &manifest,
        &mut updraft_package::Unpack::new(&into),
        digests,
        Some(point),
    )
    .unwrap_err();
    assert!(
        error.contains("`a`") && error.contains("not intact"),
        "{error}"
    );
    std::fs::write(into.join("a"), b"first").unwrap();

    // A point the manifest does not list is refused.
    let error = updraft_package::walk_reader_from(
        &second[..],
        &manifest,
        &mut updraft_package::Unpack::new(&into),
        digests,
        Some(RestartPoint { offset, file: 2 }),
    )
    .unwrap_err();
    assert!(error.contains("not a restart point"), "{error}");
    // A signed point that names the wrong first file makes the walk meet
    // files out of place: refused.
    let lying = with_restarts(serde_json::json!([{"offset": offset, "file": 2}]));
    let error = updraft_package::walk_reader_from(
        &second[..],
        &lying,
        &mut updraft_package::Unpack::new(&into),
        digests,
        Some(RestartPoint { offset, file: 2 }),
    )
    .unwrap_err();
    assert!(error.contains("refusing file `b`"), "{error}");
    // A sink that cannot check kept files cannot resume.
    let error = updraft_package::walk_reader_from(
        &second[..],
        &manifest,
        &mut updraft_package::CheckOnly,
        digests,
        Some(point),
    )
    .unwrap_err();
    assert!(error.contains("cannot keep `a`"), "{error}");
}

/// A durable unpack records each file as soon as it and its folders are
/// synced: at the end the record counts every file, in a fixed-width JSON
/// line that overwrites a longer stale record whole, and the backlog it
/// reported to holds nothing back.
#[cfg(unix)]
#[test]
fn a_durable_unpack_records_every_synced_file_and_holds_nothing_back_at_the_end() {
    use std::io::Read;
    use std::sync::Arc;
    struct Counted<'a> {
        bytes: &'a [u8],
        read: u64,
        backlog: Arc<updraft_package::Backlog>,
    }
    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.bytes.read(buf)?;
            self.read += n as u64;
            self.backlog.read_to(self.read);
            Ok(n)
        }
    }
    let names: Vec<String> = (0..30)
        .map(|i| format!("d{}/e{}/f{i:02}", i % 3, i % 2))
        .collect();
    let mut tar_bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar_bytes);
        for name in &names {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(name.len() as u64);
            builder
                .append_data(&mut header, name, name.as_bytes())
                .unwrap();
        }
        builder.finish().unwrap();
    }
    let package = zstd::encode_all(&tar_bytes[..], 3).unwrap();
    let files: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({"path": n, "size": n.len(), "sha256": updraft_protocol::Sha256Digest::of(n.as_bytes()).to_hex(), "mode": 0o644}))
        .collect();
    let manifest: updraft_protocol::ReleaseManifest = serde_json::from_value(serde_json::json!({
        "format_version": 1, "app": "kuzflow", "version": "1.0.0", "channel": "stable",
        "platform": "linux", "arch": "x86_64", "main": names[0], "release_date": "2026-01-01T00:00:00Z",
        "files": files,
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("tree");
    updraft_package::create_root(&into).unwrap();
    let record = dir.path().join("tree.synced.json");
    std::fs::write(
        &record,
        format!("{{\"files\": {}}}\n{}\n", u64::MAX, "x".repeat(5)),
    )
    .unwrap();
    let backlog = Arc::new(updraft_package::Backlog::starting_at(0));
    let mut sink = updraft_package::Unpack::new(&into)
        .record_synced(&record)
        .backlog(Arc::clone(&backlog))
        .durable();
    let reader = Counted {
        bytes: &package,
        read: 0,
        backlog: Arc::clone(&backlog),
    };
    updraft_package::walk_reader_from(
        reader,
        &manifest,
        &mut sink,
        updraft_package::FileDigests::Check,
        None,
    )
    .unwrap();
    sink.finish().unwrap();
    let text = std::fs::read_to_string(&record).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["files"], 30, "{text:?}");
    assert_eq!(backlog.held_from(), package.len() as u64, "{backlog:?}");
    for name in &names {
        assert_eq!(std::fs::read_to_string(into.join(name)).unwrap(), *name);
    }
}
