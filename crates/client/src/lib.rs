//! An HTTP client for the longrun REST API, used by the CLI, benchmarks and tests.
//! Operations come back as JSON values: the client adds no model of its own on top of the
//! wire form.

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use longrun_types::Name;
use serde_json::Value;

mod key_file;
mod watch;
pub use key_file::{AccessToken, DEFAULT_SCOPE, KeyFile};
pub use watch::{Event, Watcher};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered with an error envelope.
    #[error("{status_name} ({http_status}): {message}")]
    Api {
        http_status: u16,
        status_name: String,
        message: String,
        body: Value,
    },
    /// A key file that cannot be used, or a token endpoint that refused it.
    #[error("{0}")]
    Credentials(String),
    /// A CA file or client certificate that cannot be used.
    #[error("{0}")]
    Tls(String),
}

/// How a client trusts a server over `https://` and shows itself to one that asks for a
/// certificate (mTLS). The default trusts the public roots and shows nothing.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// CA certificates (PEM) trusted beside the public roots: a server's private CA.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate chain and its private key (both PEM).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Tls {
    /// The rustls configuration. Errors (`Error::Tls`): a file that cannot be read or holds
    /// no certificate or key.
    fn config(&self) -> Result<rustls::ClientConfig, Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, Error> {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Tls(format!(
                        "cannot read certificates from {}: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(Error::Tls(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            for cert in certs(path)? {
                roots.add(cert).map_err(|e| {
                    Error::Tls(format!(
                        "a certificate in {} is unusable: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
        match &self.client_cert {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::Tls(format!(
                        "cannot read a private key from {}: {e}",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(certs(cert)?, key)
                    .map_err(|e| Error::Tls(format!("the client certificate is unusable: {e}")))
            }
        }
    }
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone)]
pub struct Client {
    http: Hyper<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    version: String,
    /// The `Authorization` header sent with every request.
    authorization: Option<http::HeaderValue>,
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:8080`, or `https://` trusting
    /// the public roots; without a scheme, `127.0.0.1:8080`, it is `http://`), speaking `/v1`.
    pub fn new(base: &str) -> Client {
        Client::with_tls(base, &Tls::default()).expect("the public roots make a configuration")
    }

    /// `new`, trusting and showing what `tls` says over `https://`. Errors: `Error::Tls`.
    pub fn with_tls(base: &str, tls: &Tls) -> Result<Client, Error> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let base = base.trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        Ok(Client {
            http: Hyper::builder(TokioExecutor::new()).build(connector),
            base,
            version: "v1".into(),
            authorization: None,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(self, token: &str) -> Client {
        self.with_authorization(&format!("Bearer {token}"))
    }

    /// Sends this `Authorization` header with every request (a value that is not a valid
    /// header is sent as no header).
    pub fn with_authorization(mut self, value: &str) -> Client {
        self.authorization = http::HeaderValue::from_str(value).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; `path` includes the query string; a body is JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, Error> {
        self.send_as(method, path, body, "application/json").await
    }

    /// Sends one request whose body (if any) has this content type.
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<Response, Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization);
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| Error::Transport(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns the JSON body of a 2xx, or the envelope as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON values serialize"));
        let response = self.send(method, path, bytes.as_deref()).await?;
        let json = response.json();
        if (200..300).contains(&response.status) {
            return Ok(json);
        }
        let field = |k: &str| json["error"][k].as_str().unwrap_or_default().to_string();
        Err(Error::Api {
            http_status: response.status,
            status_name: field("status"),
            message: field("message"),
            body: json,
        })
    }

    fn path(&self, name: &Name, verb: &str) -> String {
        format!("/{}/{}{verb}", self.version, name)
    }

    pub async fn get(&self, name: &Name) -> Result<Value, Error> {
        self.call(Method::GET, &self.path(name, ""), None).await
    }

    pub async fn cancel(&self, name: &Name) -> Result<Value, Error> {
        self.call(
            Method::POST,
            &self.path(name, ":cancel"),
            Some(&serde_json::json!({})),
        )
        .await
    }

    pub async fn delete(&self, name: &Name) -> Result<Value, Error> {
        self.call(Method::DELETE, &self.path(name, ""), None).await
    }

    /// Waits until the operation is done or `timeout` has passed, and returns it as it then
    /// stands (done or not). The server caps each wait at its `wait.max`, so a longer
    /// `timeout` repeats the call until the client's own deadline. A server that goes away
    /// meanwhile (it ends waits when it shuts down) ends the wait with the operation as last
    /// read. `None`: one call, with the server's default wait.
    pub async fn wait(
        &self,
        name: &Name,
        timeout: Option<std::time::Duration>,
    ) -> Result<Value, Error> {
        let path = self.path(name, ":wait");
        let Some(timeout) = timeout else {
            return self
                .call(Method::POST, &path, Some(&serde_json::json!({})))
                .await;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let body = serde_json::json!({ "timeout": longrun_types::duration::format(left) });
            let op = match (self.call(Method::POST, &path, Some(&body)).await, last) {
                (Ok(op), _) => op,
                (Err(Error::Transport(_)), Some(op)) => return Ok(op),
                (Err(e), _) => return Err(e),
            };
            if op["done"] == true || tokio::time::Instant::now() >= deadline {
                return Ok(op);
            }
            last = Some(op);
        }
    }

    /// One page of `projects/{project}/operations`.
    pub async fn list(
        &self,
        project: &str,
        filter: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<Value, Error> {
        let query: String = form_urlencoded_pairs(&[
            ("filter", filter),
            ("pageSize", &page_size.to_string()),
            ("pageToken", page_token),
        ]);
        let path = format!("/{}/projects/{project}/operations?{query}", self.version);
        self.call(Method::GET, &path, None).await
    }

    /// Starts a bulk cancel of `project`'s operations matching `filter`
    /// (docs/watch.md#bulk-cancel): returns the `BATCH_CANCEL` operation, whose response counts the
    /// matched, cancelled and already-done operations once it is done. An empty filter is 400.
    pub async fn batch_cancel(&self, project: &str, filter: &str) -> Result<Value, Error> {
        let path = format!(
            "/{}/projects/{project}/operations:batchCancel",
            self.version
        );
        let body = serde_json::json!({ "filter": filter });
        self.call(Method::POST, &path, Some(&body)).await
    }

    /// Starts a bulk retry of `project`'s done operations matching `filter`
    /// (docs/operations.md#batch-retry): returns the `BATCH_RETRY` operation, whose response
    /// counts the matched, retried and not-done operations once it is done. An empty filter
    /// is 400.
    pub async fn batch_retry(&self, project: &str, filter: &str) -> Result<Value, Error> {
        let path = format!("/{}/projects/{project}/operations:batchRetry", self.version);
        let body = serde_json::json!({ "filter": filter });
        self.call(Method::POST, &path, Some(&body)).await
    }

    /// Runs the done operation `name` again as a new operation (docs/operations.md#retry),
    /// named `operation_id` when given; the same `request_id` again answers the same retry.
    pub async fn retry(
        &self,
        name: &Name,
        operation_id: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Value, Error> {
        let mut body = serde_json::Map::new();
        if let Some(id) = operation_id {
            body.insert("operationId".into(), id.into());
        }
        if let Some(id) = request_id {
            body.insert("requestId".into(), id.into());
        }
        let path = self.path(name, ":retry");
        self.call(Method::POST, &path, Some(&Value::Object(body)))
            .await
    }

    /// What the `command` executor kept of an operation's output.
    pub async fn output(&self, name: &Name) -> Result<Value, Error> {
        let path = format!("/{}/operationOutputs/{name}", self.version);
        self.call(Method::GET, &path, None).await
    }

    /// `{"name", "payload"}`: what the operation was submitted with.
    pub async fn payload(&self, name: &Name) -> Result<Value, Error> {
        let path = format!("/{}/operationPayloads/{name}", self.version);
        self.call(Method::GET, &path, None).await
    }

    /// `body` is a SubmitOperationRequest.
    pub async fn submit(&self, project: &str, body: &Value) -> Result<Value, Error> {
        let path = format!("/{}/projects/{project}/operations:submit", self.version);
        self.call(Method::POST, &path, Some(body)).await
    }
}

/// Encodes the non-empty query pairs.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(k, v);
    }
    query.finish()
}

/// The error of a non-2xx answer whose body is (usually) the envelope.
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| json["error"][k].as_str().unwrap_or_default().to_string();
    Error::Api {
        http_status: status,
        status_name: field("status"),
        message: field("message"),
        body: json,
    }
}
