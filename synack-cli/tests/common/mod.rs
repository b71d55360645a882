//! Helpers shared by the CLI's integration tests.

use std::process::Command;

/// The demo scenarios, as `synack demo --list` names them.
pub fn scenarios() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["demo", "--list"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}
