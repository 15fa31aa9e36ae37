//! `request_id` handling shared by the mutating calls that clients retry: the
//! first call reserves the key for the resource it is about to create; a retry with the same
//! parameters gets that resource; the same key with other parameters is INVALID_ARGUMENT.

use sha2::{Digest, Sha256};
use shadowsync_common::clock::Micros;

use crate::error::{Result, TaskError};
use crate::store::TaskStore;
use crate::store::request_ids::{Remembered, RequestKey};

/// A call's key, once its parameters are hashed. `None` when the call has no `request_id`.
pub struct Idempotency {
    caller: String,
    rpc: &'static str,
    request_id: String,
    parameters_sha256: String,
}

impl Idempotency {
    /// `parameters` must be a canonical encoding of everything but the request id (maps
    /// sorted), so a retry hashes the same.
    pub fn new(
        caller: &str,
        rpc: &'static str,
        request_id: &str,
        parameters: &[u8],
    ) -> Option<Self> {
        (!request_id.is_empty()).then(|| Self {
            caller: caller.to_owned(),
            rpc,
            request_id: request_id.to_owned(),
            parameters_sha256: hex::encode(Sha256::digest(parameters)),
        })
    }

    fn key(&self) -> RequestKey<'_> {
        RequestKey {
            caller: &self.caller,
            rpc: self.rpc,
            request_id: &self.request_id,
            parameters_sha256: &self.parameters_sha256,
        }
    }

    /// Reserves the key for `resource_id`; `Some(existing)` for a replay.
    ///
    /// Fails with INVALID_ARGUMENT `request_id` when the key was used with other parameters.
    pub async fn reserve(
        &self,
        store: &dyn TaskStore,
        resource_id: &str,
        now: Micros,
    ) -> Result<Option<String>> {
        match store.remember(&self.key(), resource_id, now).await? {
            Remembered::Reserved => Ok(None),
            Remembered::Same(existing) => Ok(Some(existing)),
            Remembered::Different => Err(TaskError::invalid(
                "request_id",
                "already used with different parameters",
            )),
        }
    }

    /// Releases the key after the call failed, so the client's retry can run.
    pub async fn release(&self, store: &dyn TaskStore) {
        if let Err(error) = store.forget(&self.key()).await {
            tracing::warn!(%error, "cannot release a request id");
        }
    }
}
