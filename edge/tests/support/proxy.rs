//! A TCP proxy between the publisher and the broker that a test can cut,
//! redirect, or make swallow the broker's replies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct ProxyState {
    upstream: Mutex<SocketAddr>,
    /// When set, bytes from the broker to the client are dropped.
    swallow_replies: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    links: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy; it stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    accept_task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` and forwards each connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(listen)
            .await
            .expect("bind the proxy port");
        let addr = listener.local_addr().expect("read the proxy port");
        let state = Arc::new(ProxyState {
            upstream: Mutex::new(upstream),
            swallow_replies: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            links: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept_task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accept_state.accepted.fetch_add(1, Ordering::SeqCst);
                let upstream = *accept_state.upstream.lock().unwrap();
                let Ok(broker) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let link = tokio::spawn(forward(client, broker, Arc::clone(&accept_state)));
                accept_state.links.lock().unwrap().push(link);
            }
        });
        Proxy {
            addr,
            state,
            accept_task,
        }
    }

    /// Drops (or stops dropping) every byte the broker sends to clients.
    pub fn swallow_replies(&self, swallow: bool) {
        self.state.swallow_replies.store(swallow, Ordering::SeqCst);
    }

    /// Returns the number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Sends new connections to `upstream`.
    pub fn redirect(&self, upstream: SocketAddr) {
        *self.state.upstream.lock().unwrap() = upstream;
    }

    /// Closes every open connection in both directions.
    pub fn cut(&self) {
        for link in self.state.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.cut();
    }
}

async fn forward(client: TcpStream, broker: TcpStream, state: Arc<ProxyState>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    let upstream = async {
        let mut buffer = vec![0; 8192];
        while let Ok(read @ 1..) = client_read.read(&mut buffer).await {
            if broker_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0; 8192];
        while let Ok(read @ 1..) = broker_read.read(&mut buffer).await {
            if state.swallow_replies.load(Ordering::SeqCst) {
                continue;
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
