//! Reading the watch stream (docs/watch.md): `GET …/operations:watch` as server-sent
//! events, one [`Event`] at a time. A small parser of the SSE text format
//! (html.spec.whatwg.org, "server-sent events"): `event:`, `id:`, `data:` fields, comment
//! lines, blank-line dispatch. Written here because the stream must be read with headers
//! (the token, `Last-Event-ID`) on the client this crate already has.

use crate::{Client, Error};
use bytes::{Bytes, BytesMut};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `operation`, `deleted`, `synced` or `reset`.
    pub event: String,
    /// The cursor, if the event carries one.
    pub id: Option<String>,
    /// The `data:` lines joined by `\n` (JSON for every event the server sends).
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// An open stream.
pub struct Watcher {
    body: hyper::body::Incoming,
    buffer: BytesMut,
    /// Comment lines seen (keep-alives).
    pub comments: usize,
}

impl Client {
    /// Opens the watch stream of `project` with `filter`, resuming after `last_event_id`
    /// if given; `extra_query` (`snapshot=false`) is appended as is. A non-200 answer is
    /// `Error::Api`.
    pub async fn watch(
        &self,
        project: &str,
        filter: &str,
        last_event_id: Option<&str>,
        extra_query: &str,
    ) -> Result<Watcher, Error> {
        let filter: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let mut uri = format!(
            "{}/{}/projects/{project}/operations:watch?filter={filter}",
            self.base, self.version
        );
        if !extra_query.is_empty() {
            uri.push('&');
            uri.push_str(extra_query);
        }
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            builder = builder.header("last-event-id", id);
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::Transport(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let (_, body) = response.into_parts();
        if status != 200 {
            let bytes = body
                .collect()
                .await
                .map_err(|e| Error::Transport(e.to_string()))?
                .to_bytes();
            return Err(crate::api_error(status, &bytes));
        }
        Ok(Watcher {
            body,
            buffer: BytesMut::new(),
            comments: 0,
        })
    }
}

impl Watcher {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some(event) = self.parse() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(Error::Transport(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Takes one complete event (up to a blank line) from the buffer, if there is one;
    /// comment-only blocks are counted and skipped.
    fn parse(&mut self) -> Option<Event> {
        loop {
            let text = std::str::from_utf8(&self.buffer).ok()?;
            let end = text.find("\n\n")?;
            let block = text[..end].to_string();
            let _ = self.buffer.split_to(end + 2);
            let mut event = Event {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event.event = value.to_string(),
                    "id" => event.id = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }
}
