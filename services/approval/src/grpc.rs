//! Thin gRPC adapters: identify the caller, call the use case, map the result.

use std::time::Duration;

use futures::Stream;
use shadowsync_common::auth::Identity;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::approval::v1::approval_service_server::ApprovalService;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::ApprovalApi;
use crate::convert::bounds::Bounded;
use crate::convert::permission_to_proto;
use crate::model::Person;
use crate::service::queries::view;
use crate::service::{Service, person};

type Reply<T> = Result<Response<T>, Status>;

/// The caller, once its request's strings are within their bounds (`convert::bounds`).
fn caller<T: Bounded>(request: &Request<T>) -> Result<Person, Status> {
    let person = Identity::of(request).map(person)?;
    request.get_ref().bounded()?;
    Ok(person)
}

/// How often a watch re-reads the store, to see changes made by other replicas.
const WATCH_POLL: Duration = Duration::from_secs(1);

#[tonic::async_trait]
impl ApprovalService for ApprovalApi {
    async fn create_template(
        &self,
        r: Request<pb::CreateTemplateRequest>,
    ) -> Reply<pb::CreateTemplateResponse> {
        let who = caller(&r)?;
        let template = self.service.create_template(&who, r.into_inner()).await?;
        Ok(Response::new(pb::CreateTemplateResponse {
            template: Some(template),
        }))
    }

    async fn get_template(
        &self,
        r: Request<pb::GetTemplateRequest>,
    ) -> Reply<pb::GetTemplateResponse> {
        let who = caller(&r)?;
        let template = self
            .service
            .get_template(&who, &r.get_ref().template_id)
            .await?;
        Ok(Response::new(pb::GetTemplateResponse {
            template: Some(template),
        }))
    }

    async fn list_templates(
        &self,
        r: Request<pb::ListTemplatesRequest>,
    ) -> Reply<pb::ListTemplatesResponse> {
        let who = caller(&r)?;
        Ok(Response::new(
            self.service.list_templates(&who, r.into_inner()).await?,
        ))
    }

    async fn update_template(
        &self,
        r: Request<pb::UpdateTemplateRequest>,
    ) -> Reply<pb::UpdateTemplateResponse> {
        let who = caller(&r)?;
        let template = self.service.update_template(&who, r.into_inner()).await?;
        Ok(Response::new(pb::UpdateTemplateResponse {
            template: Some(template),
        }))
    }

    async fn delete_template(
        &self,
        r: Request<pb::DeleteTemplateRequest>,
    ) -> Reply<pb::DeleteTemplateResponse> {
        let who = caller(&r)?;
        let r = r.into_inner();
        self.service
            .delete_template(&who, &r.template_id, r.expected_version)
            .await?;
        Ok(Response::new(pb::DeleteTemplateResponse {}))
    }

    async fn get_priority(
        &self,
        r: Request<pb::GetPriorityRequest>,
    ) -> Reply<pb::GetPriorityResponse> {
        let who = caller(&r)?;
        let (entries, version) = self.service.get_priority(&who).await?;
        Ok(Response::new(pb::GetPriorityResponse { entries, version }))
    }

    async fn set_priority(
        &self,
        r: Request<pb::SetPriorityRequest>,
    ) -> Reply<pb::SetPriorityResponse> {
        let who = caller(&r)?;
        let (entries, version) = self.service.set_priority(&who, r.into_inner()).await?;
        Ok(Response::new(pb::SetPriorityResponse { entries, version }))
    }

    async fn submit_approval(
        &self,
        r: Request<pb::SubmitApprovalRequest>,
    ) -> Reply<pb::SubmitApprovalResponse> {
        let who = caller(&r)?;
        let approval = self.service.submit(&who, r.into_inner()).await?;
        Ok(Response::new(pb::SubmitApprovalResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn approve(&self, r: Request<pb::ApproveRequest>) -> Reply<pb::ApproveResponse> {
        let who = caller(&r)?;
        let r = r.into_inner();
        let approval = self
            .service
            .decide(
                &who,
                &r.approval_id,
                true,
                &r.comment,
                r.expected_node_index,
                &r.request_id,
            )
            .await?;
        Ok(Response::new(pb::ApproveResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn reject(&self, r: Request<pb::RejectRequest>) -> Reply<pb::RejectResponse> {
        let who = caller(&r)?;
        let r = r.into_inner();
        let approval = self
            .service
            .decide(
                &who,
                &r.approval_id,
                false,
                &r.comment,
                r.expected_node_index,
                &r.request_id,
            )
            .await?;
        Ok(Response::new(pb::RejectResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn cancel_approval(
        &self,
        r: Request<pb::CancelApprovalRequest>,
    ) -> Reply<pb::CancelApprovalResponse> {
        let who = caller(&r)?;
        let r = r.into_inner();
        let approval = self.service.cancel(&who, &r.approval_id, &r.reason).await?;
        Ok(Response::new(pb::CancelApprovalResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn get_approval(
        &self,
        r: Request<pb::GetApprovalRequest>,
    ) -> Reply<pb::GetApprovalResponse> {
        let who = caller(&r)?;
        let approval = self.service.get(&who, r.into_inner().key).await?;
        Ok(Response::new(pb::GetApprovalResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn list_approvals(
        &self,
        r: Request<pb::ListApprovalsRequest>,
    ) -> Reply<pb::ListApprovalsResponse> {
        let who = caller(&r)?;
        Ok(Response::new(
            self.service.list(&who, r.into_inner()).await?,
        ))
    }

    async fn watch_approval(
        &self,
        r: Request<pb::WatchApprovalRequest>,
    ) -> Reply<BoxStream<pb::WatchApprovalResponse>> {
        let who = caller(&r)?;
        let id = r.into_inner().approval_id;
        let key = Some(pb::get_approval_request::Key::ApprovalId(id.clone()));
        // Subscribe before the first read, so no change falls between the two.
        let changes = self.service.subscribe();
        let first = self.service.get(&who, key).await?;
        Ok(Response::new(Box::pin(watch(
            self.service.clone(),
            who,
            first,
            changes,
        ))))
    }

    async fn apply_permission(
        &self,
        r: Request<pb::ApplyPermissionRequest>,
    ) -> Reply<pb::ApplyPermissionResponse> {
        let who = caller(&r)?;
        let approval = self.service.apply_permission(&who, r.into_inner()).await?;
        Ok(Response::new(pb::ApplyPermissionResponse {
            approval: Some(view(&approval, &who)),
        }))
    }

    async fn list_permissions(
        &self,
        r: Request<pb::ListPermissionsRequest>,
    ) -> Reply<pb::ListPermissionsResponse> {
        let who = caller(&r)?;
        Ok(Response::new(
            self.service.list_permissions(&who, r.into_inner()).await?,
        ))
    }

    async fn grant_permission(
        &self,
        r: Request<pb::GrantPermissionRequest>,
    ) -> Reply<pb::GrantPermissionResponse> {
        let who = caller(&r)?;
        let permission = self.service.grant(&who, r.into_inner()).await?;
        let now = self.service.now();
        Ok(Response::new(pb::GrantPermissionResponse {
            permission: Some(permission_to_proto(&permission, now)),
        }))
    }

    async fn revoke_permission(
        &self,
        r: Request<pb::RevokePermissionRequest>,
    ) -> Reply<pb::RevokePermissionResponse> {
        let who = caller(&r)?;
        let r = r.into_inner();
        let permission = self
            .service
            .revoke(&who, &r.permission_id, &r.reason)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::RevokePermissionResponse {
            permission: Some(permission_to_proto(&permission, now)),
        }))
    }

    async fn check_permission(
        &self,
        r: Request<pb::CheckPermissionRequest>,
    ) -> Reply<pb::CheckPermissionResponse> {
        let who = caller(&r)?;
        Ok(Response::new(
            self.service.check_permission(&who, r.into_inner()).await?,
        ))
    }
}

/// The watch stream: the current state, then each newer version (woken by this process's
/// changes, or found by polling for other replicas'), ending after a final status.
fn watch(
    service: Service,
    who: Person,
    first: crate::model::Approval,
    mut changes: tokio::sync::broadcast::Receiver<String>,
) -> impl Stream<Item = Result<pb::WatchApprovalResponse, Status>> + Send {
    async_stream_lite(move |sender| async move {
        let id = first.id.clone();
        let mut version = first.version;
        let mut done = first.status.is_final();
        if sender
            .send(Ok(pb::WatchApprovalResponse {
                approval: Some(view(&first, &who)),
            }))
            .await
            .is_err()
        {
            return;
        }
        while !done {
            tokio::select! {
                changed = changes.recv() => {
                    if matches!(&changed, Ok(changed) if changed != &id) {
                        continue;
                    }
                }
                () = tokio::time::sleep(WATCH_POLL) => {}
                () = sender.closed() => return,
            }
            let key = Some(pb::get_approval_request::Key::ApprovalId(id.clone()));
            match service.get(&who, key).await {
                Ok(current) if current.version > version => {
                    version = current.version;
                    done = current.status.is_final();
                    let message = pb::WatchApprovalResponse {
                        approval: Some(view(&current, &who)),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            }
        }
    })
}

/// A stream fed by a spawned task through a small channel; the task ends when the client goes.
fn async_stream_lite<F, Fut>(
    body: F,
) -> impl Stream<Item = Result<pb::WatchApprovalResponse, Status>> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::WatchApprovalResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
