//! The terminal ladder of `synack demo handshake-and-close` (seed 1, piped, so no
//! colours) against a golden copy: any change to what the stack sends, when, or how
//! the ladder draws it shows up here. After an intended change, regenerate it with
//! `cargo run --release -- demo handshake-and-close > synack-cli/tests/golden/handshake-and-close.txt`.

use std::process::Command;

#[test]
fn the_handshake_and_close_ladder_matches_its_golden_copy() {
    let out = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["demo", "handshake-and-close"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    let want = include_str!("golden/handshake-and-close.txt");
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "the ladder differs from the golden copy from line {}:\n  got:  {:?}\n  want: {:?}\n\
             (regenerate it if the change is intended: see this file's first lines)",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}
