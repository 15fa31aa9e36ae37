//! A stand-in for a company's identity provider: RS256 keys made for tests (under
//! `tests/fixtures`, they guard nothing) and a JWK Set server on 127.0.0.1 that counts the
//! fetches it answers and can be told to fail, stall or answer too much.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A test RSA key pair with its JWK Set (one key, `kid` = its RFC 7638 thumbprint).
#[derive(Debug, Clone, Copy)]
pub struct TestKey {
    pub private_pem: &'static str,
    pub jwks: &'static str,
}

/// The identity provider's first key.
pub const IDP_A: TestKey = TestKey {
    private_pem: include_str!("../../tests/fixtures/idp-a-private.pem"),
    jwks: include_str!("../../tests/fixtures/idp-a.jwks.json"),
};
/// The key the identity provider rotates to.
pub const IDP_B: TestKey = TestKey {
    private_pem: include_str!("../../tests/fixtures/idp-b-private.pem"),
    jwks: include_str!("../../tests/fixtures/idp-b.jwks.json"),
};
/// The platform's own key (what `auth.jwks_file` would hold).
pub const LOCAL: TestKey = TestKey {
    private_pem: include_str!("../../tests/fixtures/local-private.pem"),
    jwks: include_str!("../../tests/fixtures/local.jwks.json"),
};
/// A key nobody trusts.
pub const ATTACKER: TestKey = TestKey {
    private_pem: include_str!("../../tests/fixtures/attacker-private.pem"),
    jwks: include_str!("../../tests/fixtures/attacker.jwks.json"),
};

impl TestKey {
    /// The key's `kid`.
    pub fn kid(&self) -> String {
        self.member()["kid"].as_str().unwrap().to_string()
    }

    /// The key's JWK (the one member of its set).
    pub fn member(&self) -> serde_json::Value {
        let set: serde_json::Value = serde_json::from_str(self.jwks).unwrap();
        set["keys"][0].clone()
    }

    /// An RS256 token of exactly `claims`, its header naming this key's `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_as(claims, Some(&self.kid()))
    }

    /// An RS256 token of exactly `claims` whose header names `kid` (or none).
    pub fn sign_as(&self, claims: &serde_json::Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// A JWK Set of the given members.
pub fn jwks_of(members: &[serde_json::Value]) -> String {
    serde_json::json!({ "keys": members }).to_string()
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `200 OK` with this body.
    Ok(String),
    /// This status with an empty body.
    Status(u16),
    /// Nothing: the connection stays open, silent.
    Stall,
}

/// A JWK Set server on 127.0.0.1; stops when dropped.
pub struct JwksServer {
    address: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `body` at every path.
    pub async fn start(body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Answer::Ok(body.to_string())));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let answer = answer.clone();
            let requests = requests.clone();
            async move {
                // Connections end with the server: dropping the set aborts them.
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let answer = answer.clone();
                    let requests = requests.clone();
                    connections.spawn(async move {
                        // One request per connection: read its head, answer, close.
                        let mut head = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buffer[..n]),
                            }
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        let answer = answer.lock().unwrap().clone();
                        let response = match answer {
                            Answer::Ok(body) => format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            ),
                            Answer::Status(code) => format!(
                                "HTTP/1.1 {code} Oops\r\ncontent-length: 0\r\n\
                                 connection: close\r\n\r\n"
                            ),
                            Answer::Stall => {
                                std::future::pending::<()>().await;
                                return;
                            }
                        };
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            }
        });
        Self {
            address,
            answer,
            requests,
            task,
        }
    }

    /// The URL to configure as `auth.jwks_url`.
    pub fn url(&self) -> String {
        format!(
            "http://{}/realms/test/protocol/openid-connect/certs",
            self.address
        )
    }

    /// What later requests get.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Serves `body` from now on.
    pub fn serve(&self, body: &str) {
        self.answer(Answer::Ok(body.to_string()));
    }

    /// How many requests it has answered (or started to).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
