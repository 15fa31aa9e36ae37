//! Template administration and the priority order (admin only).

use shadowsync_common::logged::logged;
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::names;

use super::{Service, with_retries};
use crate::convert::{definition_from_proto, template_to_proto};
use crate::error::{ApprovalError, Result};
use crate::model::{Person, Template};
use crate::store::{permissions as keys, templates};
use crate::template::{BUILTIN_TEMPLATE_NAME, builtin_definition, ranked, validate};

fn require_admin(person: &Person) -> Result<()> {
    if person.has_role(names::ROLE_ADMIN) {
        Ok(())
    } else {
        Err(ApprovalError::PermissionDenied(
            "this needs the admin role".into(),
        ))
    }
}

/// The builtin fallback template as first seeded.
pub fn builtin_template() -> Template {
    Template {
        id: uuid::Uuid::now_v7().to_string(),
        name: BUILTIN_TEMPLATE_NAME.to_string(),
        description: "Matches what no other template matches: approval by an administrator.".into(),
        enabled: true,
        builtin: true,
        definition: builtin_definition(),
        version: 1,
        creator: "system".into(),
        create_time: 0,
        update_time: 0,
    }
}

impl Service {
    /// The templates in priority order with rank and AMQP priority.
    async fn ranked_templates(&self) -> Result<(Vec<pb::Template>, i64)> {
        let (all, order) = self.store.templates_and_priority().await?;
        let list = ranked(&order.template_ids, &all)
            .into_iter()
            .map(|(rank, priority, t)| template_to_proto(t, rank, priority))
            .collect();
        Ok((list, order.version))
    }

    async fn template_view(&self, id: &str) -> Result<pb::Template> {
        self.ranked_templates()
            .await?
            .0
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApprovalError::NotFound(format!("template {id} not found")))
    }

    /// `CreateTemplate`: validated, placed just before the builtin in the priority order.
    ///
    /// Fails with `InvalidArgument` (including a duplicate name) or `PermissionDenied`.
    #[tracing::instrument(skip_all, fields(admin = %logged(&person.subject)), err(Display, level = "info"))]
    pub async fn create_template(
        &self,
        person: &Person,
        request: pb::CreateTemplateRequest,
    ) -> Result<pb::Template> {
        require_admin(person)?;
        let proto = request.template.unwrap_or_default();
        let definition = definition_from_proto(&proto)?;
        validate(&proto.name, &definition)?;
        let fingerprint =
            super::queries::fingerprint(&serde_json::to_string(&(&proto.name, &definition))?);
        let id = with_retries(|| async {
            let mut tx = self.store.begin().await?;
            if !request.request_id.is_empty()
                && let Some((seen, id)) = keys::request_key(
                    &mut tx,
                    &person.subject,
                    "CreateTemplate",
                    &request.request_id,
                )
                .await?
            {
                if seen != fingerprint {
                    return Err(ApprovalError::invalid(
                        "request_id",
                        "reused with different parameters",
                    ));
                }
                return Ok(id);
            }
            let now = self.now();
            let template = Template {
                id: uuid::Uuid::now_v7().to_string(),
                name: proto.name.trim().to_string(),
                description: proto.description.clone(),
                enabled: proto.enabled,
                builtin: false,
                definition: definition.clone(),
                version: 1,
                creator: person.subject.clone(),
                create_time: now,
                update_time: now,
            };
            templates::insert_template(&mut tx, &template).await?;
            let mut order = templates::priority_in(&mut tx).await?;
            order.template_ids.push(template.id.clone());
            templates::set_priority(&mut tx, &order.template_ids, order.version).await?;
            if !request.request_id.is_empty() {
                keys::insert_request_key(
                    &mut tx,
                    (&person.subject, "CreateTemplate", &request.request_id),
                    &fingerprint,
                    &template.id,
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(template.id)
        })
        .await
        .map_err(|e| duplicate_name(e, &proto.name))?;
        self.template_view(&id).await
    }

    /// `GetTemplate`.
    pub async fn get_template(&self, person: &Person, id: &str) -> Result<pb::Template> {
        require_admin(person)?;
        self.template_view(id).await
    }

    /// `ListTemplates` in priority order (offset paging: templates are few).
    pub async fn list_templates(
        &self,
        person: &Person,
        request: pb::ListTemplatesRequest,
    ) -> Result<pb::ListTemplatesResponse> {
        require_admin(person)?;
        let size = match request.page_size {
            0 => 50,
            n if (1..=500).contains(&n) => n as usize,
            _ => return Err(ApprovalError::invalid("page_size", "between 0 and 500")),
        };
        let offset: usize = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .parse()
                .map_err(|_| ApprovalError::invalid("page_token", "malformed"))?
        };
        let (all, _) = self.ranked_templates().await?;
        let total = all.len();
        let templates: Vec<_> = all.into_iter().skip(offset).take(size).collect();
        let next = offset + templates.len();
        Ok(pb::ListTemplatesResponse {
            templates,
            next_page_token: if next < total {
                next.to_string()
            } else {
                String::new()
            },
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// `UpdateTemplate`: full replacement at `expected_version`. The builtin may be edited but
    /// stays enabled.
    ///
    /// Fails with `FailedPrecondition` for a stale version or disabling the builtin.
    #[tracing::instrument(skip_all, fields(admin = %logged(&person.subject)), err(Display, level = "info"))]
    pub async fn update_template(
        &self,
        person: &Person,
        request: pb::UpdateTemplateRequest,
    ) -> Result<pb::Template> {
        require_admin(person)?;
        let proto = request.template.unwrap_or_default();
        let definition = definition_from_proto(&proto)?;
        validate(&proto.name, &definition)?;
        let fingerprint = super::queries::fingerprint(&serde_json::to_string(&(
            &proto.id,
            &proto.name,
            &definition,
            request.expected_version,
        ))?);
        let key = (
            person.subject.as_str(),
            "UpdateTemplate",
            request.request_id.as_str(),
        );
        let mut tx = self.store.begin().await?;
        // A retry of an update that succeeded answers with the template, not a stale version.
        if !request.request_id.is_empty()
            && let Some((seen, id)) = keys::request_key(&mut tx, key.0, key.1, key.2).await?
        {
            if seen != fingerprint {
                return Err(ApprovalError::invalid(
                    "request_id",
                    "reused with different parameters",
                ));
            }
            tx.commit().await?;
            return self.template_view(&id).await;
        }
        let current = templates::template_in(&mut tx, &proto.id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(format!("template {} not found", proto.id)))?;
        if current.builtin && !proto.enabled {
            return Err(ApprovalError::FailedPrecondition(
                "the builtin template cannot be disabled".into(),
            ));
        }
        let updated = Template {
            name: proto.name.trim().to_string(),
            description: proto.description,
            enabled: proto.enabled,
            definition,
            update_time: self.now(),
            ..current
        };
        match templates::update_template(&mut tx, &updated, request.expected_version).await {
            Err(ApprovalError::Conflict) => {
                return Err(ApprovalError::FailedPrecondition(
                    "the template changed; reload it".into(),
                ));
            }
            other => other.map_err(|e| duplicate_name(e, &updated.name))?,
        }
        if !request.request_id.is_empty() {
            keys::insert_request_key(&mut tx, key, &fingerprint, &updated.id, self.now()).await?;
        }
        tx.commit().await?;
        self.template_view(&updated.id).await
    }

    /// `DeleteTemplate` at `expected_version`; it leaves the priority order.
    ///
    /// Fails with `FailedPrecondition` for the builtin or a stale version.
    #[tracing::instrument(skip_all, fields(admin = %logged(&person.subject), template_id = %logged(&id)), err(Display, level = "info"))]
    pub async fn delete_template(
        &self,
        person: &Person,
        id: &str,
        expected_version: i64,
    ) -> Result<()> {
        require_admin(person)?;
        with_retries(|| async {
            let mut tx = self.store.begin().await?;
            let current = templates::template_in(&mut tx, id)
                .await?
                .ok_or_else(|| ApprovalError::NotFound(format!("template {id} not found")))?;
            if current.builtin {
                return Err(ApprovalError::FailedPrecondition(
                    "the builtin template cannot be deleted".into(),
                ));
            }
            match templates::delete_template(&mut tx, id, expected_version).await {
                Err(ApprovalError::Conflict) => {
                    return Err(ApprovalError::FailedPrecondition(
                        "the template changed; reload it".into(),
                    ));
                }
                other => other?,
            }
            let mut order = templates::priority_in(&mut tx).await?;
            order.template_ids.retain(|t| t != id);
            templates::set_priority(&mut tx, &order.template_ids, order.version).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// `GetPriority`.
    pub async fn get_priority(&self, person: &Person) -> Result<(Vec<pb::PriorityEntry>, i64)> {
        require_admin(person)?;
        let (list, version) = self.ranked_templates().await?;
        let entries = list
            .into_iter()
            .map(|t| pb::PriorityEntry {
                template_id: t.id,
                template_name: t.name,
                rank: t.rank,
                execution_priority: t.execution_priority,
                enabled: t.enabled,
                builtin: t.builtin,
            })
            .collect();
        Ok((entries, version))
    }

    /// `SetPriority`: the complete order of non-builtin templates (the builtin may close it).
    ///
    /// Fails with `FailedPrecondition` for a stale version, a partial list or an unknown id,
    /// `InvalidArgument` for a duplicate or a builtin that is not last.
    #[tracing::instrument(skip_all, fields(admin = %logged(&person.subject)), err(Display, level = "info"))]
    pub async fn set_priority(
        &self,
        person: &Person,
        request: pb::SetPriorityRequest,
    ) -> Result<(Vec<pb::PriorityEntry>, i64)> {
        require_admin(person)?;
        let mut tx = self.store.begin().await?;
        let all = templates::all_templates_in(&mut tx).await?;
        let order = templates::priority_in(&mut tx).await?;
        if order.version != request.expected_version {
            return Err(ApprovalError::FailedPrecondition(
                "the priority order changed; reload it".into(),
            ));
        }
        let mut ids = request.template_ids.clone();
        if let Some(builtin) = all.iter().find(|t| t.builtin) {
            if ids.last() == Some(&builtin.id) {
                ids.pop();
            }
            if ids.contains(&builtin.id) {
                return Err(ApprovalError::invalid(
                    "template_ids",
                    "the builtin template is always last",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(duplicate) = ids.iter().find(|id| !seen.insert(*id)) {
            return Err(ApprovalError::invalid(
                "template_ids",
                format!("{duplicate} appears twice"),
            ));
        }
        let expected: std::collections::BTreeSet<&String> =
            all.iter().filter(|t| !t.builtin).map(|t| &t.id).collect();
        if seen != expected {
            return Err(ApprovalError::FailedPrecondition(
                "the list must name every template exactly once; reload the order".into(),
            ));
        }
        match templates::set_priority(&mut tx, &ids, request.expected_version).await {
            Err(ApprovalError::Conflict) => {
                return Err(ApprovalError::FailedPrecondition(
                    "the priority order changed; reload it".into(),
                ));
            }
            other => {
                other?;
            }
        }
        tx.commit().await?;
        self.get_priority(person).await
    }
}

/// A duplicate template name is bad input naming the field, not a resource clash:
/// templates are addressed by id, and the name is only a label that must be unique.
fn duplicate_name(error: ApprovalError, name: &str) -> ApprovalError {
    match error {
        ApprovalError::AlreadyExists(_) => ApprovalError::invalid(
            "template.name",
            format!("a template named {:?} already exists", name.trim()),
        ),
        other => other,
    }
}
