//! Caller-supplied values cannot forge log lines: a newline, an ANSI escape or a
//! 3 MiB id in a request leaves one escaped, bounded line per event, and a client's mistake is
//! never an ERROR in the server's log. The services log through the same writer as production
//! (`log_line::OneLinePerEvent`).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use shadowsync_common::log_line::OneLinePerEvent;
use shadowsync_proto::task::v1::*;
use shadowsync_task::TaskConfig;
use support::Services;
use tonic::Code;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const FORGED: &str = "2026-12-07T00:00:00.000000Z ERROR shadowsync_task: forged";

/// Everything runs on this one thread, so the thread-local subscriber sees the server's logs.
#[tokio::test(flavor = "current_thread")]
async fn request_values_cannot_forge_log_lines_or_raise_errors() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(OneLinePerEvent(move || writer.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let services = Services::start(TaskConfig::default()).await;
    let mut admin = services.client("root", &["admin"]).await;

    // Within the id bound: NOT_FOUND, logged by the use case with the id as a field.
    let crafted = format!("no-such\n{FORGED}\r\x1b[2J\x1b[31m");
    let status = admin
        .update_connection(UpdateConnectionRequest {
            connection_id: crafted.clone(),
            name: Some("n".into()),
            ..Default::default()
        })
        .await
        .expect_err("unknown connection");
    assert_eq!(status.code(), Code::NotFound);
    // Far past it: INVALID_ARGUMENT, and the id is not written anywhere whole.
    let huge = format!("{crafted}{}", "x".repeat(3 * 1024 * 1024));
    let status = admin
        .delete_connection(DeleteConnectionRequest {
            connection_id: huge,
        })
        .await
        .expect_err("huge id");
    assert_eq!(status.code(), Code::InvalidArgument);
    drop(services);

    let bytes = capture.0.lock().expect("capture").clone();
    let text = String::from_utf8_lossy(&bytes);
    // h2 and hyper log every frame at TRACE, so the log is long; no line holds the huge id.
    assert!(
        !text.contains(&"x".repeat(4096)),
        "the 3 MiB id reached the log"
    );
    assert!(!bytes.contains(&0x1b), "an ESC reached the log");
    assert!(!bytes.contains(&b'\r'), "a carriage return reached the log");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("no-such"),
        "the request was not logged at all:\n{text}"
    );
    for line in text.lines() {
        assert!(!line.starts_with(FORGED), "forged line: {line}");
        assert_ne!(
            line.split_whitespace().nth(1),
            Some("ERROR"),
            "a client's mistake logged as ERROR: {line}"
        );
    }
}
