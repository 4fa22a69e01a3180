//! The HTTP surface of a real server: the raw-path router and name parser, query
//! parameters (filters, page sizes and tokens), every JSON body (submit, cancel, wait,
//! workers, Earth Engine task starts, service accounts, `/token`, `/batch`) and the
//! Authorization header. Whatever arrives, the answer is never a 5xx other than 501, and an
//! error is Google's envelope (but at `/token`, which answers as OAuth 2.0 does).
//!
//! An input is text: the method on the first line, the path (with its query) on the second,
//! the Authorization header on the third (empty: none), the body after. Requests with an
//! Authorization header go to a server with auth on, the others to one with auth off.

#![no_main]

use libfuzzer_sys::fuzz_target;
use longrun_client::Client;
use std::sync::OnceLock;
use std::time::Duration;

struct Servers {
    runtime: tokio::runtime::Runtime,
    open: String,
    oauth: String,
    _dirs: Vec<tempfile::TempDir>,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut dirs = Vec::new();
        let mut start = |auth: &str| {
            let dir = tempfile::tempdir().unwrap();
            let mut config: longrun_server::Config = toml::from_str(auth).unwrap();
            config.data_dir = dir.path().join("data");
            // Waits answer at once, so that one input never holds the fuzzer.
            config.wait.max = Duration::ZERO;
            config.wait.default = Duration::ZERO;
            dirs.push(dir);
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                tokio::spawn(longrun_server::run(
                    config,
                    listener,
                    std::future::pending(),
                ));
                base
            })
        };
        let open = start("");
        let oauth = start(
            "[auth]\nmode = \"oauth\"\n[[iam.binding]]\nproject = \"p\"\n\
             role = \"roles/earthengine.admin\"\nmembers = [\"allAuthenticatedUsers\"]\n",
        );
        Servers {
            runtime,
            open,
            oauth,
            _dirs: dirs,
        }
    })
}

/// How long a request that the API may hold open is given (see [`may_hold_open`]).
const HELD_OPEN: Duration = Duration::from_secs(1);

/// Whether the API lets the server keep this request's answer open: worker calls that
/// long-poll (`:lease`, `:heartbeat`, the gRPC `Workers` service), watch streams, and `/batch`,
/// whose parts may be any of these. Every other request must be answered, however long it
/// takes (libFuzzer's own timeout reports one that never is).
fn may_hold_open(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    [":lease", ":heartbeat", ":watch", "/longrun.v1.", "/batch"]
        .iter()
        .any(|verb| path.contains(verb))
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(4, |&b| b == b'\n');
    let (Some(method), Some(path)) = (lines.next(), lines.next()) else {
        return;
    };
    let authorization = lines.next().unwrap_or_default();
    let body = lines.next();
    let (Ok(method), Ok(path)) = (http::Method::from_bytes(method), std::str::from_utf8(path))
    else {
        return;
    };
    if !path.starts_with('/') || path.parse::<http::Uri>().is_err() {
        return; // not a request a client could send
    }
    let s = servers();
    let client = if authorization.is_empty() {
        Client::new(&s.open)
    } else {
        let Ok(value) = std::str::from_utf8(authorization) else {
            return;
        };
        Client::new(&s.oauth).with_authorization(value)
    };
    let send = client.send(method.clone(), path, body);
    let sent = if may_hold_open(path) {
        // A lease's `waitTimeout` (up to 60 s), a heartbeat's `waitForCancel` and a watch
        // stream may rightly keep the answer open; a second shows the request was served.
        match s.runtime.block_on(async { tokio::time::timeout(HELD_OPEN, send).await }) {
            Ok(sent) => sent,
            Err(_) => return,
        }
    } else {
        s.runtime.block_on(send)
    };
    let Ok(response) = sent else {
        return; // refused by the client before it was sent
    };
    assert!(
        response.status < 500 || response.status == 501,
        "{method} {path}: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    // `/token` answers errors as OAuth 2.0 does (RFC 6749 section 5.2); `/batch` answers
    // each part in its own response.
    if response.status >= 400 && !path.starts_with("/batch") && !path.starts_with("/token") {
        let body = response.json();
        assert_eq!(
            body["error"]["code"], response.status,
            "{method} {path}: not the envelope: {body}"
        );
    }
});
