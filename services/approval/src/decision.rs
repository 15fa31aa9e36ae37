//! The node state machine, free of storage: who may decide at the current node, when a node has
//! enough approvals (ANY / ALL / QUORUM), when it never can (its approvers are exhausted), and
//! where a request goes after a node passes (auto-approve nodes pass at once).
//!
//! Separation of duties is fixed, for every mode and every template: the
//! requester never decides on their own request, and one person's decision counts once per
//! request (who approved node 1 cannot approve node 2). Templates can only be stricter.

use crate::error::{ApprovalError, Result};
use crate::model::{Approval, ApprovalMode, Outcome, Person, TemplateNode};

/// Whether `person` is named on `node`, by subject or by one of their roles.
pub fn is_named(node: &TemplateNode, person: &Person) -> bool {
    node.approver_users.iter().any(|u| u == &person.subject)
        || node.approver_roles.iter().any(|r| person.has_role(r))
}

/// The node at which `subject` decided on `approval`, if they did (approve or reject, at any
/// node). One person's decision counts once per request, so anyone with a
/// decision is done with the request.
pub fn decided_at(approval: &Approval, subject: &str) -> Option<u32> {
    approval
        .decisions
        .iter()
        .find(|d| d.actor.as_ref().is_some_and(|a| a.subject == subject))
        .map(|d| d.node_index)
}

/// Whether `subject` could still decide on `approval` if a node named them: not the requester,
/// and no decision of theirs on the request yet.
pub fn may_still_decide(approval: &Approval, subject: &str) -> bool {
    subject != approval.requester.subject && decided_at(approval, subject).is_none()
}

/// Checks that `person` may decide on `approval` now.
///
/// Fails with `PermissionDenied` for the requester (always, even an admin) and for anyone not
/// named on the current node; with `FailedPrecondition` when the request is final, the node
/// moved on (`expected_node`), or the person already decided on this request, at this node or
/// any other (one person's decision counts once per request, whatever the template says).
///
/// "Already decided" is `FailedPrecondition`, not `PermissionDenied`, as the node guard and a
/// final request are: the person is an approver of the node, but the request's state (their
/// own earlier decision) rules the decision out, and re-reading the request shows why.
pub fn check_may_decide(
    approval: &Approval,
    person: &Person,
    expected_node: Option<u32>,
) -> Result<()> {
    let Some(node) = approval.current_template_node() else {
        return Err(ApprovalError::FailedPrecondition(format!(
            "approval {} is {}",
            approval.id,
            approval.status.as_str().to_lowercase()
        )));
    };
    if expected_node.is_some_and(|expected| expected != approval.current_node) {
        return Err(ApprovalError::FailedPrecondition(format!(
            "approval {} is at node {}, not {}",
            approval.id,
            approval.current_node,
            expected_node.unwrap_or_default()
        )));
    }
    if person.subject == approval.requester.subject {
        return Err(ApprovalError::PermissionDenied(
            "the requester cannot decide on their own request".to_string(),
        ));
    }
    if !is_named(node, person) {
        return Err(ApprovalError::PermissionDenied(
            "not an approver of the current node".to_string(),
        ));
    }
    if let Some(earlier) = decided_at(approval, &person.subject) {
        let mut message = if earlier == approval.current_node {
            "you already decided at this node".to_string()
        } else {
            format!(
                "you already decided on this request at node {earlier}; one person's decision \
                 counts once per request"
            )
        };
        if node_exhausted(approval, approval.current_node) {
            message.push_str(&format!(
                "; no one left may approve node {}, so the request waits until it expires",
                approval.current_node
            ));
        }
        return Err(ApprovalError::FailedPrecondition(message));
    }
    Ok(())
}

/// The named users of `node_index` who can still decide there: not the requester and no
/// decision on the request yet. These are who the request is "waiting for" by name.
pub fn remaining_users(approval: &Approval, node_index: u32) -> Vec<String> {
    let Some(node) = node_at(approval, node_index) else {
        return Vec::new();
    };
    // In the template's order (what "waiting for" has always shown), each name once.
    let mut users: Vec<String> = Vec::new();
    for user in &node.approver_users {
        if may_still_decide(approval, user) && !users.contains(user) {
            users.push(user.clone());
        }
    }
    users
}

/// Whether node `node_index` can never pass any more, because the people who could still
/// approve it are too few: every named user who is left cannot make up what is missing, and no
/// role is named that someone new could fill. Such a request is not auto-approved and not
/// failed early: it waits until it expires (or is cancelled or rejected), and its candidates
/// list nobody.
///
/// Roles count as never exhausted: who holds a role is the identity provider's business, and
/// someone who has not decided yet may hold it tomorrow.
pub fn node_exhausted(approval: &Approval, node_index: u32) -> bool {
    let Some(node) = node_at(approval, node_index) else {
        return false;
    };
    if node.auto_approve {
        return false;
    }
    let approved = approvers_at(approval, node_index);
    let left = remaining_users(approval, node_index).len();
    let roles = !node.approver_roles.is_empty();
    match node.mode {
        ApprovalMode::Any => approved.is_empty() && left == 0 && !roles,
        ApprovalMode::Quorum(quorum) => {
            !roles && u32::try_from(approved.len() + left).unwrap_or(u32::MAX) < quorum
        }
        ApprovalMode::All => {
            let users = required_users(node, &approval.requester.subject);
            // A named user who decided elsewhere on the request can never approve here.
            let lost = users.iter().any(|u| {
                !approved.iter().any(|a| &a.subject == *u)
                    && !may_still_decide(approval, u.as_str())
            });
            // Only the requester named: nobody may ever approve.
            lost || (users.is_empty() && !roles)
        }
    }
}

fn node_at(approval: &Approval, node_index: u32) -> Option<&TemplateNode> {
    usize::try_from(node_index)
        .ok()
        .and_then(|index| approval.snapshot.definition.nodes.get(index))
}

/// The named users who must approve an ALL node: every one but the requester, who never may.
fn required_users<'a>(node: &'a TemplateNode, requester: &str) -> Vec<&'a String> {
    let mut users: Vec<&String> = node
        .approver_users
        .iter()
        .filter(|u| u.as_str() != requester)
        .collect();
    users.sort();
    users.dedup();
    users
}

/// Approvals a node needs: 1 for ANY, the quorum, or for ALL each named user (but the requester)
/// plus one member of each named role.
pub fn approvals_required(node: &TemplateNode, requester: &str) -> u32 {
    match node.mode {
        _ if node.auto_approve => 1,
        ApprovalMode::Any => 1,
        ApprovalMode::Quorum(quorum) => quorum,
        ApprovalMode::All => {
            let slots = required_users(node, requester).len() + node.approver_roles.len();
            u32::try_from(slots.max(1)).unwrap_or(u32::MAX)
        }
    }
}

/// Whether `approvers` (distinct people who approved at this node) are enough.
pub fn node_passed(node: &TemplateNode, requester: &str, approvers: &[&Person]) -> bool {
    match node.mode {
        ApprovalMode::Any => !approvers.is_empty(),
        ApprovalMode::Quorum(quorum) => {
            u32::try_from(approvers.len()).unwrap_or(u32::MAX) >= quorum
        }
        ApprovalMode::All => {
            // Each named user approves in person; each role is filled by a different approver
            // who is not already counted (one person counts once).
            let users = required_users(node, requester);
            if !users
                .iter()
                .all(|u| approvers.iter().any(|a| &a.subject == *u))
            {
                return false;
            }
            let spare: Vec<&Person> = approvers
                .iter()
                .copied()
                .filter(|a| !users.contains(&&a.subject))
                .collect();
            let mut used = vec![false; spare.len()];
            !approvers.is_empty() && fill_roles(&node.approver_roles, &spare, &mut used)
        }
    }
}

/// Assigns a distinct approver to every role (backtracking; nodes name a handful of roles).
fn fill_roles(roles: &[String], people: &[&Person], used: &mut [bool]) -> bool {
    let Some((role, rest)) = roles.split_first() else {
        return true;
    };
    for index in 0..people.len() {
        if !used[index] && people[index].has_role(role) {
            used[index] = true;
            if fill_roles(rest, people, used) {
                return true;
            }
            used[index] = false;
        }
    }
    false
}

/// The distinct people who approved at `node_index` so far.
pub fn approvers_at(approval: &Approval, node_index: u32) -> Vec<&Person> {
    approval
        .decisions
        .iter()
        .filter(|d| d.node_index == node_index && d.outcome == Outcome::Approved)
        .filter_map(|d| d.actor.as_ref())
        .collect()
}

/// Where a request goes once the node before `next` passed: the auto-approve nodes passed on
/// the way, and the node it stops at (`None`: every node passed, the request is approved).
pub fn advance_from(nodes: &[TemplateNode], next: u32) -> (Vec<u32>, Option<u32>) {
    let mut auto = Vec::new();
    let mut index = next;
    while let Some(node) = usize::try_from(index).ok().and_then(|i| nodes.get(i)) {
        if !node.auto_approve {
            return (auto, Some(index));
        }
        auto.push(index);
        index += 1;
    }
    (auto, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(subject: &str, roles: &[&str]) -> Person {
        Person {
            subject: subject.into(),
            name: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn node(users: &[&str], roles: &[&str], mode: ApprovalMode) -> TemplateNode {
        TemplateNode {
            name: "n".into(),
            approver_users: users.iter().map(|u| u.to_string()).collect(),
            approver_roles: roles.iter().map(|r| r.to_string()).collect(),
            mode,
            auto_approve: false,
        }
    }

    #[test]
    fn all_needs_every_user_and_a_distinct_member_per_role() {
        let n = node(&["bob", "carol"], &["dba"], ApprovalMode::All);
        let bob = person("bob", &["dba"]);
        let carol = person("carol", &[]);
        let dave = person("dave", &["dba"]);
        assert!(
            !node_passed(&n, "alice", &[&bob, &carol]),
            "bob counts once"
        );
        assert!(node_passed(&n, "alice", &[&bob, &carol, &dave]));
        assert_eq!(approvals_required(&n, "alice"), 3);
        // The requester is never required (they may never approve).
        assert_eq!(approvals_required(&n, "bob"), 2);
        assert!(node_passed(&n, "bob", &[&carol, &dave]));
    }

    #[test]
    fn any_and_quorum_count_people() {
        let bob = person("bob", &[]);
        let carol = person("carol", &[]);
        assert!(node_passed(
            &node(&["bob"], &[], ApprovalMode::Any),
            "a",
            &[&bob]
        ));
        let quorum = node(&["bob", "carol", "dave"], &[], ApprovalMode::Quorum(2));
        assert!(!node_passed(&quorum, "a", &[&bob]));
        assert!(node_passed(&quorum, "a", &[&bob, &carol]));
    }

    /// A pending request by alice at `current` over `nodes`, with `decided` = (node, subject)
    /// approvals already made.
    fn request(nodes: Vec<TemplateNode>, current: u32, decided: &[(u32, &str)]) -> Approval {
        use crate::model::*;
        Approval {
            id: "a1".into(),
            request_type: "t".into(),
            resource: ResourceRef::default(),
            attributes: MatchAttributes::default(),
            requester: person("alice", &[]),
            submitter: "alice".into(),
            request_id: "r".into(),
            fingerprint: String::new(),
            payload_summary: String::new(),
            payload_sha256: String::new(),
            status: ApprovalStatus::Pending,
            snapshot: TemplateSnapshot {
                template_id: "t".into(),
                template_version: 1,
                name: "t".into(),
                rank: 1,
                execution_priority: 10,
                definition: TemplateDefinition {
                    match_rule: MatchRule::default(),
                    nodes,
                    expirations: Expirations::default(),
                    separation_of_duties: SeparationOfDuties::default(),
                },
            },
            current_node: current,
            approval_deadline: 0,
            scheduled_time: None,
            cancelled_by: None,
            cancel_reason: None,
            create_time: 0,
            update_time: 0,
            finish_time: None,
            version: 1,
            nodes: Vec::new(),
            decisions: decided
                .iter()
                .map(|(node_index, subject)| Decision {
                    node_index: *node_index,
                    actor: Some(person(subject, &[])),
                    outcome: Outcome::Approved,
                    comment: String::new(),
                    request_id: String::new(),
                    time: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_decision_at_one_node_rules_out_every_other_node() {
        let first = node(&["bob", "carol"], &[], ApprovalMode::Any);
        for second in [
            node(&["bob", "dave"], &[], ApprovalMode::Any),
            node(&["bob", "dave"], &[], ApprovalMode::All),
            node(&["bob", "dave", "erin"], &[], ApprovalMode::Quorum(2)),
        ] {
            let a = request(vec![first.clone(), second.clone()], 1, &[(0, "bob")]);
            let error = check_may_decide(&a, &person("bob", &[]), None).expect_err("spent");
            assert!(
                matches!(&error, ApprovalError::FailedPrecondition(m) if m.contains("node 0")),
                "{:?}: {error:?}",
                second.mode
            );
            assert!(check_may_decide(&a, &person("dave", &[]), None).is_ok());
            assert!(!remaining_users(&a, 1).contains(&"bob".to_string()));
        }
    }

    #[test]
    fn exhausted_nodes_are_those_no_one_left_can_pass() {
        let first = node(&["bob", "carol"], &[], ApprovalMode::Quorum(2));
        let spent = [(0, "bob"), (0, "carol")];
        let exhausted = |second: TemplateNode| {
            node_exhausted(&request(vec![first.clone(), second], 1, &spent), 1)
        };
        assert!(exhausted(node(&["bob"], &[], ApprovalMode::Any)));
        assert!(!exhausted(node(&["bob", "dave"], &[], ApprovalMode::Any)));
        assert!(
            !exhausted(node(&["bob"], &["dba"], ApprovalMode::Any)),
            "roles stay open"
        );
        assert!(exhausted(node(&["bob", "dave"], &[], ApprovalMode::All)));
        assert!(exhausted(node(
            &["bob", "dave"],
            &["dba"],
            ApprovalMode::All
        )));
        assert!(!exhausted(node(
            &["dave", "erin"],
            &["dba"],
            ApprovalMode::All
        )));
        assert!(exhausted(node(
            &["bob", "carol", "dave"],
            &[],
            ApprovalMode::Quorum(2)
        )));
        assert!(!exhausted(node(
            &["bob", "dave", "erin"],
            &[],
            ApprovalMode::Quorum(2)
        )));
        // The requester never counts: a node naming only alice can never pass.
        let alone = request(vec![node(&["alice"], &[], ApprovalMode::All)], 0, &[]);
        assert!(node_exhausted(&alone, 0));
        assert!(remaining_users(&alone, 0).is_empty());
        // Approvals already made at the node count toward its quorum.
        let half = request(
            vec![
                first.clone(),
                node(&["bob", "dave", "erin"], &[], ApprovalMode::Quorum(2)),
            ],
            1,
            &[(0, "bob"), (0, "carol"), (1, "dave")],
        );
        assert!(!node_exhausted(&half, 1));
        assert_eq!(remaining_users(&half, 1), ["erin"]);
    }

    #[test]
    fn auto_approve_nodes_are_passed_through() {
        let mut auto = node(&[], &[], ApprovalMode::Any);
        auto.auto_approve = true;
        let manual = node(&["bob"], &[], ApprovalMode::Any);
        let nodes = vec![auto.clone(), manual, auto];
        assert_eq!(advance_from(&nodes, 0), (vec![0], Some(1)));
        assert_eq!(advance_from(&nodes, 2), (vec![2], None));
        assert_eq!(advance_from(&nodes, 3), (vec![], None));
    }
}
