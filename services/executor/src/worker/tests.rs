//! The worker loop on the in-process queue and on RabbitMQ, executing against the real MariaDB
//! with the task service played by `InMemoryTaskServiceDouble`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shadowsync_common::clock::SystemClock;
use shadowsync_common::queue::{
    AmqpQueue, AmqpQueueOptions, Destination, InProcessQueue, Message, MessageQueue, Topology,
};
use shadowsync_proto::common::v1::ExecuteTask;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ExecutorDeps;
use crate::testing::TestDb;
use crate::testing::task_service_double::{InMemoryTaskServiceDouble, OnFinalReport};

const DEADLINE: Duration = Duration::from_secs(30);

fn topology() -> Topology {
    Topology::new(format!("test-executor-{}.", uuid::Uuid::new_v4()))
        .expire_unused_after(Duration::from_secs(300))
}

fn start_worker(
    queue: Arc<dyn MessageQueue>,
    service: Arc<InMemoryTaskServiceDouble>,
    executor_id: &str,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    start_worker_with_grace(queue, service, executor_id, Duration::from_secs(5))
}

fn start_worker_with_grace(
    queue: Arc<dyn MessageQueue>,
    service: Arc<InMemoryTaskServiceDouble>,
    executor_id: &str,
    shutdown_grace: Duration,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let deps = ExecutorDeps {
        queue,
        backend: service,
        clock: Arc::new(SystemClock),
        executor_id: executor_id.into(),
        prefetch: 1,
        concurrency: 2,
        table_parallelism: 1,
        shutdown_grace,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        crate::run(deps, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (stop, handle)
}

async fn publish(queue: &dyn MessageQueue, task_id: i64) {
    let message = Message::from_protobuf(&ExecuteTask {
        task_id,
        attempt: 1,
        priority: 5,
        ..Default::default()
    });
    queue
        .publish(&Destination::ExecuteQueue, &message)
        .await
        .unwrap();
}

async fn wait_for_outcome(service: &InMemoryTaskServiceDouble, task_id: i64) -> ExecutionOutcome {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Some(outcome)) = service.with_task(task_id, |t| t.final_outcome) {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("task completed in time")
}

/// Message ids in the execute queue's dead-letter queue.
async fn dead_letters(queue: &dyn MessageQueue, expected: usize) -> Vec<String> {
    let dead = queue
        .topology()
        .dead_letter_queue(&queue.topology().execute_queue());
    let mut stream = queue.consume(&dead, 10).await.unwrap();
    let mut found = Vec::new();
    while found.len() < expected {
        let Ok(Some(delivery)) = tokio::time::timeout(DEADLINE, stream.next()).await else {
            break;
        };
        let delivery = delivery.unwrap();
        found.push(delivery.message().message_type.clone());
        delivery.ack().await.unwrap();
    }
    found
}

async fn poison_is_dead_lettered_and_the_loop_goes_on(queue: Arc<dyn MessageQueue>) {
    let db = TestDb::new().await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY)").await;
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service.add_task(7, db.target(), ErrorStrategy::Abort, db.plan().await);
    let (stop, worker) = start_worker(queue.clone(), service.clone(), "executor-a");

    let garbage = Message::new("shadowsync.common.v1.ExecuteTask", vec![0xff, 0xff, 0xff]);
    queue
        .publish(&Destination::ExecuteQueue, &garbage)
        .await
        .unwrap();
    publish(queue.as_ref(), 999).await; // unknown task
    publish(queue.as_ref(), 7).await;

    assert_eq!(
        wait_for_outcome(&service, 7).await,
        ExecutionOutcome::Succeeded
    );
    assert_eq!(
        service.with_task(7, |t| t.results["a"].status),
        Some(TableExecutionStatus::Succeeded)
    );
    let dead = dead_letters(queue.as_ref(), 2).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let _ = stop.send(());
    worker.await.unwrap();
    db.drop_database().await;
}

async fn a_duplicate_delivery_executes_once(queue: Arc<dyn MessageQueue>) {
    let db = TestDb::new().await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)")
        .await;
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service.add_task(8, db.target(), ErrorStrategy::Abort, db.plan().await);
    publish(queue.as_ref(), 8).await;
    publish(queue.as_ref(), 8).await;
    let (stop_a, worker_a) = start_worker(queue.clone(), service.clone(), "executor-a");
    let (stop_b, worker_b) = start_worker(queue.clone(), service.clone(), "executor-b");

    let outcome = wait_for_outcome(&service, 8).await;
    let logs = service.with_task(8, |t| format!("{:#?}\n{:#?}", t.reports, t.logs));
    assert_eq!(
        outcome,
        ExecutionOutcome::Succeeded,
        "{}",
        logs.unwrap_or_default()
    );
    // Let the second delivery be claimed (and refused) too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_a.send(());
    let _ = stop_b.send(());
    tokio::time::timeout(DEADLINE, worker_a)
        .await
        .expect("worker a stopped")
        .unwrap();
    tokio::time::timeout(DEADLINE, worker_b)
        .await
        .expect("worker b stopped")
        .unwrap();
    assert_eq!(service.with_task(8, |t| t.grants), Some(1));
    let running_reports = service
        .with_task(8, |t| {
            t.reports
                .iter()
                .filter(|r| r.status == TableExecutionStatus::Running)
                .count()
        })
        .unwrap();
    assert_eq!(running_reports, 2, "each table started once");
    // Both deliveries were acked: nothing is left to consume and nothing was dead-lettered.
    let mut rest = queue
        .consume(&queue.topology().execute_queue(), 1)
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rest.next())
            .await
            .is_err()
    );
    drop(rest);
    assert!(dead_letters_quick(queue.as_ref()).await.is_empty());
    db.drop_database().await;
}

async fn dead_letters_quick(queue: &dyn MessageQueue) -> Vec<String> {
    let dead = queue
        .topology()
        .dead_letter_queue(&queue.topology().execute_queue());
    let mut stream = queue.consume(&dead, 10).await.unwrap();
    let mut found = Vec::new();
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_millis(300), stream.next()).await
    {
        found.push(delivery.message().message_type.clone());
        delivery.ack().await.unwrap();
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_a_running_task_back_and_the_next_attempt_resumes() {
    let queue = in_process().await;
    let db = TestDb::new().await;
    db.exec(ABC).await;
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service.add_task(9, db.target(), ErrorStrategy::Abort, db.plan().await);
    service.on_final_report(
        9,
        "a",
        OnFinalReport::AnswerAfter(Duration::from_millis(500)),
    );
    let (stop, worker) =
        start_worker_with_grace(queue.clone(), service.clone(), "executor-a", Duration::ZERO);
    publish(queue.as_ref(), 9).await;
    // Shut down while the executor waits for the answer to table `a`'s report.
    tokio::time::timeout(DEADLINE, async {
        while service.with_task(9, |t| t.results.contains_key("a")) != Some(true) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, worker)
        .await
        .unwrap()
        .unwrap();
    // Handed back between statements: nothing completed, `b` and `c` untouched, and the task's
    // log says why it stopped.
    assert_eq!(service.with_task(9, |t| t.final_outcome), Some(None));
    assert_eq!(db.fingerprint("_test_b").await, None);
    let logs = service.with_task(9, |t| t.logs.clone()).unwrap();
    let handed_back: Vec<_> = logs
        .iter()
        .filter(|l| l.message.contains("handed back between statements"))
        .collect();
    assert_eq!(handed_back.len(), 1, "{logs:#?}");
    assert_eq!(
        handed_back[0].level,
        shadowsync_proto::task::v1::LogLevel::Warn
    );

    // The lease lapses, the sweeper re-dispatches, another executor resumes.
    let attempt = service.expire_lease_and_redispatch(9);
    let (stop, worker) = start_worker(queue.clone(), service.clone(), "executor-b");
    let message = Message::from_protobuf(&ExecuteTask {
        task_id: 9,
        attempt,
        priority: 5,
        ..Default::default()
    });
    queue
        .publish(&Destination::ExecuteQueue, &message)
        .await
        .unwrap();
    assert_eq!(
        wait_for_outcome(&service, 9).await,
        ExecutionOutcome::Succeeded
    );
    for source in ["a", "b", "c"] {
        let status = service.with_task(9, |t| t.results[source].status);
        assert_eq!(status, Some(TableExecutionStatus::Succeeded), "{source}");
    }
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, worker)
        .await
        .unwrap()
        .unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_cannot_be_made_now_is_handed_back_and_retried() {
    let queue = in_process().await;
    let db = TestDb::new().await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY)").await;
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service
        .unavailable_claims
        .store(2, std::sync::atomic::Ordering::SeqCst);
    service.add_task(10, db.target(), ErrorStrategy::Abort, db.plan().await);
    let (stop, worker) = start_worker(queue.clone(), service.clone(), "executor-a");
    publish(queue.as_ref(), 10).await;
    assert_eq!(
        wait_for_outcome(&service, 10).await,
        ExecutionOutcome::Succeeded
    );
    assert!(dead_letters_quick(queue.as_ref()).await.is_empty());
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, worker)
        .await
        .unwrap()
        .unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_internal_is_handed_back_not_dead_lettered() {
    let queue = in_process().await;
    let db = TestDb::new().await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY)").await;
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service
        .internal_claims
        .store(2, std::sync::atomic::Ordering::SeqCst);
    service.add_task(11, db.target(), ErrorStrategy::Abort, db.plan().await);
    let (stop, worker) = start_worker(queue.clone(), service.clone(), "executor-a");
    publish(queue.as_ref(), 11).await;
    assert_eq!(
        wait_for_outcome(&service, 11).await,
        ExecutionOutcome::Succeeded
    );
    assert!(dead_letters_quick(queue.as_ref()).await.is_empty());
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, worker)
        .await
        .unwrap()
        .unwrap();
    db.drop_database().await;
}

const ABC: &str = "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);\
    CREATE TABLE c (id int PRIMARY KEY);";

async fn in_process() -> Arc<dyn MessageQueue> {
    Arc::new(InProcessQueue::in_memory(topology()).await.unwrap())
}

async fn rabbitmq() -> (Arc<dyn MessageQueue>, AmqpQueue) {
    let queue = AmqpQueue::new(AmqpQueueOptions::new(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        topology(),
    ))
    .unwrap();
    (Arc::new(queue.clone()), queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_poison_message_is_dead_lettered_and_the_loop_goes_on() {
    poison_is_dead_lettered_and_the_loop_goes_on(in_process().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_duplicate_delivery_to_two_workers_executes_once() {
    a_duplicate_delivery_executes_once(in_process().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_poison_message_is_dead_lettered_and_the_loop_goes_on() {
    let (queue, amqp) = rabbitmq().await;
    poison_is_dead_lettered_and_the_loop_goes_on(queue).await;
    amqp.delete_topology().await.unwrap();
    amqp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_duplicate_delivery_to_two_workers_executes_once() {
    let (queue, amqp) = rabbitmq().await;
    a_duplicate_delivery_executes_once(queue).await;
    amqp.delete_topology().await.unwrap();
    amqp.close().await;
}
