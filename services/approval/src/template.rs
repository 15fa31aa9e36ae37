//! Template rules: validation of what an admin writes, the builtin fallback, and matching a
//! request against the priority order.

use shadowsync_proto::names;

use crate::error::{ApprovalError, Result};
use crate::model::{
    ApprovalMode, Expirations, MatchAttributes, MatchRule, SeparationOfDuties, Template,
    TemplateDefinition, TemplateNode, TemplateSnapshot,
};

/// Name of the builtin fallback template created on first start.
pub const BUILTIN_TEMPLATE_NAME: &str = "Administrator approval";

/// Longest template name.
const MAX_NAME: usize = 128;

/// The builtin fallback's definition: one node approved by any member of the `admin` role.
pub fn builtin_definition() -> TemplateDefinition {
    TemplateDefinition {
        match_rule: MatchRule::default(),
        nodes: vec![TemplateNode {
            name: "Administrator".to_string(),
            approver_users: Vec::new(),
            approver_roles: vec![names::ROLE_ADMIN.to_string()],
            mode: ApprovalMode::Any,
            auto_approve: false,
        }],
        expirations: Expirations::default(),
        separation_of_duties: SeparationOfDuties::RequesterExcluded,
    }
}

/// Whether `value` is a valid request type: `[a-z][a-z0-9_]{0,63}` (it appears in routing keys).
pub fn is_valid_request_type(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some('a'..='z'))
        && value.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a template's name and definition.
///
/// Fails with `InvalidArgument` naming the field: an empty or over-long name, no nodes, a node
/// with neither approvers nor auto-approve, a node without a mode, a quorum of 0 or larger than
/// the named users (when only users are named), a non-positive expiration, a malformed request
/// type or an empty glob.
pub fn validate(name: &str, definition: &TemplateDefinition) -> Result<()> {
    if name.trim().is_empty() {
        return Err(ApprovalError::invalid("template.name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApprovalError::invalid(
            "template.name",
            format!("at most {MAX_NAME} characters"),
        ));
    }
    if definition.nodes.is_empty() {
        return Err(ApprovalError::invalid(
            "template.nodes",
            "at least one node is required",
        ));
    }
    for (index, node) in definition.nodes.iter().enumerate() {
        validate_node(index, node)?;
    }
    let expirations = [
        ("approval", definition.expirations.approval),
        (
            "wait_for_execution",
            definition.expirations.wait_for_execution,
        ),
        ("execution", definition.expirations.execution),
    ];
    for (field, value) in expirations {
        if value <= 0 {
            return Err(ApprovalError::invalid(
                format!("template.expirations.{field}"),
                "must be positive",
            ));
        }
    }
    let rule = &definition.match_rule;
    if let Some(bad) = rule
        .request_types
        .iter()
        .find(|t| !is_valid_request_type(t))
    {
        return Err(ApprovalError::invalid(
            "template.match_rule.request_types",
            format!("{bad:?} must match [a-z][a-z0-9_]{{0,63}}"),
        ));
    }
    if rule.database_globs.iter().any(String::is_empty) {
        return Err(ApprovalError::invalid(
            "template.match_rule.database_globs",
            "a glob must not be empty",
        ));
    }
    Ok(())
}

fn validate_node(index: usize, node: &TemplateNode) -> Result<()> {
    let field = |name: &str| format!("template.nodes[{index}].{name}");
    if node.auto_approve {
        return Ok(());
    }
    let users: std::collections::BTreeSet<&String> = node.approver_users.iter().collect();
    if users.is_empty() && node.approver_roles.is_empty() {
        return Err(ApprovalError::invalid(
            field("approver_users"),
            "a node needs approver users or roles, or auto_approve",
        ));
    }
    if node
        .approver_users
        .iter()
        .chain(&node.approver_roles)
        .any(|v| v.trim().is_empty())
    {
        return Err(ApprovalError::invalid(
            field("approver_users"),
            "approvers must not be empty strings",
        ));
    }
    if let ApprovalMode::Quorum(quorum) = node.mode {
        if quorum == 0 {
            return Err(ApprovalError::invalid(
                field("quorum"),
                "must be at least 1",
            ));
        }
        let named = u32::try_from(users.len()).unwrap_or(u32::MAX);
        if node.approver_roles.is_empty() && quorum > named {
            return Err(ApprovalError::invalid(
                field("quorum"),
                format!("{quorum} is larger than the {named} named users"),
            ));
        }
    }
    Ok(())
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
pub fn glob_matches(glob: &str, value: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = value.chars().collect();
    // Iterative matching with backtracking to the last `*`: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `rule` matches a request: AND across fields, OR within one, empty = any.
pub fn rule_matches(
    rule: &MatchRule,
    request_type: &str,
    attributes: &MatchAttributes,
    requester_roles: &[String],
) -> bool {
    let any_or_contains = |values: &[String], wanted: &str| {
        values.is_empty() || values.iter().any(|value| value == wanted)
    };
    any_or_contains(&rule.request_types, request_type)
        && any_or_contains(&rule.connection_ids, &attributes.connection_id)
        && any_or_contains(&rule.environments, &attributes.environment)
        && (rule.database_globs.is_empty()
            || rule
                .database_globs
                .iter()
                .any(|glob| glob_matches(glob, &attributes.database)))
        && (rule.requester_roles.is_empty()
            || rule
                .requester_roles
                .iter()
                .any(|role| requester_roles.contains(role)))
}

/// 1-based rank of each template in `order` followed by the builtin, with its AMQP priority.
pub fn ranked<'a>(order: &[String], templates: &'a [Template]) -> Vec<(u32, u32, &'a Template)> {
    let by_id = |id: &String| templates.iter().find(|t| &t.id == id && !t.builtin);
    let builtin = templates.iter().filter(|t| t.builtin);
    order
        .iter()
        .filter_map(by_id)
        .chain(builtin)
        .enumerate()
        .map(|(index, template)| {
            let rank = u32::try_from(index + 1).unwrap_or(u32::MAX);
            (rank, u32::from(names::execution_priority(rank)), template)
        })
        .collect()
}

/// The first enabled template in priority order whose rule matches, frozen as a snapshot. The
/// builtin fallback matches anything, so there is always a match once it is seeded.
pub fn select(
    order: &[String],
    templates: &[Template],
    request_type: &str,
    attributes: &MatchAttributes,
    requester_roles: &[String],
) -> Option<TemplateSnapshot> {
    ranked(order, templates)
        .into_iter()
        .find(|(_, _, template)| {
            template.enabled
                && (template.builtin
                    || rule_matches(
                        &template.definition.match_rule,
                        request_type,
                        attributes,
                        requester_roles,
                    ))
        })
        .map(|(rank, execution_priority, template)| TemplateSnapshot {
            template_id: template.id.clone(),
            template_version: template.version,
            name: template.name.clone(),
            rank,
            execution_priority,
            definition: template.definition.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_star_and_question_mark() {
        let cases = [
            ("orders_*", "orders_2024", true),
            ("orders_*", "orders_", true),
            ("orders_*", "order", false),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*_prod", "shop_prod", true),
            ("*_prod", "shop_prod2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("shop", "shop", true),
            ("shop", "Shop", false),
        ];
        for (glob, value, expected) in cases {
            assert_eq!(glob_matches(glob, value), expected, "{glob} vs {value}");
        }
    }

    #[test]
    fn rules_and_across_fields_or_within() {
        let rule = MatchRule {
            request_types: vec!["shadow_table_sync".into()],
            environments: vec!["prod".into(), "staging".into()],
            database_globs: vec!["orders_*".into()],
            ..MatchRule::default()
        };
        let attributes = MatchAttributes {
            connection_id: "c1".into(),
            environment: "staging".into(),
            database: "orders_eu".into(),
            ..MatchAttributes::default()
        };
        assert!(rule_matches(&rule, "shadow_table_sync", &attributes, &[]));
        assert!(!rule_matches(
            &rule,
            "feature_flag_change",
            &attributes,
            &[]
        ));
        let dev = MatchAttributes {
            environment: "dev".into(),
            ..attributes.clone()
        };
        assert!(!rule_matches(&rule, "shadow_table_sync", &dev, &[]));
        let roles_rule = MatchRule {
            requester_roles: vec!["contractor".into(), "intern".into()],
            ..MatchRule::default()
        };
        assert!(rule_matches(
            &roles_rule,
            "x",
            &attributes,
            &["intern".into()]
        ));
        assert!(!rule_matches(
            &roles_rule,
            "x",
            &attributes,
            &["dev".into()]
        ));
        assert!(rule_matches(&MatchRule::default(), "x", &attributes, &[]));
    }

    #[test]
    fn validation_names_the_field() {
        let mut definition = builtin_definition();
        assert!(validate("ok", &definition).is_ok());
        assert!(validate(" ", &definition).is_err());
        definition.nodes[0].approver_roles.clear();
        let error = validate("x", &definition).expect_err("no approvers");
        assert!(
            error
                .to_string()
                .contains("template.nodes[0].approver_users")
        );
        definition.nodes[0].auto_approve = true;
        assert!(validate("x", &definition).is_ok());
        definition.nodes[0] = TemplateNode {
            name: "q".into(),
            approver_users: vec!["a".into(), "b".into()],
            approver_roles: vec![],
            mode: ApprovalMode::Quorum(3),
            auto_approve: false,
        };
        let error = validate("x", &definition).expect_err("quorum");
        assert!(error.to_string().contains("quorum"));
        definition.nodes.clear();
        assert!(validate("x", &definition).is_err());
    }

    #[test]
    fn request_types_are_routing_key_words() {
        assert!(is_valid_request_type("feature_flag_change"));
        assert!(!is_valid_request_type("Feature"));
        assert!(!is_valid_request_type("a.b"));
        assert!(!is_valid_request_type(""));
        assert!(!is_valid_request_type(&"a".repeat(65)));
    }
}
