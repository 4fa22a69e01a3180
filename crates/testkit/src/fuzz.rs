//! The checks of the fuzz targets in `fuzz/` (run there under libFuzzer by `fuzz/run`), one
//! function per target: each takes the target's input and panics when the property it
//! states does not hold. This crate's tests replay `fuzz/corpus/<target>` through them, so
//! a regression on the corpus fails `cargo test` without cargo-fuzz.

use longrun_client::Client;
use longrun_engine::PageTokens;
use longrun_store::Cursor;
use longrun_store::ListQuery;
use longrun_store::sql::{Dialect, PagePlan};
use longrun_types::{Name, Operation, Project, Timestamp, filter};
use std::sync::OnceLock;
use std::time::Duration;

/// The HTTP surface of a real server: the raw-path router and name parser, query
/// parameters (filters, page sizes and tokens), every JSON body (submit, cancel, wait,
/// workers, Earth Engine task starts, service accounts, `/token`, `/batch`) and the
/// Authorization header. Whatever arrives, the answer is never a 5xx other than 501, and an
/// error is Google's envelope (but at `/token`, which answers as OAuth 2.0 does).
///
/// An input is text: the method on the first line, the path (with its query) on the second,
/// the Authorization header on the third (empty: none), the body after. Requests with an
/// Authorization header go to a server with auth on, the others to one with auth off.
pub fn http(data: &[u8]) {
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
        match s
            .runtime
            .block_on(async { tokio::time::timeout(HELD_OPEN, send).await })
        {
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
}

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

/// Operation and project names: parsing never panics; what parses is canonical (parsing
/// its own form gives it back), never holds an empty or dot segment, and keeps its project.
pub fn names(text: &str) {
    if let Ok(name) = Name::parse(text) {
        assert_eq!(Name::parse(name.as_str()).as_ref(), Ok(&name), "{text}");
        assert!(
            name.id()
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{text} -> {name}"
        );
        let again = Name::new(&name.project(), name.id()).expect("a canonical id is valid");
        assert_eq!(again, name);
    }
    if let Ok(project) = Project::parse(text) {
        assert_eq!(Project::parse(project.as_str()).as_ref(), Ok(&project));
        assert!(project.as_str() != "." && project.as_str() != "..");
    }
}

/// The list filter (AIP-160 subset): parsing never panics or overflows the stack; what
/// parses can be evaluated (the reference semantics) and translated to SQL.
pub fn filter(text: &str) {
    let Ok(Some(expr)) = filter::parse(text) else {
        return;
    };
    let name = Name::new(&Project::parse("p").unwrap(), "a/b").unwrap();
    let mut op = Operation::new(name, "EXPORT_IMAGE".into(), Timestamp(1_000));
    op.description = "nightly export".into();
    let _ = expr.matches(&op);
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let (mut sql, mut params) = (String::new(), Vec::new());
        longrun_store::sql::condition(&expr, dialect, &mut sql, &mut params);
        assert!(!sql.is_empty());
        let query = ListQuery {
            project: Project::parse("p").unwrap(),
            filter: Some(expr.clone()),
            after: None,
            limit: 10,
            scan_budget: 100,
        };
        let plan = PagePlan::new(&query, dialect);
        let page = plan.page();
        assert_eq!(
            page.sql.matches('?').count(),
            page.params.len(),
            "{}",
            page.sql
        );
    }
}

/// Page tokens: decoding arbitrary text never panics and yields nothing unless it is a
/// token this key made for this parent and filter; a token made here decodes to its cursor,
/// and altering any of its characters refuses it.
pub fn page_token(data: &[u8]) {
    let tokens = PageTokens::new(b"fuzzing key of at least 32 bytes!");
    let text = String::from_utf8_lossy(data);
    assert_eq!(tokens.decode("projects/p", "", &text), None, "{text}");
    let (Some(time), Some(rest)) = (data.get(..8), data.get(8..)) else {
        return;
    };
    let Ok(name) = Name::parse(&String::from_utf8_lossy(rest)) else {
        return;
    };
    let cursor = Cursor {
        create_time: Timestamp(i64::from_be_bytes(time.try_into().unwrap())),
        name,
    };
    let parent = cursor.name.project().resource_name();
    let token = tokens.encode(&parent, "done = false", &cursor);
    assert_eq!(tokens.decode(&parent, "done = false", &token), Some(cursor));
    assert_eq!(tokens.decode(&parent, "done = true", &token), None);
    let mut altered = token.into_bytes();
    let at = usize::from(data[0]) % altered.len();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_eq!(tokens.decode(&parent, "done = false", &altered), None);
}

/// The config file: any text is a config or an error, never a panic, and a config that
/// parses either validates or says why.
pub fn config(text: &str) {
    if let Ok(config) = toml::from_str::<longrun_server::Config>(text) {
        let _ = config.validate();
    }
}
