//! Replacing a state file so that a crash at any moment leaves either the old file or the
//! new one, never a torn one: the one way every file under `data_dir` is written.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory `path` is in (`.` for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically: `<path>.tmp` in the same directory, fsynced,
/// renamed over `path`, the directory fsynced. On error `path` is untouched, the temp file
/// removed (best effort), and the error names the step and the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = write_and_rename(path, &tmp, bytes);
    if result.is_err() && tmp.is_file() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let context = |op: &str, p: &Path| {
        let what = format!("{op} {}", p.display());
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let mut file = File::create(tmp).map_err(context("create", tmp))?;
    file.write_all(bytes).map_err(context("write", tmp))?;
    file.sync_all().map_err(context("fsync", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(context("rename over", path))?;
    let dir = dir_of(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(context("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("lookout-durable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failure_names_the_step_and_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("lookout-durable-x-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write_atomic(&path, b"old").unwrap();
        // A directory where the temp file should go: creating it fails.
        fs::create_dir(dir.join("state.json.tmp")).unwrap();
        let e = write_atomic(&path, b"new").unwrap_err();
        assert!(e.to_string().starts_with("create "), "{e}");
        assert!(e.to_string().contains("state.json.tmp"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bare_name_is_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("x.json")), Path::new("."));
        assert_eq!(dir_of(Path::new("/a/x.json")), Path::new("/a"));
    }
}
