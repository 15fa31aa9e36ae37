//! Issue 8's journey on separate services over PostgreSQL + RabbitMQ + MariaDB: each scenario
//! of [`shadowsync_system_tests::journey`] on a cluster of its own.

use shadowsync_system_tests::cluster::Cluster;
use shadowsync_system_tests::journey::{abort, access, approval, expiry, follow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_application() {
    let cluster = Cluster::start().await;
    access::permission_application(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_results_skips_and_logs() {
    let cluster = Cluster::start().await;
    access::analysis_results_skips_and_logs(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_template() {
    let cluster = Cluster::start().await;
    approval::two_node_template(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_and_initiate_again() {
    let cluster = Cluster::start().await;
    approval::rejection_and_initiate_again(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_execution() {
    let cluster = Cluster::start().await;
    approval::scheduled_execution(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_execution() {
    let cluster = Cluster::start().await;
    abort::abort_before_execution(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_executing() {
    let cluster = Cluster::start().await;
    abort::abort_while_executing(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_again_links_the_previous_analysis() {
    let cluster = Cluster::start().await;
    approval::initiate_again_links_the_previous_analysis(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expirations() {
    let cluster = Cluster::start().await;
    expiry::expirations(&cluster.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_list() {
    let cluster = Cluster::start().await;
    follow::task_list(&cluster.endpoints()).await;
}
