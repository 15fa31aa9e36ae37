//! The canonical proto3 JSON mapping of every shadowsync message (feature `json`), through the
//! descriptor set rather than serde derives, so the generated types stay plain prost types.
//!
//! `shadowctl --output json` prints responses with [`to_json`]; template files (JSON, or YAML
//! read into a [`serde_json::Value`]) are parsed with [`from_json`], which accepts both
//! `lowerCamelCase` and `snake_case` field names, enum value names, RFC 3339 timestamps and
//! durations such as `"86400s"`.

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::FILE_DESCRIPTOR_SET;

/// Why a message could not be converted.
#[derive(Debug)]
pub enum JsonError {
    /// The embedded descriptor set is unusable (a build problem, never user input).
    Descriptor(String),
    /// The message type is not a shadowsync message.
    UnknownType(String),
    /// The JSON does not match the message (unknown field, wrong type, bad enum name, …).
    Invalid(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Descriptor(message) => write!(f, "invalid descriptor set: {message}"),
            Self::UnknownType(name) => write!(f, "unknown message type {name}"),
            Self::Invalid(message) => write!(f, "invalid JSON: {message}"),
        }
    }
}

impl std::error::Error for JsonError {}

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|error| error.to_string())
});

fn descriptor<M: Name>() -> Result<MessageDescriptor, JsonError> {
    let pool = POOL
        .as_ref()
        .map_err(|error| JsonError::Descriptor(error.clone()))?;
    let name = M::full_name();
    pool.get_message_by_name(&name)
        .ok_or(JsonError::UnknownType(name))
}

/// `message` as canonical proto3 JSON: `lowerCamelCase` names, enums by name, 64-bit integers as
/// strings, default values omitted.
pub fn to_json<M: Message + Name>(message: &M) -> Result<serde_json::Value, JsonError> {
    let dynamic = DynamicMessage::decode(descriptor::<M>()?, message.encode_to_vec().as_slice())
        .map_err(|error| JsonError::Descriptor(error.to_string()))?;
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|error| JsonError::Invalid(error.to_string()))
}

/// Parses proto3 JSON into `M`. Unknown fields are an error (a typo in a template file must not
/// be silently ignored).
pub fn from_json<M: Message + Name + Default>(value: serde_json::Value) -> Result<M, JsonError> {
    let dynamic = DynamicMessage::deserialize(descriptor::<M>()?, value)
        .map_err(|error| JsonError::Invalid(error.to_string()))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|error| JsonError::Invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::v1::{ApprovalMode, Expirations, MatchRule, Template, TemplateNode};

    #[test]
    fn a_template_file_parses_and_round_trips() {
        let file = serde_json::json!({
            "name": "prod DDL",
            "enabled": true,
            "match_rule": { "request_types": ["shadow_table_sync"], "environments": ["prod"] },
            "nodes": [
                { "name": "DBA", "approverRoles": ["dba"], "mode": "APPROVAL_MODE_QUORUM", "quorum": 2 },
                { "name": "auto", "autoApprove": true }
            ],
            "expirations": { "approval": "3600s" }
        });
        let template: Template = from_json(file).expect("parses");
        assert_eq!(template.name, "prod DDL");
        assert_eq!(
            template.match_rule,
            Some(MatchRule {
                request_types: vec!["shadow_table_sync".into()],
                environments: vec!["prod".into()],
                ..Default::default()
            })
        );
        assert_eq!(
            template.nodes[0],
            TemplateNode {
                name: "DBA".into(),
                approver_roles: vec!["dba".into()],
                mode: ApprovalMode::Quorum as i32,
                quorum: 2,
                ..Default::default()
            }
        );
        assert!(template.nodes[1].auto_approve);
        assert_eq!(
            template.expirations,
            Some(Expirations {
                approval: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0
                }),
                ..Default::default()
            })
        );

        let json = to_json(&template).expect("serializes");
        assert_eq!(json["nodes"][0]["mode"], "APPROVAL_MODE_QUORUM");
        assert_eq!(json["expirations"]["approval"], "3600s");
        assert_eq!(from_json::<Template>(json).expect("parses back"), template);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = from_json::<Template>(serde_json::json!({ "nmae": "typo" }))
            .expect_err("unknown field");
        assert!(error.to_string().contains("nmae"), "{error}");
    }
}
