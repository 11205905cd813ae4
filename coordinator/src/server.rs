//! `serve`: the listener, TLS, connection handling, background tasks and orderly shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use vantage_checks::pem::CaFileError;

use crate::api::{self, AppState};
use crate::catalog::Catalogs;
use crate::config::{CoordinatorConfig, TlsConfig};
use crate::ingest::{self, Writer};
use crate::store::{SqliteStore, Store};

/// Most connections served at once; more are closed on arrival (the accept loop never stops
/// accepting, so a flood of idle connections cannot keep a probe's push waiting in the
/// kernel's queue).
const MAX_CONNECTIONS: usize = 4096;
/// HTTP/2: a ping after this much silence from the peer, and the connection is closed when its
/// answer does not come within as long (a peer gone without a FIN).
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
/// How often check files are looked at for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How often old results are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How long in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Why the coordinator could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config breaks a rule.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory is unusable.
    #[error("cannot use data directory `{}`: {source}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The check files are invalid at startup.
    #[error("the check files are invalid:\n{0}")]
    Checks(#[from] crate::catalog::CatalogError),
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Opens the configured store: PostgreSQL when `[store] url` (or `--store-url`) is set, else
/// SQLite in the data directory.
pub fn open_store(config: &CoordinatorConfig) -> Result<Arc<dyn Store>, ServeError> {
    if let Some(url) = &config.store_url {
        let password = config.store_password.as_ref().map(|p| p.expose());
        let store = crate::store::PostgresStore::open(url.expose(), password)?;
        tracing::info!(target = store.target(), "store: postgresql");
        return Ok(Arc::new(store));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Ok(Arc::new(SqliteStore::open(
        &config.db_path(),
        config.synchronous,
    )?))
}

fn tls_acceptor(tls: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let (certs, key) =
        vantage_checks::pem::identity(&tls.cert, &tls.key).map_err(ServeError::Tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Verifies the client certificates of probes against `path`'s CAs. A client without a
/// certificate still connects (browsers, API readers): the probes' endpoints refuse it
/// ([`api::ClientCert`]). A certificate that the CA did not sign fails the handshake.
fn client_verifier(
    path: &std::path::Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServeError> {
    let roots = vantage_checks::pem::root_store(path).map_err(|e| {
        ServeError::Tls(match e {
            CaFileError::Read(e) => {
                format!("cannot use the probes' client CA `{}`: {e}", path.display())
            }
            CaFileError::NoUsableCertificate => format!(
                "`{}` holds no usable CA certificate for the probes' client certificates",
                path.display()
            ),
        })
    })?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServeError::Tls(format!("the probes' client CA `{}`: {e}", path.display())))
}

/// Serves on `listener` until `shutdown` completes, then drains requests and flushes the writer.
pub async fn run(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    config.check()?;
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "serving plain HTTP off loopback (--insecure-http): tokens cross the network in clear");
    }
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let store = open_store(&config)?;
    let catalogs = Arc::new(Catalogs::load(config.checks.clone())?);
    let (writer, writer_thread) = Writer::start(Arc::clone(&store), config.limits.queue_batches);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    // With a store other coordinators write to, the engine follows its feed of committed
    // results: the cursor is taken before the engine reads what is stored, so that nothing
    // committed in between is missed (a result seen twice lands in the same place).
    let feed_from = {
        let s = Arc::clone(&store);
        tokio::task::spawn_blocking(move || s.feed().map(|f| f.feed_start()).transpose())
            .await
            .map_err(|e| ServeError::Store(crate::store::StoreError::Corrupt(e.to_string())))?
            .map_err(ServeError::Store)?
    };
    let (engine, changes) = start_engine(&store, &catalogs, &config, &metrics).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    // This coordinator's leases: the first pass before anything decides, so that a lone
    // coordinator evaluates every vendor from its first change.
    let cluster = Arc::new(crate::cluster::Cluster::new(addr.to_string(), config.lease));
    {
        let (c, s) = (Arc::clone(&cluster), Arc::clone(&store));
        match tokio::task::spawn_blocking(move || c.balance(&*s)).await {
            Ok(Ok(_)) => {
                tracing::info!(node = %cluster.node.node, leases = cluster.held().len(), "leases taken")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot take leases yet; trying again in the background")
            }
            Err(e) => tracing::error!(error = %e, "the first lease pass panicked"),
        }
    }
    metrics.set_leases(&cluster.held());
    let lease_gained = Arc::new(tokio::sync::Notify::new());
    let lease_task = tokio::spawn(crate::cluster::run(
        Arc::clone(&cluster),
        Arc::clone(&store),
        Arc::clone(&metrics),
        Arc::clone(&lease_gained),
    ));
    let live = Arc::new(crate::stream::Hub::new());
    let alerting = Arc::new(config.alerting.clone());
    let wake = Arc::new(tokio::sync::Notify::new());
    let incidents = Arc::new(crate::incident::Incidents {
        store: Arc::clone(&store),
        cluster: Arc::clone(&cluster),
        lease_gained,
        alerting: Arc::clone(&alerting),
        catalogs: Arc::clone(&catalogs),
        wake: Arc::clone(&wake),
        metrics: Arc::clone(&metrics),
        stream: Arc::clone(&live),
        vendors: std::sync::Mutex::new(
            engine
                .vendors()
                .await
                .into_iter()
                .map(|v| (v.id, v.status))
                .collect(),
        ),
    });
    let incident_task = tokio::spawn(crate::incident::run(incidents, changes));
    let dispatcher = tokio::spawn(crate::alert::outbox::run(
        Arc::clone(&store),
        cluster.node.node.clone(),
        Arc::clone(&alerting),
        wake,
        Arc::clone(&metrics),
    ));
    let ticker = tokio::spawn(tick(Arc::clone(&engine), Arc::clone(&store)));
    let follower = feed_from.map(|cursor| {
        tokio::spawn(follow(
            Arc::clone(&store),
            Arc::clone(&engine),
            Arc::clone(&live),
            cursor,
        ))
    });
    // On-demand runs: the newest one wakes the probes' long polls; on a shared store, runs
    // other coordinators took are looked for every `runs::FOLLOW_EVERY`.
    let runs = {
        let s = Arc::clone(&store);
        let latest = tokio::task::spawn_blocking(move || s.last_run_id())
            .await
            .map_err(|e| ServeError::Store(crate::store::StoreError::Corrupt(e.to_string())))?
            .map_err(ServeError::Store)?;
        Arc::new(crate::runs::Board::new(latest))
    };
    let run_follower = store
        .feed()
        .is_some()
        .then(|| tokio::spawn(crate::runs::follow(Arc::clone(&runs), Arc::clone(&store))));
    let state = Arc::new(AppState {
        runs,
        store: Arc::clone(&store),
        cluster: Arc::clone(&cluster),
        writer,
        catalogs: Arc::clone(&catalogs),
        limits: config.limits.clone(),
        metrics,
        engine,
        alerting,
        access: config.access.clone(),
        secure_cookies: tls.is_some(),
        probe_client_certs: config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        run_cap: Default::default(),
        stream: Arc::clone(&live),
        logins: Default::default(),
        result_reads: Arc::new(tokio::sync::Semaphore::new(api::RESULTS_QUERIES)),
    });

    let background = tokio::spawn(background(Arc::clone(&store), catalogs, config.clone()));
    tracing::info!(%addr, tls = tls.is_some(), checks = state.catalogs.current().checks.checks.len(), "coordinator serving");

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.request_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(H2_KEEPALIVE))
        .keep_alive_timeout(H2_KEEPALIVE);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let slots = Arc::new(crate::conn::PeerSlots::default());
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Shed at once, with a close, what the server cannot take: never stop accepting.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            state
                .metrics
                .connection_shed(crate::metrics::ShedReason::capacity);
            drop(stream);
            continue;
        };
        let Some(slot) = slots.take(peer.ip(), config.limits.max_connections_per_address) else {
            state
                .metrics
                .connection_shed(crate::metrics::ShedReason::per_address);
            tracing::debug!(%peer, "connection refused: this address holds its share of connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let activity = crate::conn::Activity::new();
        let requests = Arc::clone(&activity);
        // Made once the handshake tells whether the client showed a verified certificate.
        let service = move |client_cert: Option<api::ClientCert>| {
            service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let in_flight = requests.start();
                req.extensions_mut().insert(api::Peer(peer));
                if let Some(cert) = client_cert {
                    req.extensions_mut().insert(cert);
                }
                let state = Arc::clone(&state);
                async move {
                    let resp = api::handle(state, req).await;
                    let (parts, body) = resp.into_parts();
                    let body = crate::conn::Tracked::new(body, in_flight);
                    Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                        parts,
                        http_body_util::BodyExt::boxed_unsync(body),
                    ))
                }
            })
        };
        let request_timeout = config.limits.request_timeout;
        let idle_timeout = config.limits.idle_timeout;
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = config.limits.request_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            // The verifier already refused certificates its CA did not sign.
                            let client_cert = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty())
                                .then_some(api::ClientCert);
                            let service = service(client_cert);
                            let io = WriteStall::new(tls_stream, request_timeout);
                            let io = crate::conn::IdleDeadline::new(
                                io,
                                activity,
                                request_timeout,
                                idle_timeout,
                            );
                            let conn = builder
                                .serve_connection(TokioIo::new(io), service)
                                .into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => {
                    let service = service(None);
                    let io = WriteStall::new(stream, request_timeout);
                    let io =
                        crate::conn::IdleDeadline::new(io, activity, request_timeout, idle_timeout);
                    let conn = builder
                        .serve_connection(TokioIo::new(io), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }

    tracing::info!("shutting down: draining requests");
    drop(listener);
    // Live streams never finish by themselves: end them, so their connections drain.
    live.close();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections did not finish within {}s",
            DRAIN.as_secs()
        );
    }
    background.abort();
    ticker.abort();
    if let Some(f) = follower {
        f.abort();
    }
    if let Some(f) = run_follower {
        f.abort();
    }
    // Let the incident task record what the engine last sent, then stop the dispatcher; what
    // it had not sent stays queued for the next start.
    drop(state);
    let _ = tokio::time::timeout(Duration::from_secs(5), incident_task).await;
    dispatcher.abort();
    // Give the leases up, so that the other coordinators take this one's vendors at their next
    // pass rather than after the lease.
    lease_task.abort();
    cluster.drop_all();
    let (node, s) = (cluster.node.node.clone(), Arc::clone(&store));
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.release_leases(&node)).await {
        tracing::warn!(error = %e, "cannot give the leases up; they run out by themselves");
    }
    // Dropping the last writer handle (with the state) lets the writer commit what is queued
    // and stop.
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    tracing::info!("coordinator stopped");
    Ok(())
}

/// Cuts a connection off when the peer accepts no bytes for `timeout` while the server has
/// bytes for it. hyper has no write timeout, so without this a client that stops reading (a
/// live stream consumer that stalled, a reader of a large answer that went away without a
/// FIN) holds its connection, its permit and its buffers forever. A stream consumer is dropped
/// for not keeping up before this, with a last event that says why; this closes the connection
/// when even that event cannot be written.
struct WriteStall<I> {
    io: I,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// A write is pending and the deadline runs.
    stalled: bool,
}

impl<I> WriteStall<I> {
    fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            stalled: false,
        }
    }

    /// Passes on what the peer did; a pending write starts the deadline, progress clears it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = false;
            return poll;
        }
        if !self.stalled {
            self.stalled = true;
            let at = tokio::time::Instant::now() + self.timeout;
            self.deadline.as_mut().reset(at);
        }
        // Registers the waker, so the connection is polled again at the deadline.
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the peer accepted no bytes for {}s",
                    self.timeout.as_secs_f32()
                ),
            )));
        }
        Poll::Pending
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteStall<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteStall<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// How often the engine evaluates the checks that got new runs (batches coalesced).
const FLUSH: Duration = Duration::from_millis(crate::engine::COALESCE_MS as u64);
/// Every this many flushes (1 s), it re-evaluates every check (silence, hysteresis timers,
/// quarantine).
const TICK_EVERY_FLUSHES: u32 = 10;
/// The engine re-reads the probe registry every this many ticks.
const PROBES_EVERY_TICKS: u32 = 5;

/// Resumes the engine from the persisted states and the recent raw results.
async fn start_engine(
    store: &Arc<dyn Store>,
    catalogs: &Arc<Catalogs>,
    config: &CoordinatorConfig,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<
    (
        Arc<crate::engine::Engine>,
        tokio::sync::mpsc::Receiver<crate::engine::Change>,
    ),
    ServeError,
> {
    let now = ingest::unix_ms(time::OffsetDateTime::now_utc());
    let since = crate::engine::Engine::resume_since(catalogs, now);
    let s = Arc::clone(store);
    let loaded = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        Ok((
            s.load_consensus()?,
            s.recent_results(since)?,
            s.list_probes()?,
        ))
    })
    .await
    .map_err(|e| ServeError::Store(crate::store::StoreError::Corrupt(e.to_string())))?
    .map_err(ServeError::Store)?;
    let (records, recent, probes) = loaded;
    let resume = crate::engine::Resume::decode(records, recent);
    tracing::info!(
        checks = resume.checks.len(),
        vendors = resume.vendors.len(),
        recent_results = resume.recent.len(),
        "consensus resumed"
    );
    Ok(crate::engine::Engine::new(
        Arc::clone(catalogs),
        config.quarantine.clone(),
        probes,
        resume,
        Arc::clone(metrics),
    ))
}

/// How often the engine looks at the store's feed for results other coordinators took.
const FEED_POLL: Duration = Duration::from_millis(100);
/// Most results read from the feed at once.
const FEED_BATCH: u32 = 5_000;

/// Feeds the engine (and the live stream) every result the other coordinators commit to a
/// shared store, in commit order (this coordinator's own it hands over at commit).
async fn follow(
    store: Arc<dyn Store>,
    engine: Arc<crate::engine::Engine>,
    stream: Arc<crate::stream::Hub>,
    mut cursor: crate::store::FeedCursor,
) {
    let mut every = tokio::time::interval(FEED_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        loop {
            let s = Arc::clone(&store);
            let read = tokio::task::spawn_blocking(move || match s.feed() {
                Some(f) => f.feed_after(cursor, FEED_BATCH),
                None => Ok((Vec::new(), cursor)),
            })
            .await;
            let (rows, next) = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    if !failing {
                        tracing::error!(error = %e, "cannot read the store's feed of results; the engine waits for it");
                    }
                    failing = true;
                    break;
                }
                Err(_) => break,
            };
            if failing {
                tracing::info!("reading the store's feed of results again");
                failing = false;
            }
            let moved = next != cursor;
            cursor = next;
            if !rows.is_empty() {
                stream.results(&rows);
                engine
                    .observe(&rows, ingest::unix_ms(time::OffsetDateTime::now_utc()))
                    .await;
            }
            if !moved {
                break;
            }
        }
    }
}

/// Drives the engine's timer.
async fn tick(engine: Arc<crate::engine::Engine>, store: Arc<dyn Store>) {
    let mut every = tokio::time::interval(FLUSH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut n, mut flushes): (u32, u32) = (0, 0);
    loop {
        every.tick().await;
        flushes = flushes.wrapping_add(1);
        if !flushes.is_multiple_of(TICK_EVERY_FLUSHES) {
            engine
                .flush(ingest::unix_ms(time::OffsetDateTime::now_utc()))
                .await;
            continue;
        }
        let probes = if n.is_multiple_of(PROBES_EVERY_TICKS) {
            let s = Arc::clone(&store);
            tokio::task::spawn_blocking(move || s.list_probes())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        n = n.wrapping_add(1);
        engine
            .tick(ingest::unix_ms(time::OffsetDateTime::now_utc()), probes)
            .await;
    }
}

/// Reloads check files on SIGHUP or change, and prunes old results.
async fn background(store: Arc<dyn Store>, catalogs: Arc<Catalogs>, config: CoordinatorConfig) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut poll = tokio::time::interval(RELOAD_POLL);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup_recv => {
                tracing::info!("SIGHUP: reloading check files");
                let c = Arc::clone(&catalogs);
                let _ = tokio::task::spawn_blocking(move || c.reload()).await;
            }
            _ = poll.tick() => {
                let c = Arc::clone(&catalogs);
                let _ = tokio::task::spawn_blocking(move || c.reload_if_changed()).await;
            }
            _ = prune.tick() => {
                let now = ingest::unix_ms(time::OffsetDateTime::now_utc());
                let raw = now - config.retention_raw.as_millis() as i64;
                let rollups = now - config.retention_rollups.as_millis() as i64;
                let hourly = now - config.retention_hourly.as_millis() as i64;
                let daily = now - config.retention_daily.as_millis() as i64;
                let s = Arc::clone(&store);
                let pruned = move || {
                    let n = s.prune(raw, rollups)?;
                    s.prune_tiers(hourly, daily)?;
                    Ok::<_, crate::store::StoreError>(n)
                };
                match tokio::task::spawn_blocking(pruned).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "pruned raw results past retention"),
                    Ok(Err(e)) => tracing::error!(error = %e, "pruning failed"),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_ca_without_a_certificate_is_refused_at_start() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let empty = dir.path().join("probes-ca.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Err(e) = client_verifier(&empty, Arc::clone(&provider)) else {
            panic!("a CA file without a certificate was taken");
        };
        assert!(
            e.to_string().contains("no `-----BEGIN CERTIFICATE-----`"),
            "{e}"
        );
        let Err(e) = client_verifier(&dir.path().join("missing.pem"), provider) else {
            panic!("a missing CA file was taken");
        };
        assert!(
            e.to_string().contains("cannot use the probes' client CA"),
            "{e}"
        );
    }
}
