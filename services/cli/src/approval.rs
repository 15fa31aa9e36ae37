//! `shadowctl approval list|show|approve|reject|cancel`: approval requests of every type.

use std::io::Write;
use std::process::ExitCode;

use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::approval::v1::get_approval_request::Key;
use shadowsync_proto::approval::v1::{
    Approval, ApprovalScope, ApprovalStatus, ApproveRequest, CancelApprovalRequest,
    GetApprovalRequest, GetApprovalResponse, ListApprovalsRequest, ListApprovalsResponse,
    RejectRequest,
};

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, local_time, proto_json, request_id};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ApprovalCommand {
    /// List approval requests (newest first).
    #[command(after_help = "\
Examples:
  shadowctl approval list --pending
  shadowctl approval list --mine --status approved,rejected")]
    List {
        /// Only requests waiting for my decision.
        #[arg(long, conflicts_with = "mine")]
        pending: bool,
        /// Only requests I submitted.
        #[arg(long)]
        mine: bool,
        /// Only these statuses (pending, approved, rejected, cancelled, expired).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only these request types (e.g. shadow_table_sync).
        #[arg(long = "type", value_delimiter = ',')]
        request_type: Vec<String>,
    },
    /// Show one approval request with its nodes and decisions.
    #[command(after_help = "\
Example:
  shadowctl approval show 0c6f3e1a-8d2b-4f57-b9e4-7a1c5d3e9f20")]
    Show {
        /// The approval request's id.
        #[arg(value_name = "APPROVAL")]
        id: String,
    },
    /// Approve at the current node.
    #[command(after_help = "\
Example:
  shadowctl approval approve 0c6f3e1a-8d2b-4f57-b9e4-7a1c5d3e9f20 --comment 'checked the plan'")]
    Approve {
        /// The approval request's id.
        #[arg(value_name = "APPROVAL")]
        id: String,
        /// Why (recorded with the decision).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject the request.
    #[command(after_help = "\
Example:
  shadowctl approval reject 0c6f3e1a-8d2b-4f57-b9e4-7a1c5d3e9f20 --comment 'not during the freeze'")]
    Reject {
        /// The approval request's id.
        #[arg(value_name = "APPROVAL")]
        id: String,
        /// Why (recorded with the decision).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Cancel a pending request (its requester, an admin, or the owning service).
    #[command(after_help = "\
Example:
  shadowctl approval cancel 0c6f3e1a-8d2b-4f57-b9e4-7a1c5d3e9f20 --reason 'submitted by mistake'")]
    Cancel {
        /// The approval request's id.
        #[arg(value_name = "APPROVAL")]
        id: String,
        /// Why (recorded with the request).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// `pending` → `APPROVAL_STATUS_PENDING`.
fn parse_status(text: &str) -> Result<i32, CliError> {
    let name = format!("APPROVAL_STATUS_{}", text.trim().to_uppercase());
    ApprovalStatus::from_str_name(&name)
        .map(|s| s as i32)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--status: unknown status {text:?}; expected pending, approved, rejected, \
                 cancelled or expired"
            ))
        })
}

pub async fn run(
    client_args: &ClientArgs,
    command: &ApprovalCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = ApprovalServiceClient::new(client_args.authenticated()?);
    let approval = match command {
        ApprovalCommand::List {
            pending,
            mine,
            status,
            request_type,
        } => {
            let scope = if *pending {
                ApprovalScope::PendingForMe
            } else if *mine {
                ApprovalScope::SubmittedByMe
            } else {
                ApprovalScope::Unspecified
            };
            let statuses = status
                .iter()
                .map(|s| parse_status(s))
                .collect::<Result<Vec<_>, _>>()?;
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_approvals(ListApprovalsRequest {
                        scope: scope as i32,
                        statuses: statuses.clone(),
                        request_types: request_type.clone(),
                        page_size: 500,
                        page_token: page_token.clone(),
                    })
                    .await?
                    .into_inner();
                all.extend(page.approvals);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            show_list(out, format, &all)?;
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalCommand::Show { id } => {
            client
                .get_approval(GetApprovalRequest {
                    key: Some(Key::ApprovalId(id.clone())),
                })
                .await?
                .into_inner()
                .approval
        }
        ApprovalCommand::Approve { id, comment } => {
            client
                .approve(ApproveRequest {
                    approval_id: id.clone(),
                    comment: comment.clone(),
                    expected_node_index: None,
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .approval
        }
        ApprovalCommand::Reject { id, comment } => {
            client
                .reject(RejectRequest {
                    approval_id: id.clone(),
                    comment: comment.clone(),
                    expected_node_index: None,
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .approval
        }
        ApprovalCommand::Cancel { id, reason } => {
            client
                .cancel_approval(CancelApprovalRequest {
                    approval_id: id.clone(),
                    reason: reason.clone(),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .approval
        }
    };
    let approval = approval.unwrap_or_default();
    match format {
        OutputFormat::Json => output::json(
            out,
            &proto_json(&GetApprovalResponse {
                approval: Some(approval),
            })?,
        )?,
        OutputFormat::Table => show_one(out, &approval)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn status_name(status: i32) -> String {
    ApprovalStatus::try_from(status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_default()
}

fn show_list(
    out: &mut dyn Write,
    format: OutputFormat,
    approvals: &[Approval],
) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        let response = ListApprovalsResponse {
            approvals: approvals.to_vec(),
            next_page_token: String::new(),
            total_size: i32::try_from(approvals.len()).unwrap_or(i32::MAX),
        };
        return output::json(out, &proto_json(&response)?);
    }
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            let resource = a
                .resource
                .as_ref()
                .map(|r| format!("{}/{}", r.r#type, r.id))
                .unwrap_or_default();
            let waiting = a
                .current
                .as_ref()
                .map(|c| {
                    [
                        c.users.join(","),
                        c.roles
                            .iter()
                            .map(|r| format!("role:{r}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
                })
                .unwrap_or_default();
            vec![
                a.id.clone(),
                a.request_type.clone(),
                resource,
                status_name(a.status),
                a.requester
                    .as_ref()
                    .map(|r| r.subject.clone())
                    .unwrap_or_default(),
                waiting,
                a.create_time.map(local_time).unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "ID",
            "TYPE",
            "RESOURCE",
            "STATUS",
            "REQUESTER",
            "WAITING FOR",
            "CREATED",
        ],
        &rows,
    )
}

fn show_one(out: &mut dyn Write, approval: &Approval) -> Result<(), CliError> {
    show_list(out, OutputFormat::Table, std::slice::from_ref(approval))?;
    if approval.decisions.is_empty() {
        return Ok(());
    }
    output::write_all(out, b"\n")?;
    let rows: Vec<Vec<String>> = approval
        .decisions
        .iter()
        .map(|d| {
            vec![
                // People count nodes from 1; the API's index is 0-based.
                (u64::from(d.node_index) + 1).to_string(),
                d.actor
                    .as_ref()
                    .map(|a| a.subject.clone())
                    .unwrap_or_default(),
                shadowsync_proto::approval::v1::DecisionOutcome::try_from(d.outcome)
                    .map(|o| o.as_str_name().to_string())
                    .unwrap_or_default(),
                d.comment.clone(),
                d.time.map(local_time).unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        out,
        &["NODE", "APPROVER", "DECISION", "COMMENT", "TIME"],
        &rows,
    )
}
