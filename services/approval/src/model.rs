//! Domain types of the approval service. Proto types stop at the edge (`convert.rs`); these are
//! what the store keeps (structured parts as JSON) and what the rules work on.

use serde::{Deserialize, Serialize};
use shadowsync_common::clock::Micros;

/// 24 hours, the default of every expiration.
pub const DEFAULT_EXPIRATION: Micros = 24 * 3600 * 1_000_000;

/// The comment of an auto-approve node's decision.
pub const AUTO_APPROVED_COMMENT: &str = "auto-approved";

/// How a node's approvers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalMode {
    Any,
    All,
    Quorum(u32),
}

/// A template's separation-of-duties setting. The fixed minimum, enforced whatever the setting
/// (`decision::check_may_decide`), is already the platform's rule: the requester never decides
/// on their own request, and one person's decision counts once per request (at one node only,
/// for ANY, ALL and QUORUM nodes alike). Both values therefore mean that today; the setting is
/// kept so stored templates and clients keep working, and as the place for stricter rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SeparationOfDuties {
    /// The fixed minimum.
    #[default]
    RequesterExcluded,
    /// One person may decide at only one node of a request (now the minimum as well).
    DistinctPerNode,
}

/// Which requests a template matches: fields AND together, values within a field OR, empty =
/// any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRule {
    pub request_types: Vec<String>,
    pub connection_ids: Vec<String>,
    pub environments: Vec<String>,
    pub database_globs: Vec<String>,
    pub requester_roles: Vec<String>,
}

/// One approval step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateNode {
    pub name: String,
    pub approver_users: Vec<String>,
    pub approver_roles: Vec<String>,
    pub mode: ApprovalMode,
    pub auto_approve: bool,
}

/// Expirations in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expirations {
    pub approval: Micros,
    pub wait_for_execution: Micros,
    pub execution: Micros,
}

impl Default for Expirations {
    fn default() -> Self {
        Self {
            approval: DEFAULT_EXPIRATION,
            wait_for_execution: DEFAULT_EXPIRATION,
            execution: DEFAULT_EXPIRATION,
        }
    }
}

/// The writable, versioned content of a template (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    pub match_rule: MatchRule,
    pub nodes: Vec<TemplateNode>,
    pub expirations: Expirations,
    pub separation_of_duties: SeparationOfDuties,
}

/// A process template as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub builtin: bool,
    pub definition: TemplateDefinition,
    pub version: i64,
    pub creator: String,
    pub create_time: Micros,
    pub update_time: Micros,
}

/// The priority order: non-builtin template ids, first match first; the builtin is implicitly
/// last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityOrder {
    pub template_ids: Vec<String>,
    pub version: i64,
}

/// The matched template frozen into a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSnapshot {
    pub template_id: String,
    pub template_version: i64,
    pub name: String,
    pub rank: u32,
    pub execution_priority: u32,
    pub definition: TemplateDefinition,
}

/// Status of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Rejected,
            Self::Cancelled,
            Self::Expired,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }

    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

/// Status of one node of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Waiting,
    Active,
    Approved,
    Rejected,
    NotReached,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Active => "ACTIVE",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::NotReached => "NOT_REACHED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Waiting,
            Self::Active,
            Self::Approved,
            Self::Rejected,
            Self::NotReached,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }
}

/// A node's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub index: u32,
    pub status: NodeStatus,
    pub start_time: Option<Micros>,
    pub end_time: Option<Micros>,
}

/// Who did something, as their token said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub subject: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl Person {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// What a decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Rejected,
    AutoApproved,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::AutoApproved => "AUTO_APPROVED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Approved, Self::Rejected, Self::AutoApproved]
            .into_iter()
            .find(|outcome| outcome.as_str() == value)
    }
}

/// One decision; `actor` is `None` for an auto-approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub node_index: u32,
    pub actor: Option<Person>,
    pub outcome: Outcome,
    pub comment: String,
    pub request_id: String,
    pub time: Micros,
}

/// Attributes matched against templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchAttributes {
    pub connection_id: String,
    pub environment: String,
    pub database: String,
    pub extra: std::collections::BTreeMap<String, String>,
}

/// What a request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    pub resource_type: String,
    pub id: String,
    pub display_name: String,
}

/// An approval request (instance) with its nodes and decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub request_type: String,
    pub resource: ResourceRef,
    pub attributes: MatchAttributes,
    pub requester: Person,
    pub submitter: String,
    pub request_id: String,
    pub fingerprint: String,
    pub payload_summary: String,
    pub payload_sha256: String,
    pub status: ApprovalStatus,
    pub snapshot: TemplateSnapshot,
    pub current_node: u32,
    pub approval_deadline: Micros,
    pub scheduled_time: Option<Micros>,
    pub cancelled_by: Option<Person>,
    pub cancel_reason: Option<String>,
    pub create_time: Micros,
    pub update_time: Micros,
    pub finish_time: Option<Micros>,
    pub version: i64,
    pub nodes: Vec<NodeState>,
    pub decisions: Vec<Decision>,
}

impl Approval {
    /// The snapshotted definition of the current node, if the request is pending.
    pub fn current_template_node(&self) -> Option<&TemplateNode> {
        if self.status != ApprovalStatus::Pending {
            return None;
        }
        usize::try_from(self.current_node)
            .ok()
            .and_then(|index| self.snapshot.definition.nodes.get(index))
    }
}

/// What a `permission_apply` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionApplication {
    pub task_type: String,
    pub connection_id: String,
    pub database: String,
    pub reason: String,
    pub duration: Option<Micros>,
}

/// A permission grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub grantee: String,
    pub task_type: String,
    pub connection_id: String,
    pub database: String,
    pub reason: String,
    pub granted_by: String,
    pub approval_id: Option<String>,
    pub grant_time: Micros,
    pub expire_time: Option<Micros>,
    pub revoke_time: Option<Micros>,
    pub revoked_by: String,
}

impl Permission {
    /// Active: not revoked and not past its expiry at `now`.
    pub fn is_active(&self, now: Micros) -> bool {
        self.revoke_time.is_none() && self.expire_time.is_none_or(|expire| expire > now)
    }
}
