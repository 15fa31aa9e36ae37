//! Proto ↔ domain conversions: the edge where wire types stop. Inputs are checked here and
//! become `InvalidArgument` naming the field.

use shadowsync_common::clock::{Micros, to_timestamp};
use shadowsync_proto::approval::v1 as pb;
use shadowsync_proto::common::v1::Actor;

use crate::decision::{approvals_required, node_exhausted, remaining_users};
use crate::error::{ApprovalError, Result};
use crate::model::{
    Approval, ApprovalMode, ApprovalStatus, Decision, Expirations, MatchAttributes, MatchRule,
    NodeStatus, Outcome, Permission, Person, SeparationOfDuties, Template, TemplateDefinition,
    TemplateNode, TemplateSnapshot,
};

/// A protobuf duration in microseconds; `None` when unset.
///
/// Fails for a negative duration.
pub fn duration_micros(
    duration: Option<&prost_types::Duration>,
    field: &str,
) -> Result<Option<Micros>> {
    let Some(d) = duration else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ApprovalError::invalid(field, "must not be negative"));
    }
    Ok(Some(
        d.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(d.nanos) / 1_000),
    ))
}

fn to_duration(value: Micros) -> prost_types::Duration {
    prost_types::Duration {
        seconds: value.div_euclid(1_000_000),
        nanos: i32::try_from(value.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// The writable definition of a template from its proto form (defaults filled in).
///
/// Fails when the template is missing or a node has no mode and no auto-approve.
pub fn definition_from_proto(template: &pb::Template) -> Result<TemplateDefinition> {
    let rule = template.match_rule.clone().unwrap_or_default();
    let mut nodes = Vec::with_capacity(template.nodes.len());
    for (index, node) in template.nodes.iter().enumerate() {
        let mode = match pb::ApprovalMode::try_from(node.mode) {
            Ok(pb::ApprovalMode::Any) => ApprovalMode::Any,
            Ok(pb::ApprovalMode::All) => ApprovalMode::All,
            Ok(pb::ApprovalMode::Quorum) => ApprovalMode::Quorum(node.quorum),
            _ if node.auto_approve => ApprovalMode::Any,
            _ => {
                return Err(ApprovalError::invalid(
                    format!("template.nodes[{index}].mode"),
                    "required unless auto_approve",
                ));
            }
        };
        nodes.push(TemplateNode {
            name: node.name.clone(),
            approver_users: node.approver_users.clone(),
            approver_roles: node.approver_roles.clone(),
            mode,
            auto_approve: node.auto_approve,
        });
    }
    let expirations = template.expirations.unwrap_or_default();
    let defaults = Expirations::default();
    Ok(TemplateDefinition {
        match_rule: MatchRule {
            request_types: rule.request_types,
            connection_ids: rule.connection_ids,
            environments: rule.environments,
            database_globs: rule.database_globs,
            requester_roles: rule.requester_roles,
        },
        nodes,
        expirations: Expirations {
            approval: duration_micros(
                expirations.approval.as_ref(),
                "template.expirations.approval",
            )?
            .unwrap_or(defaults.approval),
            wait_for_execution: duration_micros(
                expirations.wait_for_execution.as_ref(),
                "template.expirations.wait_for_execution",
            )?
            .unwrap_or(defaults.wait_for_execution),
            execution: duration_micros(
                expirations.execution.as_ref(),
                "template.expirations.execution",
            )?
            .unwrap_or(defaults.execution),
        },
        separation_of_duties: match pb::SeparationOfDuties::try_from(template.separation_of_duties)
        {
            Ok(pb::SeparationOfDuties::DistinctPerNode) => SeparationOfDuties::DistinctPerNode,
            _ => SeparationOfDuties::RequesterExcluded,
        },
    })
}

pub fn node_to_proto(node: &TemplateNode) -> pb::TemplateNode {
    let (mode, quorum) = match node.mode {
        ApprovalMode::Any => (pb::ApprovalMode::Any, 0),
        ApprovalMode::All => (pb::ApprovalMode::All, 0),
        ApprovalMode::Quorum(q) => (pb::ApprovalMode::Quorum, q),
    };
    pb::TemplateNode {
        name: node.name.clone(),
        approver_users: node.approver_users.clone(),
        approver_roles: node.approver_roles.clone(),
        mode: mode.into(),
        quorum,
        auto_approve: node.auto_approve,
    }
}

pub fn expirations_to_proto(e: &Expirations) -> pb::Expirations {
    pb::Expirations {
        approval: Some(to_duration(e.approval)),
        wait_for_execution: Some(to_duration(e.wait_for_execution)),
        execution: Some(to_duration(e.execution)),
    }
}

fn sod_to_proto(sod: SeparationOfDuties) -> i32 {
    match sod {
        SeparationOfDuties::RequesterExcluded => pb::SeparationOfDuties::RequesterExcluded.into(),
        SeparationOfDuties::DistinctPerNode => pb::SeparationOfDuties::DistinctPerNode.into(),
    }
}

/// A template with its rank in the priority order.
pub fn template_to_proto(t: &Template, rank: u32, execution_priority: u32) -> pb::Template {
    let rule = &t.definition.match_rule;
    pb::Template {
        id: t.id.clone(),
        name: t.name.clone(),
        description: t.description.clone(),
        enabled: t.enabled,
        match_rule: Some(pb::MatchRule {
            request_types: rule.request_types.clone(),
            connection_ids: rule.connection_ids.clone(),
            environments: rule.environments.clone(),
            database_globs: rule.database_globs.clone(),
            requester_roles: rule.requester_roles.clone(),
        }),
        nodes: t.definition.nodes.iter().map(node_to_proto).collect(),
        expirations: Some(expirations_to_proto(&t.definition.expirations)),
        separation_of_duties: sod_to_proto(t.definition.separation_of_duties),
        builtin: t.builtin,
        version: t.version,
        rank,
        execution_priority,
        creator: t.creator.clone(),
        create_time: Some(to_timestamp(t.create_time)),
        update_time: Some(to_timestamp(t.update_time)),
    }
}

pub fn actor(person: &Person) -> Actor {
    Actor {
        subject: person.subject.clone(),
        display_name: person.name.clone(),
        roles: person.roles.clone(),
    }
}

pub fn status_to_proto(status: ApprovalStatus) -> pb::ApprovalStatus {
    match status {
        ApprovalStatus::Pending => pb::ApprovalStatus::Pending,
        ApprovalStatus::Approved => pb::ApprovalStatus::Approved,
        ApprovalStatus::Rejected => pb::ApprovalStatus::Rejected,
        ApprovalStatus::Cancelled => pb::ApprovalStatus::Cancelled,
        ApprovalStatus::Expired => pb::ApprovalStatus::Expired,
    }
}

pub fn status_from_proto(value: i32, field: &str) -> Result<ApprovalStatus> {
    match pb::ApprovalStatus::try_from(value) {
        Ok(pb::ApprovalStatus::Pending) => Ok(ApprovalStatus::Pending),
        Ok(pb::ApprovalStatus::Approved) => Ok(ApprovalStatus::Approved),
        Ok(pb::ApprovalStatus::Rejected) => Ok(ApprovalStatus::Rejected),
        Ok(pb::ApprovalStatus::Cancelled) => Ok(ApprovalStatus::Cancelled),
        Ok(pb::ApprovalStatus::Expired) => Ok(ApprovalStatus::Expired),
        _ => Err(ApprovalError::invalid(field, "unknown status")),
    }
}

pub fn decision_to_proto(d: &Decision) -> pb::Decision {
    pb::Decision {
        node_index: d.node_index,
        actor: d.actor.as_ref().map(actor),
        outcome: match d.outcome {
            Outcome::Approved => pb::DecisionOutcome::Approved,
            Outcome::Rejected => pb::DecisionOutcome::Rejected,
            Outcome::AutoApproved => pb::DecisionOutcome::AutoApproved,
        }
        .into(),
        comment: d.comment.clone(),
        time: Some(to_timestamp(d.time)),
    }
}

pub fn snapshot_to_proto(s: &TemplateSnapshot) -> pb::TemplateSnapshot {
    pb::TemplateSnapshot {
        template_id: s.template_id.clone(),
        template_version: s.template_version,
        name: s.name.clone(),
        rank: s.rank,
        execution_priority: s.execution_priority,
        expirations: Some(expirations_to_proto(&s.definition.expirations)),
        separation_of_duties: sod_to_proto(s.definition.separation_of_duties),
    }
}

/// The current node's candidates and the deadline, while pending: who the request is waiting
/// for. Only people who can still decide are listed (never the requester, never anyone who
/// already decided on the request); when nobody left can make the node pass
/// ([`node_exhausted`]), users and roles are both empty: the request waits for no one until it
/// expires.
pub fn candidates(a: &Approval) -> Option<pb::NodeCandidates> {
    let node = a.current_template_node()?;
    let exhausted = node_exhausted(a, a.current_node);
    Some(pb::NodeCandidates {
        node_index: a.current_node,
        node_name: node.name.clone(),
        users: if exhausted {
            Vec::new()
        } else {
            remaining_users(a, a.current_node)
        },
        roles: if exhausted {
            Vec::new()
        } else {
            node.approver_roles.clone()
        },
        deadline: Some(to_timestamp(a.approval_deadline)),
    })
}

pub fn approval_to_proto(a: &Approval, allowed_actions: Vec<pb::ApprovalAction>) -> pb::Approval {
    let nodes = a
        .snapshot
        .definition
        .nodes
        .iter()
        .zip(&a.nodes)
        .map(|(node, state)| pb::ApprovalNode {
            index: state.index,
            node: Some(node_to_proto(node)),
            status: match state.status {
                NodeStatus::Waiting => pb::NodeStatus::Waiting,
                NodeStatus::Active => pb::NodeStatus::Active,
                NodeStatus::Approved => pb::NodeStatus::Approved,
                NodeStatus::Rejected => pb::NodeStatus::Rejected,
                NodeStatus::NotReached => pb::NodeStatus::NotReached,
            }
            .into(),
            approvals: u32::try_from(
                a.decisions
                    .iter()
                    .filter(|d| d.node_index == state.index && d.outcome != Outcome::Rejected)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            approvals_required: approvals_required(node, &a.requester.subject),
            start_time: state.start_time.map(to_timestamp),
            end_time: state.end_time.map(to_timestamp),
        })
        .collect();
    pb::Approval {
        id: a.id.clone(),
        request_type: a.request_type.clone(),
        resource: Some(pb::ResourceRef {
            r#type: a.resource.resource_type.clone(),
            id: a.resource.id.clone(),
            display_name: a.resource.display_name.clone(),
        }),
        attributes: Some(attributes_to_proto(&a.attributes)),
        requester: Some(actor(&a.requester)),
        submitter: a.submitter.clone(),
        payload_summary: a.payload_summary.clone(),
        payload_sha256: a.payload_sha256.clone(),
        status: status_to_proto(a.status).into(),
        template: Some(snapshot_to_proto(&a.snapshot)),
        nodes,
        decisions: a.decisions.iter().map(decision_to_proto).collect(),
        current: candidates(a),
        approval_deadline: Some(to_timestamp(a.approval_deadline)),
        scheduled_time: a.scheduled_time.map(to_timestamp),
        create_time: Some(to_timestamp(a.create_time)),
        update_time: Some(to_timestamp(a.update_time)),
        finish_time: a.finish_time.map(to_timestamp),
        allowed_actions: allowed_actions.into_iter().map(Into::into).collect(),
        version: a.version,
    }
}

pub fn attributes_from_proto(a: Option<pb::MatchAttributes>) -> MatchAttributes {
    let a = a.unwrap_or_default();
    MatchAttributes {
        connection_id: a.connection_id,
        environment: a.environment,
        database: a.database,
        extra: a.extra.into_iter().collect(),
    }
}

fn attributes_to_proto(a: &MatchAttributes) -> pb::MatchAttributes {
    pb::MatchAttributes {
        connection_id: a.connection_id.clone(),
        environment: a.environment.clone(),
        database: a.database.clone(),
        extra: a.extra.clone().into_iter().collect(),
    }
}

pub fn permission_to_proto(p: &Permission, now: Micros) -> pb::Permission {
    let status = if p.revoke_time.is_some() {
        pb::PermissionStatus::Revoked
    } else if p.is_active(now) {
        pb::PermissionStatus::Active
    } else {
        pb::PermissionStatus::Expired
    };
    pb::Permission {
        id: p.id.clone(),
        user: p.grantee.clone(),
        task_type: p.task_type.clone(),
        connection_id: p.connection_id.clone(),
        database: p.database.clone(),
        status: status.into(),
        reason: p.reason.clone(),
        granted_by: p.granted_by.clone(),
        approval_id: p.approval_id.clone().unwrap_or_default(),
        grant_time: Some(to_timestamp(p.grant_time)),
        expire_time: p.expire_time.map(to_timestamp),
        revoke_time: p.revoke_time.map(to_timestamp),
        revoked_by: p.revoked_by.clone(),
    }
}

/// Every string an approval-service request carries, bounded before the use case sees it (issue
/// 14): a longer value is INVALID_ARGUMENT naming the field. The bounds are
/// `shadowsync_common::limits`' and are listed in `approval_service.proto`. The adapters check
/// it when they identify the caller, so a request type without an impl does not compile there.
pub mod bounds {
    use shadowsync_common::error::ApiError;
    use shadowsync_common::limits::{COMMENT, ID, NAME, PAGE_TOKEN, TEXT, bounded, each_bounded};
    use shadowsync_proto::approval::v1 as pb;
    use shadowsync_proto::common::v1::Actor;

    /// A request whose string fields are within their bounds.
    pub trait Bounded {
        /// Fails with INVALID_ARGUMENT naming the first field past its bound.
        fn bounded(&self) -> Result<(), ApiError>;
    }

    fn resource(r: Option<&pb::ResourceRef>, field: &str) -> Result<(), ApiError> {
        let Some(r) = r else { return Ok(()) };
        bounded(&r.r#type, &format!("{field}.type"), NAME)?;
        bounded(&r.id, &format!("{field}.id"), ID)?;
        bounded(&r.display_name, &format!("{field}.display_name"), NAME)
    }

    fn actor(a: Option<&Actor>, field: &str) -> Result<(), ApiError> {
        let Some(a) = a else { return Ok(()) };
        bounded(&a.subject, &format!("{field}.subject"), NAME)?;
        bounded(&a.display_name, &format!("{field}.display_name"), NAME)?;
        each_bounded(&a.roles, &format!("{field}.roles"), NAME)
    }

    fn template(t: Option<&pb::Template>) -> Result<(), ApiError> {
        let Some(t) = t else { return Ok(()) };
        bounded(&t.id, "template.id", ID)?;
        bounded(&t.name, "template.name", NAME)?;
        bounded(&t.description, "template.description", TEXT)?;
        bounded(&t.creator, "template.creator", NAME)?;
        if let Some(rule) = &t.match_rule {
            let lists = [
                (&rule.request_types, "request_types"),
                (&rule.connection_ids, "connection_ids"),
                (&rule.environments, "environments"),
                (&rule.database_globs, "database_globs"),
                (&rule.requester_roles, "requester_roles"),
            ];
            for (values, name) in lists {
                each_bounded(values, &format!("template.match_rule.{name}"), NAME)?;
            }
        }
        for (index, node) in t.nodes.iter().enumerate() {
            let field = format!("template.nodes[{index}]");
            bounded(&node.name, &format!("{field}.name"), NAME)?;
            each_bounded(
                &node.approver_users,
                &format!("{field}.approver_users"),
                NAME,
            )?;
            each_bounded(
                &node.approver_roles,
                &format!("{field}.approver_roles"),
                NAME,
            )?;
        }
        Ok(())
    }

    /// Each request type and the checks of its fields, as `field: bound` (strings) or
    /// `field: [bound]` (repeated strings); `with f` adds a check of nested messages.
    macro_rules! bounded_fields {
        ($($request:ty { $($field:ident: $bound:tt),* $(; with $extra:expr)? })*) => {
            $(impl Bounded for $request {
                #[allow(unused_variables)]
                fn bounded(&self) -> Result<(), ApiError> {
                    $(bounded_fields!(@check self, $field, $bound);)*
                    $(($extra)(self)?;)?
                    Ok(())
                }
            })*
        };
        (@check $self:ident, $field:ident, [$bound:expr]) => {
            each_bounded(&$self.$field, stringify!($field), $bound)?
        };
        (@check $self:ident, $field:ident, $bound:expr) => {
            bounded(&$self.$field, stringify!($field), $bound)?
        };
    }

    bounded_fields! {
        pb::CreateTemplateRequest { request_id: ID; with |r: &Self| template(r.template.as_ref()) }
        pb::UpdateTemplateRequest { request_id: ID; with |r: &Self| template(r.template.as_ref()) }
        pb::GetTemplateRequest { template_id: ID }
        pb::DeleteTemplateRequest { template_id: ID }
        pb::ListTemplatesRequest { page_token: PAGE_TOKEN }
        pb::GetPriorityRequest {}
        pb::SetPriorityRequest { template_ids: [ID] }
        pb::SubmitApprovalRequest {
            request_type: NAME, payload_summary: TEXT, payload_sha256: ID, request_id: ID;
            with |r: &Self| -> Result<(), ApiError> {
                resource(r.resource.as_ref(), "resource")?;
                actor(r.on_behalf_of.as_ref(), "on_behalf_of")?;
                let Some(a) = &r.attributes else { return Ok(()) };
                bounded(&a.connection_id, "attributes.connection_id", ID)?;
                bounded(&a.environment, "attributes.environment", NAME)?;
                bounded(&a.database, "attributes.database", NAME)?;
                for (key, value) in &a.extra {
                    bounded(key, "attributes.extra", NAME)?;
                    bounded(value, &format!("attributes.extra.{key}"), NAME)?;
                }
                Ok(())
            }
        }
        pb::ApproveRequest { approval_id: ID, comment: COMMENT, request_id: ID }
        pb::RejectRequest { approval_id: ID, comment: COMMENT, request_id: ID }
        pb::CancelApprovalRequest { approval_id: ID, reason: TEXT, request_id: ID }
        pb::GetApprovalRequest {;
            with |r: &Self| match &r.key {
                Some(pb::get_approval_request::Key::ApprovalId(id)) => {
                    bounded(id, "approval_id", ID)
                }
                Some(pb::get_approval_request::Key::Resource(lookup)) => {
                    bounded(&lookup.request_type, "resource.request_type", NAME)?;
                    resource(lookup.resource.as_ref(), "resource.resource")
                }
                None => Ok(()),
            }
        }
        pb::ListApprovalsRequest { request_types: [NAME], page_token: PAGE_TOKEN }
        pb::WatchApprovalRequest { approval_id: ID }
        pb::ApplyPermissionRequest {
            task_type: NAME, connection_id: ID, database: NAME, reason: TEXT, request_id: ID
        }
        pb::GrantPermissionRequest {
            user: NAME, task_type: NAME, connection_id: ID, database: NAME, reason: TEXT,
            request_id: ID
        }
        pb::RevokePermissionRequest { permission_id: ID, reason: TEXT }
        pb::ListPermissionsRequest {
            user: NAME, connection_id: ID, task_type: NAME, page_token: PAGE_TOKEN
        }
        pb::CheckPermissionRequest {
            user: NAME, task_type: NAME, connection_id: ID, database: NAME, roles: [NAME]
        }
    }
}
