//! The queue abstraction against the real RabbitMQ and the in-process queue: one conformance
//! suite for both, plus what only one backend can show (persistence across a restart; a
//! connection cut and restored).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod queue_support;

mod amqp {
    use std::time::{Duration, Instant};

    use shadowsync_common::queue::{
        AmqpQueue, AmqpQueueOptions, Destination, MessageQueue, QueueError,
    };

    use crate::queue_support::{
        amqp_uri, amqp_uri_address, label, next_delivery, publish_task, task_message,
        unique_topology,
    };
    use shadowsync_common::testing::TcpProxy;

    crate::queue_conformance_suite!(crate::queue_support::open_amqp);

    /// With the connection to the broker cut, publishing fails with a retryable error within
    /// the operation timeout instead of hanging; once the broker is reachable again the same
    /// queue reconnects, re-declares its topology and publishes, and a consumer resubscribes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishing_through_a_cut_connection_fails_fast_and_recovers() {
        let topology = unique_topology();
        let broker = amqp_uri_address();
        let mut proxy = TcpProxy::start(broker).await;
        let operation_timeout = Duration::from_secs(3);
        let proxied = AmqpQueue::new(
            AmqpQueueOptions::new(
                format!("amqp://guest:guest@{}/%2f", proxy.address()),
                topology.clone(),
            )
            .with_connect_timeout(Duration::from_secs(2))
            .with_operation_timeout(operation_timeout)
            .with_max_reconnect_delay(Duration::from_millis(500)),
        )
        .unwrap();

        let execute = topology.execute_queue();
        let test = async move {
            proxied.check_ready().await.unwrap();
            publish_task(&proxied, &task_message("before", 1)).await;
            let mut consumer = proxied.consume(&execute, 1).await.unwrap();
            let delivery = next_delivery(&mut consumer).await;
            assert_eq!(label(&delivery), "before");
            delivery.ack().await.unwrap();

            proxy.cut().await;
            let started = Instant::now();
            let error = proxied
                .publish(&Destination::ExecuteQueue, &task_message("during", 1))
                .await
                .expect_err("publishing without a broker fails");
            assert!(error.is_retryable(), "{error:?}");
            assert!(matches!(error, QueueError::Unavailable { .. }), "{error:?}");
            assert!(started.elapsed() < operation_timeout + Duration::from_secs(1));
            assert!(proxied.check_ready().await.is_err());
            // The consumer notices the loss and keeps trying, without ending.
            let item = tokio::time::timeout(
                Duration::from_secs(5),
                futures::StreamExt::next(&mut consumer),
            )
            .await
            .expect("the consumer reports the loss");
            assert!(matches!(item, Some(Err(_))), "{item:?}");

            proxy.restore();
            proxied.check_ready().await.unwrap();
            publish_task(&proxied, &task_message("after", 1)).await;
            // The consumer resubscribes on its own (possibly after reporting more failed
            // attempts) and gets what was published after the reconnection.
            let deadline = Instant::now() + Duration::from_secs(15);
            let delivery = loop {
                assert!(
                    Instant::now() < deadline,
                    "the consumer did not resubscribe"
                );
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    futures::StreamExt::next(&mut consumer),
                )
                .await
                {
                    // An ack still in flight when the connection was cut is lost, and the
                    // broker hands the message back: at-least-once, as promised.
                    Ok(Some(Ok(delivery))) if label(&delivery) == "before" => {
                        assert!(delivery.redelivered());
                        delivery.ack().await.unwrap();
                    }
                    Ok(Some(Ok(delivery))) => break delivery,
                    Ok(Some(Err(error))) => assert!(error.is_retryable(), "{error:?}"),
                    Ok(None) => panic!("the consumer stream ended"),
                    Err(_) => {}
                }
            };
            assert_eq!(label(&delivery), "after");
            delivery.ack().await.unwrap();
            proxied.close().await;
        };
        let outcome = tokio::spawn(test).await;
        let cleanup = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
        cleanup.delete_topology().await.unwrap();
        cleanup.close().await;
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    /// With the broker silent (sockets open, nothing forwarded), publishing and the readiness
    /// check fail with a retryable error within the operation timeout instead of hanging, and
    /// once it answers again the queue works without being rebuilt.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishing_to_a_silent_broker_times_out_and_recovers() {
        let topology = unique_topology();
        let proxy = TcpProxy::start(amqp_uri_address()).await;
        let operation_timeout = Duration::from_secs(2);
        let proxied = AmqpQueue::new(
            AmqpQueueOptions::new(
                format!("amqp://guest:guest@{}/%2f", proxy.address()),
                topology.clone(),
            )
            .with_connect_timeout(Duration::from_secs(1))
            .with_operation_timeout(operation_timeout),
        )
        .unwrap();

        let execute = topology.execute_queue();
        let test = async move {
            publish_task(&proxied, &task_message("before", 1)).await;

            proxy.stall();
            for attempt in ["first", "second"] {
                let started = Instant::now();
                let error = proxied
                    .publish(&Destination::ExecuteQueue, &task_message(attempt, 1))
                    .await
                    .expect_err("publishing to a silent broker fails");
                assert!(matches!(error, QueueError::Unavailable { .. }), "{error:?}");
                assert!(started.elapsed() < operation_timeout + Duration::from_secs(1));
            }
            let started = Instant::now();
            assert!(proxied.check_ready().await.is_err());
            assert!(started.elapsed() < operation_timeout + Duration::from_secs(1));

            proxy.resume();
            proxied.check_ready().await.unwrap();
            publish_task(&proxied, &task_message("after", 1)).await;
            // "before" and "after" are there; the timed-out ones may be too (the broker may
            // have stored them without its confirm reaching us): at-least-once.
            let mut consumer = proxied.consume(&execute, 10).await.unwrap();
            let mut received = Vec::new();
            while !received.contains(&"after".to_owned()) {
                let delivery = next_delivery(&mut consumer).await;
                received.push(label(&delivery));
                delivery.ack().await.unwrap();
            }
            assert!(received.contains(&"before".to_owned()), "{received:?}");
            proxied.close().await;
        };
        let outcome = tokio::spawn(test).await;
        let cleanup = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
        cleanup.delete_topology().await.unwrap();
        cleanup.close().await;
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

mod in_process {
    use shadowsync_common::queue::{Destination, InProcessQueue, Message, MessageQueue, Topology};

    use crate::queue_support::{
        assert_no_delivery, label, next_delivery, publish_task, task_message,
    };

    crate::queue_conformance_suite!(crate::queue_support::open_in_process);

    /// A restart (the file closed while a delivery is unsettled, as in a crash, then opened
    /// again) loses nothing: waiting messages, the unsettled one (now marked redelivered) and
    /// undelivered events come back, in priority order; an acked one does not.
    #[tokio::test]
    async fn restart_loses_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("queue.sqlite");
        let topology = Topology::new("embedded.");

        let queue = InProcessQueue::open(&path, topology.clone()).await.unwrap();
        let events = queue
            .declare_subscription("task.decisions", &["approval.decided.*"])
            .await
            .unwrap();
        for (name, priority) in [("acked", 9), ("held", 8), ("low", 1), ("high", 6)] {
            publish_task(&queue, &task_message(name, priority)).await;
        }
        let event = Message::new(
            "shadowsync.approval.v1.ApprovalDecided",
            b"decided".to_vec(),
        );
        queue
            .publish(
                &Destination::event("approval.decided.shadow_table_sync"),
                &event,
            )
            .await
            .unwrap();
        let mut stream = queue.consume(&topology.execute_queue(), 2).await.unwrap();
        let acked = next_delivery(&mut stream).await;
        let held = next_delivery(&mut stream).await;
        assert_eq!(
            (label(&acked), label(&held)),
            ("acked".to_owned(), "held".to_owned())
        );
        acked.ack().await.unwrap();
        // The crash: storage goes away with the delivery still held.
        queue.close().await;
        drop(held);
        drop(stream);

        let queue = InProcessQueue::open(&path, topology.clone()).await.unwrap();
        let mut stream = queue.consume(&topology.execute_queue(), 1).await.unwrap();
        let mut received = Vec::new();
        for _ in 0..3 {
            let delivery = next_delivery(&mut stream).await;
            received.push((label(&delivery), delivery.redelivered()));
            delivery.ack().await.unwrap();
        }
        assert_eq!(
            received,
            [
                ("held".to_owned(), true),
                ("high".to_owned(), false),
                ("low".to_owned(), false)
            ]
        );
        assert_no_delivery(&mut stream).await;

        let mut stream = queue.consume(&events, 1).await.unwrap();
        let delivery = next_delivery(&mut stream).await;
        assert_eq!(delivery.message(), &event);
        delivery.ack().await.unwrap();
        queue.close().await;
    }
}

mod in_process_file {
    use shadowsync_common::queue::{InProcessQueue, MessageQueue, QueueError, Topology};

    use crate::queue_support::{next_delivery, publish_task, task_message};

    /// Two values on one file would not wake each other's consumers: the second open is
    /// refused while the first is open, and succeeds once it is closed.
    #[tokio::test]
    async fn a_file_is_opened_by_one_queue_at_a_time() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("queue.sqlite");
        let topology = Topology::new("embedded.");
        let first = InProcessQueue::open(&path, topology.clone()).await.unwrap();
        publish_task(&first, &task_message("kept", 0)).await;

        let error = InProcessQueue::open(&path, topology.clone())
            .await
            .err()
            .unwrap();
        assert!(matches!(error, QueueError::Storage(_)), "{error:?}");

        first.close().await;
        let second = InProcessQueue::open(&path, topology.clone()).await.unwrap();
        let mut stream = second.consume(&topology.execute_queue(), 1).await.unwrap();
        next_delivery(&mut stream).await.ack().await.unwrap();
        second.close().await;
    }
}

mod open {
    use shadowsync_common::config::QueueConfig;
    use shadowsync_common::queue::{
        AmqpQueue, AmqpQueueOptions, IN_PROCESS_QUEUE_FILE, MessageQueue, Topology,
    };
    use shadowsync_common::secret::Secret;

    use crate::queue_support::{
        amqp_uri, amqp_uri_address, label, next_delivery, publish_task, task_message,
        unique_topology,
    };

    /// No `queue.url`: the embedded mode's in-process queue, in a file under the data directory.
    #[tokio::test]
    async fn without_url_opens_the_in_process_queue_under_the_data_directory() {
        let directory = tempfile::tempdir().unwrap();
        let data_dir = directory.path().join("data");
        let config = QueueConfig {
            url: None,
            prefix: "embedded.".to_owned(),
            tls_ca: None,
        };
        let queue = shadowsync_common::queue::open(&config, &data_dir)
            .await
            .unwrap();
        assert_eq!(queue.topology(), &Topology::new("embedded."));
        assert!(data_dir.join(IN_PROCESS_QUEUE_FILE).exists());
        publish_task(&*queue, &task_message("embedded", 1)).await;
        let mut stream = queue
            .consume(&queue.topology().execute_queue(), 1)
            .await
            .unwrap();
        let delivery = next_delivery(&mut stream).await;
        assert_eq!(label(&delivery), "embedded");
        delivery.ack().await.unwrap();
        queue.close().await;
    }

    /// `queue.url` set: RabbitMQ, with the configured prefix.
    #[tokio::test]
    async fn with_url_opens_rabbitmq() {
        // Production declarations (no expiry), as `open` makes them; deleted below.
        let topology = Topology::new(unique_topology().prefix());
        let config = QueueConfig {
            url: Some(Secret::new(amqp_uri())),
            prefix: topology.prefix().to_owned(),
            tls_ca: None,
        };
        let queue = shadowsync_common::queue::open(&config, std::path::Path::new("/nonexistent"))
            .await
            .unwrap();
        let ready = queue.check_ready().await;
        queue.close().await;
        let cleanup = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
        cleanup.delete_topology().await.unwrap();
        cleanup.close().await;
        ready.unwrap();
    }

    /// `amqps://` with `queue.tls_ca`: through a TLS front to the real broker, the queue
    /// connects, publishes and consumes when the CA signed the front's certificate, and refuses
    /// to connect when another CA did (the client trusts nothing but the configured CA).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn amqps_verifies_the_broker_against_the_configured_ca() {
        let (front, ca) = crate::queue_support::tls_front(amqp_uri_address()).await;
        let directory = tempfile::tempdir().unwrap();
        let ca_file = directory.path().join("ca.crt");
        std::fs::write(&ca_file, &ca).unwrap();
        let topology = Topology::new(unique_topology().prefix());
        let url = format!("amqps://guest:guest@localhost:{}/%2f", front.port());
        let config = QueueConfig {
            url: Some(Secret::new(url.clone())),
            prefix: topology.prefix().to_owned(),
            tls_ca: Some(ca_file),
        };
        let queue = shadowsync_common::queue::open(&config, directory.path())
            .await
            .unwrap();
        queue.check_ready().await.unwrap();
        publish_task(&*queue, &task_message("over-tls", 1)).await;
        let mut stream = queue
            .consume(&queue.topology().execute_queue(), 1)
            .await
            .unwrap();
        let delivery = next_delivery(&mut stream).await;
        assert_eq!(label(&delivery), "over-tls");
        delivery.ack().await.unwrap();
        drop(stream);
        queue.close().await;

        // Another CA: the certificate does not verify, nothing connects.
        let (_, other_ca) = crate::queue_support::tls_front(amqp_uri_address()).await;
        let other_file = directory.path().join("other.crt");
        std::fs::write(&other_file, &other_ca).unwrap();
        let untrusting = QueueConfig {
            url: Some(Secret::new(url)),
            prefix: topology.prefix().to_owned(),
            tls_ca: Some(other_file),
        };
        let queue = shadowsync_common::queue::open(&untrusting, directory.path())
            .await
            .unwrap();
        assert!(
            queue.check_ready().await.is_err(),
            "a certificate from another CA"
        );
        queue.close().await;

        let cleanup = AmqpQueue::new(AmqpQueueOptions::new(amqp_uri(), topology)).unwrap();
        cleanup.delete_topology().await.unwrap();
        cleanup.close().await;
    }
}
