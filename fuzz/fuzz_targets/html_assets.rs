//! Asset extraction from a page's HTML (`assets = true` on `cdn` checks).
//!
//! Invariants: at most `max` assets, each an absolute http(s) URL without a fragment, no
//! duplicates.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use url::Url;
use vantage_checks::fuzzing::extract_assets;

// `max:u8` then the page's HTML.
fuzz_target!(|data: &[u8]| {
    let Some((&max, html)) = data.split_first() else {
        return;
    };
    let Ok(html) = std::str::from_utf8(html) else {
        return;
    };
    let page = Url::parse("https://edge.example/dir/page.html").expect("a valid URL");
    let max = usize::from(max);
    let assets = extract_assets(html, &page, max);
    assert!(
        assets.len() <= max,
        "{} assets past a max of {max}",
        assets.len()
    );
    let mut seen = HashSet::new();
    for url in &assets {
        assert!(matches!(url.scheme(), "http" | "https"), "asset {url}");
        assert!(url.fragment().is_none(), "asset {url} keeps its fragment");
        assert!(url.host().is_some(), "asset {url} has no host");
        assert!(seen.insert(url.as_str()), "asset {url} twice");
    }
});
