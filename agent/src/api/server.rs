//! The HTTP server's connections: the accept loop, plain HTTP or HTTPS, and the bounds that
//! keep slow and idle clients from starving everyone else.
//!
//! - At most [`Limits::max_connections`] connections are open at once. Over the bound, the
//!   accept loop stops accepting: new connections wait in the kernel's listen queue
//!   ([`LISTEN_BACKLOG`] long) until one closes, while requests on accepted connections
//!   finish.
//! - A client has [`Limits::header_read_timeout`] to send a request's head, from the moment
//!   the connection is accepted (or the previous response is sent, on a kept-alive
//!   connection); a connection that sends nothing, or a partial request line, is closed then.
//! - A request's head (request line and headers) is at most [`MAX_HEAD_BYTES`]: a larger one
//!   is answered 431 and closed, so a connection's buffer stays small before any token is
//!   checked.
//! - An HTTPS client has [`Limits::handshake_timeout`] to complete the TLS handshake.
//! - A client that stops reading what the agent sends it (a write that cannot progress for
//!   [`Limits::write_stall_timeout`]) is closed, so it cannot hold its slot forever.
//! - The bound on connections leaves room under the process's open-file limit for
//!   everything else the agent opens ([`RESERVED_FDS`]).
//!
//! Whether a new connection speaks TLS, and with which certificate, is decided when it is
//! accepted (the `tls` function [`serve`] is given reads the running configuration), so a
//! reload that replaces the certificate applies to the next connection and leaves open ones
//! alone.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Most connections open at once (when the open-file limit allows it).
pub const MAX_CONNECTIONS: usize = 2048;
/// File descriptors kept for everything but HTTP connections: the outbox, collectors'
/// files, Redis and probe connections, receivers.
pub const RESERVED_FDS: u64 = 512;
/// Time a client has to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read (hyper's read buffer, at least 8 KiB): 2048 connections hold
/// 32 MiB at most, where hyper's default (about 400 KiB) would allow 800 MiB.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
const _: () = assert!(MAX_HEAD_BYTES >= 8192, "hyper's smallest read buffer");
/// Time an HTTPS client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a write to a client may wait for the client to read.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long open connections have to finish their requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections the kernel queues until the accept loop takes them (capped by
/// `net.core.somaxconn`, 4096 by default). A burst of new connections, or those waiting
/// while the bound is reached, queue here; past it the kernel drops their handshakes, and
/// they are only taken in on the client's retransmissions, seconds later.
pub const LISTEN_BACKLOG: u32 = 1024;
/// Pause after an accept error that is not about one connection (such as running out of
/// file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);
/// Least time between two "connection limit reached" warnings.
const SATURATION_WARN_EVERY: Duration = Duration::from_secs(60);

/// The server's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's head.
    pub header_read_timeout: Duration,
    /// Time an HTTPS client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Longest a write may wait for the client to read.
    pub write_stall_timeout: Duration,
    /// At shutdown, how long open connections have to finish.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The agent's bounds: [`MAX_CONNECTIONS`], or fewer when the open-file limit would not
    /// leave [`RESERVED_FDS`] for the rest of the agent. The soft limit is first raised
    /// towards what that needs, as far as the hard limit allows (under systemd, the unit's
    /// `LimitNOFILE=` sets both).
    pub fn for_this_process() -> Limits {
        Limits {
            max_connections: connection_bound(raise_open_file_limit()),
            header_read_timeout: HEADER_READ_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Raises the soft open-file limit to `MAX_CONNECTIONS + RESERVED_FDS` if it is lower and
/// the hard limit allows; returns the soft limit in effect (`None`: unlimited).
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = MAX_CONNECTIONS as u64 + RESERVED_FDS;
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    if current >= wanted {
        return Some(current);
    }
    let raised = limit.maximum.map_or(wanted, |max| max.min(wanted));
    if raised > current
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        )
        .is_ok()
    {
        return Some(raised);
    }
    Some(current)
}

/// The connection bound under a soft open-file limit of `open_files` (`None`: unlimited):
/// [`MAX_CONNECTIONS`] at most, leaving [`RESERVED_FDS`] (or half the limit, when it is
/// small) for the rest.
fn connection_bound(open_files: Option<u64>) -> usize {
    let Some(n) = open_files else {
        return MAX_CONNECTIONS;
    };
    let available = n.saturating_sub(RESERVED_FDS).max(n / 2).max(1);
    usize::try_from(available).map_or(MAX_CONNECTIONS, |a| a.min(MAX_CONNECTIONS))
}

/// A listening socket on `addr` (address reuse on, as the standard library's, so a restart
/// can bind while old connections linger) with a [`LISTEN_BACKLOG`] queue.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `stop` turns true (or its sender is gone), within
/// `limits`; each new connection speaks HTTPS with what `tls` returns then, or plain HTTP
/// when it returns `None`. Once stopped it accepts nothing more, lets open connections
/// finish their requests for up to `limits.shutdown_grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: impl Fn() -> Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let mut last_warned: Option<Instant> = None;
    // The accept loop's pause after an error watches for the stop on its own receiver.
    let mut stop_pause = stop.clone();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_warned.is_none_or(|t| t.elapsed() >= SATURATION_WARN_EVERY) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "HTTP connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    _ = stopped(&mut stop) => break,
                }
            }
        };
        let tcp = tokio::select! {
            tcp = accept(&listener, &mut stop_pause) => match tcp {
                Some(tcp) => tcp,
                None => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            limits,
            stop: stop.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(tcp, tls()));
    }
    drop(listener);
    // Every connection holds a slot until it is done: all slots back means all done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// The next connection; `None` once `stop` turned true during a pause after an error.
async fn accept(listener: &TcpListener, stop: &mut watch::Receiver<bool>) -> Option<TcpStream> {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return Some(tcp),
            // One connection that went away before it was accepted: take the next.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot accept HTTP connections; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_RETRY) => {}
                    _ = stopped(stop) => return None,
                }
            }
        }
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: http1::Builder,
    app: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    /// Held until the connection is done.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves `tcp`: HTTPS with `tls` when set (after the handshake), else plain HTTP.
    async fn run(mut self, tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
        let _ = tcp.set_nodelay(true);
        let tcp = StallLimit::new(tcp, self.limits.write_stall_timeout);
        let Some(tls) = tls else {
            return self.serve(tcp).await;
        };
        let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(tcp);
        let stream = tokio::select! {
            done = tokio::time::timeout(self.limits.handshake_timeout, handshake) => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            },
            _ = stopped(&mut self.stop) => return,
        };
        self.serve(stream).await;
    }

    /// Serves HTTP/1.1 on `io` until the client closes, a bound closes it, or the server
    /// stops (then the request in progress finishes, for up to the shutdown grace).
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = TowerToHyperService::new(self.app.clone());
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "HTTP connection closed");
                }
            }
            _ = stopped(&mut self.stop) => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.limits.shutdown_grace, connection).await;
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has waited `limit` for the peer to
/// read (the kernel's send buffer staying full). Reads are left alone: hyper bounds the wait
/// for a request's head, and while a handler runs hyper may keep a read pending.
struct StallLimit<I> {
    io: I,
    limit: Duration,
    /// When the pending write gives up; `None` while writes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> StallLimit<I> {
    fn new(io: I, limit: Duration) -> Self {
        StallLimit {
            io,
            limit,
            stalled: None,
        }
    }

    /// Turns a write's outcome into the stall rule's: progress clears the timer, a pending
    /// write starts it (or fails once it has run out).
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has not read for the write stall timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallLimit<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallLimit<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    fn limits(max_connections: usize) -> Limits {
        Limits {
            max_connections,
            header_read_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(7),
            write_stall_timeout: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// A server on a free loopback port: `/` answers `ok`, `/slow` after 5 s.
    async fn start(
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (
        std::net::SocketAddr,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/big", get(|| async { "x".repeat(64 * 1024 * 1024) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "slow"
                }),
            );
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, app, move || tls.clone(), limits, stopped));
        (addr, stop, server)
    }

    /// Everything the server sends until it closes the connection; fails the test when
    /// that takes an hour (at once, on paused time, when no other timer is pending).
    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3600), stream.read_to_end(&mut out));
        assert!(
            read.await.is_ok(),
            "the server did not close the connection"
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    // Paused time: the clock moves only when every task waits, to the next timer, so how
    // long something took on it says which timer let it happen.

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
        let (addr, _stop, _server) = start(limits(8), None).await;
        let start = Instant::now();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(&mut idle).await, "", "closed without an answer");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A partial request line is no better.
        let start = Instant::now();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET /metr").await.unwrap();
        let _ = read_all(&mut partial).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A client that sends its request is answered at once.
        let start = Instant::now();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(REQUEST).await.unwrap();
        let answer = read_all(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_head_over_the_bound_is_refused() {
        let (addr, _stop, _server) = start(limits(8), None).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let filler = "x".repeat(MAX_HEAD_BYTES);
        let request = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n");
        // The server may close before it has read everything: a failed write is fine.
        let _ = client.write_all(request.as_bytes()).await;
        let answer = read_all(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        // Just under the bound is fine.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let filler = "x".repeat(MAX_HEAD_BYTES / 2);
        let request =
            format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Filler: {filler}\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let answer = read_all(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_bound_a_new_connection_waits_until_one_closes() {
        let (addr, _stop, _server) = start(limits(1), None).await;
        let start = Instant::now();
        // Holds the only slot until the header read timeout closes it.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting.write_all(REQUEST).await.unwrap();
        let answer = read_all(&mut waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "answered when the idle connection's slot came free"
        );
        assert_eq!(read_all(&mut idle).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_closed_after_the_write_stall_timeout() {
        let (addr, _stop, _server) = start(limits(1), None).await;
        let start = Instant::now();
        // Asks for 64 MiB and reads none of it: the send buffers fill, the writes stall.
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        stuck
            .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting.write_all(REQUEST).await.unwrap();
        let answer = read_all(&mut waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(20),
            "answered when the stuck connection's slot came free"
        );
        // What the stuck client got is a cut-off answer, then the close.
        let got = read_all(&mut stuck).await;
        assert!(
            got.starts_with("HTTP/1.1 200"),
            "{}",
            &got[..40.min(got.len())]
        );
        assert!(got.len() < 64 * 1024 * 1024, "{} bytes", got.len());
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_the_request_in_progress_finishes_and_idle_connections_close() {
        let (addr, stop, server) = start(limits(8), None).await;
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut kept_alive = TcpStream::connect(addr).await.unwrap();
        kept_alive
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        kept_alive.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let start = Instant::now();
        stop.send(true).unwrap();
        let answer = read_all(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("slow"), "{answer}");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        server.await.unwrap();
        // Nothing more is accepted.
        assert!(TcpStream::connect(addr).await.is_err());
        let rest = read_all(&mut kept_alive).await;
        assert!(
            !rest.is_empty(),
            "the first answer's remainder, then the close"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_tls_a_client_that_never_completes_the_handshake_is_closed() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/config/valid/tls"
        );
        let tls = crate::settings::tls::load(
            &std::path::Path::new(dir).join("cert.pem"),
            &std::path::Path::new(dir).join("key.pem"),
        )
        .unwrap();
        let (addr, _stop, _server) = start(limits(8), Some(tls.server)).await;
        let start = Instant::now();
        // Plain HTTP to the HTTPS port: not a TLS hello, refused at once.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(REQUEST).await.unwrap();
        let _ = read_all(&mut plain).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Silence: closed after the handshake timeout.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(&mut silent).await, "");
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[test]
    fn the_bound_leaves_room_under_the_open_file_limit() {
        let cases: &[(Option<u64>, usize)] = &[
            // unlimited
            (None, MAX_CONNECTIONS),
            // plenty
            (Some(1_048_576), MAX_CONNECTIONS),
            // the systemd unit's LimitNOFILE=4096
            (Some(4096), MAX_CONNECTIONS),
            // exactly enough
            (Some(MAX_CONNECTIONS as u64 + RESERVED_FDS), MAX_CONNECTIONS),
            // a login shell's usual 1024: the reserve comes off
            (Some(1024), 512),
            // small limits keep half for the rest
            (Some(600), 300),
            (Some(64), 32),
            // degenerate
            (Some(1), 1),
            (Some(0), 1),
        ];
        for (limit, expected) in cases {
            assert_eq!(connection_bound(*limit), *expected, "{limit:?}");
        }
    }
}
