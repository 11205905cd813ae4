//! What the demo sees of its coordinator, as any client would: vendor states polled from
//! `GET /api/v1/vendors`, and alerts received by an in-process webhook receiver. Both are
//! printed as they arrive and kept in one [`Observed`] that the fault script waits on.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::print::{self, Printer};
use crate::alert::Alert;
use crate::consensus::vendor::{VendorState, VendorStatus};

/// How often vendor states are polled.
const POLL: Duration = Duration::from_millis(250);
/// Deadline of one poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);
/// Alerts kept at most (the script looks at recent ones only).
const ALERTS_KEPT: usize = 1000;
/// Largest alert body taken.
const MAX_ALERT_BYTES: usize = 1024 * 1024;

/// One vendor as `GET /api/v1/vendors` lists it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct VendorSeen {
    /// Vendor id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) name: String,
    /// Its state globally and per region.
    #[serde(flatten)]
    pub(crate) status: VendorStatus,
}

/// Everything seen so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    /// Vendors by id, as last polled.
    pub(crate) vendors: BTreeMap<String, VendorSeen>,
    /// Alerts received, oldest first; the last [`ALERTS_KEPT`].
    pub(crate) alerts: VecDeque<Alert>,
    /// Alerts received in all, including those no longer kept.
    pub(crate) alerts_total: u64,
}

impl Observed {
    /// The state of `vendor` globally (`region` `None`) or in `region`.
    pub(crate) fn state(
        &self,
        vendor: &str,
        region: Option<&str>,
    ) -> Option<&crate::consensus::vendor::ScopeStatus> {
        let v = self.vendors.get(vendor)?;
        match region {
            None => Some(&v.status.global),
            Some(r) => v.status.regions.get(r),
        }
    }

    /// True when every vendor is operational, globally and in every region.
    pub(crate) fn all_operational(&self) -> bool {
        !self.vendors.is_empty()
            && self.vendors.values().all(|v| {
                v.status.global.state == VendorState::Operational
                    && v.status
                        .regions
                        .values()
                        .all(|r| r.state == VendorState::Operational)
            })
    }

    /// The alerts received after the first `since_total` ones.
    pub(crate) fn alerts_since(&self, since_total: u64) -> impl Iterator<Item = &Alert> {
        let dropped = self.alerts_total - self.alerts.len() as u64;
        let skip = since_total.saturating_sub(dropped) as usize;
        self.alerts.iter().skip(skip)
    }
}

/// Polls the coordinator at `addr` for vendor states until the task is aborted; prints each
/// change and publishes the states.
pub(crate) async fn poll_vendors(
    addr: SocketAddr,
    observed: watch::Sender<Observed>,
    printer: Arc<Printer>,
) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = match format!("http://{addr}/api/v1/vendors").parse() {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot poll vendor states");
            return;
        }
    };
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(vendors) = fetch_vendors(&client, &uri).await else {
            continue;
        };
        let vendors: BTreeMap<String, VendorSeen> =
            vendors.into_iter().map(|v| (v.id.clone(), v)).collect();
        let lines = print::state_changes(&observed.borrow().vendors, &vendors);
        for line in lines {
            printer.line(print::Tag::State, &line);
        }
        observed.send_if_modified(|o| {
            let changed = o.vendors != vendors;
            o.vendors = vendors;
            changed
        });
    }
}

async fn fetch_vendors(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &http::Uri,
) -> Option<Vec<VendorSeen>> {
    let get = async {
        let resp = client.get(uri.clone()).await.ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "the vendor states do not parse");
                None
            }
        }
    };
    tokio::time::timeout(POLL_TIMEOUT, get).await.ok().flatten()
}

/// The in-process webhook receiver the demo's coordinator sends every alert to.
pub(crate) struct AlertSink {
    url: String,
    _task: JoinSet<()>,
}

impl AlertSink {
    /// Listens on a port of 127.0.0.1 the system picks; each alert is printed and published.
    pub(crate) async fn start(
        observed: watch::Sender<Observed>,
        printer: Arc<Printer>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/alerts", listener.local_addr()?);
        let mut task = JoinSet::new();
        task.spawn(serve(listener, Arc::new(observed), printer));
        Ok(Self { url, _task: task })
    }

    /// Where the coordinator posts alerts.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

async fn serve(
    listener: TcpListener,
    observed: Arc<watch::Sender<Observed>>,
    printer: Arc<Printer>,
) {
    // Dropping the set, when this task is aborted, closes every connection.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let observed = Arc::clone(&observed);
        let printer = Arc::clone(&printer);
        conns.spawn(async move {
            let service = service_fn(move |req| {
                let observed = Arc::clone(&observed);
                let printer = Arc::clone(&printer);
                async move { Ok::<_, Infallible>(receive(req, &observed, &printer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn receive(
    req: Request<Incoming>,
    observed: &watch::Sender<Observed>,
    printer: &Printer,
) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "POST alerts here\n");
    }
    let body = match Limited::new(req.into_body(), MAX_ALERT_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return answer(StatusCode::PAYLOAD_TOO_LARGE, "too large\n"),
    };
    let alert: Alert = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(_) => return answer(StatusCode::BAD_REQUEST, "not a Vantage webhook alert\n"),
    };
    printer.line(print::Tag::Alert, &print::alert_line(&alert));
    observed.send_modify(|o| {
        if o.alerts.len() == ALERTS_KEPT {
            o.alerts.pop_front();
        }
        o.alerts.push_back(alert);
        o.alerts_total += 1;
    });
    answer(StatusCode::OK, "ok\n")
}
