//! Connections: admins register target databases; anyone authenticated lists and
//! reads them. The password is sealed with AES-256-GCM before it reaches the store, never
//! returned and never logged (no function here logs a request or a record's password field).

mod probe;
pub mod spec;

use shadowsync_common::logged::logged;
use std::collections::BTreeMap;
use std::sync::Arc;

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::{Clock, to_timestamp};
use shadowsync_common::secret::Secret;
use shadowsync_proto::common::v1::ConnectionDetails;
use shadowsync_proto::task::v1::{
    Connection, ConnectionSpec, ListConnectionsRequest, ListConnectionsResponse,
    TestConnectionRequest, TestConnectionResponse, UpdateConnectionRequest,
    test_connection_request::Target,
};
use tracing::{info, instrument};

use crate::crypto::PasswordCipher;
use crate::error::{Result, TaskError};
use crate::idempotency::Idempotency;
use crate::page::{PageToken, page_size};
use crate::store::connections::{ConnectionWriteError, DeleteOutcome};
use crate::store::{ConnectionFilter, ConnectionRecord, TaskStore};

pub use probe::{ProbeTarget, probe};

/// The connection use cases.
#[derive(Clone)]
pub struct Connections {
    store: Arc<dyn TaskStore>,
    cipher: PasswordCipher,
    clock: Arc<dyn Clock>,
}

fn write_error(error: ConnectionWriteError) -> TaskError {
    match error {
        ConnectionWriteError::NameTaken => {
            TaskError::AlreadyExists("a connection with this name already exists".into())
        }
        ConnectionWriteError::Store(e) => TaskError::Store(e),
    }
}

/// The public view of a record: everything but the password.
pub fn view(record: &ConnectionRecord) -> Connection {
    Connection {
        id: record.id.clone(),
        name: record.name.clone(),
        dialect: record.dialect,
        host: record.host.clone(),
        port: record.port,
        username: record.username.clone(),
        password_set: record.password_ciphertext.is_some(),
        environment: record.environment.clone(),
        options: record.options.clone().into_iter().collect(),
        creator: record.creator.clone(),
        create_time: Some(to_timestamp(record.created_at)),
        update_time: Some(to_timestamp(record.updated_at)),
    }
}

impl Connections {
    pub fn new(store: Arc<dyn TaskStore>, cipher: PasswordCipher, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            cipher,
            clock,
        }
    }

    fn seal(&self, password: &str) -> Result<Option<Vec<u8>>> {
        if password.is_empty() {
            return Ok(None);
        }
        self.cipher
            .seal(&Secret::new(password.to_owned()))
            .map(Some)
            .map_err(|e| TaskError::Internal(e.to_string()))
    }

    fn validated(
        &self,
        spec: &ConnectionSpec,
        id: String,
        creator: &str,
    ) -> Result<ConnectionRecord> {
        let now = self.clock.now();
        Ok(ConnectionRecord {
            id,
            name: spec::name(&spec.name, "connection.name")?,
            dialect: spec::dialect(spec.dialect, "connection.dialect")?,
            host: spec::required(&spec.host, "connection.host")?,
            port: spec::port(spec.port, "connection.port")?,
            username: spec::required(&spec.username, "connection.username")?,
            password_ciphertext: None,
            environment: spec::environment(&spec.environment, "connection.environment")?,
            options: spec::options(&spec.options, "connection.options")?,
            creator: creator.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Registers a connection (admin only).
    ///
    /// Fails with PERMISSION_DENIED, INVALID_ARGUMENT naming the field, ALREADY_EXISTS.
    #[instrument(skip_all, fields(caller = %logged(&caller.subject)), err(Display, level = "info"))]
    pub async fn create(
        &self,
        caller: &Identity,
        spec: Option<ConnectionSpec>,
        request_id: &str,
    ) -> Result<Connection> {
        require_admin(caller)?;
        let spec = spec.ok_or_else(|| TaskError::invalid("connection", "is required"))?;
        let mut record =
            self.validated(&spec, uuid::Uuid::new_v4().to_string(), &caller.subject)?;
        let idempotency = Idempotency::new(
            &caller.subject,
            "CreateConnection",
            request_id,
            &canonical(&spec, &self.cipher.tag(&spec.password)),
        );
        if let Some(idempotency) = &idempotency
            && let Some(existing) = idempotency
                .reserve(self.store.as_ref(), &record.id, record.created_at)
                .await?
        {
            return self.get(&existing).await;
        }
        record.password_ciphertext = self.seal(&spec.password)?;
        if let Err(error) = self.store.insert_connection(&record).await {
            if let Some(idempotency) = &idempotency {
                idempotency.release(self.store.as_ref()).await;
            }
            return Err(write_error(error));
        }
        info!(connection_id = %record.id, name = %logged(&record.name), "connection created");
        Ok(view(&record))
    }

    /// A connection by id (any authenticated caller). Fails with NOT_FOUND.
    pub async fn get(&self, id: &str) -> Result<Connection> {
        Ok(view(&self.record(id).await?))
    }

    pub(crate) async fn record(&self, id: &str) -> Result<ConnectionRecord> {
        self.store
            .get_connection(id)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("connection {id} not found")))
    }

    /// One page of connections, sorted by name.
    pub async fn list(&self, request: &ListConnectionsRequest) -> Result<ListConnectionsResponse> {
        let limit = page_size(request.page_size, 50, 500);
        let binding = format!(
            "{}\u{0}{}",
            request.name_contains,
            request.environments.join(",")
        );
        let offset = PageToken::parse(&request.page_token, &binding)?;
        let filter = ConnectionFilter {
            name_contains: request.name_contains.clone(),
            environments: request.environments.clone(),
            offset,
            limit,
        };
        let (records, total) = self.store.list_connections(&filter).await?;
        let next = offset + i64::try_from(records.len()).unwrap_or(0);
        Ok(ListConnectionsResponse {
            connections: records.iter().map(view).collect(),
            next_page_token: PageToken::next(next, total, &binding),
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// Changes the fields that are set (admin only); a set password is rotated, an empty one
    /// removed.
    ///
    /// Fails with PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS.
    #[instrument(skip_all, fields(caller = %logged(&caller.subject), connection_id = %logged(&request.connection_id)), err(Display, level = "info"))]
    pub async fn update(
        &self,
        caller: &Identity,
        request: UpdateConnectionRequest,
    ) -> Result<Connection> {
        require_admin(caller)?;
        let record = self.record(&request.connection_id).await?;
        let idempotency = Idempotency::new(
            &caller.subject,
            "UpdateConnection",
            &request.request_id,
            &canonical_update(
                &request,
                request.password.as_deref().map(|p| self.cipher.tag(p)),
            ),
        );
        // A retried update that already went through answers with the connection as it is now.
        if let Some(idempotency) = &idempotency
            && idempotency
                .reserve(self.store.as_ref(), &record.id, self.clock.now())
                .await?
                .is_some()
        {
            return self.get(&record.id).await;
        }
        let result = self.apply_update(record.clone(), &request).await;
        if result.is_err()
            && let Some(idempotency) = &idempotency
        {
            idempotency.release(self.store.as_ref()).await;
        }
        result.map(|updated| view(&updated))
    }

    async fn apply_update(
        &self,
        mut record: ConnectionRecord,
        request: &UpdateConnectionRequest,
    ) -> Result<ConnectionRecord> {
        require_password_for_new_destination(&record, request)?;
        if let Some(name) = &request.name {
            record.name = spec::name(name, "name")?;
        }
        if let Some(dialect) = request.dialect {
            record.dialect = spec::dialect(dialect, "dialect")?;
        }
        if let Some(host) = &request.host {
            record.host = spec::required(host, "host")?;
        }
        if let Some(port) = request.port {
            record.port = spec::port(port, "port")?;
        }
        if let Some(username) = &request.username {
            record.username = spec::required(username, "username")?;
        }
        if let Some(environment) = &request.environment {
            record.environment = spec::environment(environment, "environment")?;
        }
        if request.replace_options {
            record.options = spec::options(&request.options, "options")?;
        }
        if let Some(password) = &request.password {
            record.password_ciphertext = self.seal(password)?;
        }
        record.updated_at = self.clock.now();
        if !self
            .store
            .update_connection(&record)
            .await
            .map_err(write_error)?
        {
            return Err(TaskError::NotFound(format!(
                "connection {} not found",
                record.id
            )));
        }
        info!(rotated = request.password.is_some(), "connection updated");
        Ok(record)
    }

    /// Deletes a connection (admin only). Fails with PERMISSION_DENIED, NOT_FOUND, and
    /// FAILED_PRECONDITION naming how many unfinished tasks use it.
    #[instrument(skip_all, fields(caller = %logged(&caller.subject), connection_id = %logged(&id)), err(Display, level = "info"))]
    pub async fn delete(&self, caller: &Identity, id: &str) -> Result<()> {
        require_admin(caller)?;
        match self.store.delete_connection(id).await? {
            DeleteOutcome::Deleted => {}
            DeleteOutcome::NotFound => {
                return Err(TaskError::NotFound(format!("connection {id} not found")));
            }
            DeleteOutcome::InUse(count) => {
                return Err(TaskError::FailedPrecondition(format!(
                    "connection {id} is used by {count} unfinished task{}; \
                     wait for them to finish or abort them first",
                    if count == 1 { "" } else { "s" }
                )));
            }
        }
        info!("connection deleted");
        Ok(())
    }

    /// Tries a stored connection or an unsaved spec (admin only).
    ///
    /// Fails with PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT; a refusing database is a
    /// normal answer.
    #[instrument(skip_all, fields(caller = %logged(&caller.subject)), err(Display, level = "info"))]
    pub async fn test(
        &self,
        caller: &Identity,
        request: TestConnectionRequest,
    ) -> Result<TestConnectionResponse> {
        require_admin(caller)?;
        let target = match request.target {
            Some(Target::ConnectionId(id)) => {
                let record = self.record(&id).await?;
                ProbeTarget {
                    password: self.password(&record)?,
                    host: record.host,
                    port: record.port,
                    username: record.username,
                    options: target_options(&record.options, "connection.options")?,
                }
            }
            Some(Target::Spec(spec)) => {
                let record = self.validated(&spec, String::new(), &caller.subject)?;
                ProbeTarget {
                    host: record.host,
                    port: record.port,
                    username: record.username,
                    password: Secret::new(spec.password),
                    options: target_options(&record.options, "spec.options")?,
                }
            }
            None => {
                return Err(TaskError::invalid(
                    "target",
                    "connection_id or spec is required",
                ));
            }
        };
        let response = probe(target).await;
        info!(ok = response.ok, error_code = %response.error_code, "connection tested");
        Ok(response)
    }

    fn password(&self, record: &ConnectionRecord) -> Result<Secret<String>> {
        match &record.password_ciphertext {
            None => Ok(Secret::new(String::new())),
            Some(sealed) => self
                .cipher
                .open(sealed)
                .map_err(|e| TaskError::Internal(e.to_string())),
        }
    }

    /// The stored connection with its decrypted password, for one internal call (analysis
    /// service). Fails with NOT_FOUND.
    pub async fn details(&self, id: &str) -> Result<(ConnectionRecord, ConnectionDetails)> {
        let record = self.record(id).await?;
        let password = self.password(&record)?;
        let details = ConnectionDetails {
            connection_id: record.id.clone(),
            dialect: record.dialect,
            host: record.host.clone(),
            port: record.port,
            username: record.username.clone(),
            password: password.expose().clone(),
            options: record.options.clone().into_iter().collect(),
        };
        Ok((record, details))
    }
}

/// The stored password may only ever go where it went when it was entered: an update that changes
/// where or how it is sent (dialect, host, port, user, options but `connect-timeout`: the TLS
/// settings live there) must carry the password again. Otherwise an admin could point a stored connection at a server they
/// control and read the password it is sent. Name and environment are labels and keep it. A field
/// set to its current value is no change (a client that sends the whole form back is not refused).
fn require_password_for_new_destination(
    record: &ConnectionRecord,
    request: &UpdateConnectionRequest,
) -> Result<()> {
    if request.password.is_some() {
        return Ok(());
    }
    let changed = |field: &'static str, differs: bool| differs.then_some(field);
    // `connect-timeout` only decides how long to wait; every other option (the TLS settings)
    // decides how the password travels.
    let sending = |options: BTreeMap<String, String>| {
        options
            .into_iter()
            .filter(|(key, _)| key != "connect-timeout")
            .collect::<BTreeMap<_, _>>()
    };
    let options_differ = request.replace_options
        && sending(request.options.clone().into_iter().collect())
            != sending(record.options.clone());
    let first = [
        changed(
            "dialect",
            request.dialect.is_some_and(|d| d != record.dialect),
        ),
        changed(
            "host",
            request.host.as_ref().is_some_and(|h| *h != record.host),
        ),
        changed(
            "port",
            request
                .port
                .is_some_and(|p| spec::port(p, "port").ok() != Some(record.port)),
        ),
        changed(
            "username",
            request
                .username
                .as_ref()
                .is_some_and(|u| *u != record.username),
        ),
        changed("options", options_differ),
    ]
    .into_iter()
    .flatten()
    .next();
    match first {
        Some(field) if record.password_ciphertext.is_some() => Err(TaskError::invalid(
            "password",
            format!(
                "is required when {field} changes: the stored password is only sent \
                 to the server it was entered for"
            ),
        )),
        _ => Ok(()),
    }
}

fn require_admin(caller: &Identity) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(TaskError::PermissionDenied(
            "this needs the admin role".into(),
        ))
    }
}

/// The spec's fields in a fixed order (options sorted), for the idempotency hash. The password
/// takes part only through this hash, which is never shown.
/// An update's fields as set (unset fields stay `None`), for its request fingerprint; the
/// password only as a keyed tag.
fn canonical_update(request: &UpdateConnectionRequest, password_tag: Option<String>) -> Vec<u8> {
    let options: std::collections::BTreeMap<&String, &String> = request.options.iter().collect();
    format!(
        "{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{:?}",
        request.connection_id,
        request.name,
        request.dialect,
        request.host,
        request.port,
        request.username,
        password_tag,
        request.environment,
        request.replace_options,
        options
    )
    .into_bytes()
}

/// Everything but the request id, maps sorted, and the password only as a keyed tag: this
/// fingerprint is stored with the request id, and a plain hash of a password could be guessed
/// offline.
fn canonical(spec: &ConnectionSpec, password_tag: &str) -> Vec<u8> {
    let options: std::collections::BTreeMap<&String, &String> = spec.options.iter().collect();
    format!(
        "{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}",
        spec.name,
        spec.dialect,
        spec.host,
        spec.port,
        spec.username,
        password_tag,
        spec.environment,
        options
    )
    .into_bytes()
}

/// A stored or requested connection's options, parsed; INVALID_ARGUMENT naming the option.
fn target_options(
    options: &BTreeMap<String, String>,
    field: &str,
) -> Result<shadowsync_common::target::TargetOptions> {
    shadowsync_common::target::TargetOptions::parse(options)
        .map_err(|error| TaskError::invalid(format!("{field}.{}", error.option), error.reason))
}
