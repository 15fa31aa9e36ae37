//! Contract tests: the buf-style conventions of `proto/README.md`, checked on the compiled
//! descriptor sets, plus wire round trips of the queue messages and the UNIMPLEMENTED default
//! stubs through a real tonic server.

use std::collections::{BTreeSet, HashMap};

use prost::{Message, Name};
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::Type,
};
use shadowsync_proto as proto;

fn decode(bytes: &[u8]) -> FileDescriptorSet {
    FileDescriptorSet::decode(bytes).expect("descriptor set decodes")
}

/// The shadowsync files of the full set (the well-known types are not ours to lint).
fn own_files() -> Vec<FileDescriptorProto> {
    decode(proto::FILE_DESCRIPTOR_SET)
        .file
        .into_iter()
        .filter(|file| file.package().starts_with("shadowsync."))
        .collect()
}

/// Every message of the full set by fully-qualified name (`.pkg.Outer.Inner`).
fn messages() -> HashMap<String, DescriptorProto> {
    fn add(prefix: &str, message: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            add(&name, nested, out);
        }
        out.insert(name, message.clone());
    }
    let mut out = HashMap::new();
    for file in decode(proto::FILE_DESCRIPTOR_SET).file {
        for message in &file.message_type {
            add(&format!(".{}", file.package()), message, &mut out);
        }
    }
    out
}

fn services() -> Vec<(String, prost_types::ServiceDescriptorProto)> {
    own_files()
        .into_iter()
        .flat_map(|file| {
            let package = file.package().to_owned();
            file.service
                .into_iter()
                .map(move |service| (format!("{package}.{}", service.name()), service))
        })
        .collect()
}

fn service_names(set: &FileDescriptorSet) -> BTreeSet<String> {
    set.file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .collect()
}

#[test]
fn descriptor_set_contains_every_service() {
    let names = service_names(&decode(proto::FILE_DESCRIPTOR_SET));
    let expected: BTreeSet<String> = proto::SERVICE_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected);
}

#[test]
fn package_sets_hold_their_services_and_every_import() {
    let cases = [
        (proto::COMMON_FILE_DESCRIPTOR_SET, vec![]),
        (
            proto::TASK_FILE_DESCRIPTOR_SET,
            vec![proto::TASK_SERVICE, proto::TASK_EXECUTION_SERVICE],
        ),
        (
            proto::APPROVAL_FILE_DESCRIPTOR_SET,
            vec![proto::APPROVAL_SERVICE],
        ),
        (
            proto::ANALYSIS_FILE_DESCRIPTOR_SET,
            vec![proto::ANALYSIS_SERVICE],
        ),
    ];
    for (bytes, expected) in cases {
        let set = decode(bytes);
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(service_names(&set), expected);
        let present: BTreeSet<&str> = set.file.iter().map(|file| file.name()).collect();
        for file in &set.file {
            for dependency in &file.dependency {
                assert!(
                    present.contains(dependency.as_str()),
                    "{} imports {dependency}, missing from its package set",
                    file.name()
                );
            }
        }
    }
}

#[test]
fn reflection_accepts_every_set() {
    for bytes in [
        proto::FILE_DESCRIPTOR_SET,
        proto::COMMON_FILE_DESCRIPTOR_SET,
        proto::TASK_FILE_DESCRIPTOR_SET,
        proto::APPROVAL_FILE_DESCRIPTOR_SET,
        proto::ANALYSIS_FILE_DESCRIPTOR_SET,
    ] {
        let builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(bytes)
                // Several sets share files (common, well-known types): duplicates are fine.
                .register_encoded_file_descriptor_set(proto::COMMON_FILE_DESCRIPTOR_SET)
        };
        builder().build_v1().expect("reflection v1 accepts the set");
        builder()
            .build_v1alpha()
            .expect("reflection v1alpha accepts the set");
    }
}

#[test]
fn one_versioned_package_per_directory() {
    for file in own_files() {
        let directory = file
            .name()
            .rsplit_once('/')
            .map(|(dir, _)| dir)
            .unwrap_or("");
        assert_eq!(
            directory.replace('/', "."),
            file.package(),
            "{} is not in its package's directory",
            file.name()
        );
        assert!(
            file.package().ends_with(".v1"),
            "{} is not versioned",
            file.package()
        );
        assert_eq!(file.syntax(), "proto3", "{}", file.name());
    }
}

fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    for (index, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn all_enums() -> Vec<(String, EnumDescriptorProto)> {
    fn from_message(
        prefix: &str,
        message: &DescriptorProto,
        out: &mut Vec<(String, EnumDescriptorProto)>,
    ) {
        let name = format!("{prefix}.{}", message.name());
        out.extend(
            message
                .enum_type
                .iter()
                .map(|e| (format!("{name}.{}", e.name()), e.clone())),
        );
        for nested in &message.nested_type {
            from_message(&name, nested, out);
        }
    }
    let mut out = Vec::new();
    for file in own_files() {
        out.extend(
            file.enum_type
                .iter()
                .map(|e| (format!("{}.{}", file.package(), e.name()), e.clone())),
        );
        for message in &file.message_type {
            from_message(file.package(), message, &mut out);
        }
    }
    out
}

#[test]
fn every_enum_has_a_prefixed_unspecified_zero_value() {
    let enums = all_enums();
    assert!(enums.len() > 20, "found only {} enums", enums.len());
    for (name, descriptor) in enums {
        let prefix = format!("{}_", screaming_snake(descriptor.name()));
        let zero = descriptor
            .value
            .iter()
            .find(|value| value.number() == 0)
            .unwrap_or_else(|| panic!("{name} has no zero value"));
        assert_eq!(
            zero.name(),
            format!("{prefix}UNSPECIFIED"),
            "zero value of {name}"
        );
        for value in &descriptor.value {
            assert!(
                value.name().starts_with(&prefix),
                "{name}: value {} lacks the prefix {prefix}",
                value.name()
            );
        }
    }
}

#[test]
fn every_rpc_is_verb_noun_with_its_own_request_and_response() {
    for (service, descriptor) in services() {
        let package = service.rsplit_once('.').map(|(pkg, _)| pkg).unwrap_or("");
        assert!(descriptor.name().ends_with("Service"), "{service}");
        for method in &descriptor.method {
            let rpc = method.name();
            assert!(
                rpc.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
                "{service}.{rpc} is not UpperCamelCase"
            );
            assert_eq!(
                method.input_type(),
                format!(".{package}.{rpc}Request"),
                "{service}.{rpc}"
            );
            assert_eq!(
                method.output_type(),
                format!(".{package}.{rpc}Response"),
                "{service}.{rpc}"
            );
            assert!(
                !method.client_streaming(),
                "{service}.{rpc}: client streaming is not used by this API"
            );
        }
    }
}

/// Field names of a message (by fully-qualified name).
fn field_names(messages: &HashMap<String, DescriptorProto>, name: &str) -> BTreeSet<String> {
    messages
        .get(name)
        .unwrap_or_else(|| panic!("{name} not found"))
        .field
        .iter()
        .map(|field| field.name().to_owned())
        .collect()
}

/// List calls whose result is small and bounded by nature, so they do not page.
const UNPAGED_LISTS: &[&str] = &["ListDatabases"];

#[test]
fn list_rpcs_page_with_tokens_and_total_size() {
    let messages = messages();
    let mut checked = 0;
    for (service, descriptor) in services() {
        let package = service.rsplit_once('.').map(|(pkg, _)| pkg).unwrap_or("");
        for method in &descriptor.method {
            let rpc = method.name();
            if !rpc.starts_with("List") || UNPAGED_LISTS.contains(&rpc) {
                continue;
            }
            checked += 1;
            let request = field_names(&messages, &format!(".{package}.{rpc}Request"));
            let response = field_names(&messages, &format!(".{package}.{rpc}Response"));
            for field in ["page_size", "page_token"] {
                assert!(
                    request.contains(field),
                    "{service}.{rpc}Request lacks {field}"
                );
            }
            for field in ["next_page_token", "total_size"] {
                assert!(
                    response.contains(field),
                    "{service}.{rpc}Response lacks {field}"
                );
            }
        }
    }
    assert!(checked >= 10, "only {checked} list rpcs checked");
}

/// Verbs of mutating calls that clients retry; their requests must carry `request_id`.
const RETRIED_VERBS: &[&str] = &[
    "Create", "Update", "Start", "Submit", "Abort", "Initiate", "Approve", "Reject", "Cancel",
    "Apply", "Grant",
];

#[test]
fn retried_mutations_take_a_request_id() {
    let messages = messages();
    for (service, descriptor) in services() {
        let package = service.rsplit_once('.').map(|(pkg, _)| pkg).unwrap_or("");
        for method in &descriptor.method {
            let rpc = method.name();
            if RETRIED_VERBS.iter().any(|verb| rpc.starts_with(verb)) {
                let request = field_names(&messages, &format!(".{package}.{rpc}Request"));
                assert!(
                    request.contains("request_id"),
                    "{service}.{rpc}Request lacks request_id"
                );
            }
        }
    }
}

#[test]
fn times_are_well_known_types() {
    for (name, message) in messages() {
        if !name.starts_with(".shadowsync.") {
            continue;
        }
        for field in &message.field {
            let field_name = field.name();
            if field_name.ends_with("_time")
                || field_name.contains("_time_")
                || field_name.ends_with("deadline")
            {
                assert_eq!(
                    field.type_name(),
                    ".google.protobuf.Timestamp",
                    "{name}.{field_name} should be a Timestamp"
                );
            }
            if [
                "duration",
                "latency",
                "interval",
                "approval",
                "execution",
                "wait_for_execution",
            ]
            .iter()
            .any(|suffix| field_name.ends_with(suffix))
                && field.r#type() == Type::Message
                && field.type_name().starts_with(".google.")
            {
                assert_eq!(
                    field.type_name(),
                    ".google.protobuf.Duration",
                    "{name}.{field_name}"
                );
            }
        }
    }
}

/// Every message type reachable from `root` through its fields.
fn reachable(messages: &HashMap<String, DescriptorProto>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(message) = messages.get(&name) {
            for field in &message.field {
                if field.r#type() == Type::Message {
                    stack.push(field.type_name().to_owned());
                }
            }
        }
    }
    seen
}

/// Messages that contain a `password` field (`password_set` flags are fine).
fn messages_with_password(messages: &HashMap<String, DescriptorProto>) -> BTreeSet<String> {
    messages
        .iter()
        .filter(|(_, message)| message.field.iter().any(|field| field.name() == "password"))
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn passwords_are_write_only_in_public_services_and_absent_from_queue_messages() {
    let messages = messages();
    let secret = messages_with_password(&messages);
    assert_eq!(
        secret,
        [
            ".shadowsync.common.v1.ConnectionDetails",
            ".shadowsync.task.v1.ConnectionSpec",
            ".shadowsync.task.v1.UpdateConnectionRequest",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "a new message carries a password: review it and update this test deliberately"
    );

    // No response of a public service reaches a password.
    for (service, descriptor) in services() {
        if service != proto::TASK_SERVICE && service != proto::APPROVAL_SERVICE {
            continue;
        }
        for method in &descriptor.method {
            let leaked: Vec<_> = reachable(&messages, method.output_type())
                .intersection(&secret)
                .cloned()
                .collect();
            assert!(
                leaked.is_empty(),
                "{service}.{} returns {leaked:?}",
                method.name()
            );
        }
    }

    // Credentials never travel on the queue.
    for event in [
        proto::common::v1::ExecuteTask::full_name(),
        proto::common::v1::ExecutionDispatched::full_name(),
        proto::task::v1::TaskEvent::full_name(),
        proto::approval::v1::ApprovalEvent::full_name(),
        proto::approval::v1::PermissionEvent::full_name(),
    ] {
        let leaked: Vec<_> = reachable(&messages, &format!(".{event}"))
            .intersection(&secret)
            .cloned()
            .collect();
        assert!(leaked.is_empty(), "{event} carries {leaked:?}");
    }

    // The only response carrying connection details is the executor's claim.
    let details = ".shadowsync.common.v1.ConnectionDetails".to_owned();
    for (service, descriptor) in services() {
        for method in &descriptor.method {
            if reachable(&messages, method.output_type()).contains(&details) {
                assert_eq!(
                    format!("{service}.{}", method.name()),
                    "shadowsync.task.v1.TaskExecutionService.ClaimExecution"
                );
            }
        }
    }
}

/// Leading comment of the element at `path` (see `descriptor.proto` for the path numbering).
fn comment<'a>(locations: &'a [Location], path: &[i32]) -> Option<&'a str> {
    locations
        .iter()
        .find(|location| location.path == path)
        .and_then(|location| location.leading_comments.as_deref())
        .filter(|text| !text.trim().is_empty())
}

#[test]
fn every_service_rpc_message_and_enum_is_documented() {
    const MESSAGE_TYPE: i32 = 4;
    const ENUM_TYPE: i32 = 5;
    const SERVICE: i32 = 6;
    const METHOD: i32 = 2;
    let mut missing = Vec::new();
    for file in own_files() {
        let locations = file
            .source_code_info
            .as_ref()
            .map(|info| info.location.as_slice())
            .unwrap_or_default();
        for (index, message) in file.message_type.iter().enumerate() {
            if comment(locations, &[MESSAGE_TYPE, index as i32]).is_none() {
                missing.push(format!("message {}", message.name()));
            }
        }
        for (index, enumeration) in file.enum_type.iter().enumerate() {
            if comment(locations, &[ENUM_TYPE, index as i32]).is_none() {
                missing.push(format!("enum {}", enumeration.name()));
            }
        }
        for (index, service) in file.service.iter().enumerate() {
            if comment(locations, &[SERVICE, index as i32]).is_none() {
                missing.push(format!("service {}", service.name()));
            }
            for (method_index, method) in service.method.iter().enumerate() {
                let path = [SERVICE, index as i32, METHOD, method_index as i32];
                if comment(locations, &path).is_none() {
                    missing.push(format!("rpc {}.{}", service.name(), method.name()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:#?}");
}

#[test]
fn queue_messages_round_trip_and_name_themselves() {
    use proto::common::v1::ExecuteTask;
    let message = ExecuteTask {
        task_id: 42,
        attempt: 2,
        priority: 9,
        dispatch_time: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 5,
        }),
    };
    let bytes = message.encode_to_vec();
    assert_eq!(
        ExecuteTask::decode(bytes.as_slice()).expect("decodes"),
        message
    );
    // The AMQP `type` property is the full name.
    assert_eq!(ExecuteTask::full_name(), "shadowsync.common.v1.ExecuteTask");

    use proto::approval::v1::{ApprovalEvent, ApprovalEventType, ApprovalStatus, NodeCandidates};
    let event = ApprovalEvent {
        event_id: "0193f3c4-0000-7000-8000-000000000001".into(),
        r#type: ApprovalEventType::Requested as i32,
        approval_id: "a-1".into(),
        request_type: proto::names::REQUEST_TYPE_SHADOW_TABLE_SYNC.into(),
        status: ApprovalStatus::Pending as i32,
        priority: 10,
        current: Some(NodeCandidates {
            node_index: 0,
            node_name: "DBA review".into(),
            users: vec!["bob".into()],
            roles: vec!["dba".into()],
            deadline: None,
        }),
        ..Default::default()
    };
    let decoded = ApprovalEvent::decode(event.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, event);
    assert_eq!(
        proto::routing::approval_event(decoded.r#type(), &decoded.request_type).as_deref(),
        Some("approval.requested.shadow_table_sync")
    );
}

mod default_stubs {
    use super::proto::task::v1::task_service_client::TaskServiceClient;
    use super::proto::task::v1::task_service_server::{TaskService, TaskServiceServer};
    use super::proto::task::v1::{DownloadTaskLogsRequest, GetTaskRequest};
    use tokio_stream::wrappers::TcpListenerStream;

    /// A server that implements nothing yet.
    struct NothingYet;

    impl TaskService for NothingYet {}

    #[tokio::test]
    async fn unimplemented_rpcs_answer_unimplemented() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TaskServiceServer::new(NothingYet))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );

        let mut client = TaskServiceClient::connect(format!("http://{address}"))
            .await
            .expect("connect");
        let status = client
            .get_task(GetTaskRequest { task_id: 1 })
            .await
            .expect_err("not implemented");
        assert_eq!(status.code(), tonic::Code::Unimplemented);

        let status = client
            .download_task_logs(DownloadTaskLogsRequest {
                task_id: 1,
                ..Default::default()
            })
            .await
            .expect_err("not implemented");
        assert_eq!(status.code(), tonic::Code::Unimplemented);

        server.abort();
    }
}
