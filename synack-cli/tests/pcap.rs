//! Captures read by Wireshark's tshark: every demo scenario's (`synack demo NAME --pcap
//! FILE`), and one of `synack serve --pcap FILE` talking to the kernel over TUN (in a
//! network namespace of its own, 198.18.0.0/15 only; needs root). Each must parse with no
//! malformed packet, no bad IP or TCP checksum and no expert-info error. Needs tshark
//! (`.ci/run` installs it); without it (or root, for TUN) the tests say so and skip,
//! except under CI=true, where they fail.

mod common;
use common::scenarios;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../synack/tests/support/netns.rs"]
mod netns;
use netns::*;

/// What tshark flags as broken: malformed packets, expert errors, bad checksums.
const BROKEN: &str = "_ws.malformed || _ws.expert.severity == \"Error\" || \
                      tcp.checksum.status == \"Bad\" || ip.checksum.status == \"Bad\"";

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = "tshark is not installed (apt-get install tshark): capture checks skipped";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("{why}");
    }
    found
}

/// Capture scenario `name` into a file of its own (`tag` keeps parallel tests apart).
fn capture(name: &str, tag: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("synack-{}-{tag}-{name}.pcap", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["demo", name, "--pcap"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "demo {name} failed");
    path
}

/// tshark's one-line summaries of the packets of `path` that match `filter`.
fn tshark(path: &Path, filter: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        // 8080 carries `serve`'s chargen bytes, not the HTTP tshark would parse there.
        .args(["-d", "tcp.port==8080,data"])
        .args(["-Y", filter])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_scenarios_capture_is_clean_in_tshark() {
    if !tshark_available() {
        return;
    }
    let names = scenarios();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let path = capture(name, "clean");
        let all = tshark(&path, "tcp");
        assert!(
            all.len() >= 2,
            "{name}: only {} TCP packets read",
            all.len()
        );
        let broken = tshark(&path, BROKEN);
        assert!(broken.is_empty(), "{name}: tshark flags {broken:#?}");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_corrupted_capture_is_caught_by_the_same_check() {
    if !tshark_available() {
        return;
    }
    let path = capture("handshake-and-close", "corrupt");
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte inside the first packet's TCP header (24-byte file header, 16-byte
    // record header, 20-byte IPv4 header): its checksum no longer matches.
    bytes[24 + 16 + 30] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let broken = tshark(&path, BROKEN);
    let _ = std::fs::remove_file(&path);
    assert_eq!(broken.len(), 1, "{broken:#?}");
    assert!(broken[0].contains("CHECKSUM INCORRECT"), "{}", broken[0]);
}

#[test]
fn a_tun_capture_of_serve_shows_both_sides_and_is_clean() {
    if !privileged("a_tun_capture_of_serve_shows_both_sides_and_is_clean") || !tshark_available() {
        return;
    }
    let mut ns = Netns::new();
    let path = ns.dir.join("serve.pcap");
    let pcap = path.display().to_string();
    spawn_serve(
        &mut ns,
        env!("CARGO_BIN_EXE_synack"),
        "chargen=10000",
        &["--pcap", &pcap],
    );
    let read_all = "import socket\n\
                    s = socket.create_connection(('198.18.0.2', 8080), timeout=10)\n\
                    n = 0\n\
                    while True:\n\
                    \x20   b = s.recv(65536)\n\
                    \x20   if not b: break\n\
                    \x20   n += len(b)\n\
                    print(n)\n";
    let out = ns.exec(&["python3", "-c", read_all]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10000");
    let syn_in = tshark(
        &path,
        "ip.src == 198.18.0.1 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
    );
    let syn_ack = tshark(
        &path,
        "ip.src == 198.18.0.2 && tcp.flags.syn == 1 && tcp.flags.ack == 1",
    );
    let fin_out = tshark(&path, "ip.src == 198.18.0.2 && tcp.flags.fin == 1");
    assert_eq!((syn_in.len(), syn_ack.len(), fin_out.len()), (1, 1, 1));
    let broken = tshark(&path, BROKEN);
    assert!(broken.is_empty(), "tshark flags {broken:#?}");
}
