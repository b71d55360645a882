//! The script corpus under `tests/drill/`: every script passes against synack, run with
//! `strict_unexpected` (a segment no line expects fails it); every script under
//! `tests/must-fail/` fails at the line and with the words its first comment names
//! (`// expect-failure: line N: words`).

use std::path::{Path, PathBuf};

use synack_drill::{run, DrillOptions};

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    v.sort();
    v
}

fn strict() -> DrillOptions {
    DrillOptions {
        strict_unexpected: true,
        ..DrillOptions::default()
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drill")
}

#[test]
fn every_script_in_the_corpus_passes() {
    let mut failed = Vec::new();
    let all = scripts(&corpus());
    assert!(all.len() >= 150, "the corpus has {} scripts", all.len());
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let out = run(&text, &strict());
        if let Some(f) = out.failure {
            failed.push(format!("{}:{}: {}", path.display(), f.line, f.message));
        }
    }
    println!(
        "{} passed, {} failed",
        all.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn scripts_that_must_fail_fail_where_and_how_they_say() {
    for path in scripts(&corpus().join("../must-fail")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("// expect-failure: line "))
            .unwrap_or_else(|| panic!("{} has no expect-failure comment", path.display()));
        let (line, words) = expect.split_once(": ").unwrap();
        let out = run(&text, &strict());
        let f = out
            .failure
            .unwrap_or_else(|| panic!("{} passed but must fail", path.display()));
        assert_eq!(
            f.line.to_string(),
            line,
            "{}: {}",
            path.display(),
            f.message
        );
        assert!(
            f.message.contains(words),
            "{}: {}",
            path.display(),
            f.message
        );
    }
}
