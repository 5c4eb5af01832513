//! Paths as a person reads them: `configs/../../shared/data/test.de` becomes
//! `../shared/data/test.de` lexically, then `/work/shared/data/test.de` (outside the current
//! directory) or `data/test.de` (inside it). Lexical only: no symlink is followed and nothing on
//! the filesystem is read, so a path that does not exist (yet) is shown the same way.

use std::path::{Component, Path, PathBuf};

/// `path` with `.` removed and each `..` cancelling the component before it. A `..` at the
/// start of a relative path stays (nothing to cancel); one at the root is dropped (`/..` is `/`).
/// An empty result is `.`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// `path` as a report shows it, seen from the directory `cwd` (absolute): normalized, relative
/// to `cwd` when it lies inside it, otherwise the clean absolute path.
pub fn shown(path: &Path, cwd: &Path) -> PathBuf {
    let cwd = normalize(cwd);
    let absolute = normalize(&cwd.join(path));
    match absolute.strip_prefix(&cwd) {
        Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from("."),
        Ok(rel) => rel.to_path_buf(),
        Err(_) => absolute,
    }
}

/// [`shown`] from the process's current directory (the path normalized when that is unknown).
pub fn shown_from_here(path: &Path) -> PathBuf {
    match std::env::current_dir() {
        Ok(cwd) => shown(path, &cwd),
        Err(_) => normalize(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: PathBuf) -> String {
        p.display().to_string()
    }

    #[test]
    fn normalize_resolves_dot_and_dot_dot_lexically() {
        let n = |p: &str| s(normalize(Path::new(p)));
        assert_eq!(
            n("configs/../../shared/data/multi30k/test2016.de"),
            "../shared/data/multi30k/test2016.de"
        );
        assert_eq!(n("./a/./b/../c"), "a/c");
        assert_eq!(n("a/.."), ".");
        assert_eq!(n("../../x"), "../../x");
        assert_eq!(n("/a/../../b"), "/b");
        assert_eq!(n("/work/main/configs/../runs/demo/"), "/work/main/runs/demo");
    }

    #[test]
    fn shown_is_relative_inside_the_current_directory_and_clean_outside_it() {
        let cwd = Path::new("/work/main");
        let show = |p: &str| s(shown(Path::new(p), cwd));
        // The config's directory joined with its relative data path, as the pipeline resolves it.
        assert_eq!(
            show("configs/../../shared/data/multi30k/test2016.de"),
            "/work/shared/data/multi30k/test2016.de"
        );
        assert_eq!(show("configs/../runs/demo/data/test.syn"), "runs/demo/data/test.syn");
        assert_eq!(show("/work/main/runs/demo/data/test.syn"), "runs/demo/data/test.syn");
        assert_eq!(show("/work/main/./x/../runs/a"), "runs/a");
        assert_eq!(show("/tmp/demo/data/test.syn"), "/tmp/demo/data/test.syn");
        // A sibling whose name starts like the current directory is not inside it.
        assert_eq!(show("/work/main2/test.syn"), "/work/main2/test.syn");
        assert_eq!(show("."), ".");
        assert_eq!(s(shown(Path::new("data/t.syn"), Path::new("/work/main/configs/.."))), "data/t.syn");
    }
}
