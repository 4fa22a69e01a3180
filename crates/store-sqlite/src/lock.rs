//! One process at a time in a data directory, and files only its owner reads: the
//! advisory lock on `longrun.lock` in the directory, held for the life of the store (or of
//! whatever else holds a [`DirLock`]), and the 0600 modes of the database and its WAL and
//! shared-memory files.

use longrun_store::Error;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name in the directory it locks.
pub const LOCK_FILE: &str = "longrun.lock";

/// An exclusive advisory lock (`flock`) on a directory, through the file [`LOCK_FILE`] in
/// it; released when dropped, or when the process ends however it ends. The lock file
/// holds the process id of its holder, for the message of whoever finds it taken.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist) without waiting. Errors: `Unavailable`,
    /// naming the directory and the holder's process id, when another process (or another
    /// store in this one) holds it; `Backend` when the lock file cannot be opened.
    pub fn acquire(dir: &Path) -> Result<DirLock, Error> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::Backend(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(Error::Unavailable(format!(
                    "the data directory {} is in use: {holder} (a longrun server, or a \
                     command working on the directory) holds its lock {}; stop it first, or \
                     give each server a data directory of its own",
                    dir.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Backend(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        // Who holds it, for the message above; the lock does not depend on it.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

/// Makes the database at `path` readable and writable by its owner only: creates it 0600
/// if missing (SQLite then creates its `-wal` and `-shm` files with the same mode), and
/// tightens an existing database and its `-wal` and `-shm` files to 0600.
pub(crate) fn private_files(path: &Path) -> Result<(), Error> {
    let failed = |path: &Path, e: std::io::Error| {
        Error::Backend(format!("cannot make {} private: {e}", path.display()))
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(path, e))?;
    for file in [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        let mode = match std::fs::metadata(&file) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(failed(&file, e)),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| failed(&file, e))?;
        }
    }
    Ok(())
}

/// `path` with `suffix` after its file name (`longrun.db` → `longrun.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
