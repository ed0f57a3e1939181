//! The connection loop: header-read and idle timeouts, a cap on connections
//! (all, and per client address), and a shutdown that does not wait forever.
//! (The deadline on a whole request is the router's middleware, so a router
//! used on its own has it too.)

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::app::App;
use crate::router::router;

/// How long a client may take to send a request's headers; also how long a
/// keep-alive connection may wait for its next request (the timer starts when
/// the server is ready to read one).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends nothing at all for this long is closed, whatever
/// state it is in (a backstop under the timeouts above and the router's).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections one client address may hold at once; more are closed when
/// accepted, so one client cannot take every slot.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// After shutdown is asked for, requests in flight get this long to finish.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Serve until `shutdown` resolves, then give requests in flight
/// [`SHUTDOWN_DEADLINE`] to finish. Each connection has [`HEADER_TIMEOUT`] to
/// send its headers (and to start its next one), and at most
/// [`MAX_CONNECTIONS`] are served at once, [`MAX_CONNECTIONS_PER_CLIENT`] from
/// one address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    if let Ok(addr) = listener.local_addr() {
        app.allow_address(addr);
    }
    let router = router(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(counted) = PerClient::take(&per_client, peer.ip()) else {
            tracing::warn!(client = %peer.ip(), "connection closed: the client holds {MAX_CONNECTIONS_PER_CLIENT} already");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(IdleTimeout::new(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop((slot, counted));
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at the shutdown deadline were dropped");
    }
    Ok(())
}

/// One connection counted against its client's address, until dropped.
struct PerClient {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerClient {
    /// Count a connection from `ip`, unless it holds [`MAX_CONNECTIONS_PER_CLIENT`].
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Self> {
        let mut map = counts.lock().expect("connection counts");
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PerClient {
    fn drop(&mut self) {
        let mut map = self.counts.lock().expect("connection counts");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A stream that fails a read after [`IDLE_TIMEOUT`] without a byte: a
/// connection holding no request open cannot be kept forever.
struct IdleTimeout {
    stream: tokio::net::TcpStream,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeout {
    fn new(stream: tokio::net::TcpStream) -> Self {
        Self {
            stream,
            deadline: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
        }
    }
}

impl tokio::io::AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + IDLE_TIMEOUT;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl tokio::io::AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
