//! The server's configuration: one typed tree, filled from defaults, then the TOML file,
//! then `LONGRUN_*` environment variables and flags (applied by the binary).

use crate::kit::config_duration;
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
    /// Where operations are kept: the embedded `sqlite` store in the data directory, or
    /// `postgres` at `database_url` (`--store`, `LONGRUN_STORE`).
    pub store: StoreKind,
    /// The PostgreSQL URL when `store = "postgres"` (`--database-url`, `LONGRUN_DATABASE_URL`).
    pub database_url: Option<String>,
    /// Serve a non-loopback address although there is no authentication
    /// (`--allow-unauthenticated`). Off: such a listener is refused.
    pub allow_unauthenticated: bool,
    /// How long done operations are kept before they expire (default 30 days).
    #[serde(with = "config_duration")]
    pub retention: Duration,
    pub project_defaults: ProjectDefaults,
    pub wait: Wait,
    /// `[auth]`: tokens and identity providers.
    pub auth: crate::auth::AuthConfig,
    /// `[[iam.binding]]`: who may do what on which projects.
    pub iam: crate::auth::iam::Iam,
    /// Per-type settings, `[[task_type]]` tables.
    #[serde(rename = "task_type")]
    pub task_types: Vec<TaskType>,
    /// `[metrics]`: who may read `/metrics`.
    pub metrics: MetricsConfig,
    /// `[earthengine]`: the emulator's settings.
    pub earthengine: EarthEngine,
    /// `[projects]`: project settings (docs/projects.md).
    pub projects: crate::projects::Settings,
    /// `[[fault]]`: the fates of simulated tasks (docs/earth-engine.md#faults).
    #[serde(rename = "fault")]
    pub task_faults: Vec<crate::emulator::faults::TaskFault>,
    /// `[[api_fault]]`: failures and latency of requests.
    #[serde(rename = "api_fault")]
    pub api_faults: Vec<crate::emulator::faults::ApiFault>,
    /// `[faults]`: the seed of every fault draw.
    pub faults: crate::emulator::faults::FaultSettings,
    /// `[connections]`: the cap on open connections, and the timeouts that close slow and
    /// idle ones.
    pub connections: crate::connections::Settings,
    /// `[tls]`: HTTPS and gRPC over TLS, and client certificates (mTLS).
    pub tls: crate::tls::Settings,
    /// `[log]`: the log's format (text or JSON lines).
    pub log: crate::observe::telemetry::LogConfig,
    /// `[tracing]`: OTLP trace export (off unless `otlp_endpoint` is set).
    pub tracing: crate::observe::telemetry::TracingConfig,
    /// `[api]`: what the API accepts beyond its own messages.
    pub api: ApiConfig,
    /// `[list]`: what one list page may cost.
    pub list: ListConfig,
}

/// `[list]` (docs/operations.md#what-a-page-costs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListConfig {
    /// Most rows one list page examines before it answers short with a `nextPageToken`
    /// (default 100,000; at least 1).
    pub scan_budget: usize,
}

impl Default for ListConfig {
    fn default() -> ListConfig {
        ListConfig {
            scan_budget: longrun_engine::SCAN_BUDGET,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Files of `google.protobuf.FileDescriptorSet` (as `protoc --descriptor_set_out` or
    /// `buf build` write them) whose messages a worker's `response` may be, by `@type`,
    /// besides the built-in ones; read at start (a file that does not load stops the
    /// server). A relative path is relative to the config file's folder.
    pub descriptor_sets: Vec<PathBuf>,
}

/// `[earthengine]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarthEngine {
    /// The algorithm list to serve (see `emulator::algorithms` for what is used without it).
    pub algorithms_file: Option<PathBuf>,
}

/// `[metrics]` (docs/watch.md#metrics).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `/metrics` needs no token even with auth on (default false: it needs
    /// `longrun.metrics.get`, e.g. `roles/longrun.metricsViewer` on project `*`).
    pub public: bool,
}

/// Folder of the data directory where running command process groups are recorded.
pub const COMMAND_GROUPS: &str = "command-groups";
/// Folder of the data directory where command output is kept.
pub const OUTPUTS: &str = "outputs";

/// How operations of one `metadata.type` are run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskType {
    /// The `metadata.type` this entry configures.
    #[serde(rename = "type")]
    pub op_type: String,
    /// Who runs it: `external` workers that lease over the API (the default, also for types
    /// with no entry), or the built-in `command` or `simulate` executors.
    #[serde(default)]
    pub executor: Executor,
    /// `command`: the argv to run (no shell); `{payload.KEY}` is filled from the payload.
    #[serde(default)]
    pub command: Vec<String>,
    /// How many run at once in this server (built-in executors).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `simulate`: how long a run takes (default 10s).
    #[serde(default, with = "config_duration::option")]
    pub duration: Option<Duration>,
    /// `simulate`: SUCCEEDED (default), FAILED or HANG.
    #[serde(default)]
    pub outcome: Option<String>,
    /// False: cancel answers 501 UNIMPLEMENTED and leaves the operation untouched.
    #[serde(default = "yes")]
    pub cancellable: bool,
    /// Time a worker has to stop after a cancel before its lease is revoked (default 30s).
    #[serde(default = "default_grace", with = "config_duration")]
    pub cancel_grace: Duration,
    /// Starts allowed before the operation fails (default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: i32,
    /// Longest life from creation; a submit's own timeout can only shorten it.
    #[serde(default, with = "config_duration::option")]
    pub timeout: Option<Duration>,
    /// Most RUNNING + CANCELLING operations of this type per project and submit `concurrencyKey`
    /// (docs/projects.md#concurrency-keys), held exactly at lease time on every server sharing the
    /// store; the rest of a key wait PENDING while other work goes. 0 (the default) = unlimited;
    /// operations without a key are never limited by it.
    #[serde(default)]
    pub key_concurrency: u64,
}

/// Who runs a task type's operations (`executor` in `[[task_type]]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// Workers that lease over the API (REST or gRPC).
    #[default]
    External,
    /// The built-in `command` executor: runs the type's `command` argv.
    Command,
    /// The built-in `simulate` executor of the Earth Engine emulator.
    Simulate,
}

impl Executor {
    /// The name the config file gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::External => "external",
            Executor::Command => "command",
            Executor::Simulate => "simulate",
        }
    }
}

fn default_concurrency() -> usize {
    4
}

impl TaskType {
    /// An external type with every setting at its default.
    pub fn new(op_type: &str) -> TaskType {
        TaskType {
            op_type: op_type.to_string(),
            executor: Executor::External,
            command: Vec::new(),
            concurrency: default_concurrency(),
            duration: None,
            outcome: None,
            cancellable: true,
            cancel_grace: default_grace(),
            max_attempts: default_attempts(),
            timeout: None,
            key_concurrency: 0,
        }
    }

    /// The settings of the `command` executor, with its state under `data_dir`.
    pub fn command_spec(&self, data_dir: &Path) -> longrun_worker::command::CommandSpec {
        longrun_worker::command::CommandSpec {
            argv: self.command.clone(),
            grace: self.cancel_grace,
            groups_dir: data_dir.join(COMMAND_GROUPS),
            outputs_dir: data_dir.join(OUTPUTS),
        }
    }

    /// Refuses what its executor cannot run: a `command` type without an argv or with an
    /// empty program, a `simulate` type with an unknown outcome, a built-in executor with no
    /// slot, and settings of one executor on a type run by another (they would be ignored,
    /// or, for `command`, turn its placeholders into required payload keys). The error names
    /// the type.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name = &self.op_type;
        let executor = self.executor.as_str();
        match self.executor {
            Executor::Command => {
                let Some(program) = self.command.first() else {
                    anyhow::bail!(
                        "task type {name}: executor = \"command\" needs `command`, the argv \
                         to run (no shell), e.g. command = [\"sleep\", \"{{payload.seconds}}\"]"
                    );
                };
                anyhow::ensure!(
                    !program.trim().is_empty(),
                    "task type {name}: the first word of `command` (the program to run) is empty"
                );
            }
            _ => anyhow::ensure!(
                self.command.is_empty(),
                "task type {name}: `command` is only for executor = \"command\", \
                 not \"{executor}\""
            ),
        }
        if self.executor == Executor::Simulate {
            self.simulation()
                .map_err(|e| anyhow::anyhow!("task type {name}: {e}"))?;
        } else {
            for (key, set) in [
                ("duration", self.duration.is_some()),
                ("outcome", self.outcome.is_some()),
            ] {
                anyhow::ensure!(
                    !set,
                    "task type {name}: `{key}` is only for executor = \"simulate\", \
                     not \"{executor}\""
                );
            }
        }
        anyhow::ensure!(
            self.executor == Executor::External || self.concurrency >= 1,
            "task type {name}: the {executor} executor needs concurrency of at least 1"
        );
        Ok(())
    }

    /// The settings of the `simulate` executor.
    pub fn simulation(&self) -> Result<longrun_worker::simulate::Simulation, String> {
        let mut simulation = longrun_worker::simulate::Simulation::default();
        if let Some(duration) = self.duration {
            simulation.duration = duration;
        }
        if let Some(outcome) = &self.outcome {
            simulation.outcome = longrun_worker::simulate::Outcome::parse(outcome)?;
        }
        Ok(simulation)
    }
}

fn yes() -> bool {
    true
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_attempts() -> i32 {
    5
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectDefaults {
    /// Most PENDING operations per project; submit beyond it is RESOURCE_EXHAUSTED.
    pub max_queued: u64,
    /// Most RUNNING (or CANCELLING) operations per project; 0 = unlimited.
    pub max_running: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wait {
    /// How long `wait` waits when the request names no timeout.
    #[serde(with = "config_duration")]
    pub default: Duration,
    /// Longest `wait`; longer requested timeouts are capped.
    #[serde(with = "config_duration")]
    pub max: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./longrun-data"),
            store: StoreKind::Sqlite,
            database_url: None,
            allow_unauthenticated: false,
            auth: Default::default(),
            iam: Default::default(),
            retention: Duration::from_secs(30 * 24 * 3600),
            project_defaults: ProjectDefaults::default(),
            wait: Wait::default(),
            task_types: Vec::new(),
            earthengine: EarthEngine::default(),
            projects: Default::default(),
            task_faults: Vec::new(),
            api_faults: Vec::new(),
            faults: Default::default(),
            metrics: MetricsConfig::default(),
            connections: Default::default(),
            tls: Default::default(),
            log: Default::default(),
            tracing: Default::default(),
            api: ApiConfig::default(),
            list: ListConfig::default(),
        }
    }
}

impl Default for ProjectDefaults {
    fn default() -> ProjectDefaults {
        ProjectDefaults {
            max_queued: 3000,
            max_running: 0,
        }
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
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new(""));
        for set in &mut config.api.descriptor_sets {
            if set.is_relative() {
                *set = folder.join(&*set);
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.iam.validate()?;
        for provider in &self.auth.identity_providers {
            provider.validate()?;
        }
        for task_type in &self.task_types {
            task_type.validate()?;
        }
        self.connections.validate()?;
        self.tls.validate()?;
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
        let config: Config = toml::from_str(
            "[[task_type]]\ntype = \"SLEEP\"\nexecutor = \"external\"\ncancellable = false\n\
             cancel_grace = \"5s\"\nmax_attempts = 2\ntimeout = \"240h\"\n\
             [[task_type]]\ntype = \"EXPORT_IMAGE\"\n[project_defaults]\nmax_running = 4\n",
        )
        .unwrap();
        config.validate().unwrap();
        let sleep = &config.task_types[0];
        assert_eq!(
            (
                sleep.op_type.as_str(),
                sleep.cancellable,
                sleep.max_attempts
            ),
            ("SLEEP", false, 2)
        );
        assert_eq!(sleep.cancel_grace, Duration::from_secs(5));
        assert_eq!(sleep.timeout, Some(Duration::from_secs(240 * 3600)));
        let export = &config.task_types[1];
        assert_eq!(
            (export.cancellable, export.cancel_grace, export.timeout),
            (true, Duration::from_secs(30), None)
        );
        assert_eq!(config.project_defaults.max_running, 4);
        assert!(toml::from_str::<Config>("[wait]\nmax = \"soon\"").is_err());
    }

    #[test]
    fn task_types_their_executor_cannot_run_are_refused() {
        let check = |table: &str| {
            let text = format!("[[task_type]]\ntype = \"T\"\n{table}");
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().map_err(|e| e.to_string())
        };
        for (table, says) in [
            ("executor = \"command\"\n", "needs `command`"),
            ("executor = \"command\"\ncommand = []\n", "needs `command`"),
            ("executor = \"command\"\ncommand = [\" \"]\n", "is empty"),
            (
                "executor = \"command\"\ncommand = [\"true\"]\nconcurrency = 0\n",
                "concurrency",
            ),
            ("command = [\"true\"]\n", "only for executor = \"command\""),
            ("executor = \"simulate\"\noutcome = \"MAYBE\"\n", "MAYBE"),
            (
                "executor = \"command\"\ncommand = [\"true\"]\nduration = \"1s\"\n",
                "only for",
            ),
            ("outcome = \"FAILED\"\n", "only for executor = \"simulate\""),
        ] {
            let error = check(table).expect_err(table);
            assert!(error.starts_with("task type T: "), "{error}");
            assert!(error.contains(says), "{table}: {error}");
        }
        for table in [
            "",
            "executor = \"command\"\ncommand = [\"sleep\", \"{payload.s}\"]\n",
            "executor = \"simulate\"\noutcome = \"HANG\"\nduration = \"1s\"\n",
            "concurrency = 0\n",
        ] {
            check(table).unwrap();
        }
    }

    #[test]
    fn connections_table() {
        let config = Config::default();
        assert_eq!(config.connections.max, 1024);
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(30)
        );
        let config: Config = toml::from_str(
            "[connections]\nmax = 10\nheader_read_timeout = \"5s\"\nidle_timeout = \"1m\"\n\
             keep_alive_interval = \"0s\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.connections.max, 10);
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(60));
        assert!(config.connections.keep_alive_interval.is_zero());
        for table in [
            "max = 0",
            "header_read_timeout = \"0s\"",
            "idle_timeout = \"0s\"",
        ] {
            let config: Config = toml::from_str(&format!("[connections]\n{table}\n")).unwrap();
            assert!(config.validate().is_err(), "{table}");
        }
        assert!(toml::from_str::<Config>("[connections]\nmaximum = 3\n").is_err());
    }

    #[test]
    fn log_and_tracing_tables() {
        let config = Config::default();
        assert_eq!(
            config.log.format,
            crate::observe::telemetry::LogFormat::Text
        );
        assert_eq!(config.tracing.otlp_endpoint, None);
        let config: Config = toml::from_str(
            "[log]\nformat = \"json\"\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4317\"\n\
             service_name = \"jobs\"\n",
        )
        .unwrap();
        assert_eq!(
            config.log.format,
            crate::observe::telemetry::LogFormat::Json
        );
        assert_eq!(
            config.tracing.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(config.tracing.service_name.as_deref(), Some("jobs"));
        assert!(toml::from_str::<Config>("[log]\nformat = \"xml\"").is_err());
        assert!(toml::from_str::<Config>("[tracing]\nendpoint = \"x\"").is_err());
    }
}
