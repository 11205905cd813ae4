//! `assets = true`: the page's scripts, stylesheets and images, fetched like a browser would
//! (through the edge for the page's own host), a few at a time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use scraper::{Html, Selector};
use url::Url;

use super::super::ExecError;
use super::fetch::{Client, FetchError, follow};
use crate::model::HttpMethod;
use crate::result::{AssetResult, FailureKind, millis};

/// Assets fetched at once, as a browser does per host.
const CONCURRENCY: usize = 6;

/// The absolute http(s) URLs of the page's `script[src]`, `link[rel=stylesheet][href]` and
/// `img[src]`, resolved against `<base href>` or the page URL, without duplicates, at most `max`.
pub fn extract(html: &str, page: &Url, max: usize) -> Vec<Url> {
    let doc = Html::parse_document(html);
    let select = |s: &str| Selector::parse(s).ok();
    let base = select("base[href]")
        .and_then(|s| doc.select(&s).next())
        .and_then(|e| e.value().attr("href"))
        .and_then(|href| page.join(href).ok())
        .unwrap_or_else(|| page.clone());
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (selector, attr) in [
        ("script[src]", "src"),
        ("link[rel~=stylesheet][href]", "href"),
        ("img[src]", "src"),
    ] {
        let Some(sel) = select(selector) else {
            continue;
        };
        for element in doc.select(&sel) {
            let Some(mut url) = element
                .value()
                .attr(attr)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .and_then(|v| base.join(v).ok())
            else {
                continue;
            };
            if !matches!(url.scheme(), "http" | "https") {
                continue;
            }
            url.set_fragment(None);
            if out.len() < max && seen.insert(url.clone()) {
                out.push(url);
            }
        }
    }
    out
}

/// Fetches every asset, at most [`CONCURRENCY`] at a time, each within `deadline`.
///
/// `Err` when the probe's source address cannot reach an asset's host: the probe cannot test
/// the page from here, which is not the vendor's failure.
pub(super) async fn fetch_all(
    client: &Client,
    urls: Vec<Url>,
    deadline: Instant,
) -> Result<Vec<AssetResult>, ExecError> {
    let client = Arc::new(client.clone());
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    // Dropping the set (on the run's hard timeout) aborts every fetch still going.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, url) in urls.iter().cloned().enumerate() {
        let client = client.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (index, fetch_one(&client, url, deadline).await)
        });
    }
    let mut results: Vec<Option<AssetResult>> = vec![None; urls.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(result?);
        }
    }
    // A task that panicked still leaves a row, so no asset goes unreported.
    Ok(urls
        .iter()
        .zip(results)
        .map(|(url, r)| {
            r.unwrap_or_else(|| AssetResult {
                url: url.to_string(),
                status: None,
                failure: Some(FailureKind::ProbeInternal),
                total_ms: 0.0,
            })
        })
        .collect())
}

async fn fetch_one(client: &Client, url: Url, deadline: Instant) -> Result<AssetResult, ExecError> {
    let start = Instant::now();
    let name = url.to_string();
    let followed = follow(client, HttpMethod::Get, url, |_| false, deadline).await;
    let (status, failure) = match followed.result {
        Ok(r) if (200..300).contains(&r.status) => (Some(r.status), None),
        Ok(r) => (Some(r.status), Some(FailureKind::HttpStatus)),
        Err(FetchError::Fail { kind, .. }) => (None, Some(kind)),
        Err(FetchError::Probe(e @ ExecError::SourceAddress { .. })) => return Err(e),
        Err(FetchError::Probe(e @ ExecError::Unsupported(_))) => {
            tracing::debug!(asset = %name, error = %e, "asset cannot be tested from this probe");
            (None, Some(FailureKind::TlsUnsupportedProtocol))
        }
        Err(FetchError::Probe(e)) => {
            tracing::warn!(asset = %name, error = %e, "probe error fetching an asset");
            (None, Some(FailureKind::ProbeInternal))
        }
    };
    Ok(AssetResult {
        url: name,
        status,
        failure,
        total_ms: millis(start.elapsed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_scripts_styles_and_images() {
        let page = Url::parse("https://www.example.com/shop/index.html").expect("url");
        let html = r#"<!doctype html><html><head>
            <link rel="stylesheet" href="/css/site.css">
            <link rel="preload stylesheet" href="print.css#x">
            <link rel="icon" href="/favicon.ico">
            <script src="https://cdn.example.net/app.js"></script>
            <script>inline()</script>
            </head><body>
            <img src="img/logo.png"><img src="data:image/png;base64,AAAA">
            <img src="/css/site.css"><img src="  ">
            </body></html>"#;
        let got: Vec<String> = extract(html, &page, 10)
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "https://cdn.example.net/app.js",
                "https://www.example.com/css/site.css",
                "https://www.example.com/shop/print.css",
                "https://www.example.com/shop/img/logo.png",
            ]
        );
        assert_eq!(extract(html, &page, 2).len(), 2);
    }

    #[test]
    fn honours_base_href() {
        let page = Url::parse("https://www.example.com/a/b.html").expect("url");
        let html = r#"<html><head><base href="https://static.example.com/v2/"></head>
            <body><img src="x.png"></body></html>"#;
        let got = extract(html, &page, 10);
        assert_eq!(got[0].as_str(), "https://static.example.com/v2/x.png");
    }
}
