//! The tokio API against the kernel: the `hyper_server` example (hyper on
//! `synack::tokio::TcpStream`) serves curl on the kernel side of a TUN interface, inside
//! a network namespace the test creates. Needs root; skipped otherwise (failed under CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::path::PathBuf;
use std::process::Stdio;

use netns::*;

/// The example binary, next to this test's own binary. `cargo test` builds examples;
/// building it here as well keeps it current when only this test was selected.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--manifest-path", manifest])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build --example {name}");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[test]
fn curl_talks_to_hyper_running_on_synack_tokio_streams() {
    if !privileged("curl_talks_to_hyper_running_on_synack_tokio_streams") {
        return;
    }
    let mut ns = Netns::new();
    let server = example("hyper_server");
    ns.spawn(
        &[
            server.to_str().unwrap(),
            "tun0",
            "198.18.0.2/15",
            "198.18.0.1",
            "8080",
        ],
        Stdio::null(),
    );
    ns.wait_for_addr("tun0", "198.18.0.1");
    let hello = ns.exec(&[
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "20",
        "http://198.18.0.2:8080/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "Hello from hyper over synack\n"
    );
    // Four 2 MB bodies at once, each on its own connection, plus keep-alive reuse.
    let expected: Vec<u8> = (0..2_000_000).map(|i| b'a' + (i % 26) as u8).collect();
    let mut argv = vec!["curl", "-sS", "--fail", "--max-time", "60", "-Z"];
    let outs: Vec<String> = (0..4)
        .map(|i| ns.dir.join(format!("body{i}")).display().to_string())
        .collect();
    for out in &outs {
        argv.extend(["-o", out, "http://198.18.0.2:8080/bytes/2000000"]);
    }
    ns.exec(&argv);
    for out in &outs {
        assert!(std::fs::read(out).unwrap() == expected, "{out} differs");
    }
    let reuse = ns.exec(&[
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\\n",
        "http://198.18.0.2:8080/nope",
        "http://198.18.0.2:8080/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&reuse.stdout),
        "404 1\n200 0\n",
        "status codes, and the second request reuses the connection"
    );
}
