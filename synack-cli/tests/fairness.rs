//! Sharing a bottleneck with Linux: a synack CUBIC flow and a Linux CUBIC flow upload to
//! one server through a 100 Mbit/s `tbf` bottleneck and should split it evenly.
//!
//! Topology, each part a network namespace the test creates (198.18.0.0/15 only):
//!
//! ```text
//! client ns   c0 198.18.2.2 ──veth── r0 198.18.2.1  router ns  r1 198.18.3.1 ──veth── s0 198.18.3.2  server ns
//! (kernel socket, CUBIC)             tun0 198.18.1.1 ── synack 198.18.1.2     (tbf 100mbit on r1)   (sink)
//! client2 ns  c1 198.18.4.2 ──veth── r2 198.18.4.1   (a second kernel flow, for the Linux/Linux baseline)
//! ```
//!
//! `synack connect` runs in the router namespace on a TUN device whose packets the router
//! forwards; the kernel flow comes from the client namespace. Both are forwarded by the
//! router into the same `tbf` queue (a flow sent from the router itself would be held
//! back by TCP small queues, which forwarded flows escape). Each run lasts 20 s and
//! counts what arrives from 5 s on; runs alternate which flow starts first. The test runs
//! behind a shallow queue (20 ms) and a deep one (100 ms) and prints each run, the
//! averages and Jain's index, beside two Linux flows in the same topology. Needs root
//! (skipped with a reason otherwise, failed under `CI=true`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

#[path = "../../synack/tests/support/netns.rs"]
mod netns;
use netns::*;

const SYNACK: &str = env!("CARGO_BIN_EXE_synack");
const DURATION: f64 = 20.0;
const SKIP: f64 = 5.0;
const RUNS: usize = 4;

/// The server: accepts two connections on port 5001 and prints, as JSON, each peer's
/// goodput in bit/s over [SKIP, DURATION] seconds after the first connection.
const SINK: &str = r#"
import json, socket, sys, threading, time
dur, skip = float(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("198.18.3.2", 5001))
srv.listen(8)
counts, start = {}, [None]
def rx(c, peer):
    buf = bytearray(1 << 18)
    while True:
        n = c.recv_into(buf)
        if n == 0:
            return
        if skip <= time.monotonic() - start[0] <= dur:
            counts[peer] = counts.get(peer, 0) + n
print("ready", flush=True)
for _ in range(2):
    c, a = srv.accept()
    if start[0] is None:
        start[0] = time.monotonic()
    threading.Thread(target=rx, args=(c, a[0]), daemon=True).start()
time.sleep(dur + 0.3)
print(json.dumps({k: v * 8 / (dur - skip) for k, v in counts.items()}), flush=True)
"#;

/// A kernel sender with CUBIC (whatever the namespace's default), for `secs` seconds.
const SOURCE: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
s.connect(("198.18.3.2", 5001))
end, block = time.monotonic() + float(sys.argv[1]), b"\0" * 65536
try:
    while time.monotonic() < end:
        s.sendall(block)
except OSError:
    pass
"#;

/// The three namespaces, wired.
struct Topology {
    client: Netns,
    client2: Netns,
    router: Netns,
    server: Netns,
}

impl Topology {
    /// The wiring, with a `tbf` queue that holds `queue_ms` of the bottleneck's rate.
    fn new(queue_ms: u32) -> Topology {
        let (client, client2) = (Netns::new(), Netns::new());
        let (router, server) = (Netns::new(), Netns::new());
        let veth = |a: &str, an: &Netns, b: &str, bn: &Netns| {
            run(
                "ip",
                &[
                    "link", "add", a, "netns", &an.name, "type", "veth", "peer", "name", b,
                    "netns", &bn.name,
                ],
            )
        };
        veth("c0", &client, "r0", &router);
        veth("c1", &client2, "r2", &router);
        veth("r1", &router, "s0", &server);
        for (ns, dev, addr) in [
            (&client, "c0", "198.18.2.2/24"),
            (&client2, "c1", "198.18.4.2/24"),
            (&router, "r2", "198.18.4.1/24"),
            (&router, "r0", "198.18.2.1/24"),
            (&router, "r1", "198.18.3.1/24"),
            (&server, "s0", "198.18.3.2/24"),
        ] {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev]);
            ns.exec(&["ip", "link", "set", dev, "up"]);
        }
        client.exec(&["ip", "route", "add", "default", "via", "198.18.2.1"]);
        client2.exec(&["ip", "route", "add", "default", "via", "198.18.4.1"]);
        server.exec(&["ip", "route", "add", "default", "via", "198.18.3.1"]);
        router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        router.exec(&[
            "tc",
            "qdisc",
            "add",
            "dev",
            "r1",
            "root",
            "tbf",
            "rate",
            "100mbit",
            "burst",
            "32kb",
            "latency",
            &format!("{queue_ms}ms"),
        ]);
        Topology {
            client,
            client2,
            router,
            server,
        }
    }
}

/// Which flows share the bottleneck.
#[derive(Clone, Copy, PartialEq)]
enum Pair {
    /// synack from the router's TUN device, Linux from the client namespace.
    SynackAndLinux { synack_first: bool },
    /// Two Linux flows, from the two client namespaces.
    LinuxAndLinux,
}

/// One run: (goodput of synack, or of the second Linux flow; goodput of the first Linux
/// flow), bit/s.
fn one_run(pair: Pair, queue_ms: u32) -> (f64, f64) {
    let mut t = Topology::new(queue_ms);
    let secs = format!("{DURATION}");
    let sink_py = t.server.dir.join("sink.py");
    let source_py = t.server.dir.join("source.py");
    std::fs::write(&sink_py, SINK).unwrap();
    std::fs::write(&source_py, SOURCE).unwrap();
    let sink = t.server.spawn(
        &[
            "python3",
            sink_py.to_str().unwrap(),
            &secs,
            &format!("{SKIP}"),
        ],
        Stdio::null(),
    );
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let run_for = format!("{}", DURATION + 1.0);
    let linux = |ns: &mut Netns| {
        ns.spawn(
            &["python3", source_py.to_str().unwrap(), &run_for],
            Stdio::null(),
        );
    };
    let synack = |ns: &mut Netns| {
        ns.spawn(
            &[
                SYNACK,
                "connect",
                "--tun",
                "tun0",
                "--addr",
                "198.18.1.2/24",
                "--kernel-addr",
                "198.18.1.1",
                "--no-control",
                "--send-buffer",
                "4194304",
                "198.18.3.2:5001",
            ],
            Stdio::from(File::open("/dev/zero").unwrap()),
        );
    };
    match pair {
        Pair::SynackAndLinux { synack_first: true } => {
            synack(&mut t.router);
            std::thread::sleep(Duration::from_millis(300));
            linux(&mut t.client);
        }
        Pair::SynackAndLinux {
            synack_first: false,
        } => {
            linux(&mut t.client);
            std::thread::sleep(Duration::from_millis(300));
            synack(&mut t.router);
        }
        Pair::LinuxAndLinux => {
            linux(&mut t.client2);
            std::thread::sleep(Duration::from_millis(300));
            linux(&mut t.client);
        }
    }
    let result = lines
        .next()
        .expect("the sink reports")
        .expect("the sink reports");
    let v: serde_json::Value = serde_json::from_str(&result).unwrap();
    let rate = |peer: &str| v[peer].as_f64().unwrap_or(0.0);
    let other = if pair == Pair::LinuxAndLinux {
        "198.18.4.2"
    } else {
        "198.18.1.2"
    };
    (rate(other), rate("198.18.2.2"))
}

/// Jain's fairness index of two rates.
fn jain(a: f64, b: f64) -> f64 {
    (a + b).powi(2) / (2.0 * (a * a + b * b))
}

/// Average goodputs of `runs` runs of `pair` (alternating which flow starts first), printing
/// each run.
fn average(
    runs: usize,
    queue_ms: u32,
    pair: impl Fn(bool) -> Pair,
    names: (&str, &str),
) -> (f64, f64) {
    let mbit = |r: f64| r / 1e6;
    let (mut a_total, mut b_total) = (0.0, 0.0);
    for i in 0..runs {
        let first = i % 2 == 0;
        let (a, b) = one_run(pair(first), queue_ms);
        println!(
            "  run {i} ({} first): {} {:.1} Mbit/s, {} {:.1} Mbit/s, Jain {:.3}",
            if first { names.0 } else { names.1 },
            names.0,
            mbit(a),
            names.1,
            mbit(b),
            jain(a, b)
        );
        assert!(a > 0.0 && b > 0.0, "both flows moved data");
        a_total += a;
        b_total += b;
    }
    (a_total / runs as f64, b_total / runs as f64)
}

/// One queue depth: synack against Linux over [`RUNS`] runs, two Linux flows over two;
/// prints the figures and returns Jain's index of synack against Linux.
fn share(queue_ms: u32) -> f64 {
    let mbit = |r: f64| r / 1e6;
    println!("queue of {queue_ms} ms:");
    let (s, l) = average(
        RUNS,
        queue_ms,
        |synack_first| Pair::SynackAndLinux { synack_first },
        ("synack", "Linux"),
    );
    // The same measurement for two Linux flows: what the topology itself allows.
    let (a, b) = average(2, queue_ms, |_| Pair::LinuxAndLinux, ("Linux 2", "Linux 1"));
    println!(
        "figure: 100 Mbit/s tbf bottleneck, queue {queue_ms} ms, runs of {DURATION} s alternating who starts: synack CUBIC {:.1} and Linux CUBIC {:.1} Mbit/s on average over {RUNS} runs, Jain {:.3}; two Linux flows {:.1} and {:.1} Mbit/s over 2 runs, Jain {:.3}",
        mbit(s),
        mbit(l),
        jain(s, l),
        mbit(a),
        mbit(b),
        jain(a, b)
    );
    assert!(
        s + l > 80e6,
        "the two flows together fill the 100 Mbit/s bottleneck"
    );
    jain(s, l)
}

#[test]
fn synack_cubic_and_linux_cubic_share_a_tbf_bottleneck_fairly() {
    if !privileged("synack_cubic_and_linux_cubic_share_a_tbf_bottleneck_fairly") {
        return;
    }
    // A shallow queue (20 ms, 250 kB) punishes bursts: synack sending all that a batch of
    // ACKs opened at once got 27 Mbit/s against Linux's 68 here (Jain 0.86) before the
    // TUN driver answered each ACK on its own.
    let shallow = share(20);
    // A deep one (100 ms, 1.25 MB) is slow to converge in twenty seconds: one Linux flow
    // against another measured 0.83-0.99 per run here, 0.93-0.99 over two runs.
    let deep = share(100);
    // The target is 0.97 and the figures are printed above (docs/conformance.md has the
    // measurements). The assertions keep a margin over the noise of a busy machine: they
    // fail for a stack that bursts past a shallow queue or starves a deep one (synack
    // before this test: 0.72, 19 against 76 Mbit/s).
    assert!(
        shallow >= 0.9,
        "unfair share behind a 20 ms queue: Jain {shallow:.3}"
    );
    assert!(
        deep >= 0.75,
        "unfair share behind a 100 ms queue: Jain {deep:.3}"
    );
}
