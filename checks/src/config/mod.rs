//! Loading check files and validating them into a [`CheckSet`].
//!
//! Loose, then strict: each TOML table is first deserialized into a serde type that mirrors
//! it (`*Config`, every table `deny_unknown_fields`), then a pure `validate` turns it into the
//! model types, parsing durations, regexes, URLs and addresses once. Validation collects
//! **every** problem, each located by file, line and column, before anything runs.
//!
//! `[[profile]]` tables (named bundles of an HTTP check's `expect`, see `http.rs`) are
//! validated on their own, before the checks that name them, so that their errors point into
//! the profile, once.
//!
//! Each `[[check]]` table is deserialized on its own, so one bad check does not hide the
//! problems of the next. Its keys are split three ways: the keys every check has (`id`,
//! `vendor`, `kind`, …), the settings that `[defaults]` may also set (`interval`, `quorum`, …),
//! and the keys of its kind, which go to that kind's own type (`dns.rs`, `http.rs`, …).

mod diagnostic;
pub(crate) mod dns;
mod http;
mod settings;
mod tcp;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use self::diagnostic::{Diagnostic, Diagnostics};
use self::settings::{PartialSettings, SettingsConfig};
use crate::model::{Check, CheckSet, CheckSpec, HostPort, ProbeSelector, Role, Sla, Vendor};

/// One check file's text and where it came from.
#[derive(Clone, Debug)]
pub struct Source {
    /// Name used in errors (the path as given, or `<inline>`).
    pub name: String,
    /// The TOML text.
    pub text: String,
    /// Directory that relative paths in the file (`ca`) are resolved against.
    pub dir: Option<PathBuf>,
}

impl Source {
    /// Text that came from no file; relative paths stay relative to the working directory.
    pub fn inline(text: impl Into<String>) -> Self {
        Self {
            name: "<inline>".to_owned(),
            text: text.into(),
            dir: None,
        }
    }
}

/// Why check files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A directory held no `.toml` file.
    #[error("`{}` holds no .toml file", path.display())]
    EmptyDir {
        /// The directory.
        path: PathBuf,
    },
    /// The files were read but are not valid.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads check files; a directory contributes its `*.toml` files in name order.
pub fn read_sources(paths: &[PathBuf]) -> Result<Vec<Source>, LoadError> {
    let mut sources = Vec::new();
    for path in paths {
        let read_err = |source| LoadError::Read {
            path: path.clone(),
            source,
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(LoadError::EmptyDir { path: path.clone() });
            }
            for file in files {
                sources.push(read_one(&file)?);
            }
        } else {
            sources.push(read_one(path)?);
        }
    }
    Ok(sources)
}

fn read_one(path: &Path) -> Result<Source, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Source {
        name: path.display().to_string(),
        text,
        dir: path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_owned()
            }
        }),
    })
}

/// Reads and validates check files and directories.
pub fn load(paths: &[PathBuf]) -> Result<CheckSet, LoadError> {
    let sources = read_sources(paths)?;
    validate(&sources).map_err(LoadError::Invalid)
}

/// Validates one TOML text (named `<inline>` in errors).
pub fn parse_str(text: &str) -> Result<CheckSet, Diagnostics> {
    validate(&[Source::inline(text)])
}

/// Validates check files: pure, no I/O. Returns every problem found, in file order.
pub fn validate(sources: &[Source]) -> Result<CheckSet, Diagnostics> {
    let mut errors = Vec::new();
    let mut docs = Vec::new();
    for src in sources {
        let (doc, parse_errors) = DeTable::parse_recoverable(&src.text);
        if parse_errors.is_empty() {
            docs.push((src, doc));
        } else {
            // A file that does not parse gets only its syntax errors: anything else would be noise.
            for e in parse_errors {
                let span = e.span().unwrap_or(0..0);
                errors.push(Diagnostic::at(
                    &src.name,
                    &src.text,
                    span,
                    syntax_message(e.message()),
                ));
            }
        }
    }

    // Split every file into its three kinds of table.
    let mut defaults: Vec<(&Source, Spanned<DeValue<'_>>)> = Vec::new();
    let mut vendor_tables = Vec::new();
    let mut profile_tables = Vec::new();
    let mut check_tables = Vec::new();
    for (src, doc) in docs {
        let mut ctx = Ctx {
            src,
            errors: &mut errors,
        };
        for (key, value) in doc.into_inner() {
            match key.get_ref().as_ref() {
                "defaults" => defaults.push((src, value)),
                "vendor" => vendor_tables.extend(ctx.array_of_tables(value, "vendor").into_iter().map(|t| (src, t))),
                "profile" => profile_tables.extend(ctx.array_of_tables(value, "profile").into_iter().map(|t| (src, t))),
                "check" => check_tables.extend(ctx.array_of_tables(value, "check").into_iter().map(|t| (src, t))),
                other => ctx.error(
                    key.span(),
                    format!("unknown key `{other}` at the top level; a check file holds `[defaults]`, `[[vendor]]`, `[[profile]]` and `[[check]]` tables"),
                ),
            }
        }
    }

    // [defaults]: at most one, shared by every file.
    let mut base = PartialSettings::default();
    let mut first_defaults: Option<String> = None;
    for (src, value) in defaults {
        let mut ctx = Ctx {
            src,
            errors: &mut errors,
        };
        let span = value.span();
        if let Some(prev) = &first_defaults {
            ctx.error(span, format!("`[defaults]` is already set in {prev}; keep one `[defaults]` table for all check files"));
            continue;
        }
        first_defaults = Some(ctx.location(span.clone()));
        if !value.get_ref().is_table() {
            ctx.error(
                span,
                "`defaults` must be a table, e.g. `[defaults]` with `interval = \"10s\"` below it"
                    .to_owned(),
            );
            continue;
        }
        if let Some(raw) = ctx.deserialize::<SettingsConfig>(value) {
            base = settings::validate(&mut ctx, &raw);
        }
    }

    // Vendors.
    let mut vendors = Vec::new();
    let mut vendor_ids: HashMap<String, String> = HashMap::new();
    for (src, table) in vendor_tables {
        let mut ctx = Ctx {
            src,
            errors: &mut errors,
        };
        let Some(raw) = ctx.deserialize::<VendorConfig>(table) else {
            continue;
        };
        let Some(id) = ctx.ident(&raw.id, "vendor id", "id = \"acme-dns\"") else {
            continue;
        };
        if let Some(prev) = vendor_ids.get(&id) {
            ctx.error(
                raw.id.span(),
                format!("vendor id `{id}` is already used at {prev}; vendor ids must be unique"),
            );
            continue;
        }
        vendor_ids.insert(id.clone(), ctx.location(raw.id.span()));
        let sla = raw
            .sla
            .as_ref()
            .map(|s| validate_sla(&mut ctx, s))
            .unwrap_or_default();
        vendors.push(Vendor {
            name: raw.name.unwrap_or_else(|| id.clone()),
            id,
            sla,
        });
    }

    // Profiles: validated alone, so that a check naming a bad one adds no error.
    let mut profiles = http::Profiles::new();
    let mut profile_at: HashMap<String, String> = HashMap::new();
    for (src, table) in profile_tables {
        let mut ctx = Ctx {
            src,
            errors: &mut errors,
        };
        let errors_before = ctx.errors.len();
        let raw = ctx.deserialize::<ProfileConfig>(table);
        for d in &mut ctx.errors[errors_before..] {
            if let Some(rest) = d.message.strip_prefix("unknown key ")
                && let Some((key, expected)) = rest.split_once("; expected ")
            {
                d.message = format!("unknown key {key} in a `[[profile]]`; expected {expected}");
            }
        }
        let Some(raw) = raw else { continue };
        let Some(id) = ctx.ident(&raw.id, "profile id", "id = \"static-image\"") else {
            continue;
        };
        if let Some(prev) = profile_at.get(&id) {
            ctx.error(
                raw.id.span(),
                format!("profile id `{id}` is already used at {prev}; profile ids must be unique across all files"),
            );
            continue;
        }
        profile_at.insert(id.clone(), ctx.location(raw.id.span()));
        let expect = match &raw.expect {
            Some(e) => http::validate_expect(&mut ctx, e),
            None => Some(http::PartialExpect::default()),
        };
        profiles.insert(id, expect);
    }

    // Checks.
    let mut checks = Vec::new();
    let mut check_ids: HashMap<String, String> = HashMap::new();
    for (src, table) in check_tables {
        let mut ctx = Ctx {
            src,
            errors: &mut errors,
        };
        let Some(check) = validate_check(&mut ctx, table, &base, &vendor_ids, &profiles) else {
            continue;
        };
        if let Some(prev) = check_ids.get(&check.0.id) {
            ctx.error(check.1, format!("check id `{}` is already used at {prev}; check ids must be unique across all files", check.0.id));
            continue;
        }
        check_ids.insert(check.0.id.clone(), ctx.location(check.1));
        checks.push(check.0);
    }

    if errors.is_empty() {
        return Ok(CheckSet { vendors, checks });
    }
    // Report in reading order: by file as given, then by position.
    let file_order = |name: &str| {
        sources
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(usize::MAX)
    };
    errors.sort_by_key(|d| (file_order(&d.file), d.line, d.column));
    Err(Diagnostics(errors))
}

fn syntax_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    format!("invalid TOML: {first}")
}

/// The keys every `[[check]]` has, whatever its kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonConfig {
    /// Unique id across all files: lowercase letters, digits, `-`, `_` and `.`.
    id: Spanned<String>,
    /// The `id` of a `[[vendor]]`.
    vendor: Spanned<String>,
    /// `dns`, `cdn`, `http`, `tls` or `tcp`.
    kind: Spanned<String>,
    /// `data` (default), `control` or `telemetry`.
    role: Option<Spanned<String>>,
    /// Free text for people.
    description: Option<String>,
    /// Which probes run the check; every probe when absent.
    probes: Option<Table<ProbesConfig>>,
    /// The one regression suite the check belongs to, e.g. `"cdn-static"`; or `suites`.
    suite: Option<Spanned<String>>,
    /// The regression suites the check belongs to; or `suite` for one. Each entry is checked
    /// on its own, so a bad one is reported where it is, with the check's other problems.
    suites: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    /// Run only in on-demand runs, never on the probes' schedule (default `false`).
    on_demand: Option<bool>,
}

const COMMON_KEYS: &[&str] = &[
    "id",
    "vendor",
    "kind",
    "role",
    "description",
    "probes",
    "suite",
    "suites",
    "on_demand",
];

/// `probes = { regions = [...], labels = {...} }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbesConfig {
    /// Only probes in one of these regions.
    regions: Option<Vec<String>>,
    /// Only probes carrying all these labels.
    labels: Option<BTreeMap<String, String>>,
}

/// `[[profile]]`: a named `expect` for HTTP and CDN checks (`profile = "static-image"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileConfig {
    /// Unique id across all files: lowercase letters, digits, `-`, `_` and `.`.
    id: Spanned<String>,
    /// Free text for people.
    #[allow(dead_code)]
    description: Option<String>,
    /// The assertions, as in an HTTP check's `expect`.
    expect: Option<Table<http::HttpExpectConfig>>,
}

/// `[[vendor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorConfig {
    /// Unique id: lowercase letters, digits, `-`, `_` and `.`.
    id: Spanned<String>,
    /// Display name; the id when absent.
    name: Option<String>,
    /// Contract SLA.
    sla: Option<Table<SlaConfig>>,
}

/// `sla = { availability = "99.95%", latency_p95 = "400ms" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlaConfig {
    /// Availability objective, a percentage string.
    availability: Option<Spanned<String>>,
    /// p50 latency objective.
    latency_p50: Option<Spanned<String>>,
    /// p95 latency objective.
    latency_p95: Option<Spanned<String>>,
    /// p99 latency objective.
    latency_p99: Option<Spanned<String>>,
}

fn validate_sla(ctx: &mut Ctx<'_>, raw: &SlaConfig) -> Sla {
    let availability = raw.availability.as_ref().and_then(|a| {
        let text = a.get_ref().trim();
        let parsed = text.strip_suffix('%').and_then(|n| n.trim().parse::<f64>().ok());
        match parsed {
            Some(p) if p > 0.0 && p <= 100.0 => Some(p / 100.0),
            _ => {
                ctx.error(a.span(), format!("sla availability must be a percentage above 0% and at most 100%, e.g. `availability = \"99.95%\"`; got `{text:?}`"));
                None
            }
        }
    });
    let mut latency = |v: &Option<Spanned<String>>, key: &str| {
        v.as_ref()
            .and_then(|v| ctx.duration(v, key, Duration::from_millis(1), "\"400ms\""))
    };
    Sla {
        availability,
        latency_p50: latency(&raw.latency_p50, "latency_p50"),
        latency_p95: latency(&raw.latency_p95, "latency_p95"),
        latency_p99: latency(&raw.latency_p99, "latency_p99"),
    }
}

/// Validates one `[[check]]` table; returns the check and the span of its id.
fn validate_check<'i>(
    ctx: &mut Ctx<'_>,
    table: Spanned<DeValue<'i>>,
    base: &PartialSettings,
    vendor_ids: &HashMap<String, String>,
    profiles: &http::Profiles,
) -> Option<(Check, Range<usize>)> {
    let span = table.span();
    let DeValue::Table(map) = table.into_inner() else {
        return None;
    };
    let (mut common, mut settings_t, mut kind_t) = (DeTable::new(), DeTable::new(), DeTable::new());
    for (k, v) in map {
        let key: &str = k.get_ref().as_ref();
        if COMMON_KEYS.contains(&key) {
            common.insert(k, v);
        } else if settings::KEYS.contains(&key) {
            settings_t.insert(k, v);
        } else {
            kind_t.insert(k, v);
        }
    }
    let table = |t: DeTable<'i>| Spanned::new(span.clone(), DeValue::Table(t));
    let common: Option<CommonConfig> = ctx.deserialize(table(common));
    let own_settings: Option<SettingsConfig> = ctx.deserialize(table(settings_t));
    let common = common?;
    let kind_name = common.kind.get_ref().as_str();
    let kind_table = table(kind_t);
    let errors_before = ctx.errors.len();
    let spec = match kind_name {
        "dns" => ctx
            .deserialize(kind_table)
            .and_then(|raw| dns::validate(ctx, &raw).map(|c| CheckSpec::Dns(Box::new(c)))),
        "cdn" | "http" => {
            let cdn = kind_name == "cdn";
            ctx.deserialize(kind_table).and_then(|raw| {
                http::validate(ctx, &raw, cdn, profiles).map(|c| CheckSpec::Http(Box::new(c)))
            })
        }
        "tls" => ctx
            .deserialize(kind_table)
            .and_then(|raw| tls::validate(ctx, &raw).map(|c| CheckSpec::Tls(Box::new(c)))),
        "tcp" => ctx
            .deserialize(kind_table)
            .and_then(|raw| tcp::validate(ctx, &raw).map(CheckSpec::Tcp)),
        other => {
            ctx.error(
                common.kind.span(),
                format!("unknown check kind `{other}`; use one of `dns`, `cdn`, `http`, `tls`, `tcp`, e.g. `kind = \"dns\"`"),
            );
            None
        }
    };
    for d in &mut ctx.errors[errors_before..] {
        if let Some(rest) = d.message.strip_prefix("unknown key ")
            && let Some((key, expected)) = rest.split_once("; expected ")
        {
            // The kind's own top level lists `expect` or `target`; nested tables do not.
            d.message = if expected.contains("`expect`") || expected.contains("`target`") {
                format!(
                    "unknown key {key} for a `{kind_name}` check; expected {expected}, or a key any check may have (`id`, `vendor`, `kind`, `role`, `description`, `probes`, `interval`, `timeout`, `slow`, …)"
                )
            } else {
                format!("unknown key {key} in a `{kind_name}` check; expected {expected}")
            };
        }
    }
    let id = ctx.ident(&common.id, "check id", "id = \"www-a\"");
    let vendor = common.vendor.get_ref().clone();
    if !vendor_ids.contains_key(&vendor) {
        let known: Vec<&str> = vendor_ids.keys().map(String::as_str).collect();
        let hint = if known.is_empty() {
            "no `[[vendor]]` is defined; add one, e.g. `[[vendor]]` with `id = \"acme-dns\"`"
                .to_owned()
        } else {
            let mut known = known;
            known.sort_unstable();
            format!(
                "known vendors: {}",
                known
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ctx.error(
            common.vendor.span(),
            format!("check names vendor `{vendor}`, which no `[[vendor]]` defines; {hint}"),
        );
    }
    let role = match common.role.as_ref().map(|r| (r, r.get_ref().as_str())) {
        None | Some((_, "data")) => Some(Role::Data),
        Some((_, "control")) => Some(Role::Control),
        Some((_, "telemetry")) => Some(Role::Telemetry),
        Some((r, other)) => {
            ctx.error(r.span(), format!("unknown role `{other}`; use `data`, `control` or `telemetry`, e.g. `role = \"control\"`"));
            None
        }
    };
    let own = own_settings.map(|raw| settings::validate(ctx, &raw));
    let settings = own.and_then(|own| settings::merge(ctx, base, &own, span.clone()));
    let probes = common
        .probes
        .map(|Table(p)| ProbeSelector {
            regions: p.regions.unwrap_or_default(),
            labels: p.labels.unwrap_or_default(),
        })
        .unwrap_or_default();
    let suites = suites(ctx, common.suite.as_ref(), common.suites.as_ref());
    let check = Check {
        id: id?,
        vendor,
        role: role?,
        description: common.description,
        probes,
        suites: suites?,
        on_demand: common.on_demand.unwrap_or(false),
        settings: settings?,
        spec: spec?,
    };
    vendor_ids
        .contains_key(&check.vendor)
        .then(|| (check, common.id.span()))
}

/// A check's `suite` or `suites`, as one sorted list without duplicates; `None` when invalid
/// (reported).
fn suites(
    ctx: &mut Ctx<'_>,
    suite: Option<&Spanned<String>>,
    suites: Option<&Spanned<Vec<Spanned<toml::Value>>>>,
) -> Option<Vec<String>> {
    const EXAMPLE: &str = "suites = [\"cdn-static\", \"cdn-negative\"]";
    let list = match (suite, suites) {
        (None, None) => return Some(Vec::new()),
        (Some(one), None) => {
            return ctx
                .ident(one, "suite name", "suite = \"cdn-static\"")
                .map(|name| vec![name]);
        }
        (Some(_), Some(list)) => {
            ctx.error(
                list.span(),
                format!("use only one of `suite` and `suites`: `suite` for one suite, `suites` for several, e.g. `{EXAMPLE}`"),
            );
            return None;
        }
        (None, Some(list)) => list,
    };
    if list.get_ref().is_empty() {
        ctx.error(
            list.span(),
            format!("`suites = []` names no suite; leave it out for a check in no suite, or name one or more, e.g. `{EXAMPLE}`"),
        );
        return None;
    }
    let mut names = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        let name = match item.get_ref() {
            toml::Value::String(s) => {
                ctx.ident(&Spanned::new(item.span(), s.clone()), "suite name", EXAMPLE)
            }
            other => {
                ctx.error(
                    item.span(),
                    format!("suites must list suite names as quoted strings, e.g. `{EXAMPLE}`; got `{other}`"),
                );
                None
            }
        };
        match name {
            Some(name) => names.push(name),
            None => ok = false,
        }
    }
    names.sort();
    names.dedup();
    ok.then_some(names)
}

/// Validation context for one file: where errors go and how to locate them.
pub(crate) struct Ctx<'a> {
    src: &'a Source,
    errors: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// Records a problem at `span` of this file.
    pub(crate) fn error(&mut self, span: Range<usize>, message: String) {
        self.errors.push(Diagnostic::at(
            &self.src.name,
            &self.src.text,
            span,
            message,
        ));
    }

    /// `file:line:column` of `span`, for "already defined at" messages.
    fn location(&self, span: Range<usize>) -> String {
        let d = Diagnostic::at(&self.src.name, &self.src.text, span, String::new());
        format!("{}:{}:{}", d.file, d.line, d.column)
    }

    /// Deserializes a table, recording serde's error (unknown key, wrong type, missing key).
    ///
    /// Serde stops at the first error. The offending key (unknown, or of the wrong type) is
    /// reported, dropped, and the table tried again, so every problem in a table is reported at once.
    fn deserialize<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>) -> Option<T> {
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            self.error(
                span,
                "expected a table, e.g. `{ key = \"value\" }`".to_owned(),
            );
            return None;
        };
        let mut dropped: Vec<String> = Vec::new();
        loop {
            let attempt = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            match T::deserialize(attempt.into_deserializer()) {
                // The unknown keys are already reported, so the whole load fails; validating the
                // rest still finds the table's other problems.
                Ok(v) => return Some(v),
                // A required key dropped below is reported already, as what is wrong with it.
                Err(e)
                    if e.message()
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.split_once('`'))
                        .is_some_and(|(key, _)| dropped.iter().any(|d| d == key)) =>
                {
                    return None;
                }
                Err(e) => {
                    let at = e.span().unwrap_or(span.clone());
                    let message = serde_message(e.message(), key_before(&self.src.text, at.start));
                    self.error(at.clone(), message);
                    // Drop the offending key (named by serde, or found before the bad value)
                    // and try again; a problem nested deeper ends the attempt.
                    let unknown = e
                        .message()
                        .strip_prefix("unknown field `")
                        .and_then(|rest| rest.split_once('`'))
                        .map(|(key, _)| key.to_owned())
                        .or_else(|| key_before(&self.src.text, at.start).map(str::to_owned));
                    match unknown {
                        Some(key) if table.remove(key.as_str()).is_some() => dropped.push(key),
                        _ => return None,
                    }
                }
            }
        }
    }

    /// The elements of an array of tables (`[[check]]`), or an error.
    fn array_of_tables<'i>(
        &mut self,
        value: Spanned<DeValue<'i>>,
        key: &str,
    ) -> Vec<Spanned<DeValue<'i>>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => {
                items.into_iter().collect()
            }
            _ => {
                self.error(
                    span,
                    format!("`{key}` must be an array of tables: write each one as `[[{key}]]`"),
                );
                Vec::new()
            }
        }
    }

    /// A relative path resolved against the file's directory.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        match &self.src.dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_owned(),
        }
    }

    /// An id: 1 to 64 of lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit.
    fn ident(&mut self, v: &Spanned<String>, what: &str, example: &str) -> Option<String> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if ok {
            Some(s.clone())
        } else {
            self.error(
                v.span(),
                format!("{what} must be 1 to 64 lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit, e.g. `{example}`; got `{s:?}`"),
            );
            None
        }
    }

    /// A duration string of at least `min`.
    pub(crate) fn duration(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        min: Duration,
        example: &str,
    ) -> Option<Duration> {
        match crate::duration::parse(v.get_ref()) {
            Ok(d) if d >= min => Some(d),
            Ok(_) => {
                self.error(
                    v.span(),
                    format!(
                        "{key} must be at least {}, e.g. `{key} = {example}`; got `{:?}`",
                        crate::duration::format(min),
                        v.get_ref()
                    ),
                );
                None
            }
            Err(why) => {
                self.error(
                    v.span(),
                    format!("{key} must be a duration with a unit, e.g. `{key} = {example}`; got `{:?}`, which {why}", v.get_ref()),
                );
                None
            }
        }
    }

    /// An integer within `range`.
    pub(crate) fn integer(
        &mut self,
        v: &Spanned<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        example: &str,
    ) -> Option<u32> {
        let n = *v.get_ref();
        if range.contains(&n) {
            u32::try_from(n).ok()
        } else {
            self.error(
                v.span(),
                format!(
                    "{key} must be between {} and {}, e.g. `{key} = {example}`; got `{n}`",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    /// A regular expression.
    pub(crate) fn regex(&mut self, v: &Spanned<String>, key: &str) -> Option<regex::Regex> {
        match regex::Regex::new(v.get_ref()) {
            Ok(re) => Some(re),
            Err(e) => {
                let why = e.to_string();
                let why = why
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("error: ");
                self.error(v.span(), format!("{key} must be a valid regular expression, e.g. `{key} = \"^cache-\"`; `{:?}` is not: {why}", v.get_ref()));
                None
            }
        }
    }

    /// `host`, `host:port`, `ip`, `ip:port`, `[v6]:port`; the port defaults to `default_port`.
    pub(crate) fn host_port(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        default_port: Option<u16>,
        example: &str,
    ) -> Option<HostPort> {
        match parse_host_port(v.get_ref(), default_port) {
            Ok(hp) => Some(hp),
            Err(why) => {
                self.error(
                    v.span(),
                    format!(
                        "{key} {why}, e.g. `{key} = {example}`; got `{:?}`",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// An IP address with an optional port (default `default_port`).
    pub(crate) fn socket_addr(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        default_port: u16,
        example: &str,
    ) -> Option<SocketAddr> {
        let s = v.get_ref().trim();
        let parsed = s.parse::<SocketAddr>().ok().or_else(|| {
            s.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, default_port))
        });
        if parsed.is_none() {
            self.error(v.span(), format!("{key} must be an IP address with an optional port, e.g. `{key} = {example}`; got `{s:?}`"));
        }
        parsed
    }
}

/// Serde's messages, edited to read as ours and to name the key when serde does not.
fn serde_message(message: &str, key: Option<&str>) -> String {
    let m = message.lines().next().unwrap_or(message).trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        // "`foo`, expected one of `a`, `b`" → "unknown key `foo`; expected one of …"
        if let Some((field, expected)) = rest.split_once(", expected ") {
            return format!("unknown key {field}; expected {expected}");
        }
        return format!("unknown key {rest}");
    }
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!("missing required key {rest}");
    }
    if let Some((got, expected)) = m
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        let table;
        let expected = match expected {
            "i64" | "u64" | "i32" | "u32" | "an integer" => "an integer, e.g. `2`",
            "a boolean" => "`true` or `false`",
            // The two spellings of a check's suites: point each at the other.
            "a string" if key == Some("suite") => {
                "one quoted suite name, e.g. `suite = \"cdn-static\"` (several go in `suites = [\"cdn-static\", \"cdn-negative\"]`)"
            }
            "a sequence" if key == Some("suites") => {
                "a list of suite names, e.g. `suites = [\"cdn-static\", \"cdn-negative\"]` (or `suite = \"cdn-static\"` for one)"
            }
            "a string" => "a quoted string, e.g. `\"10s\"`",
            "a sequence" => "a list, e.g. `[\"a\", \"b\"]`",
            // A serde struct is a TOML table: say so, with the key's own example when known.
            other if other == "a table" || other.starts_with("struct ") => {
                table = match key.and_then(table_example) {
                    Some(example) => format!("a table, e.g. `{} = {example}`", key.unwrap_or("")),
                    None => "a table, e.g. `{ key = \"value\" }`".to_owned(),
                };
                table.as_str()
            }
            other => other,
        };
        return match key {
            Some(key) => format!("`{key}` must be {expected}; got {got}"),
            None => format!("expected {expected}; got {got}"),
        };
    }
    m.to_owned()
}

/// The value of a key that takes a table, and only a table. Serde's derived structs also take
/// a list of their fields in order, so `dnssec = ["7d"]` would pass for
/// `dnssec = { valid_for = "7d" }` and `expect = [200]` for `expect = { status = 200 }`:
/// every key whose value is a struct is a `Table` of it.
#[derive(Debug)]
pub(crate) struct Table<T>(T);

impl<T> std::ops::Deref for Table<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TableOnly<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for TableOnly<T> {
            type Value = Table<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Table)
            }
        }
        d.deserialize_map(TableOnly(std::marker::PhantomData))
    }
}

/// An example value of the keys whose value is a table, for "must be a table" messages.
fn table_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "dnssec" => "{ valid_for = \"7d\" }",
        "json" => "{ pointer = \"/status\", equals = \"ok\" }",
        "fresh" => "{ json_pointer = \"/last_event_at\", max_age = \"5m\" }",
        "vendor_header" => "{ name = \"x-served-by\", matches = \"^cache-\" }",
        "cache_control" => "{ max_age = { min = \"1h\" }, immutable = true }",
        "max_age" | "s_maxage" | "age" => "{ min = \"1h\", max = \"30d\" }",
        "expires" => "{ min = \"1d\" }",
        "cache_key" => "{ query = \"ignored\" }",
        "negative" => "{ status = 404, cached = true }",
        "query" => "{ name = \"www.example.com\", type = \"A\" }",
        "probes" => "{ regions = [\"eu-west\"] }",
        "sla" => "{ availability = \"99.95%\" }",
        _ => return None,
    })
}

/// The key whose value starts at `at` (`key = value`), for messages that lack it.
fn key_before(text: &str, at: usize) -> Option<&str> {
    let before = text.get(..at)?.trim_end().strip_suffix('=')?.trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    let key = &before[start..];
    (!key.is_empty()).then_some(key)
}

/// Parses `host`, `host:port`, `ip`, `ip:port` or `[v6]:port`.
pub(crate) fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let s = s.trim();
    let need_port = || "needs a port".to_owned();
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("has an invalid port `{p}`"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("has an unclosed `[`")?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("has `[{host}]`, which is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None if after.is_empty() => default_port.ok_or_else(need_port)?,
            None => return Err("has text after `]`".to_owned()),
        };
        return Ok(HostPort {
            host: host.to_owned(),
            port,
        });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(HostPort {
            host: ip.to_string(),
            port: default_port.ok_or_else(need_port)?,
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (s, default_port.ok_or_else(need_port)?),
    };
    if host.parse::<IpAddr>().is_ok() || is_hostname(host) {
        Ok(HostPort {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
        })
    } else {
        Err(format!(
            "must be a host name or IP address, and `{host}` is neither"
        ))
    }
}

/// A plausible DNS host name: labels of letters, digits, `-` and `_`, 1 to 63 long.
/// A check's `resolver` key: `Some(None)` when absent, `None` when invalid (reported).
pub(crate) fn resolver(
    ctx: &mut Ctx<'_>,
    raw: Option<&Spanned<String>>,
) -> Option<Option<SocketAddr>> {
    match raw {
        None => Some(None),
        Some(r) => ctx
            .socket_addr(r, "resolver", 53, "\"127.0.0.1:53\"")
            .map(Some),
    }
}

pub(crate) fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests;
