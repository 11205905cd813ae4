//! `GET /api/v1/stream`: the live stream, as Server-Sent Events.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};

use super::{AppState, Resp, error, retry_after};
use crate::stream::{ConsumerGuard, Filter, Frames, MAX_CONSUMERS};

/// `GET /api/v1/stream?vendor=&check=&region=&types=`: raw results and state changes as they
/// happen, for downstream tools. Reader auth, like the rest of `/api/v1`.
///
/// Filters are optional and all given must match: `vendor=ID`, `check=ID`, `region=NAME`,
/// `types=result,transition,vendor,probe,incident` (default: all). An event without the field
/// a filter looks at does not match it (a `region=` filter leaves out global changes and
/// incidents). Unknown parameters or types are a 400.
///
/// Events, each `data:` one JSON object on one line, each `id:` one more than the last
/// published (a filtered stream skips ids):
/// - `result`: a raw result once its batch is committed: `check`, `vendor`, `region`, `probe`,
///   `status`, `failure` (null or a label), `total_ms`, `started_at` (RFC 3339).
/// - `transition`: a check's settled verdict changed: `check`, `vendor`, `scope` (`global` or
///   `region`), `region` (null or a name), `from`, `to`, `at`.
/// - `vendor`: a vendor's state changed in one scope: `vendor`, `region` (null for global),
///   `from`, `to`, `conditions`, `at`.
/// - `probe`: a probe was quarantined or readmitted: `probe`, `region`, `quarantined`, `at`.
/// - `incident`: `id`, `vendor` or `probe` (the subject), `kind` (`opened`, `changed`,
///   `cleared`, `flapped`, `resolved`), `state` (the state the incident records), `at`.
/// - `dropped`: the last event to a consumer that left
///   [`CONSUMER_QUEUE`](crate::stream::CONSUMER_QUEUE) events unread: `{"reason": "…"}`. The
///   response ends after it (an HTTP/1.1 connection closes).
///
/// A `: keepalive` comment goes out every 15 s. A consumer that stops reading altogether is
/// cut off by the server's write-stall deadline (`limits.request_timeout`). At most
/// [`MAX_CONSUMERS`] consumers are served at once; more get a 429.
pub(super) fn stream<B>(state: &AppState, req: &Request<B>) -> Resp {
    let filter = match Filter::parse(req.uri().query()) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(subscription) = state.stream.subscribe() else {
        return retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{MAX_CONSUMERS} live stream consumers are connected already; retry later"),
            ),
            5,
        );
    };
    let (frames, guard) = crate::stream::start(subscription, filter, Arc::clone(&state.metrics));
    let body = SseBody {
        frames,
        _guard: guard,
    };
    let mut resp = Response::new(body.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if req.version() < Version::HTTP_2 {
        // A stream ends only when its consumer is dropped (or at shutdown): close then, rather
        // than keep an idle connection.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The response body: the consumer's queue. Dropping it (the connection closed) stops the
/// consumer's pump and frees its place.
struct SseBody {
    frames: Frames,
    _guard: ConsumerGuard,
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(Frame::data(bytes))))
    }
}
