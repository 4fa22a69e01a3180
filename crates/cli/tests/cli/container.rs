//! The container image (deploy/Containerfile, built by deploy/build-image from this build's
//! `longrun`) run with podman: it refuses a listener beyond loopback without authentication,
//! runs as the image's non-root user with its data on a volume, serves submit and cancel
//! through the published port, stops cleanly on SIGTERM, and a new container on the same
//! volume finds the operations. The Kubernetes manifests (deploy/kubernetes), with the
//! binary: the SQLite one's bootstrap and configuration (a first admin, its token, auth on),
//! the PostgreSQL one's configuration served on the test database with its first admin made
//! as its comment says.
//!
//! Needs podman and runc (scripts/test installs them and sets `LONGRUN_TEST_CONTAINER`, which
//! makes their absence a failure); without either the test says so and skips. Podman runs with
//! runc, cgroupfs and tests/podman/containers.conf (no rlimits or pids limit set), which also
//! work where the host lets a container set neither.

use longrun_testkit::process::{
    Schema, Server, bin, listening, longrun_exit, longrun_ok, operations,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `podman ARGS` with the settings above.
fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .env(
            "CONTAINERS_CONF",
            repo().join("tests/podman/containers.conf"),
        )
        .output()
        .expect("podman runs")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether podman and runc are here; a failure when `LONGRUN_TEST_CONTAINER` says they must be.
fn podman_present() -> bool {
    let present = ["podman", "runc"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if !present {
        assert!(
            std::env::var_os("LONGRUN_TEST_CONTAINER").is_none(),
            "LONGRUN_TEST_CONTAINER is set but podman or runc is missing"
        );
        eprintln!(
            "podman or runc is not installed: skipping the container test (scripts/test installs them)"
        );
    }
    present
}

/// The image, a volume and the containers of one test, removed when dropped.
struct Fixture {
    image: String,
    volume: String,
    containers: Vec<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for container in &self.containers {
            podman(&["rm", "--force", "--time", "0", container]);
        }
        podman(&["volume", "rm", "--force", &self.volume]);
        podman(&["rmi", "--force", &self.image]);
    }
}

impl Fixture {
    /// Starts the image detached as `name`, its port 8080 published on a free loopback port,
    /// the volume on /var/lib/longrun, under the Kubernetes manifests' security context (a
    /// read-only root filesystem with a writable /tmp, no capabilities, no privilege
    /// escalation); returns the server's base URL once it answers.
    fn serve(&mut self, name: &str) -> String {
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:8080");
        let mount = format!("{}:/var/lib/longrun", self.volume);
        self.containers.push(name.to_string());
        podman_ok(&[
            "run",
            "--detach",
            "--name",
            name,
            "--publish",
            &publish,
            "--volume",
            &mount,
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            &self.image,
            "serve",
            "--allow-unauthenticated",
        ]);
        let base = format!("http://127.0.0.1:{port}");
        wait_until_serving(&base, name);
        base
    }
}

/// deploy/build-image of this build's `longrun`, tagged `tag`.
fn build_image(tag: &str) {
    let built = Command::new(repo().join("deploy/build-image"))
        .args(["--binary", bin().to_str().unwrap(), "--tag", tag])
        .args(["--", "--quiet"])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "deploy/build-image: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (60 s at most) for `GET /healthz` at `base` to answer 200; `container`'s log is in
/// the failure.
fn wait_until_serving(base: &str, container: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("{base}/healthz");
    loop {
        let answer = Command::new("curl")
            .args(["--silent", "--fail", "--max-time", "2", &url])
            .output()
            .unwrap();
        if answer.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} did not answer within 60 s:\n{}",
            String::from_utf8_lossy(&podman(&["logs", container]).stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn describe(base: &str, id: &str) -> Value {
    let (code, out, err) = operations(base, &["describe", id, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_image_serves_stops_on_sigterm_and_keeps_its_volume() {
    if !podman_present() {
        return;
    }
    let suffix = std::process::id();
    let mut fixture = Fixture {
        image: format!("localhost/longrun-test:{suffix}"),
        volume: format!("longrun-test-{suffix}"),
        containers: Vec::new(),
    };
    build_image(&fixture.image);

    // Its own command, `serve`, on 0.0.0.0 with auth off: refused, with the reason.
    let refused = podman(&["run", "--rm", &fixture.image]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("refusing to serve 0.0.0.0:8080"), "{said}");

    assert_eq!(
        podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}",
            &fixture.image
        ]),
        "65532:65532"
    );
    podman_ok(&["volume", "create", &fixture.volume]);
    let first = format!("longrun-test-{suffix}-a");
    let base = fixture.serve(&first);
    assert!(
        String::from_utf8_lossy(&podman(&["logs", &first]).stdout)
            .contains("listening on http://0.0.0.0:8080"),
    );

    for id in ["kept", "cancelled"] {
        let (code, _, err) = operations(
            &base,
            &["submit", "--type", "EXPORT_IMAGE", "--operation-id", id],
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = operations(&base, &["cancel", "cancelled"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(describe(&base, "cancelled")["error"]["code"], 1);

    // The data directory is the volume's, written by the image's user.
    let mountpoint = podman_ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &fixture.volume,
    ]);
    let database = std::fs::metadata(Path::new(&mountpoint).join("longrun.db")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((database.uid(), database.gid()), (65532, 65532));

    // SIGTERM: the server drains and exits 0, well before podman would kill it.
    let stopping = Instant::now();
    podman_ok(&["stop", "--time", "30", &first]);
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(10), "podman stop took {took:?}");
    assert_eq!(
        podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &first]),
        "0"
    );
    podman_ok(&["rm", &first]);

    // A new container on the same volume has both operations as they were.
    let base = fixture.serve(&format!("longrun-test-{suffix}-b"));
    let cancelled = describe(&base, "cancelled");
    assert_eq!(
        (
            cancelled["done"].clone(),
            cancelled["error"]["code"].clone()
        ),
        (true.into(), 1.into())
    );
    let kept = describe(&base, "kept");
    assert_eq!(kept["metadata"]["state"], "PENDING");
    assert_eq!(kept["metadata"]["type"], "EXPORT_IMAGE");
}

/// deploy/kubernetes/NAME.yaml with each `(from, to)` replaced; each must be there.
fn manifest(name: &str, replacements: &[(&str, &str)]) -> String {
    let path = repo().join(format!("deploy/kubernetes/{name}.yaml"));
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{name}.yaml has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// The manifest's `longrun.toml` (its ConfigMap's block, unindented).
fn config_map_toml(manifest: &str) -> String {
    let block = manifest
        .split_once("longrun.toml: |\n")
        .expect("a longrun.toml in the ConfigMap")
        .1;
    block
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items of the block list under `key:` that follows `after` in `manifest`
/// (`args:` of a container, say), as written.
fn block_list(manifest: &str, after: &str, key: &str) -> Vec<String> {
    let rest = &manifest[manifest.find(after).expect(after)..];
    let rest = &rest[rest.find(&format!("{key}:\n")).expect(key)..];
    rest.lines()
        .skip(1)
        .map(str::trim)
        .take_while(|line| line.starts_with("- "))
        .map(|line| line[2..].to_string())
        .collect()
}

/// The SQLite manifest's pod, as its two containers would run it on a node: the init
/// container's bootstrap (its own arguments, the claim a directory here) twice, the second
/// time finding its key file; then the server with the ConfigMap's `longrun.toml`, auth on,
/// and the bootstrapped account's token, from `longrun auth print-access-token` as the
/// manifest's comment says. What only a cluster has, the Service's DNS name in the token URI,
/// is this server's address.
#[test]
fn the_sqlite_manifest_bootstraps_an_admin_that_gets_a_token() {
    let dir = tempfile::tempdir().unwrap();
    // The claim, mounted empty.
    let claim = dir.path().join("claim");
    std::fs::create_dir(&claim).unwrap();
    let port = free_port();
    let yaml = manifest(
        "sqlite",
        &[
            ("/var/lib/longrun", claim.to_str().unwrap()),
            (
                "http://longrun:8080/token",
                &format!("http://127.0.0.1:{port}/token"),
            ),
        ],
    );
    let bootstrap = block_list(&yaml, "- name: bootstrap", "args");
    assert_eq!(
        bootstrap[..2],
        ["service-accounts", "create"],
        "{bootstrap:?}"
    );
    let bootstrap: Vec<&str> = bootstrap.iter().map(String::as_str).collect();
    let created = longrun_ok(&bootstrap, &[]);
    assert!(
        created.contains("created longrun-admin@ops.iam.longrun"),
        "{created}"
    );
    let again = longrun_ok(&bootstrap, &[]);
    assert!(again.contains("nothing created"), "{again}");

    let config = dir.path().join("longrun.toml");
    std::fs::write(&config, config_map_toml(&yaml)).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &listen,
            "--config",
            config.to_str().unwrap(),
        ])
        .env("LONGRUN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = listening(&mut child);
    let _server = Server { child, base };
    let base = format!("http://{listen}");
    let (code, _, err) = operations(&base, &["list"]);
    assert_eq!(code, 6, "auth is on: {err}");
    let key_file = claim.join("longrun-admin.json");
    let token = longrun_ok(
        &[
            "auth",
            "print-access-token",
            "--key-file",
            key_file.to_str().unwrap(),
        ],
        &[],
    );
    let (code, _, err) = longrun_exit(
        &[
            "operations",
            "submit",
            "--type",
            "EXPORT_IMAGE",
            "--server",
            &base,
            "--project",
            "p",
            "--token",
            token.trim(),
        ],
        &[],
    );
    assert_eq!(code, 0, "the bootstrapped admin submits: {err}");
}

/// The PostgreSQL manifest's `longrun.toml` serves on the test database with its Secret's URL
/// in `LONGRUN_DATABASE_URL`, auth on; its first admin is made with the command its comment
/// gives, against the database while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_manifests_configuration_serves() {
    let Some(schema) = Schema::create("manifest").await else {
        return;
    };
    let toml = config_map_toml(&manifest("postgres", &[]));
    assert!(toml.contains("store = \"postgres\""), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config_env(
        &dir.path().join("data"),
        &toml,
        &[("LONGRUN_DATABASE_URL", &schema.url)],
    );
    let (code, _, err) = operations(&server.base, &["list"]);
    assert_eq!(code, 6, "auth is on: {err}");
    let key_file = dir.path().join("longrun-admin.json");
    longrun_ok(
        &[
            "service-accounts",
            "create",
            "longrun-admin",
            "--project",
            "ops",
            "--key-file",
            key_file.to_str().unwrap(),
            "--database-url",
            &schema.url,
            "--token-uri",
            "http://longrun:8080/token",
        ],
        &[],
    );
    let listed = longrun_ok(
        &["service-accounts", "list", "--database-url", &schema.url],
        &[],
    );
    assert!(listed.contains("longrun-admin@ops.iam.longrun"), "{listed}");
    drop(server);
    schema.drop_schema().await;
}
