//! Accepting connections: caps on open connections (in total and per peer
//! address), the TLS handshake, a deadline for each request head (which also
//! closes idle keep-alive connections), the peer address for the handlers,
//! and graceful shutdown. One slow or hostile client can hold at most its
//! per-address share of connections, each for at most the head deadline
//! while it sends nothing useful.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How many connections may be open and how long a request head may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Time to send a complete request head, counted from when the connection
    /// opened or finished its previous answer (so also the idle keep-alive
    /// timeout), and for the TLS handshake.
    pub(crate) header_timeout: Duration,
    /// Connections open at once, from everyone.
    pub(crate) max_connections: usize,
    /// Connections open at once from one IP address.
    pub(crate) max_per_address: usize,
}

/// Why a connection was refused (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    PerAddress,
}

impl Refusal {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerAddress => "per_address",
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Counts open connections and refuses those over the caps.
#[derive(Debug)]
struct Gate {
    limits: ConnectionLimits,
    open: Mutex<Open>,
    metrics: Arc<Metrics>,
}

/// One admitted connection; leaving frees its place.
#[derive(Debug)]
struct Ticket {
    gate: Arc<Gate>,
    address: IpAddr,
}

impl Gate {
    fn enter(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, Refusal> {
        let mut open = self.open.lock().expect("connection gate lock");
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let from_address = open.by_address.entry(address).or_default();
        if *from_address >= self.limits.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *from_address += 1;
        open.total += 1;
        self.metrics.connections_open(open.total);
        Ok(Ticket {
            gate: Arc::clone(self),
            address,
        })
    }

    fn total(&self) -> usize {
        self.open.lock().expect("connection gate lock").total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().expect("connection gate lock");
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
        self.gate.metrics.connections_open(open.total);
    }
}

/// How long shutdown waits for answers in flight before it gives up on them.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes, then lets every
/// open connection finish its current answer (for at most [`DRAIN`]).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let gate = Arc::new(Gate {
        limits,
        open: Mutex::new(Open::default()),
        metrics: Arc::clone(&metrics),
    });
    let (stopping, stop_signal) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up during the
                    // handshake: wait a little rather than spin.
                    tracing::debug!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ticket = match gate.enter(peer.ip()) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                metrics.connection_refused(refusal);
                if tls.is_none() {
                    refuse(&stream, refusal);
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            ticket,
            tls.clone(),
            router.clone(),
            limits.header_timeout,
            stop_signal.clone(),
            Arc::clone(&metrics),
        ));
    }
    let _ = stopping.send(true);
    let deadline = Instant::now() + DRAIN;
    while gate.total() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells a refused plain-HTTP client why, without waiting for it to read.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let message = match refusal {
        Refusal::Total => "the server has too many open connections; try again shortly",
        Refusal::PerAddress => {
            "too many open connections from your address; close some and try again"
        }
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    tls: Option<TlsAcceptor>,
    router: Router,
    header_timeout: Duration,
    stop_signal: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let _ticket = ticket;
    match tls {
        None => drive(stream, peer, router, header_timeout, stop_signal, &metrics).await,
        Some(acceptor) => {
            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    drive(stream, peer, router, header_timeout, stop_signal, &metrics).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => {
                    metrics.connection_timed_out();
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn drive<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut stop_signal: watch::Receiver<bool>,
    metrics: &Metrics,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    let outcome = loop {
        tokio::select! {
            outcome = connection.as_mut() => break outcome,
            _ = stop_signal.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(error) = outcome {
        if error.is_timeout() {
            metrics.connection_timed_out();
            tracing::debug!(%peer, "closed a connection that sent no complete request head in time");
        } else {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_connections_in_total_and_per_address() {
        let gate = Arc::new(Gate {
            limits: ConnectionLimits {
                header_timeout: Duration::from_secs(1),
                max_connections: 3,
                max_per_address: 2,
            },
            open: Mutex::new(Open::default()),
            metrics: Arc::new(Metrics::default()),
        });
        let (a, b, c) = (
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            IpAddr::from([10, 0, 0, 3]),
        );
        let first = gate.enter(a).unwrap();
        let _second = gate.enter(a).unwrap();
        assert_eq!(gate.enter(a).unwrap_err(), Refusal::PerAddress);
        let _third = gate.enter(b).unwrap();
        assert_eq!(gate.enter(c).unwrap_err(), Refusal::Total);
        drop(first);
        assert_eq!(gate.total(), 2);
        let _again = gate.enter(a).unwrap();
        assert_eq!(gate.enter(a).unwrap_err(), Refusal::Total);
    }
}
