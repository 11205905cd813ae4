//! The HTTP side of `run`: the runs API over HTTPS (rustls; HTTP/2 when offered) or plain
//! HTTP, the operator's bearer token on every request, and each answer sorted into what the
//! command does with it: a refusal the user must fix (a 4xx) or a coordinator that cannot
//! answer now (no connection, a timeout, a 5xx, 408, 429, an unreadable answer).

use std::path::Path;
use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use vantage_checks::pem::CaFileError;

use super::view::{RunRequest, RunView};
use crate::alert::Secret;

/// Largest answer read: a run of every check of a vendor from every probe, with assets.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Deadline of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator refused the request with a 4xx (other than 408 and 429): asking again
    /// will not help.
    #[error("the coordinator refused {what} ({status}): {message}")]
    Refused {
        /// The request, e.g. `POST /api/v1/runs`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The coordinator's `error`, or the start of its answer.
        message: String,
    },
    /// No usable answer now: no connection, a timeout, a 5xx, 408 or 429, or an answer that
    /// is not what the API promises.
    #[error("{0}")]
    Unavailable(String),
    /// The client could not be set up: a CA file or token that cannot be used.
    #[error("{0}")]
    Setup(String),
}

/// A client for one coordinator's runs API.
pub struct Client {
    http: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: url::Url,
    auth: http::HeaderValue,
}

impl Client {
    /// A client for the coordinator at `base`, with `token`. With `ca_file`, only that CA
    /// is trusted for the coordinator's certificate (as the probe's `ca_file`); without it,
    /// the system's roots.
    pub fn new(
        base: url::Url,
        token: &Secret,
        ca_file: Option<&Path>,
    ) -> Result<Self, ClientError> {
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::Setup(format!(
                "--coordinator must be an http or https URL, e.g. `https://vantage.example:7470`; got `{base}`"
            )));
        }
        let roots = vantage_checks::pem::roots(ca_file).map_err(|e| {
            let path = ca_file.unwrap_or(Path::new("")).display();
            ClientError::Setup(match e {
                CaFileError::Read(e) => format!("cannot use the CA file `{path}`: {e}"),
                CaFileError::NoUsableCertificate => {
                    format!("`{path}` holds no usable CA certificate")
                }
            })
        })?;
        let tls = vantage_checks::pem::client_config(roots)
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let mut auth =
            http::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                ClientError::Setup(
                    "the API token holds characters not allowed in a header; it should be the \
                     token as `[api]` in coordinator.toml gives it"
                        .into(),
                )
            })?;
        auth.set_sensitive(true);
        Ok(Self { http, base, auth })
    }

    /// The URL of `path` (under `/api/v1/`) on the coordinator, below any path `base` has.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}/api/v1/{path}"));
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request and reads its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let what = format!("{method} {}", url.path());
        let uri: http::Uri = url
            .as_str()
            .parse()
            .map_err(|e| ClientError::Setup(format!("bad coordinator URL `{url}`: {e}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("vantage-coordinator/", env!("CARGO_PKG_VERSION"), " run"),
            );
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| {
                ClientError::Unavailable(format!(
                    "{what}: cannot reach the coordinator at {}: {}",
                    self.base,
                    error_chain(&e)
                ))
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    ClientError::Unavailable(format!("{what}: the answer broke off: {e}"))
                })?
                .to_bytes();
            Ok::<_, ClientError>((parts.status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                ClientError::Unavailable(format!(
                    "{what}: no answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })??;
        sort(&what, status, &body)
    }

    /// Starts a run (`POST /api/v1/runs`).
    pub async fn start(&self, request: &RunRequest) -> Result<RunView, ClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ClientError::Setup(format!("cannot encode the run request: {e}")))?;
        self.call(Method::POST, self.url("runs", &[]), Some(body))
            .await
    }

    /// One run (`GET /api/v1/runs/{id}`).
    pub async fn get(&self, id: i64) -> Result<RunView, ClientError> {
        self.call(Method::GET, self.url(&format!("runs/{id}"), &[]), None)
            .await
    }

    /// The newest run of `vendor` (of `suite`, when given), if there is one.
    pub async fn latest(
        &self,
        vendor: &str,
        suite: Option<&str>,
    ) -> Result<Option<RunView>, ClientError> {
        let mut query = vec![("vendor", vendor)];
        if let Some(s) = suite {
            query.push(("suite", s));
        }
        query.push(("limit", "1"));
        let runs: Vec<RunView> = self
            .call(Method::GET, self.url("runs", &query), None)
            .await?;
        Ok(runs.into_iter().next())
    }
}

/// Sorts an answer: the JSON of a 2xx, or the error it stands for.
fn sort<T: DeserializeOwned>(
    what: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            ClientError::Unavailable(format!(
                "{what}: the coordinator's answer is not a run as this client reads it \
                 (is the coordinator a matching version?): {e}"
            ))
        });
    }
    let message = serde_json::from_slice::<vantage_checks::wire::ApiError>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            let text = text.trim();
            if text.is_empty() {
                "(no message)".to_owned()
            } else {
                text.to_owned()
            }
        });
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            Err(ClientError::Unavailable(format!(
                "{what}: the coordinator answered {status} (try again later): {message}"
            )))
        }
        s if s.is_client_error() => Err(ClientError::Refused {
            what: what.to_owned(),
            status: s.as_u16(),
            message,
        }),
        s => Err(ClientError::Unavailable(format!(
            "{what}: the coordinator answered {s}: {message}"
        ))),
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(base.parse().expect("a URL"), &Secret::new("t0ken"), None).expect("a client")
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_the_query() {
        let c = client("https://vantage.example:7470/monitoring/");
        assert_eq!(
            c.url("runs", &[("vendor", "fast cdn&x"), ("limit", "1")])
                .as_str(),
            "https://vantage.example:7470/monitoring/api/v1/runs?vendor=fast+cdn%26x&limit=1"
        );
        assert_eq!(
            client("http://127.0.0.1:7470").url("runs/7", &[]).as_str(),
            "http://127.0.0.1:7470/api/v1/runs/7"
        );
    }

    #[test]
    fn answers_are_sorted_by_what_to_do_about_them() {
        let refused = sort::<RunView>(
            "POST /api/v1/runs",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"error": "unknown vendor `fastcnd`"}"#,
        );
        match refused {
            Err(e @ ClientError::Refused { status: 422, .. }) => assert_eq!(
                e.to_string(),
                "the coordinator refused POST /api/v1/runs (422): unknown vendor `fastcnd`"
            ),
            other => panic!("{other:?}"),
        }
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::FOUND,
        ] {
            assert!(
                matches!(
                    sort::<RunView>("GET /api/v1/runs/7", status, b"<html>oops</html>"),
                    Err(ClientError::Unavailable(_))
                ),
                "{status}"
            );
        }
        match sort::<RunView>("GET /api/v1/runs/7", StatusCode::OK, b"{}") {
            Err(ClientError::Unavailable(m)) => assert!(m.contains("not a run"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn setup_refuses_what_cannot_work_and_never_shows_the_token() {
        let bad = |url: &str, token: &str| {
            Client::new(url.parse().expect("a URL"), &Secret::new(token), None)
                .err()
                .expect("refused")
                .to_string()
        };
        assert!(bad("ftp://vantage.example/", "t").contains("http or https URL"));
        let e = bad("http://127.0.0.1:7470", "sec\nret");
        assert!(
            e.contains("not allowed in a header") && !e.contains("sec"),
            "{e}"
        );
    }
}
