//! Accepting connections (HTTP/1.1 and HTTP/2 on one listener, in clear (h2c) or over TLS):
//! a cap on how many are open at once, a deadline for a request's headers (and the TLS
//! handshake), an idle timeout, HTTP/2 keep-alive pings, an accept loop that backs off and
//! goes on when accepting fails (out of file descriptors), and a drain on shutdown that waits
//! for every connection to close.

use crate::kit::config_duration;
use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// `[connections]`: how connections are accepted and when they are closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Most connections open at once (default 1024). At the cap the server accepts no more
    /// until one closes: new connections wait in the listen backlog, and are served as
    /// others close (the timeouts below see to it that idle and slow ones do). The cap is
    /// lowered to fit the open-file limit, keeping 64 files for the store and the rest
    /// (the soft limit is raised toward the hard one first when that is needed).
    pub max: usize,
    /// HTTP/1.1: how long a client has to send a request's line and headers, counted from
    /// when the connection waits for a request (default 30 s). A client still sending
    /// them then is disconnected. On a kept-alive connection the count starts when the
    /// previous response is sent, so an HTTP/1.1 connection idle this long closes too.
    #[serde(with = "config_duration")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (default 2 min):
    /// HTTP/2 ones with a GOAWAY, any one that never sent a request. A request in flight
    /// (a long poll, a stream) keeps its connection open however long it lasts.
    #[serde(with = "config_duration")]
    pub idle_timeout: Duration,
    /// HTTP/2: a PING when the peer has been silent this long; a peer that does not answer
    /// within as long again is disconnected (default 30 s; `"0s"`: no pings).
    #[serde(with = "config_duration")]
    pub keep_alive_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max: 1024,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keep_alive_interval: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// Refuses a cap of 0 and timeouts of 0 (which would close every connection at once).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max >= 1, "connections.max must be at least 1");
        anyhow::ensure!(
            !self.header_read_timeout.is_zero(),
            "connections.header_read_timeout must be longer than 0s"
        );
        anyhow::ensure!(
            !self.idle_timeout.is_zero(),
            "connections.idle_timeout must be longer than 0s"
        );
        Ok(())
    }
}

/// Longest pause of the accept loop after a failed accept.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// File descriptors kept for everything but connections: the store's files and reader
/// connections, command output, outgoing connections (PostgreSQL, identity providers).
const RESERVED_FILES: u64 = 64;

/// The cap that fits the process's open-file limit: `max` when the soft limit leaves
/// [`RESERVED_FILES`] beside it (raising the soft limit toward the hard one if that is
/// needed and allowed), else as many as it leaves (at least 1), with a warning.
pub fn fit_to_open_files(max: usize) -> usize {
    let reserved = RESERVED_FILES as libc::rlim_t;
    let wanted = (max as libc::rlim_t).saturating_add(reserved);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return max;
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: if limit.rlim_max == libc::RLIM_INFINITY {
                wanted
            } else {
                limit.rlim_max.min(wanted)
            },
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= wanted {
        return max;
    }
    let fits = limit.rlim_cur.saturating_sub(reserved).max(1) as usize;
    tracing::warn!(
        configured = max,
        open_file_limit = limit.rlim_cur,
        max_connections = fits,
        "the open-file limit is too low for connections.max: fewer connections are taken"
    );
    fits
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, asks every
/// connection to finish (in-flight requests complete; idle connections close) and returns
/// once all have closed, with nothing of `app` left alive.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(fit_to_open_files(settings.max)));
    let settings = Arc::new(settings);
    let (closing, closed) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once all are gone.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut backoff = Duration::from_millis(10);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
            }
            // The peer gave up before it was accepted: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            // Out of file descriptors (EMFILE, ENFILE) or memory: wait for some to be
            // freed, then accept again.
            Err(e) => {
                tracing::error!(error = %e, pause = ?backoff, "cannot accept a connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        // Small writes (a pushed cancel on a gRPC stream, say) go out at once, not after
        // the peer's delayed acknowledgement.
        let _ = stream.set_nodelay(true);
        let (app, settings, closed) = (app.clone(), settings.clone(), closed.clone());
        let tls = tls.as_ref().map(crate::tls::Tls::config);
        let open = open.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, None, app, settings, closed).await,
                // The handshake counts against the time to send a request's headers.
                Some(config) => {
                    match crate::tls::accept(config, stream, settings.header_read_timeout).await {
                        Ok((stream, peer)) => {
                            connection(stream, peer, app, settings, closed).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    }
                }
            }
            // The connection (and the app it held) is gone before its slot and its
            // sender are.
            drop(slot);
            drop(open);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    drop(open);
    drop(app);
    let _ = all_closed.recv().await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    in_flight: usize,
    idle_since: Instant,
}

/// Held by a request until its response body ends (or is dropped): the connection is not
/// idle while any is alive.
struct InFlight(Arc<Mutex<Activity>>);

impl InFlight {
    fn start(activity: &Arc<Mutex<Activity>>) -> InFlight {
        activity.lock().expect("activity lock").in_flight += 1;
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut activity = self.0.lock().expect("activity lock");
        activity.in_flight -= 1;
        if activity.in_flight == 0 {
            activity.idle_since = Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct Counted {
    body: Body,
    _in_flight: InFlight,
}

impl axum::body::HttpBody for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one connection until it ends: the peer closes it, a timeout closes it, or the
/// server shuts down (`closed` turns true) and it has finished its requests.
async fn connection<S>(
    stream: S,
    peer: Option<crate::tls::PeerCertificate>,
    app: Router,
    settings: Arc<Settings>,
    mut closed: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Mutex::new(Activity {
        in_flight: 0,
        idle_since: Instant::now(),
    }));
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(&activity);
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            let answer = tower::ServiceExt::oneshot(app.clone(), request.map(Body::new));
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Counted {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let keep_alive = Some(settings.keep_alive_interval).filter(|d| !d.is_zero());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(keep_alive)
        .keep_alive_timeout(settings.keep_alive_interval);
    let hyper_service = hyper_util::service::TowerToHyperService::new(service);
    let mut conn =
        std::pin::pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service));
    // Resolves once the connection has been idle for `idle_timeout`.
    let idle = async {
        loop {
            let wait = {
                let activity = activity.lock().expect("activity lock");
                match activity.in_flight {
                    0 => settings
                        .idle_timeout
                        .checked_sub(activity.idle_since.elapsed())
                        .filter(|left| !left.is_zero()),
                    _ => Some(settings.idle_timeout),
                }
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
    };
    let mut idle = std::pin::pin!(idle);
    let mut finishing = *closed.borrow();
    if finishing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closed.changed(), if !finishing => {
                if changed.is_err() || *closed.borrow() {
                    finishing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = &mut idle, if !finishing => {
                finishing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
