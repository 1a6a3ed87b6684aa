//! Moving a state file that cannot be read aside, so the agent can start fresh without
//! destroying what was there: `<name>` becomes `<name>.corrupt-<unix seconds>` in the same
//! directory (or `<name>.corrupt-<unix seconds>-<n>` when that exists already), kept for
//! inspection and never deleted by the agent.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Renames `path` to `<path>.corrupt-<secs>` (a name that does not exist yet) and fsyncs the
/// directory, so the rename survives a crash. Returns the new path.
pub fn move_aside(path: &Path, secs: i64) -> io::Result<PathBuf> {
    let dir = crate::durable::dir_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let base = format!("{}.corrupt-{secs}", name.to_string_lossy());
    // rename() replaces an existing target: never overwrite an earlier quarantined file.
    let mut aside = dir.join(&base);
    let mut n = 1u32;
    while aside.try_exists().unwrap_or(true) {
        if n >= 1000 {
            return Err(io::Error::other(format!(
                "{}: 1000 files moved aside already",
                dir.join(&base).display()
            )));
        }
        aside = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    fs::rename(path, &aside)?;
    File::open(dir).and_then(|d| d.sync_all())?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_aside_without_overwriting_an_earlier_one() {
        let dir = std::env::temp_dir().join(format!("lookout-aside-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.db");
        // (content, name it is moved to)
        let rows = [
            ("first", "state.db.corrupt-1700000000"),
            ("second", "state.db.corrupt-1700000000-1"),
            ("third", "state.db.corrupt-1700000000-2"),
        ];
        for (content, expected) in rows {
            fs::write(&file, content).unwrap();
            let aside = move_aside(&file, 1_700_000_000).unwrap();
            assert_eq!(aside, dir.join(expected));
            assert_eq!(fs::read_to_string(&aside).unwrap(), content);
            assert!(!file.exists());
        }
        let err = move_aside(&file, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
