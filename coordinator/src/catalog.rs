//! The check catalog: the check files the coordinator serves to probes, reloaded on SIGHUP
//! or when a file changes. A bad edit is reported and the last good catalog keeps running.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use vantage_checks::config::{self, LoadError, Source};
use vantage_checks::model::CheckSet;
use vantage_checks::wire::{ProbeConfig, SourceFile};

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
}

impl Catalog {
    /// The config document for `probe` and its ETag (a quoted hash of the document).
    pub fn for_probe(&self, probe: &ProbeRecord) -> (ProbeConfig, String) {
        let doc = ProbeConfig {
            probe_id: probe.id.clone(),
            region: probe.region.clone(),
            labels: probe.labels.clone(),
            files: self
                .sources
                .iter()
                .map(|s| SourceFile {
                    name: s.name.clone(),
                    text: s.text.clone(),
                })
                .collect(),
            checks: self
                .checks
                .checks
                .iter()
                .filter(|c| c.probes.selects(&probe.region, &probe.labels))
                .map(|c| c.id.clone())
                .collect(),
        };
        let mut h = Sha256::new();
        // Serializing plain owned data cannot fail; an empty hash would only cost a refetch.
        h.update(serde_json::to_vec(&doc).unwrap_or_default());
        let digest = h.finalize();
        let etag = format!(
            "\"{}\"",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        (doc, etag)
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
    Ok(Catalog {
        sources,
        checks,
        loaded_at: SystemTime::now(),
    })
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
