//! A TCP proxy in front of RabbitMQ with which a test plays network failures without touching
//! the shared broker: [`TcpProxy::cut`] closes every connection and refuses new ones;
//! [`TcpProxy::stall`] keeps the sockets open but stops forwarding (a broker that stopped
//! answering, or a silent network partition).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    address: SocketAddr,
    target: SocketAddr,
    stalled: watch::Sender<bool>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = listen("127.0.0.1:0".parse().unwrap());
        let address = listener.local_addr().unwrap();
        let mut proxy = Self {
            address,
            target,
            stalled: watch::Sender::new(false),
            running: None,
        };
        proxy.serve(listener);
        proxy
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every proxied connection and refuses new ones until [`TcpProxy::restore`].
    pub async fn cut(&mut self) {
        if let Some((stop, accepting)) = self.running.take() {
            stop.cancel();
            accepting.await.unwrap();
        }
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&mut self) {
        if self.running.is_none() {
            let listener = listen(self.address);
            self.serve(listener);
        }
    }

    /// Stops forwarding bytes in both directions (connections stay open and new ones are
    /// accepted) until [`TcpProxy::resume`].
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards again, including what was held back.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let target = self.target;
        let stalled = self.stalled.subscribe();
        let accepting = tokio::spawn({
            let stop = stop.clone();
            async move {
                // Dropping the set aborts the pipes, which closes both sockets of each.
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            let stalled = stalled.clone();
                            connections.spawn(async move {
                                let Ok(server) = TcpStream::connect(target).await else { return };
                                let (client_read, client_write) = client.into_split();
                                let (server_read, server_write) = server.into_split();
                                tokio::join!(
                                    pipe(client_read, server_write, stalled.clone()),
                                    pipe(server_read, client_write, stalled),
                                );
                            });
                        }
                    }
                }
            }
        });
        self.running = Some((stop, accepting));
    }
}

/// Copies `from` to `to`, holding data back while stalled.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            break;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn listen(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(64).unwrap()
}
