//! Normalises CDN cache-status headers (being written).
