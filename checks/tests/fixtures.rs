//! Every `fixtures/invalid-*.toml` must fail validation with exactly the messages in its
//! `.err` file (one `file:line:column: message` per line). Run with `BLESS=1` to rewrite the
//! `.err` files after a deliberate change of wording, then review the diff.

use std::path::{Path, PathBuf};

use vantage_checks::config::{Source, validate};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn invalid_fixtures_fail_with_their_exact_messages() {
    let files = fixtures();
    assert!(
        files.len() >= 15,
        "expected the invalid-*.toml fixtures, found {}",
        files.len()
    );
    let bless = std::env::var_os("BLESS").is_some();
    let mut mismatches = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        assert!(
            name.starts_with("invalid-"),
            "fixture {name} must be named invalid-*.toml"
        );
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let source = Source {
            name: name.clone(),
            text,
            dir: None,
        };
        let got = match validate(&[source]) {
            Ok(_) => format!("(no error: {name} validated)\n"),
            Err(d) => format!("{d}\n"),
        };
        let err_path = path.with_extension("err");
        if bless {
            std::fs::write(&err_path, &got).expect("write .err");
            continue;
        }
        let want = std::fs::read_to_string(&err_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing; run with BLESS=1 to create it",
                err_path.display()
            )
        });
        if got != want {
            mismatches.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
