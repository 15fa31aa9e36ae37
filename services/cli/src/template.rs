//! `shadowctl template list|show|create|update|rm` and `template priority [set ID…]`: the
//! administrator's application processes and their order.
//!
//! Template files are the proto3 JSON (or the same structure in YAML) of
//! `shadowsync.approval.v1.Template`, e.g.
//!
//! ```yaml
//! name: prod-dba
//! enabled: true
//! matchRule: { requestTypes: [shadow_table_sync], environments: [prod] }
//! nodes:
//!   - { name: dba, approverRoles: [dba], mode: APPROVAL_MODE_ANY }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shadowsync_proto::approval::v1::approval_service_client::ApprovalServiceClient;
use shadowsync_proto::approval::v1::{
    CreateTemplateRequest, CreateTemplateResponse, DeleteTemplateRequest, GetPriorityRequest,
    GetPriorityResponse, GetTemplateRequest, GetTemplateResponse, ListTemplatesRequest,
    ListTemplatesResponse, SetPriorityRequest, Template, UpdateTemplateRequest,
};

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, proto_json, request_id};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TemplateCommand {
    /// List templates in priority order.
    List,
    /// Show one template (by name or id).
    #[command(after_help = "\
Examples:
  shadowctl template show prod-dba
  shadowctl template show prod-dba -o json > prod-dba.json")]
    Show {
        /// The template's name or id.
        #[arg(value_name = "TEMPLATE")]
        template: String,
    },
    /// Create a template from a JSON or YAML file (admin only).
    #[command(after_help = "\
The file holds a shadowsync.approval.v1.Template as proto3 JSON, or the same in YAML:

  name: prod-dba
  enabled: true
  matchRule: { requestTypes: [shadow_table_sync], environments: [prod] }
  nodes:
    - { name: dba, approverRoles: [dba], mode: APPROVAL_MODE_ANY }

Example:
  shadowctl template create -f prod-dba.yaml")]
    Create {
        /// The template file (.json, .yaml or .yml).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Replace a template from a file naming its id or name (admin only). The file's `version`,
    /// when present, guards against overwriting someone else's change.
    #[command(after_help = "\
Example:
  shadowctl template show prod-dba -o json > prod-dba.json   # edit it, then:
  shadowctl template update -f prod-dba.json")]
    Update {
        /// The template file (.json, .yaml or .yml).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Delete a template (admin only; the built-in fallback cannot be deleted).
    #[command(after_help = "\
Example:
  shadowctl template rm prod-dba")]
    Rm {
        /// The template's name or id.
        #[arg(value_name = "TEMPLATE")]
        template: String,
    },
    /// Show the priority order, or set it with `priority set ID…` (admin only).
    Priority {
        #[command(subcommand)]
        action: Option<PriorityAction>,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum PriorityAction {
    /// Set the complete order, highest priority first (names or ids).
    #[command(after_help = "\
Example:
  shadowctl template priority set prod-dba staging default")]
    Set {
        /// Every template, highest priority first.
        #[arg(required = true, value_name = "TEMPLATE")]
        templates: Vec<String>,
    },
}

type Client = ApprovalServiceClient<shadowsync_common::grpc::AuthenticatedChannel>;

pub async fn run(
    client_args: &ClientArgs,
    command: &TemplateCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = ApprovalServiceClient::new(client_args.authenticated()?);
    match command {
        TemplateCommand::List => {
            let templates = list(&mut client).await?;
            show_list(out, format, &templates)?;
        }
        TemplateCommand::Show { template } => {
            let template = resolve(&mut client, template).await?;
            // For people, the template alone: a file `template update -f` takes back.
            let value = match format {
                OutputFormat::Json => proto_json(&GetTemplateResponse {
                    template: Some(template),
                })?,
                OutputFormat::Table => proto_json(&template)?,
            };
            output::json(out, &value)?;
        }
        TemplateCommand::Create { file } => {
            let template = read_template(file)?;
            let created = client
                .create_template(CreateTemplateRequest {
                    template: Some(template),
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .template
                .unwrap_or_default();
            show_one(out, format, created)?;
        }
        TemplateCommand::Update { file } => {
            let mut template = read_template(file)?;
            let key = if template.id.is_empty() {
                template.name.clone()
            } else {
                template.id.clone()
            };
            let current = resolve(&mut client, &key).await?;
            let expected_version = if template.version != 0 {
                template.version
            } else {
                current.version
            };
            template.id = current.id;
            let updated = client
                .update_template(UpdateTemplateRequest {
                    template: Some(template),
                    expected_version,
                    request_id: request_id(),
                })
                .await?
                .into_inner()
                .template
                .unwrap_or_default();
            show_one(out, format, updated)?;
        }
        TemplateCommand::Rm { template } => {
            let current = resolve(&mut client, template).await?;
            client
                .delete_template(DeleteTemplateRequest {
                    template_id: current.id.clone(),
                    expected_version: current.version,
                })
                .await?;
            output::write_all(
                out,
                format!("deleted template {}\n", current.name).as_bytes(),
            )?;
        }
        TemplateCommand::Priority { action: None } => {
            let priority = client
                .get_priority(GetPriorityRequest {})
                .await?
                .into_inner();
            show_priority(out, format, priority)?;
        }
        TemplateCommand::Priority {
            action: Some(PriorityAction::Set { templates }),
        } => {
            let current = client
                .get_priority(GetPriorityRequest {})
                .await?
                .into_inner();
            let mut ids = Vec::with_capacity(templates.len());
            for key in templates {
                let entry = current
                    .entries
                    .iter()
                    .find(|e| &e.template_id == key || &e.template_name == key)
                    .ok_or_else(|| {
                        let close = crate::suggest::closest(
                            key,
                            current.entries.iter().map(|e| e.template_name.as_str()),
                        );
                        CliError::NotFound(format!(
                            "no template named {key:?}{}",
                            crate::suggest::hint(&close)
                        ))
                    })?;
                ids.push(entry.template_id.clone());
            }
            let updated = client
                .set_priority(SetPriorityRequest {
                    template_ids: ids,
                    expected_version: current.version,
                })
                .await?
                .into_inner();
            show_priority(
                out,
                format,
                GetPriorityResponse {
                    entries: updated.entries,
                    version: updated.version,
                },
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a template from proto3 JSON or YAML (by extension; JSON is tried first otherwise).
fn read_template(path: &Path) -> Result<Template, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let is_yaml = path
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml");
    let value: serde_json::Value = if is_yaml {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
    } else {
        serde_json::from_str(&text)
            .or_else(|_| serde_yaml_ng::from_str(&text))
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
    };
    // `template show -o json` prints the GetTemplate response; its template is what is meant.
    let value = match value {
        serde_json::Value::Object(mut object)
            if object.len() == 1 && object.contains_key("template") =>
        {
            object.remove("template").unwrap_or_default()
        }
        other => other,
    };
    shadowsync_proto::json::from_json(value)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

async fn list(client: &mut Client) -> Result<Vec<Template>, CliError> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_templates(ListTemplatesRequest {
                page_size: 500,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        all.extend(page.templates);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

async fn resolve(client: &mut Client, name_or_id: &str) -> Result<Template, CliError> {
    let templates = list(client).await?;
    if let Some(found) = templates.iter().find(|t| t.name == name_or_id) {
        return Ok(found.clone());
    }
    match client
        .get_template(GetTemplateRequest {
            template_id: name_or_id.to_string(),
        })
        .await
    {
        Ok(response) => response
            .into_inner()
            .template
            .ok_or_else(|| no_template(name_or_id, &templates)),
        // Neither a name nor an id: say so with the names that are close.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            Err(no_template(name_or_id, &templates))
        }
        Err(status) => Err(status.into()),
    }
}

/// The not-found error for `name`, with the closest template names.
fn no_template(name: &str, templates: &[Template]) -> CliError {
    let close = crate::suggest::closest(name, templates.iter().map(|t| t.name.as_str()));
    CliError::NotFound(format!(
        "no template named {name:?}{}",
        crate::suggest::hint(&close)
    ))
}

fn show_list(
    out: &mut dyn Write,
    format: OutputFormat,
    templates: &[Template],
) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        let response = ListTemplatesResponse {
            templates: templates.to_vec(),
            next_page_token: String::new(),
            total_size: i32::try_from(templates.len()).unwrap_or(i32::MAX),
        };
        return output::json(out, &proto_json(&response)?);
    }
    let rows: Vec<Vec<String>> = templates
        .iter()
        .map(|t| {
            vec![
                t.rank.to_string(),
                t.name.clone(),
                t.enabled.to_string(),
                t.execution_priority.to_string(),
                t.nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .collect::<Vec<_>>()
                    .join(" → "),
                t.id.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &["RANK", "NAME", "ENABLED", "PRIORITY", "NODES", "ID"],
        &rows,
    )
}

/// A created or updated template: its Create/Update response (the same shape) in JSON.
fn show_one(out: &mut dyn Write, format: OutputFormat, template: Template) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        let response = CreateTemplateResponse {
            template: Some(template),
        };
        return output::json(out, &proto_json(&response)?);
    }
    show_list(out, format, &[template])
}

fn show_priority(
    out: &mut dyn Write,
    format: OutputFormat,
    priority: GetPriorityResponse,
) -> Result<(), CliError> {
    if format == OutputFormat::Json {
        return output::json(out, &proto_json(&priority)?);
    }
    let entries = &priority.entries;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.rank.to_string(),
                e.template_name.clone(),
                e.execution_priority.to_string(),
                e.enabled.to_string(),
                e.template_id.clone(),
            ]
        })
        .collect();
    output::table(out, &["RANK", "NAME", "PRIORITY", "ENABLED", "ID"], &rows)
}
