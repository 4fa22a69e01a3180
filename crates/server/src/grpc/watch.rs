//! `longrun.v1.Operations/WatchOperations`: the watch stream (docs/watch.md) as a
//! gRPC server stream, the same items as the REST form's server-sent events.

use super::{Grpc, convert, project};
use crate::calls::Route;
use crate::changes::watch::{self, Item, Watch};
use crate::kit::render::Version;
use longrun_proto::longrun::v1 as pb;
use longrun_proto::longrun::v1::watch_operations_response::Event;
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The response stream.
pub type Outbound = Pin<Box<dyn Stream<Item = Result<pb::WatchOperationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::operations_server::Operations for Grpc {
    type WatchOperationsStream = Outbound;

    async fn watch_operations(
        &self,
        request: Request<pb::WatchOperationsRequest>,
    ) -> Result<Response<Outbound>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        let caller = self
            .authorize(&metadata, &Route::Watch(project.clone()))
            .await?;
        let (auth, permission) = (
            self.app.auth.clone(),
            Some((
                crate::auth::iam::Permission::OperationsList,
                project.clone(),
            )),
        );
        let revoked = async move { auth.revoked(&caller, permission).await };
        let items = watch::open(Watch {
            engine: self.app.engine.clone(),
            hub: self.app.hub.clone(),
            project,
            filter_text: r.filter,
            version: Version::V1,
            resume: (!r.last_event_id.is_empty()).then_some(r.last_event_id),
            snapshot: !r.changes_only,
        })
        .map_err(convert::error)?;
        let types = self.app.types.clone();
        let stream = tokio_stream::wrappers::ReceiverStream::new(items).filter_map(move |item| {
            let (id, event) = match item {
                Item::Operation(id, shown) => (
                    id,
                    Event::Operation(convert::operation(&types, shown.current())),
                ),
                Item::Deleted(id, name) => (id, Event::Deleted(name.as_str().to_string())),
                Item::Synced(id) => (id, Event::Synced(())),
                Item::Reset => (String::new(), Event::Reset(())),
                // HTTP/2 keeps the connection; nothing to send.
                Item::KeepAlive => return None,
            };
            Some(Ok(pb::WatchOperationsResponse {
                id,
                event: Some(event),
            }))
        });
        let stream = crate::auth::until_revoked(stream, revoked, |e| Err(convert::error(e)));
        Ok(Response::new(Box::pin(stream)))
    }
}
