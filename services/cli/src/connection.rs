//! `shadowctl connection add|list|show|test|rm`.
//!
//! Passwords never go through argv (process lists and shell history would keep them): `add`
//! reads `SHADOWSYNC_DB_PASSWORD`, or the first line of standard input with `--password-stdin`.

use std::io::{BufRead as _, Write};
use std::process::ExitCode;

use shadowsync_proto::common::v1::Dialect;
use shadowsync_proto::task::v1::task_service_client::TaskServiceClient;
use shadowsync_proto::task::v1::test_connection_request::Target;
use shadowsync_proto::task::v1::{
    Connection, ConnectionSpec, CreateConnectionRequest, DeleteConnectionRequest,
    GetConnectionRequest, GetConnectionResponse, ListConnectionsRequest, ListConnectionsResponse,
    TestConnectionRequest,
};

use crate::CliError;
use crate::client::ClientArgs;
use crate::output::{self, OutputFormat, proto_json, request_id};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConnectionCommand {
    /// Register a database server (admin only).
    #[command(after_help = "\
The password comes from SHADOWSYNC_DB_PASSWORD or, with --password-stdin, from the first
line of standard input; never from the command line.

Examples:
  shadowctl connection add local --dialect mariadb --host 127.0.0.1 --port 3306 --user root
  shadowctl connection add prod-orders --host db.internal --user shadowsync \\
    --environment prod --option ssl-mode=VERIFY_IDENTITY --password-stdin < password.txt")]
    Add(AddArgs),
    /// List connections.
    #[command(after_help = "\
Examples:
  shadowctl connection list
  shadowctl connection list --name prod -o json")]
    List {
        /// Only names containing this text.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show one connection (by name or id).
    #[command(after_help = "\
Example:
  shadowctl connection show local")]
    Show {
        /// The connection's name or id.
        #[arg(value_name = "CONNECTION")]
        connection: String,
    },
    /// Try to connect and report the server version or the database's error (admin only).
    #[command(after_help = "\
Exits 0 when the connection works, 1 when the database refused or could not be reached
(the reason is printed).

Example:
  shadowctl connection test local")]
    Test {
        /// The connection's name or id.
        #[arg(value_name = "CONNECTION")]
        connection: String,
    },
    /// Delete a connection no unfinished task uses (admin only).
    #[command(after_help = "\
Example:
  shadowctl connection rm local")]
    Rm {
        /// The connection's name or id.
        #[arg(value_name = "CONNECTION")]
        connection: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// Unique name.
    pub name: String,
    /// The server's SQL dialect.
    #[arg(long, value_enum, default_value_t = DialectArg::Mariadb)]
    pub dialect: DialectArg,
    /// The server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port.
    #[arg(long, default_value_t = 3306)]
    pub port: u32,
    /// The database user shadowsync connects as.
    #[arg(long, default_value = "root")]
    pub user: String,
    /// Environment label used by approval templates (dev, test, prod, …).
    #[arg(long, default_value = "dev")]
    pub environment: String,
    /// Read the password from the first line of standard input (otherwise from
    /// SHADOWSYNC_DB_PASSWORD, or none).
    #[arg(long)]
    pub password_stdin: bool,
    /// A connection option as KEY=VALUE, repeatable (e.g. ssl-mode=REQUIRED,
    /// connect-timeout=10s); the server refuses unknown keys and values, naming them.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
}

/// `KEY=VALUE`, both sides non-empty after trimming.
fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, found {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialectArg {
    Mysql,
    Mariadb,
    OceanbaseMysql,
}

impl From<DialectArg> for Dialect {
    fn from(value: DialectArg) -> Self {
        match value {
            DialectArg::Mysql => Dialect::Mysql,
            DialectArg::Mariadb => Dialect::Mariadb,
            DialectArg::OceanbaseMysql => Dialect::OceanbaseMysql,
        }
    }
}

type Client = TaskServiceClient<shadowsync_common::grpc::AuthenticatedChannel>;

pub async fn run(
    client_args: &ClientArgs,
    command: &ConnectionCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut client = TaskServiceClient::new(client_args.authenticated()?);
    match command {
        ConnectionCommand::Add(args) => {
            let password = read_password(args.password_stdin)?;
            let response = client
                .create_connection(CreateConnectionRequest {
                    connection: Some(ConnectionSpec {
                        name: args.name.clone(),
                        dialect: Dialect::from(args.dialect) as i32,
                        host: args.host.clone(),
                        port: args.port,
                        username: args.user.clone(),
                        password,
                        environment: args.environment.clone(),
                        options: args.options.iter().cloned().collect(),
                    }),
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            let connection = response.connection.unwrap_or_default();
            show(out, format, Shown::One(Box::new(connection)))?;
        }
        ConnectionCommand::List { name } => {
            let connections = list(&mut client, name.clone()).await?;
            show(out, format, Shown::List(connections))?;
        }
        ConnectionCommand::Show { connection } => {
            let connection = resolve(&mut client, connection).await?;
            show(out, format, Shown::One(Box::new(connection)))?;
        }
        ConnectionCommand::Test { connection } => {
            let id = resolve(&mut client, connection).await?.id;
            let response = client
                .test_connection(TestConnectionRequest {
                    target: Some(Target::ConnectionId(id)),
                })
                .await?
                .into_inner();
            match format {
                OutputFormat::Json => output::json(out, &proto_json(&response)?)?,
                OutputFormat::Table => {
                    let text = if response.ok {
                        format!("ok: {}\n", response.server_version)
                    } else {
                        format!(
                            "failed: {} {}\n",
                            response.error_code, response.error_message
                        )
                    };
                    output::write_all(out, text.as_bytes())?;
                }
            }
            return Ok(if response.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        ConnectionCommand::Rm { connection } => {
            let found = resolve(&mut client, connection).await?;
            client
                .delete_connection(DeleteConnectionRequest {
                    connection_id: found.id.clone(),
                })
                .await?;
            output::write_all(
                out,
                format!("deleted connection {}\n", found.name).as_bytes(),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failure(format!("cannot read the password from stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(std::env::var("SHADOWSYNC_DB_PASSWORD").unwrap_or_default())
}

async fn list(client: &mut Client, name: Option<String>) -> Result<Vec<Connection>, CliError> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_connections(ListConnectionsRequest {
                page_size: 500,
                page_token: page_token.clone(),
                name_contains: name.clone().unwrap_or_default(),
                environments: Vec::new(),
            })
            .await?
            .into_inner();
        all.extend(page.connections);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// A connection by exact name, else by id.
pub async fn resolve(client: &mut Client, name_or_id: &str) -> Result<Connection, CliError> {
    let by_name = list(client, Some(name_or_id.to_string())).await?;
    if let Some(found) = by_name.into_iter().find(|c| c.name == name_or_id) {
        return Ok(found);
    }
    let found = client
        .get_connection(GetConnectionRequest {
            connection_id: name_or_id.to_string(),
        })
        .await;
    match found {
        Ok(response) => {
            if let Some(connection) = response.into_inner().connection {
                return Ok(connection);
            }
        }
        // Neither a name nor an id: say so with the names that are close.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) => {}
        Err(status) => return Err(status.into()),
    }
    let names = list(client, None).await?;
    let close = crate::suggest::closest(name_or_id, names.iter().map(|c| c.name.as_str()));
    Err(CliError::NotFound(format!(
        "no connection named {name_or_id:?}{}",
        crate::suggest::hint(&close)
    )))
}

/// What a command prints: one connection (as its Get/Create response) or a listing.
enum Shown {
    One(Box<Connection>),
    List(Vec<Connection>),
}

fn show(out: &mut dyn Write, format: OutputFormat, shown: Shown) -> Result<(), CliError> {
    let connections = match (format, shown) {
        (OutputFormat::Json, Shown::One(connection)) => {
            let response = GetConnectionResponse {
                connection: Some(*connection),
            };
            return output::json(out, &proto_json(&response)?);
        }
        (OutputFormat::Json, Shown::List(connections)) => {
            let response = ListConnectionsResponse {
                total_size: i32::try_from(connections.len()).unwrap_or(i32::MAX),
                connections,
                next_page_token: String::new(),
            };
            return output::json(out, &proto_json(&response)?);
        }
        (OutputFormat::Table, Shown::One(connection)) => vec![*connection],
        (OutputFormat::Table, Shown::List(connections)) => connections,
    };
    let rows: Vec<Vec<String>> = connections
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                Dialect::try_from(c.dialect)
                    .map(|d| d.as_str_name().to_string())
                    .unwrap_or_default(),
                format!("{}:{}", c.host, c.port),
                c.username.clone(),
                c.environment.clone(),
                c.id.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &["NAME", "DIALECT", "ADDRESS", "USER", "ENVIRONMENT", "ID"],
        &rows,
    )
}
