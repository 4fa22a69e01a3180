//! The server secret: 32 random bytes generated into the data directory on first start
//! (mode 0600). It signs page tokens. Servers sharing a store use the one stored there
//! (`Operations::shared_secret`), which the first of them set from its own file.

use std::io::Write;
use std::path::Path;

/// The secret's file name in the data directory.
pub(crate) const FILE: &str = "secret";

/// A configured secret file.
pub fn load(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(
        bytes.len() >= 32,
        "{} is too short to be a server secret (32 bytes at least)",
        path.display()
    );
    Ok(bytes)
}

/// The data directory's secret: read (and made private, 0600, if it was not), or
/// generated on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(_) => {
            // Private, as it was made (an earlier version, or a copy, may have opened it).
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| anyhow::anyhow!("cannot make {} private: {e}", path.display()))?;
            }
            return load(&path);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(&secret)?;
    file.sync_all()?;
    Ok(secret)
}
