//! Every example that ships (`deploy/**/*.toml` check files and the README's TOML blocks)
//! must validate, and must be rejected once any one of its tables gains an unknown key.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, Value};
use vantage_checks::config::{Source, validate};

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
