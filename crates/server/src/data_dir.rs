//! The data directory as the server and the offline commands open it: created private
//! (0700), tightened to 0700 when it is longrun's, and locked by one process at a time (the
//! SQLite store holds the lock while it is open; a server on PostgreSQL takes it itself).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// File name of the embedded database inside the data directory.
pub const DATABASE_FILE: &str = "longrun.db";

/// Files that make a directory longrun's (any one of them).
const OURS: &[&str] = &[
    DATABASE_FILE,
    longrun_store_sqlite::LOCK_FILE,
    crate::secret::FILE,
];

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one to
/// 0700 when it is empty or already longrun's (it holds the database, the lock or the
/// secret). A directory holding other files keeps its mode, with a warning: the files
/// longrun writes in it are private (0600) all the same. Errors: the directory cannot be
/// created, read or changed.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    let failed = |what: &str, e: std::io::Error| {
        anyhow::anyhow!("cannot {what} data directory {}: {e}", dir.display())
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| failed("create", e));
        }
        Err(e) => return Err(failed("read", e)),
        Ok(metadata) if !metadata.is_dir() => {
            anyhow::bail!("data directory {} is not a directory", dir.display())
        }
        Ok(metadata) if metadata.permissions().mode() & 0o077 == 0 => return Ok(()),
        Ok(_) => {}
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| failed("read", e))?;
    let empty = entries.next().is_none();
    if empty || OURS.iter().any(|file| dir.join(file).exists()) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed("make private (0700) the", e))?;
    } else {
        tracing::warn!(
            data_dir = %dir.display(),
            "the data directory holds files that are not longrun's, so its mode is left \
             as it is; longrun's own files in it are private (0600)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_and_tightened_only_when_it_is_longruns() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a/b");
        prepare(&new).unwrap();
        assert_eq!(mode(&new), 0o700);

        let open = |name: &str| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            dir
        };
        let empty = open("empty");
        prepare(&empty).unwrap();
        assert_eq!(mode(&empty), 0o700);
        let ours = open("ours");
        std::fs::write(ours.join(DATABASE_FILE), "").unwrap();
        prepare(&ours).unwrap();
        assert_eq!(mode(&ours), 0o700);
        let shared = open("shared");
        std::fs::write(shared.join("notes.txt"), "").unwrap();
        prepare(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);

        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(prepare(&file).is_err());
    }
}
