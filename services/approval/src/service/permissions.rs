//! Permission applications, direct grants and revocations, and permission checks.

use shadowsync_common::auth::ServiceIdentity;
use shadowsync_common::clock::Micros;
use shadowsync_common::logged::logged;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::submit::Submission;
use super::{Service, with_retries};
use crate::convert::{duration_micros, permission_to_proto};
use crate::error::{ApprovalError, Result};
use crate::events::enqueue_permission_event;
use crate::model::{
    Approval, MatchAttributes, Permission, PermissionApplication, Person, ResourceRef,
};
use crate::store::{PermissionFilter, Tx, permissions as grants};
use crate::template::is_valid_request_type;

fn required(value: &str, field: &str) -> Result<()> {
    if value.trim().is_empty() {
        Err(ApprovalError::invalid(field, "required"))
    } else {
        Ok(())
    }
}

impl Service {
    /// `ApplyPermission`: a `permission_apply` request for the caller, matched on connection,
    /// database and the caller's roles.
    ///
    /// Fails with `InvalidArgument` for a missing field.
    #[tracing::instrument(skip_all, fields(caller = %logged(&person.subject)), err(Display, level = "info"))]
    pub async fn apply_permission(
        &self,
        person: &Person,
        r: pb::ApplyPermissionRequest,
    ) -> Result<Approval> {
        if !is_valid_request_type(&r.task_type) {
            return Err(ApprovalError::invalid(
                "task_type",
                "required, [a-z][a-z0-9_]{0,63}",
            ));
        }
        required(&r.connection_id, "connection_id")?;
        required(&r.reason, "reason")?;
        required(&r.request_id, "request_id")?;
        let duration = duration_micros(r.duration.as_ref(), "duration")?;
        let scope = if r.database.is_empty() {
            "every database".to_string()
        } else {
            format!("database {}", r.database)
        };
        self.create(Submission {
            request_type: names::REQUEST_TYPE_PERMISSION_APPLY.to_string(),
            resource: ResourceRef {
                resource_type: names::RESOURCE_TYPE_PERMISSION_APPLICATION.to_string(),
                id: uuid::Uuid::now_v7().to_string(),
                display_name: format!(
                    "{} on connection {} ({scope})",
                    r.task_type, r.connection_id
                ),
            },
            attributes: MatchAttributes {
                connection_id: r.connection_id.clone(),
                environment: String::new(),
                database: r.database.clone(),
                extra: [("task_type".to_string(), r.task_type.clone())]
                    .into_iter()
                    .collect(),
            },
            payload_summary: r.reason.clone(),
            payload_sha256: String::new(),
            scheduled_time: None,
            requester: person.clone(),
            submitter: person.subject.clone(),
            request_id: r.request_id,
            application: Some(PermissionApplication {
                task_type: r.task_type,
                connection_id: r.connection_id,
                database: r.database,
                reason: r.reason,
                duration,
            }),
        })
        .await
    }

    /// Records the grant of an approved application (in the approval's transaction).
    pub(super) async fn grant_application(
        &self,
        tx: &mut Tx,
        approval: &Approval,
        now: Micros,
    ) -> Result<()> {
        let application = grants::application_in(tx, &approval.id)
            .await?
            .ok_or_else(|| ApprovalError::Corrupt(format!("application of {}", approval.id)))?;
        let permission = Permission {
            id: uuid::Uuid::now_v7().to_string(),
            grantee: approval.requester.subject.clone(),
            task_type: application.task_type,
            connection_id: application.connection_id,
            database: application.database,
            reason: application.reason,
            granted_by: String::new(),
            approval_id: Some(approval.id.clone()),
            grant_time: now,
            expire_time: application.duration.map(|d| now.saturating_add(d)),
            revoke_time: None,
            revoked_by: String::new(),
        };
        grants::insert_permission(tx, &permission, None).await?;
        enqueue_permission_event(tx, &permission, pb::PermissionEventType::Granted, None, now).await
    }

    /// `GrantPermission` (admin).
    ///
    /// Fails with `PermissionDenied` for others, `InvalidArgument` for a missing field.
    #[tracing::instrument(skip_all, fields(admin = %logged(&admin.subject), user = %logged(&r.user)), err(Display, level = "info"))]
    pub async fn grant(&self, admin: &Person, r: pb::GrantPermissionRequest) -> Result<Permission> {
        if !admin.has_role(names::ROLE_ADMIN) {
            return Err(ApprovalError::PermissionDenied(
                "this needs the admin role".into(),
            ));
        }
        required(&r.user, "user")?;
        required(&r.connection_id, "connection_id")?;
        if !is_valid_request_type(&r.task_type) {
            return Err(ApprovalError::invalid(
                "task_type",
                "required, [a-z][a-z0-9_]{0,63}",
            ));
        }
        let duration = duration_micros(r.duration.as_ref(), "duration")?;
        let key =
            (!r.request_id.is_empty()).then(|| format!("{}\u{1f}{}", admin.subject, r.request_id));
        let permission = with_retries(|| async {
            let mut tx = self.store.begin().await?;
            if let Some(key) = &key
                && let Some(existing) = grants::permission_by_key(&mut tx, key).await?
            {
                let same = existing.grantee == r.user
                    && existing.task_type == r.task_type
                    && existing.connection_id == r.connection_id
                    && existing.database == r.database;
                return if same {
                    Ok(existing)
                } else {
                    Err(ApprovalError::invalid(
                        "request_id",
                        "reused with different parameters",
                    ))
                };
            }
            let now = self.now();
            let permission = Permission {
                id: uuid::Uuid::now_v7().to_string(),
                grantee: r.user.clone(),
                task_type: r.task_type.clone(),
                connection_id: r.connection_id.clone(),
                database: r.database.clone(),
                reason: r.reason.clone(),
                granted_by: admin.subject.clone(),
                approval_id: None,
                grant_time: now,
                expire_time: duration.map(|d| now.saturating_add(d)),
                revoke_time: None,
                revoked_by: String::new(),
            };
            match grants::insert_permission(&mut tx, &permission, key.as_deref()).await {
                Err(ApprovalError::AlreadyExists(_)) => return Err(ApprovalError::Conflict),
                other => other?,
            }
            enqueue_permission_event(
                &mut tx,
                &permission,
                pb::PermissionEventType::Granted,
                Some(admin),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(permission)
        })
        .await?;
        self.committed(None);
        Ok(permission)
    }

    /// `RevokePermission` (admin).
    ///
    /// Fails with `NotFound`, `FailedPrecondition` when already revoked, `PermissionDenied`.
    #[tracing::instrument(skip_all, fields(admin = %logged(&admin.subject), permission_id = %logged(&id)), err(Display, level = "info"))]
    pub async fn revoke(&self, admin: &Person, id: &str, reason: &str) -> Result<Permission> {
        if !admin.has_role(names::ROLE_ADMIN) {
            return Err(ApprovalError::PermissionDenied(
                "this needs the admin role".into(),
            ));
        }
        let mut tx = self.store.begin().await?;
        let mut permission = grants::permission_in(&mut tx, id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(format!("permission {id} not found")))?;
        let now = self.now();
        match grants::revoke(&mut tx, id, &admin.subject, reason, now).await {
            Err(ApprovalError::Conflict) => {
                return Err(ApprovalError::FailedPrecondition(format!(
                    "permission {id} is already revoked"
                )));
            }
            other => other?,
        }
        permission.revoke_time = Some(now);
        permission.revoked_by = admin.subject.clone();
        enqueue_permission_event(
            &mut tx,
            &permission,
            pb::PermissionEventType::Revoked,
            Some(admin),
            now,
        )
        .await?;
        tx.commit().await?;
        self.committed(None);
        Ok(permission)
    }

    /// `ListPermissions`: admins any user's, others their own.
    pub async fn list_permissions(
        &self,
        person: &Person,
        r: pb::ListPermissionsRequest,
    ) -> Result<pb::ListPermissionsResponse> {
        let admin = person.has_role(names::ROLE_ADMIN);
        let grantee = match (admin, r.user.is_empty()) {
            (true, true) => None,
            (true, false) => Some(r.user.clone()),
            (false, _) if r.user.is_empty() || r.user == person.subject => {
                Some(person.subject.clone())
            }
            (false, _) => {
                return Err(ApprovalError::PermissionDenied(
                    "only admins list other users' grants".into(),
                ));
            }
        };
        let size = match r.page_size {
            0 => 50,
            n if (1..=500).contains(&n) => i64::from(n),
            _ => return Err(ApprovalError::invalid("page_size", "between 0 and 500")),
        };
        let now = self.now();
        let (grants, total) = self
            .store
            .list_permissions(&PermissionFilter {
                grantee,
                connection_id: (!r.connection_id.is_empty()).then_some(r.connection_id),
                task_type: (!r.task_type.is_empty()).then_some(r.task_type),
                active_at: (!r.include_inactive).then_some(now),
                after: (!r.page_token.is_empty()).then_some(r.page_token),
                limit: size + 1,
            })
            .await?;
        let more = grants.len() as i64 > size;
        let page: Vec<_> = grants.into_iter().take(size as usize).collect();
        Ok(pb::ListPermissionsResponse {
            next_page_token: if more {
                page.last().map(|p| p.id.clone()).unwrap_or_default()
            } else {
                String::new()
            },
            permissions: page.iter().map(|p| permission_to_proto(p, now)).collect(),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// `CheckPermission`: services and admins may ask about anyone, a person about themself.
    pub async fn check_permission(
        &self,
        caller: &Person,
        r: pb::CheckPermissionRequest,
    ) -> Result<pb::CheckPermissionResponse> {
        // Exactly one of the configured service identities: a person whose subject merely
        // starts with `svc:` must not ask about others, nor claim roles for them.
        let is_service = ServiceIdentity::from_subject(&caller.subject).is_some();
        if is_service && r.user.is_empty() {
            return Err(ApprovalError::invalid(
                "user",
                "required when a service asks",
            ));
        }
        let user = if r.user.is_empty() {
            caller.subject.clone()
        } else {
            r.user.clone()
        };
        if !(is_service || caller.has_role(names::ROLE_ADMIN) || user == caller.subject) {
            return Err(ApprovalError::PermissionDenied(
                "you may only check your own permissions".into(),
            ));
        }
        required(&r.task_type, "task_type")?;
        required(&r.connection_id, "connection_id")?;
        let roles = if is_service {
            r.roles.clone()
        } else if user == caller.subject {
            caller.roles.clone()
        } else {
            Vec::new()
        };
        if roles.iter().any(|role| role == names::ROLE_ADMIN) {
            return Ok(pb::CheckPermissionResponse {
                allowed: true,
                grant: None,
                admin_override: true,
            });
        }
        let now = self.now();
        let grants = self
            .store
            .active_grants(&user, &r.task_type, &r.connection_id, now)
            .await?;
        // A grant without a database covers every database; a scoped one only its own.
        let best = grants
            .into_iter()
            .filter(|g| g.database.is_empty() || g.database == r.database)
            .max_by_key(|g| g.expire_time.unwrap_or(i64::MAX));
        Ok(pb::CheckPermissionResponse {
            allowed: best.is_some(),
            grant: best.as_ref().map(|g| permission_to_proto(g, now)),
            admin_override: false,
        })
    }
}
