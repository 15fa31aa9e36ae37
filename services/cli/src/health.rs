//! `shadowctl health`: the process and every shadowsync service at the endpoint.

use std::io::Write;
use std::process::ExitCode;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::client::ClientArgs;
use crate::output::{self, OutputFormat};
use crate::{CliError, Exit, code_name};

/// Succeeds only when every service the endpoint serves is SERVING; exits 5 (unavailable)
/// otherwise, so a script can wait for readiness.
pub async fn run(
    client: &ClientArgs,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut health = HealthClient::new(client.channel()?);
    let mut rows = Vec::new();
    let mut healthy = true;
    let names = std::iter::once("").chain(shadowsync_proto::SERVICE_NAMES.iter().copied());
    for name in names {
        let status = match health
            .check(HealthCheckRequest {
                service: name.to_string(),
            })
            .await
        {
            Ok(response) => {
                let status = ServingStatus::try_from(response.into_inner().status)
                    .unwrap_or(ServingStatus::Unknown);
                healthy &= status == ServingStatus::Serving;
                status.as_str_name().to_string()
            }
            // Split deployments serve one service per endpoint: the others are not failures.
            Err(status) if status.code() == tonic::Code::NotFound && !name.is_empty() => {
                "NOT_SERVED_HERE".to_string()
            }
            Err(status) if name.is_empty() => return Err(CliError::Status(status)),
            Err(status) => {
                healthy = false;
                code_name(status.code())
            }
        };
        let label = if name.is_empty() { "(server)" } else { name };
        rows.push(vec![label.to_string(), status]);
    }
    match format {
        OutputFormat::Table => output::table(out, &["SERVICE", "STATUS"], &rows)?,
        OutputFormat::Json => output::json(
            out,
            &serde_json::json!({
                "endpoint": client.endpoint()?.url,
                "healthy": healthy,
                "services": rows.iter().map(|row| serde_json::json!({"service": row[0], "status": row[1]})).collect::<Vec<_>>(),
            }),
        )?,
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        Exit::Unavailable.code()
    })
}
