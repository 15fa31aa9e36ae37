//! `shadowctl permission apply|list|grant|revoke`: who may create shadow-table sync tasks on
//! which connection (and database).

use std::io::Write;
use std::process::ExitCode;

use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::approval::v1::{
    ApplyPermissionRequest, ApplyPermissionResponse, GrantPermissionRequest,
    GrantPermissionResponse, ListPermissionsRequest, ListPermissionsResponse, Permission,
    PermissionStatus, RevokePermissionRequest,
};
use shadowsync_proto::names::REQUEST_TYPE_SHADOW_TABLE_SYNC;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, local_time, proto_json, request_id};
use crate::when::parse_duration;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum PermissionCommand {
    /// Apply for permission (an approval request of type permission_apply).
    #[command(after_help = "\
Example:
  shadowctl permission apply --connection prod-orders --database shop --duration 7d \\
    --reason 'load test of the new checkout'")]
    Apply {
        #[command(flatten)]
        scope: Scope,
        /// Why you need it (shown to approvers).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List permissions (yours, or anyone's for admins).
    #[command(after_help = "\
Examples:
  shadowctl permission list
  shadowctl permission list --user bob --all")]
    List {
        /// Only this user's permissions (admins; others see their own).
        #[arg(long)]
        user: Option<String>,
        /// Include expired and revoked grants.
        #[arg(long)]
        all: bool,
    },
    /// Grant a permission directly (admin only).
    #[command(after_help = "\
Example:
  shadowctl permission grant --user bob --connection prod-orders --database shop --duration 30d")]
    Grant {
        /// Who receives the permission.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        scope: Scope,
        /// Why (recorded with the grant).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Revoke a permission (admin only).
    #[command(after_help = "\
Example:
  shadowctl permission revoke 7d2e9c41-5a3b-4e8f-9c10-2b6a8d4f1e37 --reason 'project ended'")]
    Revoke {
        /// The permission's id (`permission list` shows it).
        #[arg(value_name = "PERMISSION")]
        id: String,
        /// Why (recorded with the revocation).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Scope {
    /// Connection name or id.
    #[arg(long)]
    pub connection: String,
    /// Limit to one database.
    #[arg(long)]
    pub database: Option<String>,
    /// How long the permission lasts (e.g. 7d); forever when omitted.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
}

fn duration(scope: &Scope) -> Option<prost_types::Duration> {
    scope.duration.map(|d| prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    })
}

/// A connection name resolved to its id through the task service; anything else is taken as an
/// id.
async fn connection_id(client_args: &ClientArgs, name_or_id: &str) -> Result<String, CliError> {
    let mut tasks = TaskServiceClient::new(client_args.authenticated()?);
    match crate::connection::resolve(&mut tasks, name_or_id).await {
        Ok(connection) => Ok(connection.id),
        Err(_) => Ok(name_or_id.to_string()),
    }
}

pub async fn run(
    client_args: &ClientArgs,
    command: &PermissionCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = ApprovalServiceClient::new(client_args.authenticated()?);
    let permissions = match command {
        PermissionCommand::Apply { scope, reason } => {
            let approval = client
                .apply_permission(ApplyPermissionRequest {
                    task_type: REQUEST_TYPE_SHADOW_TABLE_SYNC.to_string(),
                    connection_id: connection_id(client_args, &scope.connection).await?,
                    database: scope.database.clone().unwrap_or_default(),
                    reason: reason.clone(),
                    duration: duration(scope),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .approval
                .unwrap_or_default();
            match format {
                OutputFormat::Json => output::json(
                    out,
                    &proto_json(&ApplyPermissionResponse {
                        approval: Some(approval),
                    })?,
                )?,
                OutputFormat::Table => output::write_all(
                    out,
                    format!(
                        "applied: approval {} is waiting for a decision\n",
                        approval.id
                    )
                    .as_bytes(),
                )?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        PermissionCommand::List { user, all } => {
            let mut found = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_permissions(ListPermissionsRequest {
                        user: user.clone().unwrap_or_default(),
                        connection_id: String::new(),
                        task_type: String::new(),
                        include_inactive: *all,
                        page_size: 500,
                        page_token: page_token.clone(),
                    })
                    .await?
                    .into_inner();
                found.extend(page.permissions);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            found
        }
        PermissionCommand::Grant {
            user,
            scope,
            reason,
        } => vec![
            client
                .grant_permission(GrantPermissionRequest {
                    user: user.clone(),
                    task_type: REQUEST_TYPE_SHADOW_TABLE_SYNC.to_string(),
                    connection_id: connection_id(client_args, &scope.connection).await?,
                    database: scope.database.clone().unwrap_or_default(),
                    reason: reason.clone(),
                    duration: duration(scope),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .permission
                .unwrap_or_default(),
        ],
        PermissionCommand::Revoke { id, reason } => vec![
            client
                .revoke_permission(RevokePermissionRequest {
                    permission_id: id.clone(),
                    reason: reason.clone(),
                })
                .await?
                .into_inner()
                .permission
                .unwrap_or_default(),
        ],
    };
    let single = matches!(
        command,
        PermissionCommand::Grant { .. } | PermissionCommand::Revoke { .. }
    );
    show(out, format, &permissions, single)?;
    Ok(ExitCode::SUCCESS)
}

fn show(
    out: &mut dyn Write,
    format: OutputFormat,
    permissions: &[Permission],
    single: bool,
) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        // One permission changed is its Grant/Revoke response; a listing is ListPermissions'.
        return if let (true, [permission]) = (single, permissions) {
            output::json(
                out,
                &proto_json(&GrantPermissionResponse {
                    permission: Some(permission.clone()),
                })?,
            )
        } else {
            output::json(
                out,
                &proto_json(&ListPermissionsResponse {
                    permissions: permissions.to_vec(),
                    next_page_token: String::new(),
                    total_size: i32::try_from(permissions.len()).unwrap_or(i32::MAX),
                })?,
            )
        };
    }
    let rows: Vec<Vec<String>> = permissions
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.user.clone(),
                p.connection_id.clone(),
                if p.database.is_empty() {
                    "*".into()
                } else {
                    p.database.clone()
                },
                PermissionStatus::try_from(p.status)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_default(),
                p.expire_time
                    .map(local_time)
                    .unwrap_or_else(|| "never".into()),
                p.granted_by.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "ID",
            "USER",
            "CONNECTION",
            "DATABASE",
            "STATUS",
            "EXPIRES",
            "GRANTED BY",
        ],
        &rows,
    )
}
