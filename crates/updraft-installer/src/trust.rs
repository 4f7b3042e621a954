//! Refusing an install that no longer belongs to the user running updraft.
//!
//! Whoever can write to the install folder, `versions/`, `.updraft/` or the
//! state can make updraft run their program: swap `current` for a link to
//! it, replace the main program, or plant a trusted root. updraft creates
//! every path with an explicit safe mode whatever the umask; before it uses
//! an install (every [`Install`](crate::Install) open, `updraft status`,
//! `updraft run`) it checks that nothing it relies on belongs to another
//! user or is writable by one, and that `current` points into `versions/`.
//! The checks are `lstat`s, a few dozen at most.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::os;

/// The install's own paths updraft relies on, outermost first. Those that
/// do not exist (yet) are skipped.
fn own_paths(layout: &Layout) -> Vec<PathBuf> {
    let state_dir = layout.state_dir();
    let mut paths = vec![
        layout.root.clone(),
        layout.config(),
        state_dir.clone(),
        layout.state(),
        layout.next_state(),
        layout.metadata(),
    ];
    if let Ok(entries) = fs::read_dir(layout.metadata()) {
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        paths.extend(files);
    }
    let updater = layout.updater();
    if let Some(bin) = updater.parent() {
        paths.push(bin.to_path_buf());
    }
    paths.extend([updater, layout.versions(), layout.current()]);
    paths
}

/// Fails with [`Error::Untrusted`] naming `path` when this process must not
/// trust it; a missing path is fine.
fn check_path(path: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    match os::distrust(&meta) {
        Some(reason) => Err(Error::Untrusted {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks every path of the install in `layout` that updraft relies on (see
/// [`Layout::check_trusted`]).
pub(crate) fn check_install(layout: &Layout) -> Result<()> {
    for path in own_paths(layout) {
        check_path(&path)?;
    }
    let current = layout.current();
    let Ok(meta) = fs::symlink_metadata(&current) else {
        // A fresh install has no version yet.
        return Ok(());
    };
    let untrusted = |reason: String| Error::Untrusted {
        path: current.clone(),
        reason,
    };
    if !meta.file_type().is_symlink() {
        return Err(untrusted(
            "is not the link updraft makes (a symbolic link into `versions/`); check it, then remove it and reinstall".into(),
        ));
    }
    let target = fs::read_link(&current).map_err(|e| Error::io("read the link", &current, e))?;
    let Some(version) = version_of(&target) else {
        return Err(untrusted(format!(
            "points at `{}`, outside `versions/`, so another user may have replaced it; check it, then point it back with `ln -sfn versions/VERSION current` or reinstall",
            target.display()
        )));
    };
    check_path(&layout.versions().join(version))
}

/// The version folder a `current` link's `target` names, when it is exactly
/// `versions/{name}`.
fn version_of(target: &Path) -> Option<&str> {
    let mut components = target.components();
    match (components.next(), components.next(), components.next()) {
        (Some(Component::Normal(first)), Some(Component::Normal(name)), None)
            if first == "versions" =>
        {
            name.to_str()
        }
        _ => None,
    }
}

/// Checks the main program `main` of `version` and every folder between it
/// and `versions/{version}`, right before `updraft run` starts it.
pub(crate) fn check_program(layout: &Layout, version: &str, main: &str) -> Result<()> {
    let mut path = layout.versions().join(version);
    check_path(&path)?;
    for component in Path::new(main).components() {
        let Component::Normal(name) = component else {
            return Err(Error::Install {
                version: version.to_owned(),
                reason: format!("its main program `{main}` is not a path inside its folder"),
            });
        };
        path.push(name);
        check_path(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// An install of 1.0.0 as updraft lays it out.
    fn install(dir: &Path) -> Layout {
        let layout = Layout::new(dir);
        std::fs::create_dir_all(layout.versions().join("1.0.0/bin")).unwrap();
        std::fs::write(layout.versions().join("1.0.0/bin/app"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(layout.metadata()).unwrap();
        std::fs::write(layout.metadata().join("root.json"), "{}").unwrap();
        std::fs::write(layout.state(), "{}").unwrap();
        symlink("versions/1.0.0", layout.current()).unwrap();
        layout
    }

    fn refused(layout: &Layout) -> String {
        check_install(layout).unwrap_err().to_string()
    }

    #[test]
    fn an_install_as_updraft_makes_it_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let layout = install(dir.path());
        check_install(&layout).unwrap();
        check_program(&layout, "1.0.0", "bin/app").unwrap();
    }

    #[test]
    fn a_folder_or_file_others_can_write_is_refused_by_name() {
        for (path, mode) in [
            ("", 0o777),
            (".updraft", 0o775),
            (".updraft/state.json", 0o666),
            (".updraft/metadata/root.json", 0o646),
            ("versions", 0o1777),
            ("versions/1.0.0", 0o757),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let layout = install(dir.path());
            let target = if path.is_empty() {
                dir.path().to_path_buf()
            } else {
                dir.path().join(path)
            };
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = refused(&layout);
            assert!(
                error.contains(&format!("`{}`", target.display()))
                    && error.contains("writable by other users")
                    && error.contains("chmod go-w"),
                "{path}: {error}"
            );
        }
    }

    #[test]
    fn a_main_program_others_can_change_or_a_setuid_one_is_refused() {
        for (path, mode, words) in [
            ("bin", 0o777, "writable by other users"),
            ("bin/app", 0o757, "writable by other users"),
            ("bin/app", 0o4755, "setuid or setgid"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let layout = install(dir.path());
            let target = layout.versions().join("1.0.0").join(path);
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = check_program(&layout, "1.0.0", "bin/app")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("`{}`", target.display())) && error.contains(words),
                "{path}: {error}"
            );
        }
    }

    #[test]
    fn current_pointing_outside_versions_or_not_a_link_is_refused() {
        for target in [
            "/tmp/evil",
            "versions/../../evil",
            "versions",
            "versions/1.0.0/bin",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let layout = install(dir.path());
            std::fs::remove_file(layout.current()).unwrap();
            symlink(target, layout.current()).unwrap();
            let error = refused(&layout);
            assert!(
                error.contains(&format!("`{}`", layout.current().display()))
                    && error.contains(&format!("points at `{target}`, outside `versions/`")),
                "{target}: {error}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = install(dir.path());
        std::fs::remove_file(layout.current()).unwrap();
        std::fs::create_dir(layout.current()).unwrap();
        assert!(refused(&layout).contains("is not the link updraft makes"));
    }

    #[test]
    fn a_path_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = install(dir.path());
        // Only root can give a file away; elsewhere the mode checks above stand.
        if rustix::fs::chownat(
            rustix::fs::CWD,
            layout.current(),
            Some(rustix::process::Uid::from_raw(54_321)),
            None,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .is_err()
        {
            eprintln!("skipped: cannot chown here (needs root)");
            return;
        }
        let error = refused(&layout);
        assert!(
            error.contains(&format!("`{}`", layout.current().display()))
                && error.contains("belongs to user 54321"),
            "{error}"
        );
    }
}
