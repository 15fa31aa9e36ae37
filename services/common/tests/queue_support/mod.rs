//! Shared pieces of the queue tests: backends with unique names, helpers to read a stream with
//! a deadline, and a TCP proxy that can cut the connection to RabbitMQ.

pub mod suite;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use shadowsync_common::queue::{
    AmqpQueue, AmqpQueueOptions, Delivery, DeliveryStream, Destination, InProcessQueue, Message,
    MessageQueue, Priority, Topology,
};

/// How long a test waits for a delivery that must come.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a test waits to be confident a delivery will not come.
pub const QUIET_PERIOD: Duration = Duration::from_millis(500);

/// The shared RabbitMQ of the dev machine and CI.
pub fn amqp_uri() -> String {
    std::env::var("SHADOWSYNC_TEST_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The broker's address, from [`amqp_uri`].
pub fn amqp_uri_address() -> std::net::SocketAddr {
    let uri = amqp_uri();
    let authority = uri
        .trim_start_matches("amqp://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .unwrap()
        .next()
        .unwrap()
}

/// A TLS front for the broker at `broker`: accepts TLS on 127.0.0.1 with a certificate for
/// `localhost` signed by a fresh CA, and relays the plaintext to the broker. Returns its
/// address and the CA (PEM). Runs until the test's runtime ends.
pub async fn tls_front(broker: std::net::SocketAddr) -> (std::net::SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(broker).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (address, ca.pem())
}

/// Names no other test or run uses; queues left behind by a crashed test expire on their own.
pub fn unique_topology() -> Topology {
    Topology::new(format!("test-{}.", uuid::Uuid::new_v4()))
        .expire_unused_after(Duration::from_secs(300))
}

/// A backend under test and how to clean it up.
pub struct Harness {
    pub queue: Arc<dyn MessageQueue>,
    cleanup: Option<BoxFuture<'static, ()>>,
}

/// A RabbitMQ queue with unique names, deleted at the end of the test.
pub async fn open_amqp(topology: Topology) -> Harness {
    let queue = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
    let cleanup_queue = queue.clone();
    Harness {
        queue: Arc::new(queue),
        cleanup: Some(Box::pin(async move {
            cleanup_queue.delete_topology().await.unwrap();
            cleanup_queue.close().await;
        })),
    }
}

/// An in-process queue in `sqlite::memory:`.
pub async fn open_in_process(topology: Topology) -> Harness {
    Harness {
        queue: Arc::new(InProcessQueue::in_memory(topology).await.unwrap()),
        cleanup: None,
    }
}

/// Runs one conformance test on a fresh backend and cleans up even when it panics.
pub async fn run<Open, Opened, Test, Tested>(open: Open, test: Test)
where
    Open: FnOnce(Topology) -> Opened,
    Opened: Future<Output = Harness>,
    Test: FnOnce(Arc<dyn MessageQueue>) -> Tested,
    Tested: Future<Output = ()> + Send + 'static,
{
    let harness = open(unique_topology()).await;
    let outcome = tokio::spawn(test(Arc::clone(&harness.queue))).await;
    if let Some(cleanup) = harness.cleanup {
        cleanup.await;
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The next delivery, failing the test if none comes within [`DELIVERY_DEADLINE`].
pub async fn next_delivery(stream: &mut DeliveryStream) -> Delivery {
    tokio::time::timeout(DELIVERY_DEADLINE, stream.next())
        .await
        .expect("no delivery in time")
        .expect("the stream never ends")
        .expect("a delivery, not an error")
}

/// Fails the test if a delivery arrives within [`QUIET_PERIOD`].
pub async fn assert_no_delivery(stream: &mut DeliveryStream) {
    if let Ok(item) = tokio::time::timeout(QUIET_PERIOD, stream.next()).await {
        panic!("expected no delivery, got {item:?}");
    }
}

/// An `ExecuteTask`-like message with a recognisable payload.
pub fn task_message(label: &str, priority: u8) -> Message {
    Message::new("shadowsync.queue.v1.TestMessage", label.as_bytes().to_vec())
        .with_priority(Priority::new(priority).unwrap())
        .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
}

/// Publishes `message` to the execute queue, failing the test on error.
pub async fn publish_task(queue: &dyn MessageQueue, message: &Message) {
    queue
        .publish(&Destination::ExecuteQueue, message)
        .await
        .expect("publish confirmed");
}

/// The payload as text.
pub fn label(delivery: &Delivery) -> String {
    String::from_utf8(delivery.message().payload.clone()).unwrap()
}
