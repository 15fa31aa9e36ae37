//! `shadowctl whoami`: the identity the server verified from the caller's token.

use std::io::Write;
use std::process::ExitCode;

use shadowsync_proto::task::v1::GetIdentityRequest;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, proto_json};

pub async fn run(
    client: &ClientArgs,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let response = TaskServiceClient::new(client.authenticated()?)
        .get_identity(GetIdentityRequest {})
        .await?
        .into_inner();
    let caller = response.caller.clone().unwrap_or_default();
    let expires = response
        .token_expire_time
        .map(output::local_time)
        .unwrap_or_default();
    match format {
        OutputFormat::Table => output::table(
            out,
            &["SUBJECT", "NAME", "ROLES", "ADMIN", "TOKEN EXPIRES"],
            &[vec![
                caller.subject.clone(),
                caller.display_name.clone(),
                caller.roles.join(","),
                response.admin.to_string(),
                expires,
            ]],
        )?,
        OutputFormat::Json => output::json(out, &proto_json(&response)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
