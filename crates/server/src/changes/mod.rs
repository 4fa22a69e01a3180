//! Changes: every change to an operation this server learns of, in order, and the watch
//! stream that serves them (docs/watch.md). `watch` holds the [`Hub`](watch::Hub) (epoch and
//! sequence cursors) and the stream (snapshot, replay, live items; SSE encoding; the gRPC
//! twin is `grpc::watch`); `feed` fills the hub from the engine's announcements
//! (`feed::Feed`) and, on a store several servers share, from its signals (`feed::follow`).

pub mod feed;
pub mod watch;
