//! What bounds one client connection: how many one address may hold ([`PeerSlots`]), and how
//! long one may sit without a request in flight ([`IdleDeadline`], fed by [`Activity`]).
//!
//! hyper has neither: an HTTP/2 connection with no stream open, or an HTTP/1.1 keep-alive one
//! between requests, would otherwise hold a file descriptor, buffers and one of the server's
//! connection permits for as long as the peer likes. A request is in flight from the moment
//! it reaches the API until its response body ends (a live stream is in flight for as long as
//! it streams), so only truly idle connections are closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Connections per client address.
#[derive(Debug, Default)]
pub struct PeerSlots {
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place among its address's; given back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    slots: Arc<PeerSlots>,
    ip: IpAddr,
}

impl PeerSlots {
    /// A place for a connection from `ip`, if it holds fewer than `max`.
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            slots: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// A connection's requests in flight, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<Idle>,
}

#[derive(Debug)]
struct Idle {
    /// Requests in flight.
    in_flight: usize,
    /// A request has reached the API on this connection.
    served: bool,
    /// Since when nothing has been in flight.
    since: Instant,
    /// The reader waiting for the deadline to be armed (woken when the last request ends).
    waiting: Option<Waker>,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Idle {
                in_flight: 0,
                served: false,
                since: Instant::now(),
                waiting: None,
            }),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request reached the API; it is in flight until the guard (kept with its response
    /// body) is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        let mut state = self.idle();
        state.in_flight += 1;
        state.served = true;
        InFlight(Arc::clone(self))
    }

    /// When the connection is to be closed for idleness: `first` after it was accepted if no
    /// request came yet, else `idle` after the last request ended. `None` while one is in
    /// flight: `waker` is then woken when the last one ends, to arm the deadline.
    fn deadline(&self, first: Duration, idle: Duration, waker: &Waker) -> Option<Instant> {
        let mut state = self.idle();
        if !state.served {
            return Some(state.since + first);
        }
        if state.in_flight == 0 {
            return Some(state.since + idle);
        }
        state.waiting = Some(waker.clone());
        None
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.idle();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.since = Instant::now();
            if let Some(w) = state.waiting.take() {
                w.wake();
            }
        }
    }
}

/// A response body that holds `G` until it ends: its request in flight ([`InFlight`]), or a
/// permit that bounds how many such answers are out at once.
pub struct Tracked<B, G = InFlight> {
    inner: B,
    _guard: G,
}

impl<B, G> Tracked<B, G> {
    /// `inner`, holding `guard` until dropped.
    pub fn new(inner: B, guard: G) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin, G: Unpin> Body for Tracked<B, G> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A buffer sent in frames of at most `chunk` bytes. The server asks for the next frame only
/// once it has room to write it, so a guard held with the body ([`Tracked`]) is held until
/// the client has taken nearly all of it; one whole frame would be queued at once, and the
/// body dropped, however slowly the client reads.
pub struct Chunked {
    data: Bytes,
    chunk: usize,
}

impl Chunked {
    /// `data` in frames of `chunk` bytes.
    pub fn new(data: Bytes, chunk: usize) -> Self {
        Self {
            data,
            chunk: chunk.max(1),
        }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.chunk.min(self.data.len());
        let frame = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// Cuts a connection off when it is idle for too long: when no request has reached the API
/// within `first` (hyper's header timeout starts only once the protocol is known, so a client
/// that sends nothing, or the HTTP/2 preface a byte at a time, would hold it forever), and
/// when no request has been in flight for `idle` since (an HTTP/2 connection's pings do not
/// count).
pub struct IdleDeadline<I> {
    io: I,
    activity: Arc<Activity>,
    first: Duration,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl<I> IdleDeadline<I> {
    /// `io`, closed when `activity` says it has been idle too long.
    pub fn new(io: I, activity: Arc<Activity>, first: Duration, idle: Duration) -> Self {
        Self {
            io,
            activity,
            first,
            idle,
            sleep: Box::pin(tokio::time::sleep(first)),
            armed: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match this.activity.deadline(this.first, this.idle, cx.waker()) {
            Some(at) => {
                if this.armed != Some(at) {
                    this.sleep.as_mut().reset(at);
                    this.armed = Some(at);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the connection was idle too long",
                    )));
                }
            }
            // In flight: no deadline (woken to arm one when the last request ends).
            None => this.armed = None,
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let slots = Arc::new(PeerSlots::default());
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let first = slots.take(a, 2).expect("one");
        let _second = slots.take(a, 2).expect("two");
        assert!(slots.take(a, 2).is_none(), "a third from the same address");
        assert!(slots.take(b, 2).is_some(), "another address");
        drop(first);
        assert!(slots.take(a, 2).is_some(), "a place given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_too_long_is_closed_and_one_in_flight_is_not() {
        use tokio::io::AsyncReadExt as _;
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = IdleDeadline::new(
            server,
            Arc::clone(&activity),
            Duration::from_secs(1),
            Duration::from_secs(5),
        );
        let request = activity.start();
        let mut buf = [0u8; 8];
        // In flight: reading waits for as long as the request lasts.
        let read = tokio::time::timeout(Duration::from_secs(30), io.read(&mut buf)).await;
        assert!(read.is_err(), "no deadline while a request is in flight");
        drop(request);
        let started = Instant::now();
        let read = io.read(&mut buf).await;
        assert_eq!(
            read.expect_err("closed").kind(),
            std::io::ErrorKind::TimedOut
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5),
            "after the idle timeout"
        );
        drop(client);
    }
}
