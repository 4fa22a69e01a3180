//! The longrun server: configuration, the listener, and the REST and gRPC adapters over
//! the engine. The only crate that serves HTTP (JSON and gRPC).

mod accounts;
pub mod auth;
mod calls;

mod bulk;
mod changes;
pub mod config;
pub mod connections;
pub mod data_dir;
pub mod emulator;
mod grpc;
mod kit;
mod layers;
pub mod migrate;
mod observe;
mod outputs;
mod page;
pub mod projects;
mod queues;
mod rest;
mod schedules;
mod secret;
pub mod tls;
mod workers;

pub use config::Config;
pub use data_dir::DATABASE_FILE;
pub use observe::telemetry;

use auth::Auth;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use longrun_engine::{Engine, Options};
use longrun_store_sqlite::SqliteStore;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Runs the server on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Prints `listening on http://HOST:PORT` once connections are accepted.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let types = workers::completion::types(&config.api.descriptor_sets)?;
    let addr = listener.local_addr()?;
    anyhow::ensure!(
        addr.ip().is_loopback()
            || config.auth.mode == auth::Mode::Oauth
            || config.allow_unauthenticated,
        "refusing to serve {addr} without authentication: listen on a loopback address, \
         turn auth on ([auth] mode = \"oauth\"), or pass --allow-unauthenticated to accept \
         requests from anyone who can reach it"
    );
    data_dir::prepare(&config.data_dir)?;
    // One server per data directory: the SQLite store holds its lock while it is open; on
    // PostgreSQL the directory still holds this server's command groups and output.
    let (store, _data_dir_lock): (Arc<dyn longrun_store::Store>, _) =
        match (config.store, &config.database_url) {
            (config::StoreKind::Postgres, Some(url)) => {
                let lock = longrun_store_sqlite::DirLock::acquire(&config.data_dir)?;
                let store = longrun_store_postgres::PostgresStore::connect(url).await?;
                (Arc::new(store), Some(lock))
            }
            _ => (
                Arc::new(SqliteStore::open(&config.data_dir.join(DATABASE_FILE))?),
                None,
            ),
        };
    // The hub of changes sees every write: the engine's announcements on a store of our
    // own, the store's signals on a shared one.
    let hub = Arc::new(changes::watch::Hub::new());
    let metrics = Arc::new(observe::metrics::Metrics::new());
    let shared = store.subscribe().is_some();
    let store_held = Arc::downgrade(&store);
    let following = tokio::spawn(changes::feed::follow(store.clone(), hub.clone()));
    let secret = match &config.auth.secret_file {
        Some(path) => secret::load(path)?,
        None => {
            store
                .shared_secret(secret::load_or_create(&config.data_dir)?)
                .await?
        }
    };
    let token_uri = config.auth.token_uri.clone().unwrap_or_else(|| {
        let scheme = if config.tls.enabled() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}/token")
    });
    let auth = Auth::new(
        &config.auth,
        config.iam.clone(),
        &secret,
        token_uri,
        store.clone(),
    )?;
    // Commands started by a previous run that outlived it go first.
    let leftovers = longrun_worker::command::kill_leftover_groups(
        &config.data_dir.join(config::COMMAND_GROUPS),
    )?;
    if leftovers > 0 {
        tracing::warn!(
            groups = leftovers,
            "killed commands left running by the previous run"
        );
    }
    let mut options = Options::new(secret);
    let mut clock_sync = None;
    // A store several servers share judges time for all of them.
    let clock = Arc::new(longrun_engine::StoreClock::default());
    if clock.sync(&*store).await? {
        tracing::info!(
            offset_ms = clock.offset_ms(),
            "leases are timed on the store's clock"
        );
        options.clock = clock.clone();
        clock_sync = Some(tokio::spawn(follow_store_clock(clock, store.clone())));
    }
    options.observer = Arc::new((
        observe::metrics::EngineMetrics(metrics.clone()),
        changes::feed::Feed::new(hub.clone(), shared),
    ));
    options.max_queued = config.project_defaults.max_queued;
    options.retention = config.retention;
    options.default_wait = config.wait.default;
    options.max_wait = config.wait.max;
    options.max_running = config.project_defaults.max_running;
    config.projects.check()?;
    options.max_exports = config.projects.plan_max_concurrent_exports;
    options.scan_budget = config.list.scan_budget.max(1);
    options.task_types = config
        .task_types
        .iter()
        .map(|t| {
            let task_type = longrun_engine::TaskType {
                cancellable: t.cancellable,
                cancel_grace: t.cancel_grace,
                max_attempts: t.max_attempts,
                timeout: t.timeout,
                required_payload_keys: t.command_spec(&config.data_dir).placeholders(),
                key_concurrency: t.key_concurrency,
            };
            (t.op_type.clone(), task_type)
        })
        .collect();
    let engine = Engine::new(store.clone(), options);
    // Finding the algorithm list reads files and may ask a Python interpreter: off the
    // async threads.
    let emulator = {
        let algorithms_file = config.earthengine.algorithms_file.clone();
        let (task_faults, api_faults) = (config.task_faults.clone(), config.api_faults.clone());
        let seed = config.faults.seed;
        let assets: Arc<dyn longrun_store::Assets> = store.clone();
        let handles = (engine.clone(), assets, auth.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || {
                emulator::Emulator::new(
                    algorithms_file.as_deref(),
                    task_faults,
                    api_faults,
                    seed,
                    handles,
                )
            })
            .await??,
        )
    };

    // Schedules read their operation as submit reads its body (docs/schedules.md), and
    // each firing passes the registration gate as a submit does.
    let projects = Arc::new(config.projects.clone());
    let scheduler = longrun_engine::schedules::Scheduler::admitting(
        engine.clone(),
        store.clone(),
        Arc::new(|operation: &serde_json::Value| {
            let bytes = serde_json::to_vec(operation).map_err(|e| e.to_string())?;
            rest::submission(&bytes).map_err(|e| e.message)
        }),
        {
            let (projects, store) = (projects.clone(), store.clone());
            Arc::new(move |project| {
                let (projects, store) = (projects.clone(), store.clone());
                Box::pin(async move {
                    projects::gate(&projects, &*store, projects::Gate::Start, &project)
                        .await
                        .map_err(|e| e.message)
                })
            })
        },
    );
    let outputs_dir = config.data_dir.join(config::OUTPUTS);
    let state = calls::App {
        engine: engine.clone(),
        auth,
        outputs_dir: outputs_dir.clone(),
        store,
        emulator,
        hub,
        metrics,
        projects,
        types,
        schedules: scheduler.clone(),
    };
    let metrics_public = config.metrics.public;
    // REST and gRPC share the listener: gRPC calls go to their services' paths.
    let app = grpc::routes(
        Router::new()
            .route(
                "/healthz",
                get(|| async { kit::json::json_body(&serde_json::json!({"status": "SERVING"})) })
                    .fallback(only("GET")),
            )
            .route("/token", post(rest::token).fallback(only("POST")))
            .route(
                "/metrics",
                get(move |State(app): State<calls::App>, request| async move {
                    let metrics = &app.metrics;
                    observe::endpoints::metrics(
                        &app.auth,
                        metrics,
                        metrics_public,
                        &*app.store,
                        request,
                    )
                    .await
                })
                .fallback(only("GET")),
            )
            .route(
                "/readyz",
                get(|State(app): State<calls::App>| async move {
                    observe::endpoints::readyz(&*app.store).await
                })
                .fallback(only("GET")),
            )
            .route("/", get(page::index).fallback(only("GET")))
            .route("/assets/{file}", get(page::assets).fallback(only("GET")))
            .route(
                "/$discovery/rest",
                get(rest::discovery).fallback(only("GET")),
            )
            .route("/openapi.json", get(rest::openapi).fallback(only("GET")))
            .route("/batch", post(rest::batch::handle).fallback(only("POST")))
            .fallback(fallback)
            .with_state(state.clone()),
        state.clone(),
    )?
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        layers::count,
    ))
    .layer(axum::middleware::from_fn(layers::trace))
    .layer(axum::middleware::from_fn(layers::resolve));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut executors = start_executors(&config, &engine, &stopped, &state);
    executors.push(bulk::start(&engine, &stopped));
    let background = {
        let engine = engine.clone();
        let stopped = until_stopped(&stopped);
        tokio::spawn(async move { engine.run_background(stopped).await })
    };
    let cascades = {
        let engine = engine.clone();
        let stopped = until_stopped(&stopped);
        tokio::spawn(async move { engine.run_cascades(stopped).await })
    };
    let outputs_sweep = tokio::spawn(outputs::run(engine.clone(), outputs_dir, stopped.clone()));
    let firing = {
        let stopped = until_stopped(&stopped);
        tokio::spawn(async move { scheduler.run(stopped).await })
    };
    let draining = {
        let engine = engine.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: stopping executors and draining requests");
            let _ = stop.send(true);
            for executor in executors {
                let _ = executor.await;
            }
            engine.close();
        }
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), store = ?config.store, "serving");
    let tls = tls::Tls::load(&config.tls)?;
    let reloading = tls.clone().map(|tls| tokio::spawn(tls.reload_on_change()));
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    connections::serve(listener, app, config.connections.clone(), tls, draining).await;
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    background.await?;
    let _ = outputs_sweep.await;
    let _ = firing.await;
    let _ = cascades.await;
    following.abort();
    let _ = following.await;
    if let Some(clock_sync) = clock_sync {
        clock_sync.abort();
        let _ = clock_sync.await;
    }
    // Nothing holds the store (and the data directory's lock) once this returns.
    drop((state, engine));
    store_released(store_held).await;
    Ok(())
}

/// How long `run` waits, after the drain, for the last tasks to let go of the store.
const STORE_RELEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until nothing holds the store: tasks that served the last calls (a stream's
/// watchers, completions in flight) end moments after the connections are drained, and the
/// data directory's lock goes with the store's last holder, so a server started on the
/// same directory right after `run` returns finds it free. Polls, at shutdown only.
async fn store_released(store: std::sync::Weak<dyn longrun_store::Store>) {
    let deadline = tokio::time::Instant::now() + STORE_RELEASE;
    while store.strong_count() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                holders = store.strong_count(),
                "the store is still held after the drain"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// What no route serves: a gRPC call of an unknown service is answered UNIMPLEMENTED as a
/// gRPC status; everything else goes to the REST router (the API's paths, and its 404).
async fn fallback(
    state: axum::extract::State<calls::App>,
    request: axum::extract::Request,
) -> axum::response::Response {
    if layers::is_grpc(&request) {
        return grpc::unimplemented(request.uri().path());
    }
    rest::handle(state, request).await
}

/// The answer of a fixed route to any other method: 405 with `Allow`, in the envelope
/// (docs/choices.md#http-and-routing), as the API's own routes answer.
fn only(
    allow: &'static str,
) -> impl Fn(axum::http::Method) -> std::future::Ready<kit::error::ApiError>
+ Clone
+ Send
+ Sync
+ 'static {
    move |method| std::future::ready(kit::error::ApiError::method_not_allowed(&method, allow))
}

/// Measures the store's clock again every [`CLOCK_SYNC`], for as long as the process runs.
async fn follow_store_clock(
    clock: Arc<longrun_engine::StoreClock>,
    store: Arc<dyn longrun_store::Store>,
) {
    loop {
        tokio::time::sleep(CLOCK_SYNC).await;
        if let Err(e) = clock.sync(&*store).await {
            tracing::warn!(error = %e, "cannot read the store's clock; keeping the last offset");
        }
    }
}

/// How often a server measures its offset from a shared store's clock.
const CLOCK_SYNC: std::time::Duration = std::time::Duration::from_secs(10);

/// Lease duration of the built-in executors.
const BUILTIN_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves once `stopped` says the server stops (the shutdown of a background loop).
fn until_stopped(
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stopped = stopped.clone();
    async move {
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// Starts the built-in executors of the configured task types. On shutdown they stop
/// leasing and release what they run at once (it is retried on the next start).
fn start_executors(
    config: &Config,
    engine: &Engine,
    stopped: &tokio::sync::watch::Receiver<bool>,
    app: &calls::App,
) -> Vec<tokio::task::JoinHandle<()>> {
    config
        .task_types
        .iter()
        .filter_map(|t| {
            let worker = longrun_worker::Worker::new(&format!("builtin-{}", t.op_type));
            let worker = match t.executor {
                config::Executor::External => return None,
                config::Executor::Simulate => {
                    // Simulated tasks run as the Earth Engine emulator's (faults, destinations,
                    // assets).
                    let runner = emulator::tasks::Runner {
                        emulator: app.emulator.clone(),
                        simulation: t.simulation().expect("validated with the config"),
                    };
                    worker.handle(&t.op_type, move |ctx| runner.clone().run(ctx))
                }
                config::Executor::Command => {
                    let spec = Arc::new(t.command_spec(&config.data_dir));
                    worker.handle(&t.op_type, move |ctx| {
                        let spec = spec.clone();
                        async move { spec.run(ctx).await }
                    })
                }
            };
            // Short leases: if the server dies, its built-in work is retried soon after.
            let worker = worker
                .concurrency(t.concurrency)
                .lease_duration(BUILTIN_LEASE)
                .lease_poll(std::time::Duration::from_millis(500))
                .shutdown_grace(std::time::Duration::ZERO);
            Some(worker)
        })
        .map(|worker| {
            let stopped = until_stopped(stopped);
            let engine = Arc::new(engine.clone());
            tokio::spawn(async move { worker.run(engine, stopped).await })
        })
        .collect()
}
