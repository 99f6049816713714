//! Atomic file replacement for everything that matters: checkpoints and report files.
//! A reader (a resumed run, a browser refreshing the page, a script polling
//! `metrics.json`) and a crash alike see the old file or the new one, never half of one.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique within the process, so two threads writing the same
/// report file never share a temporary.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (see [`write_parts`]).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_parts(path, &[bytes])
}

/// Writes the concatenation of `parts` to a hidden temporary sibling of `path`, syncs
/// it, renames it over `path`, and syncs the directory so the rename itself is durable.
/// The sibling is in the same directory because a rename is only atomic within one
/// file system. On failure the temporary is removed and `path` is untouched.
pub(crate) fn write_parts(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        // Without the sync a crash right after the rename can leave an empty file on
        // some file systems: the rename reaches the disk before the data.
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Not every platform lets a directory be opened for syncing; the data itself is
        // already durable, so a failure here only risks the rename, not a torn file.
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("idmlp-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("a.txt")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_and_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("idmlp-atomic-missing-{}", std::process::id()));
        assert!(write(&dir.join("a.txt"), b"x").is_err());
        assert!(!dir.exists());
    }
}
