//! The algorithm list `GET /{v}/projects/{p}/algorithms` serves
//! (docs/earth-engine.md#the-algorithm-list): the signatures the official client builds `ee.Image`,
//! `ee.ImageCollection` and every other object from. longrun computes nothing; the list only lets
//! client code build requests.
//!
//! Source, first found wins, read once at start and never copied into the repository:
//! 1. `[earthengine] algorithms_file` in the config;
//! 2. the `LONGRUN_EE_ALGORITHMS` environment variable (a path);
//! 3. the list an installed `earthengine-api` package ships (`ee/tests/algorithms.json`),
//!    looked for in the active virtualenv (`$VIRTUAL_ENV/lib*/python3.*/site-packages`),
//!    then in the package of the `python3` on `PATH` (asked where `ee` is, without
//!    importing it; at most 5 s), then under `~/.local`, `/usr/local`, `/usr` and
//!    `/opt/conda` (`lib*/python3.*/{site,dist}-packages`, newest Python first) and in
//!    `/usr/lib/python3/dist-packages`;
//! 4. the built-in minimal list (ten signatures: enough for exports of assets, constants and
//!    geometries), with a warning in the log saying so.
//!
//! A configured or `LONGRUN_EE_ALGORITHMS` file that cannot be read or is not a list is an
//! error at start; a discovered one that is broken is skipped with a warning.

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The built-in minimal list.
const BUILT_IN: &str = include_str!("../../assets/algorithms.json");

/// Environment variable naming an algorithm list file.
pub const ENV: &str = "LONGRUN_EE_ALGORITHMS";

/// Where the served list came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Config(PathBuf),
    Env(PathBuf),
    /// The list inside an installed `earthengine-api` package.
    Package(PathBuf),
    BuiltIn,
}

/// The served list: the file's bytes as they are (a JSON object with `algorithms`).
#[derive(Debug, Clone)]
pub struct Algorithms {
    pub bytes: Bytes,
    pub count: usize,
    pub source: Source,
}

/// Reads and checks a list: a JSON object whose `algorithms` is a non-empty array of
/// objects with a `name` (an empty list makes `ee.Initialize` ask again and again).
fn parse(bytes: Vec<u8>) -> Result<(Bytes, usize), String> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct List {
        algorithms: Vec<Named>,
    }
    let list: List = serde_json::from_slice(&bytes)
        .map_err(|e| format!("not an algorithm list ({{\"algorithms\": [...]}}): {e}"))?;
    if list.algorithms.is_empty() {
        return Err("the algorithm list is empty".into());
    }
    Ok((Bytes::from(bytes), list.algorithms.len()))
}

fn read(path: &Path) -> Result<(Bytes, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The list file inside an `ee` package folder.
fn in_package(ee_dir: &Path) -> PathBuf {
    ee_dir.join("tests").join("algorithms.json")
}

/// `site-packages` (and Debian's `dist-packages`) folders under `lib/python3.*` of `prefix`.
fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        // Newest Python first.
        pythons.sort();
        pythons.reverse();
        for python in pythons {
            found.push(python.join("site-packages"));
            found.push(python.join("dist-packages"));
        }
    }
    found
}

/// Asks the `python3` on `PATH` where its `ee` package is.
fn ask_python() -> Option<PathBuf> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u, os; s = u.find_spec('ee'); \
             print(os.path.dirname(s.origin) if s and s.origin else '')",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // find_spec does not import the package, so this is quick; a stuck interpreter is
    // not waited for beyond a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let dir = out.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Site-packages folders of the user's and the system's Pythons.
fn other_site_packages() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local"))
        .into_iter()
        .collect();
    prefixes.extend(["/usr/local", "/usr", "/opt/conda"].map(PathBuf::from));
    let mut found: Vec<PathBuf> = prefixes.iter().flat_map(|p| site_packages(p)).collect();
    found.push(PathBuf::from("/usr/lib/python3/dist-packages"));
    found
}

/// The list file of an installed `earthengine-api`, looked for in the documented order;
/// the interpreter is asked only when the active virtualenv has none.
fn find_in_package() -> Option<PathBuf> {
    let venv: Vec<PathBuf> = std::env::var_os("VIRTUAL_ENV")
        .map(|v| site_packages(Path::new(&v)))
        .unwrap_or_default();
    let is_list = |p: &PathBuf| p.is_file();
    venv.iter()
        .map(|site| in_package(&site.join("ee")))
        .find(is_list)
        .or_else(|| ask_python().map(|d| in_package(&d)).filter(is_list))
        .or_else(|| {
            other_site_packages()
                .iter()
                .map(|site| in_package(&site.join("ee")))
                .find(is_list)
        })
}

impl Algorithms {
    /// Finds and reads the list (see the module documentation for the order).
    pub fn load(configured: Option<&Path>) -> anyhow::Result<Algorithms> {
        if let Some(path) = configured {
            let (bytes, count) =
                read(path).map_err(|e| anyhow::anyhow!("earthengine.algorithms_file: {e}"))?;
            return Ok(Algorithms {
                bytes,
                count,
                source: Source::Config(path.into()),
            });
        }
        if let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let (bytes, count) = read(&path).map_err(|e| anyhow::anyhow!("{ENV}: {e}"))?;
            return Ok(Algorithms {
                bytes,
                count,
                source: Source::Env(path),
            });
        }
        if let Some(path) = find_in_package() {
            match read(&path) {
                Ok((bytes, count)) => {
                    return Ok(Algorithms {
                        bytes,
                        count,
                        source: Source::Package(path),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping the algorithm list of an installed earthengine-api")
                }
            }
        }
        Ok(Algorithms::built_in())
    }

    /// The built-in minimal list.
    pub fn built_in() -> Algorithms {
        let (bytes, count) = parse(BUILT_IN.as_bytes().to_vec()).expect("the built-in list parses");
        Algorithms {
            bytes,
            count,
            source: Source::BuiltIn,
        }
    }

    /// Says in the log what is served.
    pub fn log(&self) {
        match &self.source {
            Source::BuiltIn => tracing::warn!(
                algorithms = self.count,
                "serving the built-in minimal Earth Engine algorithm list: client code that \
                 calls other algorithms fails in the client; install earthengine-api, or set \
                 [earthengine] algorithms_file or {ENV}, to serve the full list"
            ),
            Source::Config(p) | Source::Env(p) | Source::Package(p) => tracing::info!(
                algorithms = self.count,
                source = %p.display(),
                "serving the Earth Engine algorithm list"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_checked() {
        assert!(parse(b"{\"algorithms\": []}".to_vec()).is_err());
        assert!(parse(b"[]".to_vec()).is_err());
        assert!(parse(b"{\"algorithms\": [{\"description\": \"x\"}]}".to_vec()).is_err());
        let (_, n) = parse(b"{\"algorithms\": [{\"name\": \"algorithms/A\"}]}".to_vec()).unwrap();
        assert_eq!(n, 1);
        assert_eq!(Algorithms::built_in().count, 10);
    }

    #[test]
    fn a_configured_file_wins_and_must_be_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(
            &path,
            r#"{"algorithms": [{"name": "algorithms/X"}, {"name": "algorithms/Y"}]}"#,
        )
        .unwrap();
        let loaded = Algorithms::load(Some(&path)).unwrap();
        assert_eq!(
            (loaded.count, loaded.source),
            (2, Source::Config(path.clone()))
        );
        assert!(Algorithms::load(Some(&dir.path().join("missing.json"))).is_err());
    }
}
