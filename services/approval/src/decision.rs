//! The node state machine, free of storage: who may decide at the current node, when a node has
//! enough approvals (ANY / ALL / QUORUM, one person counting once), and where a request goes
//! after a node passes (auto-approve nodes pass at once).

use crate::error::{ApprovalError, Result};
use crate::model::{Approval, ApprovalMode, Outcome, Person, SeparationOfDuties, TemplateNode};

/// Whether `person` is named on `node`, by subject or by one of their roles.
pub fn is_named(node: &TemplateNode, person: &Person) -> bool {
    node.approver_users.iter().any(|u| u == &person.subject)
        || node.approver_roles.iter().any(|r| person.has_role(r))
}

/// Checks that `person` may decide on `approval` now.
///
/// Fails with `FailedPrecondition` when the request is final, the node moved on
/// (`expected_node`), or the person already decided (at this node, or at any node under
/// DISTINCT_PER_NODE); with `PermissionDenied` for the requester (always, even an admin) and for
/// anyone not named on the current node.
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
    let decided = |same_node: bool| {
        approval.decisions.iter().any(|d| {
            d.actor
                .as_ref()
                .is_some_and(|a| a.subject == person.subject)
                && (!same_node || d.node_index == approval.current_node)
        })
    };
    if decided(true) {
        return Err(ApprovalError::FailedPrecondition(
            "you already decided at this node".to_string(),
        ));
    }
    if approval.snapshot.definition.separation_of_duties == SeparationOfDuties::DistinctPerNode
        && decided(false)
    {
        return Err(ApprovalError::FailedPrecondition(
            "this template allows one decision per person per request".to_string(),
        ));
    }
    Ok(())
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
