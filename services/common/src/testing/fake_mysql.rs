//! A fake MySQL server that asks for the password in clear (`mysql_clear_password`) over plain
//! TCP and records every byte the client sends, so a test can prove the password never leaves.
//! It speaks just enough of the handshake: a HandshakeV10, then either an AuthSwitchRequest or
//! nothing (when the plugin was offered up front), then an error packet.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server asks for the cleartext password.
#[derive(Clone, Copy, Debug)]
pub enum CleartextAsk {
    /// Offer `mysql_native_password` in the greeting, then switch to `mysql_clear_password`.
    AuthSwitch,
    /// Name `mysql_clear_password` in the greeting itself.
    Greeting,
    /// Offer `caching_sha2_password`, then ask for full authentication over plain text: the
    /// client would fetch the server's public key and send the password encrypted with it.
    FullAuth,
}

/// A listening fake server; it serves every connection until dropped.
pub struct FakeMySql {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeMySql {
    pub async fn start(ask: CleartextAsk) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, ask, sink.clone()));
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// Every byte any client sent so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }

    /// How many packets clients sent so far.
    pub fn packets(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Whether `secret` appears anywhere in what clients sent.
    pub fn saw(&self, secret: &str) -> bool {
        self.received()
            .windows(secret.len())
            .any(|window| window == secret.as_bytes())
    }
}

impl Drop for FakeMySql {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, ask: CleartextAsk, sink: Arc<Mutex<Vec<Vec<u8>>>>) {
    let plugin: &[u8] = match ask {
        CleartextAsk::AuthSwitch => b"mysql_native_password",
        CleartextAsk::Greeting => b"mysql_clear_password",
        CleartextAsk::FullAuth => b"caching_sha2_password",
    };
    if write_packet(&mut stream, 0, &greeting(plugin))
        .await
        .is_err()
    {
        return;
    }
    // The client's HandshakeResponse (and, after a switch, its AuthSwitchResponse).
    if !record_packet(&mut stream, &sink).await {
        return;
    }
    let next: Option<Vec<u8>> = match ask {
        CleartextAsk::AuthSwitch => Some([&[0xfe][..], b"mysql_clear_password\0"].concat()),
        // "Perform full authentication": the client asks for the public key next.
        CleartextAsk::FullAuth => Some(vec![0x01, 0x04]),
        CleartextAsk::Greeting => None,
    };
    if let Some(next) = next {
        if write_packet(&mut stream, 2, &next).await.is_err() {
            return;
        }
        if !record_packet(&mut stream, &sink).await {
            return;
        }
    }
    let mut refusal = vec![0xff, 0x15, 0x04, b'#'];
    refusal.extend_from_slice(b"28000fake server: access denied");
    let _ = write_packet(&mut stream, 4, &refusal).await;
}

/// A HandshakeV10 with PROTOCOL_41, SECURE_CONNECTION and PLUGIN_AUTH and no SSL, so the client
/// has no TLS to fall back on.
fn greeting(plugin: &[u8]) -> Vec<u8> {
    let mut packet = vec![10];
    packet.extend_from_slice(b"5.7.99-fake\0");
    packet.extend_from_slice(&7u32.to_le_bytes());
    packet.extend_from_slice(b"abcdefgh\0");
    // CLIENT_LONG_PASSWORD | PROTOCOL_41 | SECURE_CONNECTION; then PLUGIN_AUTH in the upper half.
    packet.extend_from_slice(&(1u16 | 1 << 9 | 1 << 15).to_le_bytes());
    packet.push(45);
    packet.extend_from_slice(&2u16.to_le_bytes());
    packet.extend_from_slice(&((1u32 << 19) >> 16).to_le_bytes()[..2]);
    packet.push(21);
    packet.extend_from_slice(&[0; 10]);
    packet.extend_from_slice(b"ijklmnopqrst\0");
    packet.extend_from_slice(plugin);
    packet.push(0);
    packet
}

async fn write_packet(stream: &mut TcpStream, sequence: u8, payload: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(payload.len()).unwrap().to_le_bytes();
    stream
        .write_all(&[length[0], length[1], length[2], sequence])
        .await?;
    stream.write_all(payload).await?;
    stream.flush().await
}

/// Reads one packet (header and payload) into `sink`; false when the client is gone or silent.
async fn record_packet(stream: &mut TcpStream, sink: &Mutex<Vec<Vec<u8>>>) -> bool {
    let read = async {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await?;
        let length =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).await?;
        Ok::<_, std::io::Error>([header.to_vec(), payload].concat())
    };
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(bytes)) => {
            sink.lock().unwrap().push(bytes);
            true
        }
        _ => false,
    }
}
