//! The probe's HTTP client for its coordinators: HTTPS by rustls (HTTP/2 when offered), the
//! bearer token on every request, failover from one coordinator to the next, and answers
//! sorted into what the agent must do next.

use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use vantage_checks::pem::CaFileError;
use vantage_checks::wire::{BatchAck, ResultBatch, RunOrders};

use crate::settings::Settings;

/// Largest answer the probe reads from the coordinator.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Deadline of one request (a long poll for runs waits less than this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong talking to the coordinator, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Network trouble, a 5xx or a 429: try again later (after `retry_after` if given).
    #[error("{message}")]
    Retry {
        /// What happened.
        message: String,
        /// The coordinator's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The token was refused: the probe must stop.
    #[error("the coordinator refused this probe's token (401): {0}")]
    Unauthorized(String),
    /// Another 4xx: the request will never succeed; do not retry it.
    #[error("the coordinator rejected the request ({status}): {message}")]
    Rejected {
        /// The status.
        status: u16,
        /// The coordinator's message.
        message: String,
    },
    /// The client could not be set up (bad CA file).
    #[error("{0}")]
    Setup(String),
}

/// The answer to a config request.
#[derive(Debug)]
pub enum ConfigAnswer {
    /// The config has not changed since the ETag given.
    NotModified,
    /// A new config document (JSON, not yet decoded), with its ETag.
    Changed(Bytes, Option<String>),
}

/// A client for the coordinators: requests go to the one that answered last, and move to
/// the next in the list on a connection error, a timeout or a 5xx (any coordinator sharing
/// the store takes a probe's results). A `429` is that coordinator shedding load: the probe
/// waits as it asks rather than moving its load onto the others.
#[derive(Clone)]
pub struct CoordinatorClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    bases: std::sync::Arc<[url::Url]>,
    /// Index in `bases` of the coordinator to ask first.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    auth: http::HeaderValue,
}

/// Reads the probe's client certificate chain and key for mutual TLS.
fn client_identity(
    id: &crate::settings::ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    vantage_checks::pem::identity(&id.cert, &id.key)
        .map_err(|e| ClientError::Setup(format!("the client certificate: {e}")))
}

impl CoordinatorClient {
    /// Builds the client; with `ca_file`, only that CA is trusted for the coordinator.
    pub fn new(settings: &Settings) -> Result<Self, ClientError> {
        let ca_file = settings.ca_file.as_deref();
        let roots = vantage_checks::pem::roots(ca_file).map_err(|e| {
            let path = ca_file.unwrap_or(std::path::Path::new("")).display();
            ClientError::Setup(match e {
                CaFileError::Read(e) => format!("cannot use the coordinator CA `{path}`: {e}"),
                CaFileError::NoUsableCertificate => {
                    format!("`{path}` holds no usable CA certificate")
                }
            })
        })?;
        let tls = vantage_checks::pem::client_config(roots)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let tls = match &settings.client_identity {
            None => tls.with_no_client_auth(),
            Some(id) => {
                let (certs, key) = client_identity(id)?;
                tls.with_client_auth_cert(certs, key).map_err(|e| {
                    ClientError::Setup(format!(
                        "the client certificate `{}` and key `{}` do not fit together: {e}",
                        id.cert.display(),
                        id.key.display()
                    ))
                })?
            }
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let auth = http::HeaderValue::from_str(&format!("Bearer {}", settings.token.expose()))
            .map_err(|_| {
                ClientError::Setup(
                    "the probe token holds characters not allowed in a header".into(),
                )
            })?;
        Ok(Self {
            client,
            bases: settings.coordinators.clone().into(),
            current: std::sync::Arc::default(),
            auth,
        })
    }

    /// The coordinator asked first now.
    pub fn current(&self) -> &url::Url {
        &self.bases[self.current.load(std::sync::atomic::Ordering::Relaxed) % self.bases.len()]
    }

    fn url(&self, base: &url::Url, path: &str) -> Result<http::Uri, ClientError> {
        let url = base
            .join(path)
            .map_err(|e| ClientError::Setup(format!("bad coordinator URL: {e}")))?;
        url.as_str()
            .parse()
            .map_err(|e| ClientError::Setup(format!("bad coordinator URL: {e}")))
    }

    /// Sends the request `build` makes for a coordinator's URL of `path`, to the current
    /// coordinator and, while they fail over, to the others in turn.
    async fn send(
        &self,
        path: &str,
        build: impl Fn(http::Uri) -> Result<Request<Full<Bytes>>, ClientError>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        use std::sync::atomic::Ordering;
        let n = self.bases.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            let req = build(self.url(&self.bases[i], path)?)?;
            match self.send_one(req).await {
                Err((e, true)) if k + 1 < n => {
                    tracing::warn!(coordinator = %self.bases[i], next = %self.bases[(i + 1) % n], error = %e, "coordinator unavailable; trying the next");
                    last = Some(e);
                }
                Err((e, _)) => {
                    if k > 0 {
                        // The last one tried answered (or all failed): start there next time.
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Err(e);
                }
                Ok(answer) => {
                    if k > 0 {
                        tracing::info!(coordinator = %self.bases[i], "now sending to this coordinator");
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Setup("no coordinator is configured".into())))
    }

    /// One request to one coordinator; an error says whether another coordinator may answer
    /// it (`true`: the connection failed, timed out, or a 5xx).
    async fn send_one(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), (ClientError, bool)> {
        let what = format!("{} {}", req.method(), req.uri().path());
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ClientError::Retry {
                    message: format!("{what}: {}", error_chain(&e)),
                    retry_after: None,
                })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Retry {
                    message: format!("{what}: the answer broke off: {e}"),
                    retry_after: None,
                })?;
            Ok((parts.status, parts.headers, body.to_bytes()))
        };
        let (status, headers, body) = match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Err(_) => {
                return Err((
                    ClientError::Retry {
                        message: format!("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs()),
                        retry_after: None,
                    },
                    true,
                ));
            }
            Ok(Err(e)) => return Err((e, true)),
            Ok(Ok(answer)) => answer,
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok((status, headers, body));
        }
        let message = serde_json::from_slice::<vantage_checks::wire::ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(600)));
        Err(match status {
            StatusCode::UNAUTHORIZED => (ClientError::Unauthorized(message), false),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => (
                ClientError::Retry {
                    message: format!("{what}: {status}: {message}"),
                    retry_after,
                },
                false,
            ),
            s if s.is_server_error() => (
                ClientError::Retry {
                    message: format!("{what}: {status}: {message}"),
                    retry_after,
                },
                true,
            ),
            s => (
                ClientError::Rejected {
                    status: s.as_u16(),
                    message,
                },
                false,
            ),
        })
    }

    /// Pulls this probe's config; `NotModified` when `etag` still holds.
    pub async fn config(&self, etag: Option<&str>) -> Result<ConfigAnswer, ClientError> {
        let (status, headers, body) = self
            .send("api/v1/probe/config", |uri| {
                let mut req = Request::builder()
                    .method(Method::GET)
                    .uri(uri)
                    .header(header::AUTHORIZATION, self.auth.clone());
                if let Some(tag) = etag {
                    req = req.header(header::IF_NONE_MATCH, tag);
                }
                req.body(Full::new(Bytes::new()))
                    .map_err(|e| ClientError::Setup(e.to_string()))
            })
            .await?;
        if status == StatusCode::NOT_MODIFIED {
            return Ok(ConfigAnswer::NotModified);
        }
        let tag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(ConfigAnswer::Changed(body, tag))
    }

    /// Waits (a long poll, at most `wait`, under [`REQUEST_TIMEOUT`]) for on-demand runs
    /// after run `after` that owe results from this probe; none when `wait` passed first.
    pub async fn runs(&self, after: i64, wait: Duration) -> Result<RunOrders, ClientError> {
        let path = format!("api/v1/probe/runs?after={after}&wait={}", wait.as_secs());
        let (_, _, body) = self
            .send(&path, |uri| {
                Request::builder()
                    .method(Method::GET)
                    .uri(uri)
                    .header(header::AUTHORIZATION, self.auth.clone())
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| ClientError::Setup(e.to_string()))
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Retry {
            message: format!("the coordinator's runs are not valid: {e}"),
            retry_after: None,
        })
    }

    /// Pushes a batch; `Ok` only once the coordinator committed it (every result but those
    /// the answer lists as refused), with the coordinator's clock (its `Date` header) if it
    /// sent one.
    pub async fn push(
        &self,
        batch: &ResultBatch,
    ) -> Result<(BatchAck, Option<std::time::SystemTime>), ClientError> {
        let body = Bytes::from(
            serde_json::to_vec(batch)
                .map_err(|e| ClientError::Setup(format!("cannot encode a batch: {e}")))?,
        );
        let (_, headers, body) = self
            .send("api/v1/results", |uri| {
                Request::builder()
                    .method(Method::POST)
                    .uri(uri)
                    .header(header::AUTHORIZATION, self.auth.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body.clone()))
                    .map_err(|e| ClientError::Setup(e.to_string()))
            })
            .await?;
        let date = headers
            .get(header::DATE)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok());
        let ack = serde_json::from_slice(&body).map_err(|e| ClientError::Retry {
            message: format!("the coordinator's acknowledgement is not valid: {e}"),
            retry_after: None,
        })?;
        Ok((ack, date))
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
