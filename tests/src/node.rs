//! One shadowsync server on its own thread and tokio runtime.
//!
//! Each node owns its runtime, so [`Node::kill`] is a crash as far as the rest of the system can
//! tell: every task, connection and lease of that process vanishes at once, with no graceful
//! drain. [`Node::restart`] serves the same role and configuration again on the same port, so
//! peers configured with its endpoint find it again.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use shadowsync_common::config::Config;
use shadowsync_common::grpc;
use shadowsync_server::Role;
use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a node may take to report SERVING (migrations on a fresh store included).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node of an observed cluster records its telemetry with: its own subscriber (as if
/// it were its own process) and, optionally, the listener of its metrics endpoint.
pub struct NodeTelemetry {
    pub dispatch: tracing::Dispatch,
    pub metrics: Option<std::net::TcpListener>,
}

/// A running (or killed) server.
pub struct Node {
    role: Role,
    config: Config,
    address: SocketAddr,
    /// Every thread of the node's runtime uses it as its default subscriber.
    dispatch: Option<tracing::Dispatch>,
    /// Taken by the first launch.
    metrics: Option<std::net::TcpListener>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    finished: Option<mpsc::Receiver<Result<(), String>>>,
}

impl Node {
    /// Binds 127.0.0.1 on a free port now, so peers can be configured with the address before
    /// the node starts.
    pub fn reserve() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")
    }

    /// Starts `role` with `config` on `listener`.
    pub fn start(role: Role, config: Config, listener: std::net::TcpListener) -> Self {
        Self::start_observed(role, config, listener, None)
    }

    /// Starts `role` with its own telemetry (see [`NodeTelemetry`]).
    pub fn start_observed(
        role: Role,
        config: Config,
        listener: std::net::TcpListener,
        telemetry: Option<NodeTelemetry>,
    ) -> Self {
        let address = listener.local_addr().expect("listener address");
        let (dispatch, metrics) = match telemetry {
            Some(telemetry) => (Some(telemetry.dispatch), telemetry.metrics),
            None => (None, None),
        };
        let mut node = Self {
            role,
            config,
            address,
            dispatch,
            metrics,
            runtime: None,
            stop: None,
            finished: None,
        };
        node.launch(listener);
        node
    }

    fn launch(&mut self, listener: std::net::TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        // One worker thread: the node is one small process; several nodes share 2 cores.
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(1)
            .thread_name(format!("{:?}-{}", self.role, self.address.port()).to_lowercase())
            .enable_all();
        if let Some(dispatch) = self.dispatch.clone() {
            // The node's threads live as long as its runtime: the guard is never dropped.
            builder.on_thread_start(move || {
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            });
        }
        let runtime = builder.build().expect("node runtime");
        let metrics = self.metrics.take();
        let (stop, stopped) = oneshot::channel::<()>();
        let (finished_sender, finished) = mpsc::channel();
        let role = self.role;
        let config = self.config.clone();
        runtime.spawn(async move {
            let result = async {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| format!("listener: {e}"))?;
                let metrics = match metrics {
                    Some(metrics) => {
                        metrics
                            .set_nonblocking(true)
                            .map_err(|e| format!("metrics listener: {e}"))?;
                        Some(
                            tokio::net::TcpListener::from_std(metrics)
                                .map_err(|e| format!("metrics listener: {e}"))?,
                        )
                    }
                    None => None,
                };
                shadowsync_server::run_with_metrics(role, config, listener, metrics, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
            }
            .await;
            let _ = finished_sender.send(result);
        });
        self.runtime = Some(runtime);
        self.stop = Some(stop);
        self.finished = Some(finished);
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True while the node's runtime exists (started and not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    /// Waits until health reports the node and each of its services SERVING (its stores
    /// migrated and its queue reachable).
    ///
    /// # Panics
    /// After [`START_TIMEOUT`], or when the server stopped with an error (naming it).
    pub async fn wait_serving(&self) {
        let channel = grpc::channel(&self.url(), None).expect("health channel");
        let mut health = HealthClient::new(channel);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let services = std::iter::once("").chain(self.role.services().iter().copied());
        for service in services {
            loop {
                if let Some(finished) = &self.finished
                    && let Ok(result) = finished.try_recv()
                {
                    panic!("{:?} node stopped while starting: {result:?}", self.role);
                }
                let status = health
                    .check(HealthCheckRequest {
                        service: service.to_string(),
                    })
                    .await
                    .map(|response| response.into_inner().status);
                if matches!(status, Ok(serving) if serving == ServingStatus::Serving as i32) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{:?} node never became SERVING ({service:?}: {status:?})",
                    self.role
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Crashes the node: drops its runtime without draining anything.
    pub fn kill(&mut self) {
        self.stop = None;
        self.finished = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Stops the node gracefully (in-flight work drains), waiting up to `timeout`.
    ///
    /// # Panics
    /// When it does not stop in time or stops with an error.
    pub fn stop(&mut self, timeout: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(finished) = self.finished.take() {
            let result = finished
                .recv_timeout(timeout)
                .unwrap_or_else(|e| panic!("{:?} node did not stop: {e}", self.role));
            assert!(
                result.is_ok(),
                "{:?} node stopped with {result:?}",
                self.role
            );
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Serves the same role and configuration again on the same port (killing it first if it
    /// still runs).
    pub fn restart(&mut self) {
        self.kill();
        // The killed runtime's threads release the port as they wind down.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(self.address) {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => panic!("cannot bind {} again: {error}", self.address),
            }
        };
        self.launch(listener);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
