//! The server's configuration: one typed tree, filled from defaults, then the TOML file,
//! then `LONGRUN_*` environment variables and flags (applied by the binary).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`--listen`, `LONGRUN_LISTEN`).
    pub listen: SocketAddr,
    /// Where the embedded store and the server secret live (`--data-dir`, `LONGRUN_DATA_DIR`).
    pub data_dir: PathBuf,
    /// How long done operations are kept before they expire (default 30 days).
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    pub project_defaults: ProjectDefaults,
    pub wait: Wait,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectDefaults {
    /// Most PENDING operations per project; submit beyond it is RESOURCE_EXHAUSTED.
    pub max_queued: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wait {
    /// How long `wait` waits when the request names no timeout.
    #[serde(with = "humantime_serde_compat")]
    pub default: Duration,
    /// Longest `wait`; longer requested timeouts are capped.
    #[serde(with = "humantime_serde_compat")]
    pub max: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./longrun-data"),
            retention: Duration::from_secs(30 * 24 * 3600),
            project_defaults: ProjectDefaults::default(),
            wait: Wait::default(),
        }
    }
}

impl Default for ProjectDefaults {
    fn default() -> ProjectDefaults {
        ProjectDefaults { max_queued: 3000 }
    }
}

impl Default for Wait {
    fn default() -> Wait {
        Wait {
            default: Duration::from_secs(60),
            max: Duration::from_secs(600),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.project_defaults.max_queued >= 1,
            "project_defaults.max_queued must be at least 1"
        );
        anyhow::ensure!(
            self.wait.default <= self.wait.max,
            "wait.default must not exceed wait.max"
        );
        Ok(())
    }
}

/// Durations in the config are written the human way: `"30s"`, `"240h"`, `"30d"`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_refused() {
        let config: Config = toml::from_str(
            "retention = \"7d\"\n[project_defaults]\nmax_queued = 10\n[wait]\nmax = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(config.retention, Duration::from_secs(7 * 86400));
        assert_eq!(config.project_defaults.max_queued, 10);
        assert_eq!(config.wait.max, Duration::from_secs(120));
        assert_eq!(config.wait.default, Duration::from_secs(60));
        assert_eq!(config.listen.port(), 8080);
        assert!(toml::from_str::<Config>("colour = 1").is_err());
        assert!(toml::from_str::<Config>("[wait]\nmax = \"soon\"").is_err());
    }
}
