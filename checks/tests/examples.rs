//! Every example that ships (`deploy/**/*.toml` check files and the README's TOML blocks)
//! must validate, and must be rejected once any one of its tables gains an unknown key.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, Value};
use vantage_checks::config::{Source, validate};
use vantage_checks::model::Check;

const BOGUS: &str = "vantage_bogus_key";

/// Tables whose keys are free-form by design (header names, probe labels), so any key is valid.
const FREE_FORM: &[&str] = &["headers", "labels"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every shipped example check file, as (name, text).
fn examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("deploy")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deploy dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read example");
                // Only check files: they hold [[check]] or [[vendor]] tables.
                if text.contains("[[check]]") || text.contains("[[vendor]]") {
                    out.push((path.display().to_string(), text));
                }
            }
        }
    }
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut block: Option<String> = None;
    let mut n = 0;
    for line in readme.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => block = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                n += 1;
                // README blocks that define checks must be complete files.
                if b.contains("[[check]]") || b.contains("[[vendor]]") {
                    out.push((format!("README.md toml block {n}"), std::mem::take(b)));
                }
                block = None;
            }
            (Some(b), l) => {
                let _ = l;
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out.sort();
    out
}

#[test]
fn every_example_validates() {
    let examples = examples();
    assert!(
        examples.iter().any(|(n, _)| n.starts_with("README")),
        "the README has no TOML check example"
    );
    assert!(
        examples.iter().any(|(n, _)| n.contains("deploy")),
        "deploy/ has no check example"
    );
    for (name, text) in examples {
        if let Err(d) = validate(&[Source {
            name: name.clone(),
            text,
            dir: None,
        }]) {
            panic!("{name} does not validate:\n{}", d.render());
        }
    }
}

/// Lists the path of every table of a document: standard tables, array-of-tables elements
/// and inline tables, except the free-form ones.
fn count_tables(item: &Item, path: &str, out: &mut Vec<String>) {
    let visit_table_like = |name: &str, inner: Vec<(String, &Item)>, out: &mut Vec<String>| {
        if !FREE_FORM.contains(&name.rsplit('.').next().unwrap_or("")) {
            out.push(name.to_owned());
        }
        for (k, v) in inner {
            count_tables(v, &format!("{name}.{k}"), out);
        }
    };
    match item {
        Item::Table(t) => visit_table_like(
            path,
            t.iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            out,
        ),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let items: Vec<(String, &Item)> =
                    t.iter().map(|(k, v)| (k.to_owned(), v)).collect();
                visit_table_like(&format!("{path}[{i}]"), items, out);
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            // Inline tables hold values, not items: recurse by converting each value.
            let name = path.to_owned();
            if !FREE_FORM.contains(&name.rsplit('.').next().unwrap_or("")) {
                out.push(name.clone());
            }
            for (k, v) in t.iter() {
                count_tables(&Item::Value(v.clone()), &format!("{name}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Inserts the bogus key into the table at `target` (a path from `count_tables`).
fn insert_at(table: &mut Table, path: &str, target: &str) -> bool {
    if path == target {
        table.insert(BOGUS, toml_edit::value(1));
        return true;
    }
    for (key, item) in table.iter_mut() {
        let here = format!("{path}.{key}");
        let found = match item {
            Item::Table(t) => insert_at(t, &here, target),
            Item::ArrayOfTables(a) => a
                .iter_mut()
                .enumerate()
                .any(|(i, t)| insert_at(t, &format!("{here}[{i}]"), target)),
            Item::Value(Value::InlineTable(t)) => insert_inline(t, &here, target),
            _ => false,
        };
        if found {
            return true;
        }
    }
    false
}

fn insert_inline(table: &mut toml_edit::InlineTable, path: &str, target: &str) -> bool {
    if path == target {
        table.insert(BOGUS, Value::from(1));
        return true;
    }
    table.iter_mut().any(|(key, value)| match value {
        Value::InlineTable(t) => insert_inline(t, &format!("{path}.{key}"), target),
        _ => false,
    })
}

#[test]
fn an_unknown_key_in_any_table_of_any_example_is_rejected() {
    let mut mutated = 0;
    for (name, text) in examples() {
        let doc: DocumentMut = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut tables = Vec::new();
        count_tables(doc.as_item(), "", &mut tables);
        assert!(
            tables.len() > 3,
            "{name}: found only {} tables",
            tables.len()
        );
        for target in tables {
            let mut doc = doc.clone();
            assert!(
                insert_at(doc.as_table_mut(), "", &target),
                "{name}: could not insert into {target}"
            );
            let source = Source {
                name: name.clone(),
                text: doc.to_string(),
                dir: None,
            };
            match validate(&[source]) {
                Ok(_) => panic!("{name}: an unknown key in table `{target}` was accepted"),
                Err(d) => assert!(
                    d.0.iter()
                        .any(|e| e.message.contains(&format!("unknown key `{BOGUS}`"))),
                    "{name}: table `{target}` rejected the unknown key with the wrong message:\n{}",
                    d.render()
                ),
            }
            mutated += 1;
        }
    }
    assert!(mutated >= 30, "only {mutated} tables were mutated");
}

/// The path of every inline table (`key = { … }`) of a document, with the path of its key.
fn inline_tables(item: &Item, path: &str, out: &mut Vec<String>) {
    match item {
        Item::Table(t) => {
            for (k, v) in t.iter() {
                inline_tables(v, &format!("{path}.{k}"), out);
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                for (k, v) in t.iter() {
                    inline_tables(v, &format!("{path}[{i}].{k}"), out);
                }
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            out.push(path.to_owned());
            for (k, v) in t.iter() {
                inline_tables(&Item::Value(v.clone()), &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Replaces the inline table at `target` (a path from `inline_tables`) with the list of its
/// values, the shape serde's derived structs would otherwise take.
fn listify_at(table: &mut Table, path: &str, target: &str) -> bool {
    table.iter_mut().any(|(key, item)| {
        let here = format!("{path}.{key}");
        match item {
            Item::Table(t) => listify_at(t, &here, target),
            Item::ArrayOfTables(a) => a
                .iter_mut()
                .enumerate()
                .any(|(i, t)| listify_at(t, &format!("{here}[{i}]"), target)),
            Item::Value(v) => listify_value(v, &here, target),
            _ => false,
        }
    })
}

fn listify_value(value: &mut Value, path: &str, target: &str) -> bool {
    let Value::InlineTable(t) = value else {
        return false;
    };
    if path == target {
        let list: toml_edit::Array = t.iter().map(|(_, v)| v.clone()).collect();
        *value = Value::Array(list);
        return true;
    }
    t.iter_mut()
        .any(|(key, v)| listify_value(v, &format!("{path}.{key}"), target))
}

#[test]
fn every_table_valued_key_refuses_a_list_of_its_values() {
    let doc: DocumentMut = EVERY_FIELD.parse().expect("EVERY_FIELD parses");
    let mut targets = Vec::new();
    inline_tables(doc.as_item(), "", &mut targets);
    assert!(targets.len() >= 15, "only {} inline tables", targets.len());
    for target in targets {
        let mut doc = doc.clone();
        assert!(
            listify_at(doc.as_table_mut(), "", &target),
            "could not replace {target}"
        );
        let key = target.rsplit('.').next().unwrap_or_default();
        let source = Source {
            name: "every-field.toml".into(),
            text: doc.to_string(),
            dir: None,
        };
        match validate(&[source]) {
            Ok(_) => panic!("`{target}` as a list of its values was accepted"),
            Err(d) => assert!(
                d.0.iter()
                    .any(|e| e.message.starts_with(&format!("`{key}` must be a "))
                        && e.message.ends_with("got sequence")),
                "`{target}` as a list was refused with the wrong message:\n{}",
                d.render()
            ),
        }
    }
}

/// Probes receive checks as the coordinator validated them, encoded as JSON: every shipped
/// check must come back from that encoding exactly as it went (every field, by its `Debug`
/// form, which shows each pattern, duration and header), and encode to the same bytes again.
#[test]
fn every_example_check_survives_the_trip_to_a_probe() {
    let mut seen = 0;
    for (name, text) in examples() {
        let set = validate(&[Source {
            name: name.clone(),
            text,
            dir: None,
        }])
        .unwrap_or_else(|d| panic!("{name}: {}", d.render()));
        for check in &set.checks {
            let json = serde_json::to_string(check)
                .unwrap_or_else(|e| panic!("{name}: check `{}` does not encode: {e}", check.id));
            let back: Check = serde_json::from_str(&json).unwrap_or_else(|e| {
                panic!("{name}: check `{}` does not decode: {e}\n{json}", check.id)
            });
            assert_eq!(format!("{back:?}"), format!("{check:?}"), "{name}: {json}");
            assert_eq!(serde_json::to_string(&back).expect("encode"), json);
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} example checks");
}

/// A probe refuses a check it cannot fully read (a newer coordinator's field or kind), rather
/// than run it without the part it skipped.
#[test]
fn a_check_with_an_unknown_field_or_kind_is_refused() {
    let (name, text) = examples().remove(0);
    let set = validate(&[Source {
        name,
        text,
        dir: None,
    }])
    .expect("valid");
    let json = serde_json::to_value(&set.checks[0]).expect("encode");
    let mut extra = json.clone();
    extra[BOGUS] = true.into();
    let e = serde_json::from_value::<Check>(extra).expect_err("an unknown field");
    assert!(e.to_string().contains(BOGUS), "{e}");
    let mut spec = json.clone();
    let kind = spec["spec"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("the spec names its kind");
    let inner = spec["spec"][&kind].take();
    spec["spec"] = serde_json::json!({ "carrier_pigeon": inner });
    let e = serde_json::from_value::<Check>(spec).expect_err("an unknown kind");
    assert!(e.to_string().contains("carrier_pigeon"), "{e}");
    let mut field = json;
    field["spec"][&kind][BOGUS] = 1.into();
    let e = serde_json::from_value::<Check>(field).expect_err("an unknown field in the spec");
    assert!(e.to_string().contains(BOGUS), "{e}");
}

/// Every field with a value other than its default, so each serde form is exercised (the
/// shipped examples leave many at their defaults).
const EVERY_FIELD: &str = r#"
[defaults]
interval = "20s"
timeout = "3s"
window = "90s"
quorum = 2
failing = 2
regions = 1
region_quorum = 1
confirm = 2
for = "15s"
recover_for = "45s"
retry = "off"
failing_interval = "5s"
slow = "750ms"
flap_window = "2m"
lone_probe_pages = true

[[vendor]]
id = "v"
sla = { availability = "99.9%", latency_p95 = "400ms" }

[[profile]]
id = "every"
description = "every content-profile key"
expect = { status = 203, headers = { "x-profile" = "^p$" }, cache_control = { max_age = { min = "1h", max = "30d" }, s_maxage = { max = "1d" }, no_store = false, no_cache = false, private = false, public = true, immutable = true, must_revalidate = false }, age = { min = "0s", max = "1h" }, vary = ["accept-encoding"], expires = { min = "1h" }, etag = true, last_modified = false, http_version = ["1.1", "2"], tls_version = ["1.2", "1.3"], cache = ["hit", "expired"], cache_key = { query = "included" }, negative = { path = "/missing?x=1", status = [404, 410], cache_control = { max_age = { max = "5m" }, no_store = false }, cached = true } }

[[check]]
id = "dns"
vendor = "v"
kind = "dns"
role = "control"
description = "every DNS field"
probes = { regions = ["eu-west"], labels = { network = "eyeball" } }
suites = ["dns-negative", "dns-all", "dns-negative"]
on_demand = true
zone = "example.com"
query = { name = "www.example.com", type = "AAAA" }
servers = ["192.0.2.1", "[2001:db8::1]:5353"]
resolver = "192.0.2.53:53"
parent_servers = ["192.0.2.2"]
transport = "tcp"
nsid = false
consistent_soa = true
consistent_delegation = true
dnssec = { valid_for = "3d" }
expect = { rcode = "NXDOMAIN", authoritative = false, answers_match = "^2001:db8:" }

[[check]]
id = "dns-exact"
vendor = "v"
kind = "dns"
query = { name = "a.example.com" }
servers = ["192.0.2.1"]
suite = "dns-all"
retry = "250ms"
failing = "66%"
expect = { answers = ["192.0.2.10", "192.0.2.11"] }

[[check]]
id = "dns-contains"
vendor = "v"
kind = "dns"
zone = "example.com"
query = { name = "example.com", type = "MX" }
expect = { answers_contain = ["10 mx1.example.com"] }

[[check]]
id = "cdn"
vendor = "v"
kind = "cdn"
role = "telemetry"
url = "https://www.example.com/status.json?x=1"
edge = "192.0.2.80:8443"
method = "HEAD"
headers = { "user-agent" = "vantage-test", "x-extra" = "yes" }
cache_bust = true
assets = true
max_assets = 7
max_redirects = 2
max_body_bytes = 4096
profile = "every"
expect = { status = [200, 304], headers = { "x-cache" = "^HIT", "age" = "^[0-9]+$" }, body_contains = "ok", body_matches = "\"count\":\\d", json = { pointer = "/status", equals = "ok" }, fresh = { json_pointer = "/at", max_age = "5m" }, encoding = ["br", "identity"], vendor_header = { name = "x-served-by", matches = "^cache-" } }

[[check]]
id = "tls"
vendor = "v"
kind = "tls"
target = "www.example.com:8443"
server_name = "api.example.com"
expect = { valid_for = "21d" }

[[check]]
id = "tcp"
vendor = "v"
kind = "tcp"
target = "[2001:db8::7]:25"
"#;

#[test]
fn a_check_setting_every_field_survives_the_trip_to_a_probe() {
    let set = validate(&[Source {
        name: "every-field.toml".into(),
        text: EVERY_FIELD.into(),
        dir: None,
    }])
    .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(set.checks.len(), 6);
    for check in &set.checks {
        let json = serde_json::to_string(check).expect("encode");
        let back: Check = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("check `{}` does not decode: {e}\n{json}", check.id));
        assert_eq!(format!("{back:?}"), format!("{check:?}"), "{json}");
    }
    // Suites sorted and deduplicated; neither key on the wire of a check that sets neither.
    let dns = serde_json::to_value(&set.checks[0]).expect("encode");
    assert_eq!(
        dns["suites"],
        serde_json::json!(["dns-all", "dns-negative"])
    );
    assert_eq!(dns["on_demand"], true);
    let exact = serde_json::to_value(&set.checks[1]).expect("encode");
    assert_eq!(exact["suites"], serde_json::json!(["dns-all"]));
    assert!(exact.get("on_demand").is_none(), "{exact}");
    let tcp = serde_json::to_value(&set.checks[5]).expect("encode");
    assert!(
        tcp.get("suites").is_none() && tcp.get("on_demand").is_none(),
        "{tcp}"
    );
    // Readable on the wire, as an operator reading `GET /api/v1/probe/config` would want.
    let cdn = serde_json::to_value(&set.checks[3]).expect("encode");
    assert_eq!(cdn["settings"]["interval"], "20s");
    assert_eq!(cdn["settings"]["retry"], serde_json::Value::Null);
    assert_eq!(cdn["spec"]["http"]["headers"][0][0], "user-agent");
    assert_eq!(cdn["spec"]["http"]["body_matches"], "\"count\":\\d");
    // The check's own status over its profile's, the profile's cache policy under it.
    assert_eq!(cdn["spec"]["http"]["status"]["one_of"][1], 304);
    assert_eq!(cdn["spec"]["http"]["profile"], "every");
    let p = &cdn["spec"]["http"]["cdn_expect"];
    assert_eq!(p["cache_control"]["max_age"]["max"], "30days");
    assert_eq!(p["http_version"], serde_json::json!(["1.1", "2"]));
    assert_eq!(p["cache"], serde_json::json!(["hit", "expired"]));
    assert_eq!(p["cache_key"], "included");
    assert_eq!(p["negative"]["status"], serde_json::json!([404, 410]));
}
