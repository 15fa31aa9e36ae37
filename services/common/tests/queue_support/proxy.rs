//! A TCP proxy in front of RabbitMQ whose connections a test can cut and restore, to play a
//! network failure without touching the shared broker.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    address: SocketAddr,
    target: SocketAddr,
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

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let target = self.target;
        let accepting = tokio::spawn({
            let stop = stop.clone();
            async move {
                // Dropping the set aborts the copies, which closes both sockets of each.
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => {
                            let Ok((mut client, _)) = accepted else { continue };
                            connections.spawn(async move {
                                if let Ok(mut server) = TcpStream::connect(target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                                }
                            });
                        }
                    }
                }
            }
        });
        self.running = Some((stop, accepting));
    }
}

fn listen(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(64).unwrap()
}
