//! The check catalog: the check files the coordinator serves to probes, reloaded on SIGHUP
//! or when a file changes. A bad edit is reported and the last good catalog keeps running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use vantage_checks::config::{self, LoadError, Source};
use vantage_checks::model::CheckSet;

use crate::store::ProbeRecord;

/// One loaded, valid set of check files.
#[derive(Debug)]
pub struct Catalog {
    /// The files as read.
    pub sources: Vec<Source>,
    /// What they validate to.
    pub checks: CheckSet,
    /// When they were loaded.
    pub loaded_at: SystemTime,
    /// Each check as probes receive it (JSON), encoded once at load, and its digest.
    encoded: Vec<(Box<RawValue>, [u8; 32])>,
    /// Each check's place in `checks.checks`, by id: ingest looks every result's check up.
    by_id: std::collections::HashMap<String, usize>,
}

/// A probe's config document (`GET /api/v1/probe/config`) and its ETag.
#[derive(Debug)]
pub struct ProbeDocument {
    /// A quoted digest of the probe's identity and the checks selected for it: it changes
    /// exactly when what the probe must run changes.
    pub etag: String,
    /// The checks selected for the probe, encoded at load.
    checks: Vec<usize>,
}

/// [`vantage_checks::wire::ProbeConfig`] as the coordinator writes it: the same fields, with
/// each check's JSON encoded once at load rather than per request.
#[derive(Serialize)]
struct ProbeConfigOut<'a> {
    probe_id: &'a str,
    region: &'a str,
    labels: &'a BTreeMap<String, String>,
    checks: Vec<&'a RawValue>,
}

impl Catalog {
    fn new(sources: Vec<Source>, checks: CheckSet) -> Result<Self, CatalogError> {
        let encoded = checks
            .checks
            .iter()
            .map(|c| {
                let json = serde_json::value::to_raw_value(c).map_err(|e| {
                    CatalogError(format!(
                        "check `{}` cannot be encoded for probes: {e}",
                        c.id
                    ))
                })?;
                let digest: [u8; 32] = Sha256::digest(json.get().as_bytes()).into();
                Ok((json, digest))
            })
            .collect::<Result<_, CatalogError>>()?;
        let by_id = checks
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Ok(Self {
            sources,
            checks,
            loaded_at: SystemTime::now(),
            encoded,
            by_id,
        })
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&vantage_checks::model::Check> {
        self.checks.checks.get(*self.by_id.get(id)?)
    }

    /// The checks selected for `probe` and their ETag; cheap (no encoding), so every poll,
    /// answered `304` or not, can ask.
    pub fn for_probe(&self, probe: &ProbeRecord) -> ProbeDocument {
        let checks: Vec<usize> = self
            .checks
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.probes.selects(&probe.region, &probe.labels))
            .map(|(i, _)| i)
            .collect();
        let mut h = Sha256::new();
        // Length-prefixed, so no two identities hash alike by shifting a boundary.
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(probe.id.as_bytes());
        field(probe.region.as_bytes());
        for (k, v) in &probe.labels {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        for &i in &checks {
            field(&self.encoded[i].1);
        }
        let digest = h.finalize();
        let etag = format!(
            "\"{}\"",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        ProbeDocument { etag, checks }
    }

    /// The JSON body of `doc` for `probe`.
    pub fn encode(&self, probe: &ProbeRecord, doc: &ProbeDocument) -> Vec<u8> {
        let out = ProbeConfigOut {
            probe_id: &probe.id,
            region: &probe.region,
            labels: &probe.labels,
            checks: doc.checks.iter().map(|&i| &*self.encoded[i].0).collect(),
        };
        // Strings, a map of strings and JSON already encoded: writing them cannot fail.
        serde_json::to_vec(&out).unwrap_or_default()
    }
}

/// The catalog in force plus the outcome of the last reload.
#[derive(Debug)]
pub struct Catalogs {
    paths: Vec<PathBuf>,
    current: RwLock<Arc<Catalog>>,
    last_error: RwLock<Option<String>>,
    failures: std::sync::atomic::AtomicU64,
    fingerprint: RwLock<Vec<(PathBuf, Option<SystemTime>, u64)>>,
}

/// Why the first load failed (later failures keep the old catalog).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

impl Catalogs {
    /// Loads the check files; with no paths, the catalog is empty.
    pub fn load(paths: Vec<PathBuf>) -> Result<Self, CatalogError> {
        let catalog = read(&paths)?;
        let fingerprint = fingerprint(&paths);
        Ok(Self {
            paths,
            current: RwLock::new(Arc::new(catalog)),
            last_error: RwLock::new(None),
            failures: std::sync::atomic::AtomicU64::new(0),
            fingerprint: RwLock::new(fingerprint),
        })
    }

    /// The catalog in force.
    pub fn current(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The error of the last reload, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many reloads have failed since start.
    pub fn reload_failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-reads the files. A valid edit replaces the catalog; an invalid one is recorded and
    /// the old catalog stays. Returns whether the catalog changed.
    pub fn reload(&self) -> bool {
        *self.fingerprint.write().unwrap_or_else(|p| p.into_inner()) = fingerprint(&self.paths);
        match read(&self.paths) {
            Ok(catalog) => {
                let changed = {
                    let old = self.current();
                    old.sources
                        .iter()
                        .map(|s| (&s.name, &s.text))
                        .ne(catalog.sources.iter().map(|s| (&s.name, &s.text)))
                };
                if changed {
                    tracing::info!(checks = catalog.checks.checks.len(), "check files reloaded");
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
                }
                *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = None;
                changed
            }
            Err(e) => {
                tracing::error!(error = %e.0, "check files are invalid; keeping the last good ones");
                self.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = Some(e.0);
                false
            }
        }
    }

    /// Reloads if any file's modification time or size changed since the last look.
    pub fn reload_if_changed(&self) -> bool {
        let now = fingerprint(&self.paths);
        let same = *self.fingerprint.read().unwrap_or_else(|p| p.into_inner()) == now;
        !same && self.reload()
    }
}

fn read(paths: &[PathBuf]) -> Result<Catalog, CatalogError> {
    let sources = if paths.is_empty() {
        Vec::new()
    } else {
        config::read_sources(paths).map_err(|e| CatalogError(e.to_string()))?
    };
    let checks =
        config::validate(&sources).map_err(|d| CatalogError(LoadError::Invalid(d).to_string()))?;
    Catalog::new(sources, checks)
}

/// Modification time and size of every file under the paths (directories listed).
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        let mut files = vec![p.clone()];
        if p.is_dir() {
            files = std::fs::read_dir(p)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
        }
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            out.push((
                f,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            ));
        }
    }
    out
}
