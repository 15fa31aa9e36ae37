//! Issue 8's journey on the embedded mode (`serve all` on SQLite and the in-process queue) with
//! a MariaDB target: each scenario of [`shadowsync_system_tests::journey`] on an embedded
//! server of its own.

use shadowsync_system_tests::cluster::Embedded;
use shadowsync_system_tests::journey::{abort, access, approval, expiry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_application() {
    let server = Embedded::start().await;
    access::permission_application(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_results_skips_and_logs() {
    let server = Embedded::start().await;
    access::analysis_results_skips_and_logs(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_template() {
    let server = Embedded::start().await;
    approval::two_node_template(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_and_initiate_again() {
    let server = Embedded::start().await;
    approval::rejection_and_initiate_again(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_execution() {
    let server = Embedded::start().await;
    approval::scheduled_execution(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_execution() {
    let server = Embedded::start().await;
    abort::abort_before_execution(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_executing() {
    let server = Embedded::start().await;
    abort::abort_while_executing(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "task service bugs: InitiateAgain never sets previous_analysis_id, and re-applies skips only after SUCCEEDED"]
async fn initiate_again_links_the_previous_analysis() {
    let server = Embedded::start().await;
    approval::initiate_again_links_the_previous_analysis(&server.endpoints()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expirations() {
    let server = Embedded::start().await;
    expiry::expirations(&server.endpoints()).await;
}
