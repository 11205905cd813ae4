//! An in-process TCP relay that can be paused: the way to cut one probe off its coordinator
//! (ARCHITECTURE.md §6, "a probe cut off from the coordinator") without touching the others.
//!
//! A [`Relay`] listens on a loopback port and forwards every connection to a target, byte for
//! byte in both directions. The probe is given the relay's URL as its coordinator. While the
//! relay is [paused](Relay::pause), the coordinator is a blackhole to that probe: every open
//! connection through the relay is cut, and new ones are accepted but never forwarded nor
//! answered, so requests time out as they would across a network partition. [`Relay::resume`]
//! closes the stalled connections and forwards new ones again.
//!
//! For a coordinator that refuses connections outright, kill it
//! ([`crate::fleet::Coordinator::kill`]) instead. [`crate::netns::BrokenNet`] uses a relay too,
//! bound to its veth address.
//!
//! Plain std threads: one accepts, two per connection copy. Dropping the relay closes
//! everything.

use std::collections::HashMap;
use std::io::Read as _;
use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// At most this many connections are forwarded at once; more are closed on arrival.
const MAX_CONNECTIONS: usize = 512;
/// At most this many connections are held while paused; more are closed on arrival.
const MAX_STALLED: usize = 1024;
/// How long the relay tries to connect to its target for each connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running relay, stopped when dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    shutdown: AtomicBool,
    accepted: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    paused: bool,
    // Both ends of every forwarded connection, so that pausing can cut them.
    live: HashMap<usize, (TcpStream, TcpStream)>,
    // Connections accepted while paused, held open and silent.
    stalled: Vec<TcpStream>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Relay {
    /// A relay on a free port of 127.0.0.1 forwarding to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(listen, target)
            .unwrap_or_else(|e| panic!("cannot start a relay on {listen} to {target}: {e}"))
    }

    /// A relay on `listen` (port 0 for a free one) forwarding to `target`.
    pub fn bind(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("relay-{}", addr.port()))
                .spawn(move || accept_loop(&listener, target, &shared))?
        };
        Ok(Self {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where the relay listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `http://<addr>`, the coordinator URL to give a probe.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections the relay has accepted so far (forwarded or stalled).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every forwarded connection and, until [`Relay::resume`], holds new ones open
    /// without forwarding or answering them.
    pub fn pause(&self) {
        let mut state = self.shared.state();
        state.paused = true;
        for (client, upstream) in state.live.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    /// Closes the connections held while paused and forwards new ones again.
    pub fn resume(&self) {
        let mut state = self.shared.state();
        state.paused = false;
        for stalled in state.stalled.drain(..) {
            let _ = stalled.shutdown(Shutdown::Both);
        }
    }

    /// Whether the relay is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.state().paused
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let mut state = self.shared.state();
            for (client, upstream) in state.live.values() {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
            }
            for stalled in state.stalled.drain(..) {
                let _ = stalled.shutdown(Shutdown::Both);
            }
        }
        // Wake the blocked accept; if even that fails, leave the thread rather than hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            && let Some(acceptor) = self.acceptor.take()
        {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    let mut next_id = 0usize;
    for client in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        {
            let mut state = shared.state();
            if state.paused {
                if state.stalled.len() < MAX_STALLED {
                    state.stalled.push(client);
                }
                continue;
            }
            if state.live.len() >= MAX_CONNECTIONS {
                continue;
            }
        }
        next_id += 1;
        let id = next_id;
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("relay-conn-{id}"))
            .spawn(move || forward(id, client, target, &shared));
        if spawned.is_err() {
            continue;
        }
    }
}

/// Connects to `target` and copies both ways until either side closes or the relay cuts it.
fn forward(id: usize, client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        // The target is down: the client sees its connection closed, as with a dead server.
        return;
    };
    let (Ok(client_r), Ok(upstream_r), Ok(client_k), Ok(upstream_k)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    {
        let mut state = shared.state();
        // Paused (or stopping) between the accept and now: this one is cut too.
        if state.paused || shared.shutdown.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        state.live.insert(id, (client_k, upstream_k));
    }
    let back = std::thread::Builder::new()
        .name(format!("relay-back-{id}"))
        .spawn(move || copy(upstream_r, client));
    copy(client_r, upstream);
    if let Ok(back) = back {
        let _ = back.join();
    }
    shared.state().live.remove(&id);
}

/// Copies `from` to `to` until end of stream or an error, then closes `to` for writing.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
