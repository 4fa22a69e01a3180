//! Starting `longrun serve`: one server per data directory, a low open-file limit, and
//! the opt-out a non-loopback listener needs.

use longrun_testkit::process::{Server, bin, listening, longrun, longrun_ok};
use std::process::Command;
use std::time::{Duration, Instant};

/// A data directory is one server's while it runs: a second `longrun serve` on it exits at
/// once, naming it, and the commands that open its store offline refuse, pointing at
/// `--server`; once the server stops they work.
#[test]
fn a_data_directory_is_one_servers_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let data_dir = data.to_str().unwrap();
    let in_use = format!("the data directory {data_dir} is in use");
    let holder = format!("process {}", server.child.id());
    let mut second = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second server on one data directory is serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&in_use) && stderr.contains(&holder),
        "{stderr}"
    );
    let offline = [
        &["service-accounts", "list", "--data-dir", data_dir][..],
        &["projects", "list", "--data-dir", data_dir][..],
    ];
    for args in offline {
        let (ok, _, err) = longrun(args, &[]);
        assert!(!ok, "{args:?}");
        assert!(err.contains(&in_use) && err.contains("--server"), "{err}");
    }
    let target = dir.path().join("copy");
    let migrate = [
        "migrate-store",
        "--from-data-dir",
        data_dir,
        "--to-data-dir",
        target.to_str().unwrap(),
    ];
    let (ok, _, err) = longrun(&migrate, &[]);
    assert!(!ok && err.contains(&in_use), "{err}");
    drop(server);
    for args in offline {
        longrun_ok(args, &[]);
    }
    longrun_ok(&migrate, &[]);
}

/// A server whose open-file limit is low (128, soft and hard) still answers `/healthz`
/// while 150 clients hold connections open and send nothing: it takes no more connections
/// than the limit leaves room for, closes idle ones, and goes on accepting.
#[test]
fn idle_connections_past_the_open_file_limit_do_not_stop_the_server() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[connections]\nidle_timeout = \"1s\"\n").unwrap();
    let mut command = Command::new(bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("LONGRUN_LOG", "error")
        .stdout(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 128,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let base = listening(&mut child);
    let address = base.strip_prefix("http://").unwrap().to_string();
    let server = Server { child, base };
    let idle: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    let started = Instant::now();
    let mut health = std::net::TcpStream::connect(&address).unwrap();
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    health
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = String::new();
    let _ = health.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK"),
        "no answer after {:?}: {answer:?}",
        started.elapsed()
    );
    drop(idle);
    drop(server);
}

#[test]
fn a_non_loopback_listener_needs_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without authentication"), "{stderr}");
    let server = Server::start_with(dir.path(), &["--allow-unauthenticated"]);
    drop(server);
}
