//! A loopback relay that keeps passwords from going out in clear.
//!
//! sqlx refuses a *switch* to `mysql_clear_password` (its `enable_cleartext_plugin` is off by
//! default and nothing here turns it on), but when a server names that plugin in its greeting,
//! sqlx 0.9 answers with the password in clear before any check. So a server we did not choose
//! (a spoofed host, a man in the middle on plain TCP) could read it. The gate sits between the
//! driver and the server, reads the server's greeting (always plain text, before any TLS), and
//! answers the driver with an error instead when the greeting asks for the cleartext plugin.
//! Over plain text it also watches the rest of the authentication exchange and refuses a server
//! that wants the password encrypted with a public key of its own (`caching_sha2_password` full
//! authentication, `sha256_password`), which amounts to the same leak. Everything after that is
//! relayed untouched (and a TLS session is opaque from its SSLRequest on).
//!
//! Only verified TLS (`VERIFY_CA`, `VERIFY_IDENTITY`) goes straight to the server: there the
//! password can only reach the server whose certificate was checked, and a relay would break
//! the host name check. `REQUIRED` does not verify who is at the other end, so it is gated.

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// The plugin that carries the password in clear.
const CLEARTEXT_PLUGIN: &[u8] = b"mysql_clear_password";

/// The largest greeting the gate reads (a real one is under 128 bytes).
const MAX_GREETING: usize = 1024;

/// The error number of a refused cleartext request (the client's "authentication plugin cannot
/// be loaded").
pub const REFUSED: u16 = 2059;

/// The error number when the gate cannot reach the server (the client's "can't connect to
/// server"): callers report it as a network failure, as they would without the gate.
pub const UNREACHABLE: u16 = 2003;

/// The error number when the server wants the password under its own key in plain text (the
/// client's "authentication requires secure connection").
pub const INSECURE: u16 = 2061;

/// The error the driver reports then.
pub const INSECURE_REFUSAL: &str = "the server asked for the password encrypted with a key it \
     sent over an unencrypted connection; refused: use ssl-mode VERIFY_CA or VERIFY_IDENTITY";

/// The largest authentication packet the gate relays while it watches (a handshake response,
/// an auth switch, a public key).
const MAX_AUTH_PACKET: usize = 64 * 1024;

/// The error the driver reports when the server asks for the cleartext plugin.
pub const REFUSAL: &str = "the server asked for the password in cleartext (mysql_clear_password); \
     refused: it is only sent over TLS with ssl-mode VERIFY_CA or VERIFY_IDENTITY";

/// A running gate; connections opened through it are refused while it is dropped.
pub struct CleartextGate {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CleartextGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CleartextGate {
    /// Returns options that reach `options`' server through a new gate, and the gate, which the
    /// caller keeps as long as it opens connections (a pool: as long as the pool). With verified
    /// TLS or a Unix socket, returns the options unchanged and no gate. Cleartext is refused
    /// either way. Must run inside a Tokio runtime; fails when no loopback port can be bound.
    pub fn protect(
        options: MySqlConnectOptions,
    ) -> std::io::Result<(MySqlConnectOptions, Option<CleartextGate>)> {
        let options = options.enable_cleartext_plugin(false);
        let verified = matches!(
            options.get_ssl_mode(),
            MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity
        );
        if verified || options.get_socket().is_some() {
            return Ok((options, None));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local = listener.local_addr()?;
        let upstream = (options.get_host().to_owned(), options.get_port());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone()));
            }
        });
        let gated = options.host(&local.ip().to_string()).port(local.port());
        Ok((gated, Some(CleartextGate { task })))
    }
}

/// `pool_options.connect_lazy_with(options)` through a gate that lives as long as the pool (it
/// ends when the pool is closed or dropped). Fails as [`CleartextGate::protect`] does.
pub fn gated_lazy_pool(
    pool_options: MySqlPoolOptions,
    options: MySqlConnectOptions,
) -> std::io::Result<MySqlPool> {
    let (options, gate) = CleartextGate::protect(options)?;
    let pool = pool_options.connect_lazy_with(options);
    if let Some(gate) = gate {
        // The close event holds no reference to the pool, so this task does not keep it alive.
        let closed = pool.close_event();
        tokio::spawn(async move {
            closed.await;
            drop(gate);
        });
    }
    Ok(pool)
}

async fn relay(mut client: TcpStream, (host, port): (String, u16)) {
    let mut server = match TcpStream::connect((host.as_str(), port)).await {
        Ok(server) => server,
        Err(error) => {
            debug!(%error, "cleartext gate: server unreachable");
            let message = format!("can't connect to server on '{host}:{port}': {error}");
            let _ = client
                .write_all(&error_packet(0, UNREACHABLE, &message))
                .await;
            return;
        }
    };
    // The driver turns Nagle's algorithm off on its own socket; the relay's two sockets must do
    // the same, or every small request waits for a delayed ACK (measured: introspection of 2,000
    // tables took 8 times as long through the gate).
    if let Err(error) = client
        .set_nodelay(true)
        .and_then(|()| server.set_nodelay(true))
    {
        debug!(%error, "cleartext gate: cannot set TCP_NODELAY");
    }
    let greeting = match read_packet(&mut server).await {
        Ok(greeting) => greeting,
        Err(error) => {
            debug!(%error, "cleartext gate: no greeting");
            return;
        }
    };
    if asks_for_cleartext(&greeting[4..]) {
        warn!(
            host = %crate::logged::logged(&host),
            port,
            "server asked for the cleartext auth plugin; refused"
        );
        let _ = client
            .write_all(&error_packet(greeting[3], REFUSED, REFUSAL))
            .await;
        return;
    }
    if client.write_all(&greeting).await.is_err() {
        return;
    }
    if let Err(error) = watch_plaintext_auth(&mut client, &mut server).await {
        debug!(%error, "cleartext gate: connection ended during authentication");
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// Relays the authentication exchange after the greeting. Over TLS (the client's first packet is
/// an SSLRequest) it is opaque and passed on. In plain text, the server may not ask for "more
/// data" beyond a fast-auth success: `caching_sha2_password`'s full authentication and
/// `sha256_password` make the driver encrypt the password with a public key *the server sends*,
/// which a server we did not choose can decrypt. Like the `mysql` client without
/// `--get-server-public-key`, the gate refuses (error 2061). Ends after the server's OK or error.
async fn watch_plaintext_auth(
    client: &mut TcpStream,
    server: &mut TcpStream,
) -> std::io::Result<()> {
    let response = read_limited(client, MAX_AUTH_PACKET).await?;
    server.write_all(&response).await?;
    if is_ssl_request(&response[4..]) {
        return Ok(());
    }
    loop {
        let packet = read_limited(server, MAX_AUTH_PACKET).await?;
        let payload = &packet[4..];
        match payload.first() {
            // More data, but only "fast authentication succeeded" (the OK follows).
            Some(0x01) if payload == [0x01, 0x03] => client.write_all(&packet).await?,
            Some(0x01) => {
                warn!("server asked for the password under its own key over plain text; refused");
                let refusal = error_packet(packet[3], INSECURE, INSECURE_REFUSAL);
                client.write_all(&refusal).await?;
                return Err(std::io::Error::other("refused"));
            }
            // An auth switch (sqlx refuses one to the cleartext plugin): the client answers.
            Some(0xfe) => {
                client.write_all(&packet).await?;
                let answer = read_limited(client, MAX_AUTH_PACKET).await?;
                server.write_all(&answer).await?;
            }
            // OK, error, or anything else: authentication is over.
            _ => {
                client.write_all(&packet).await?;
                return Ok(());
            }
        }
    }
}

/// An SSLRequest: the 32-byte start of a HandshakeResponse with CLIENT_SSL set.
fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32 && payload[1] & 0x08 != 0
}

/// Whether a greeting names the cleartext plugin anywhere (its plugin name field, or the nonce by
/// a 1 in 2^160 chance: a refused connection, never a leak).
fn asks_for_cleartext(payload: &[u8]) -> bool {
    payload
        .windows(CLEARTEXT_PLUGIN.len())
        .any(|window| window == CLEARTEXT_PLUGIN)
}

/// An ERR packet with a client-side error number (the 2000s are never sent by a server, so the
/// driver's caller can tell the gate's answers from the server's).
fn error_packet(sequence: u8, number: u16, message: &str) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&number.to_le_bytes());
    payload.extend_from_slice(b"#HY000");
    payload.extend_from_slice(message.as_bytes());
    let length = u32::try_from(payload.len()).unwrap_or(0).to_le_bytes();
    [vec![length[0], length[1], length[2], sequence], payload].concat()
}

/// One whole greeting, header included.
async fn read_packet(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    read_limited(stream, MAX_GREETING).await
}

/// One whole packet of at most `max` bytes, header included.
async fn read_limited(stream: &mut TcpStream, max: usize) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let length =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if length > max {
        return Err(std::io::Error::other("authentication packet too long"));
    }
    let mut packet = vec![0u8; 4 + length];
    packet[..4].copy_from_slice(&header);
    stream.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}
