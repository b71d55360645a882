//! `synack relay` between real programs: clients (curl, python3, ab) in one namespace
//! whose captured prefixes route into the relay's TUN device, real servers (python3's
//! HTTP server, small python3 servers, microsocks for SOCKS5) in another, behind a veth
//! pair. Addresses from 198.18.0.0/15 and 2001:db8::/32 only; both namespaces are the
//! test's own. Needs root: skipped with a reason otherwise, failed under `CI=true`.
//!
//! client namespace: tun0 (synack 198.18.0.2, kernel 198.18.0.1), v1 198.18.1.1/24;
//!   routes: 198.19.0.0/16 and 2001:db8:1::/48 to tun0 (the relay adds them), and via
//!   v1 at metric 100 (what the relay's own sockets, bound to v1, use).
//! server namespace: v2 198.18.1.2/24; the servers on 198.19.0.2 and 2001:db8:1::2;
//!   198.19.9.0/24 and 2001:db8:1:9::/64 unreachable (ICMP answers).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../synack/tests/support/netns.rs"]
mod netns;
use netns::*;

const SYNACK: &str = env!("CARGO_BIN_EXE_synack");

/// The two namespaces and the veth pair between them.
struct Topology {
    client: Netns,
    server: Netns,
}

impl Topology {
    fn new() -> Topology {
        let client = Netns::new();
        let server = Netns::new();
        run(
            "ip",
            &[
                "link",
                "add",
                "v1",
                "netns",
                &client.name,
                "type",
                "veth",
                "peer",
                "name",
                "v2",
                "netns",
                &server.name,
            ],
        );
        for cmd in [
            "ip addr add 198.18.1.1/24 dev v1",
            "ip -6 addr add 2001:db8:2::1/64 dev v1 nodad",
            "ip link set v1 up",
            "ip route add 198.19.0.0/16 via 198.18.1.2 dev v1 metric 100",
            "ip -6 route add 2001:db8:1::/48 via 2001:db8:2::2 dev v1 metric 100",
        ] {
            client.exec(&cmd.split(' ').collect::<Vec<_>>());
        }
        for cmd in [
            "ip addr add 198.18.1.2/24 dev v2",
            "ip -6 addr add 2001:db8:2::2/64 dev v2 nodad",
            "ip addr add 198.19.0.2/32 dev lo",
            "ip -6 addr add 2001:db8:1::2/128 dev lo",
            "ip link set v2 up",
            "sysctl -qw net.ipv4.ip_forward=1",
            "sysctl -qw net.ipv6.conf.all.forwarding=1",
            "ip route add unreachable 198.19.9.0/24",
            "ip -6 route add unreachable 2001:db8:1:9::/64",
        ] {
            server.exec(&cmd.split(' ').collect::<Vec<_>>());
        }
        Topology { client, server }
    }

    /// Start `synack relay` on `tun` with `extra` flags; returns its pid once the
    /// device's addresses are up.
    fn relay(&mut self, tun: &str, extra: &[&str]) -> u32 {
        let mut argv = vec![
            SYNACK,
            "relay",
            "--tun",
            tun,
            "--addr",
            "198.18.0.2/24",
            "--kernel-addr",
            "198.18.0.1",
            "--addr",
            "2001:db8::2/64",
            "--kernel-addr",
            "2001:db8::1",
            "--capture",
            "198.19.0.0/16",
            "--capture",
            "2001:db8:1::/48",
        ];
        let control = self.client.dir.join(format!("{tun}.sock"));
        let control = control.to_str().unwrap().to_string();
        argv.extend(["--control", &control]);
        argv.extend_from_slice(extra);
        let pid = self.client.spawn(&argv, Stdio::null()).id();
        self.client.wait_for_addr(tun, "198.18.0.1");
        self.client.wait_for_addr(tun, "2001:db8::1");
        pid
    }

    /// A python3 script run as a server in the server namespace, on `port`.
    fn server(&mut self, port: u16, script: &str) {
        self.server.spawn(&["python3", "-c", script], Stdio::null());
        self.server.wait_listening(port);
    }

    /// A python3 script run as a client; its standard output.
    fn client_py(&self, script: &str) -> String {
        let out = self.client.exec(&["python3", "-c", script]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `synack ss` of the relay on `tun`, with `flags`.
    fn ss(&self, tun: &str, flags: &[&str]) -> String {
        let control = self.client.dir.join(format!("{tun}.sock"));
        let mut argv = vec![SYNACK, "ss", "--socket", control.to_str().unwrap()];
        argv.extend_from_slice(flags);
        String::from_utf8_lossy(&self.client.exec(&argv).stdout).to_string()
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
    // Its TUN device (and the routes to it) goes with it.
    std::thread::sleep(Duration::from_millis(200));
}

/// Wait until `done`, or fail saying `what`.
fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A static HTTP server (python3's, with a backlog of 1,024 and no request log) on
/// 198.19.0.2 and 2001:db8:1::2, port 8000, serving `www`.
fn http_servers(t: &mut Topology, www: &Path) {
    let script = format!(
        r#"
import functools, http.server, socket, threading
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
class V4(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
class V6(V4):
    address_family = socket.AF_INET6
handler = functools.partial(Quiet, directory='{}')
for cls, addr in ((V4, '198.19.0.2'), (V6, '2001:db8:1::2')):
    threading.Thread(target=cls((addr, 8000), handler).serve_forever, daemon=True).start()
threading.Event().wait()
"#,
        www.display()
    );
    t.server(8000, &script);
}

fn fetch_and_compare(t: &Topology, www: &Path, how: &str) {
    for url in [
        "http://198.19.0.2:8000/big.bin",
        "http://[2001:db8:1::2]:8000/big.bin",
    ] {
        let got = t.client.dir.join("got.bin");
        let out = got.to_str().unwrap();
        t.client
            .exec(&["curl", "-sS", "--fail", "--max-time", "120", "-o", out, url]);
        assert_eq!(sha256(&got), sha256(&www.join("big.bin")), "{how}: {url}");
        std::fs::remove_file(&got).unwrap();
    }
}

#[test]
fn curl_gets_20_mb_through_the_relay_byte_exact_directly_and_through_socks5() {
    if !privileged("curl_gets_20_mb_through_the_relay_byte_exact_directly_and_through_socks5") {
        return;
    }
    let mut t = Topology::new();
    let www = t.server.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    random_file(&www.join("big.bin"), 20_000_000);
    http_servers(&mut t, &www);
    let direct = t.relay("tun0", &["--direct", "--bind-interface", "v1"]);
    fetch_and_compare(&t, &www, "direct");
    let ss = t.ss("tun0", &["--metrics"]);
    assert!(ss.contains("synack_relay_relayed_total 2"), "{ss}");
    kill(direct);
    // SOCKS5 with a user and password (RFC 1929), the proxy outside the captured prefixes.
    t.server.spawn(
        &[
            "microsocks",
            "-i",
            "198.18.1.2",
            "-p",
            "1080",
            "-u",
            "alice",
            "-P",
            "secret",
        ],
        Stdio::null(),
    );
    t.server.wait_listening(1080);
    t.relay(
        "tun1",
        &[
            "--socks5",
            "198.18.1.2:1080",
            "--socks5-auth",
            "alice:secret",
        ],
    );
    fetch_and_compare(&t, &www, "socks5");
}

/// The servers of the close tests, on port 9000: the first byte a client sends says
/// what to do; outcomes the client cannot see are written to `out`.
const CLOSE_SERVER: &str = r#"
import socket, struct, sys, threading
OUT = sys.argv[1] if len(sys.argv) > 1 else '/dev/null'
def serve(c):
    mode = c.recv(1)
    if mode == b'A':      # the client half-closes first, then reads the answer
        while c.recv(65536):
            pass
        c.sendall(b'x' * 1000000)
        c.close()
    elif mode == b'B':    # the server half-closes first, then reads until the client's EOF
        c.sendall(b'hello')
        c.shutdown(socket.SHUT_WR)
        n = 0
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                n += len(d)
            res = str(n)
        except ConnectionResetError:
            res = 'reset'
        open(OUT + '.B', 'w').write(res)
        c.close()
    elif mode == b'R':    # the server aborts in the middle of an answer
        c.sendall(b'y' * 100000)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
    elif mode == b'C':    # the client aborts: does the server see a reset?
        try:
            while c.recv(65536):
                pass
            res = 'eof'
        except ConnectionResetError:
            res = 'reset'
        open(OUT + '.C', 'w').write(res)
        c.close()
for family, addr in ((socket.AF_INET, '198.19.0.2'), (socket.AF_INET6, '2001:db8:1::2')):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 9000))
    s.listen(64)
    def loop(s=s):
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
threading.Event().wait()
"#;

fn close_server(t: &mut Topology) -> std::path::PathBuf {
    let out = t.server.dir.join("outcome");
    let script = format!(
        "import sys; sys.argv = ['s', '{}']\n{CLOSE_SERVER}",
        out.display()
    );
    t.server(9000, &script);
    out
}

/// The outcome file `name` the close server writes, once it exists.
fn outcome(out: &Path, name: &str) -> String {
    let path = out.with_extension(name);
    let mut text = String::new();
    until(
        &format!("the server's outcome {name}"),
        Duration::from_secs(20),
        || {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            !text.is_empty()
        },
    );
    std::fs::remove_file(&path).unwrap();
    text
}

#[test]
fn half_closes_are_carried_both_ways_and_nothing_is_left_in_close_wait() {
    if !privileged("half_closes_are_carried_both_ways_and_nothing_is_left_in_close_wait") {
        return;
    }
    let mut t = Topology::new();
    let out = close_server(&mut t);
    t.relay("tun0", &["--direct", "--bind-interface", "v1"]);
    for (family, dst) in [("AF_INET", "'198.19.0.2'"), ("AF_INET6", "'2001:db8:1::2'")] {
        // HTTP/1.0 style: the request, then shutdown(SHUT_WR); the whole answer follows.
        let got = t.client_py(&format!(
            "import socket\ns = socket.socket(socket.{family})\ns.settimeout(20)\n\
             s.connect(({dst}, 9000))\ns.sendall(b'A' + b'q' * 5000)\n\
             s.shutdown(socket.SHUT_WR)\nn = 0\nwhile True:\n    d = s.recv(65536)\n    \
             if not d: break\n    n += len(d)\nprint(n)"
        ));
        assert_eq!(
            got, "1000000",
            "{family}: the answer after the client's half-close"
        );
        // The server closes its half first; the client still sends 1 MB after that.
        let got = t.client_py(&format!(
            "import socket\ns = socket.socket(socket.{family})\ns.settimeout(20)\n\
             s.connect(({dst}, 9000))\ns.sendall(b'B')\nhello = b''\nwhile True:\n    \
             d = s.recv(100)\n    if not d: break\n    hello += d\n\
             s.sendall(b'z' * 1000000)\ns.close()\nprint(hello.decode())"
        ));
        assert_eq!(got, "hello", "{family}: the server's data then its FIN");
        assert_eq!(
            outcome(&out, "B"),
            "1000000",
            "{family}: what the client sent after the server's half-close"
        );
    }
    // Nothing lingers: no relayed connection, no kernel socket in CLOSE_WAIT on either
    // side, synack's sockets at most in TIME_WAIT.
    until("the relay to let go", Duration::from_secs(10), || {
        t.ss("tun0", &["--relay", "--json"]).trim() == "[]"
    });
    for ns in [&t.client, &t.server] {
        assert!(!ns.ss().contains("CLOSE-WAIT"), "{}", ns.ss());
    }
    let sockets = t.ss("tun0", &["--json"]);
    assert!(
        !sockets.contains("CLOSE_WAIT") && !sockets.contains("ESTABLISHED"),
        "{sockets}"
    );
}

#[test]
fn resets_are_carried_both_ways() {
    if !privileged("resets_are_carried_both_ways") {
        return;
    }
    let mut t = Topology::new();
    let out = close_server(&mut t);
    let timeouts = ["--idle-timeout", "3", "--half-closed-timeout", "1"];
    t.relay(
        "tun0",
        &[&["--direct", "--bind-interface", "v1"][..], &timeouts].concat(),
    );
    // The server aborts mid-answer: the client sees a reset, not a clean end.
    let got = t.client_py(
        "import socket\ns = socket.create_connection(('198.19.0.2', 9000), timeout=20)\n\
         s.sendall(b'R')\ntry:\n    while s.recv(65536):\n        pass\n    print('eof')\n\
         except ConnectionResetError:\n    print('reset')",
    );
    assert_eq!(got, "reset", "the server's reset reaches the client");
    // The client aborts: the server sees a reset.
    t.client_py(
        "import socket, struct, time\ns = socket.create_connection(('198.19.0.2', 9000), timeout=20)\n\
         s.sendall(b'C' + b'c' * 10000)\ntime.sleep(0.3)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\ns.close()",
    );
    assert_eq!(
        outcome(&out, "C"),
        "reset",
        "the client's reset reaches the server"
    );
    // Idle for longer than --idle-timeout: both sides are reset.
    t.client_py(
        "import socket, time\ns = socket.create_connection(('198.19.0.2', 9000), timeout=20)\n\
         s.sendall(b'C')\ntime.sleep(4)",
    );
    assert_eq!(outcome(&out, "C"), "reset", "an idle connection is reset");
    // Half-closed (the server sent its FIN) and idle past --half-closed-timeout: reset.
    t.client_py(
        "import socket, time\ns = socket.create_connection(('198.19.0.2', 9000), timeout=20)\n\
         s.sendall(b'B')\nwhile s.recv(100):\n    pass\ntime.sleep(2)",
    );
    assert_eq!(
        outcome(&out, "B"),
        "reset",
        "a half-closed idle connection is reset"
    );
    let metrics = t.ss("tun0", &["--metrics"]);
    assert!(
        metrics.contains("synack_relay_resets_from_client_total 1")
            && metrics.contains("synack_relay_resets_from_upstream_total 1")
            && metrics.contains("synack_relay_timed_out_total 2"),
        "{metrics}"
    );
}

/// How a python3 client's connect ends: `ok`, or the errno's name, and in how long.
fn connect_outcome(t: &Topology, family: &str, dst: &str, port: u16) -> (String, Duration) {
    let start = Instant::now();
    let got = t.client_py(&format!(
        "import errno, socket\ns = socket.socket(socket.{family})\ns.settimeout(15)\ntry:\n    \
         s.connect(({dst}, {port}))\n    s.settimeout(3)\n    \
         print('reset' if s.recv(1) == b'' else 'ok')\nexcept socket.timeout:\n    print('timeout')\n\
         except OSError as e:\n    print(errno.errorcode.get(e.errno, str(e.errno)))"
    ));
    (got, start.elapsed())
}

#[test]
fn deciding_first_gives_the_client_the_destinations_own_answer() {
    if !privileged("deciding_first_gives_the_client_the_destinations_own_answer") {
        return;
    }
    let mut t = Topology::new();
    close_server(&mut t);
    let relay = t.relay(
        "tun0",
        &["--direct", "--bind-interface", "v1", "--decide-first"],
    );
    for (family, closed, unreachable) in [
        ("AF_INET", "'198.19.0.2'", "'198.19.9.9'"),
        ("AF_INET6", "'2001:db8:1::2'", "'2001:db8:1:9::9'"),
    ] {
        let (what, took) = connect_outcome(&t, family, closed, 9999);
        assert_eq!(what, "ECONNREFUSED", "{family}: a closed port");
        assert!(
            took < Duration::from_secs(3),
            "{family}: at once ({took:?})"
        );
        // The server's namespace answers ICMP host (network, for IPv6) unreachable.
        let (what, took) = connect_outcome(&t, family, unreachable, 9000);
        let expected = if family == "AF_INET" {
            "EHOSTUNREACH"
        } else {
            "ENETUNREACH"
        };
        assert_eq!(what, expected, "{family}: an unreachable destination");
        assert!(
            took < Duration::from_secs(3),
            "{family}: at once ({took:?})"
        );
    }
    // And an open port is relayed as usual (the server reads until EOF, then writes 1 MB).
    let got = t.client_py(
        "import socket\ns = socket.create_connection(('198.19.0.2', 9000), timeout=20)\n\
         s.sendall(b'A')\ns.shutdown(socket.SHUT_WR)\nn = 0\nwhile True:\n    d = s.recv(65536)\n    \
         if not d: break\n    n += len(d)\nprint(n)",
    );
    assert_eq!(got, "1000000");
    kill(relay);
    // Without deciding first the documented behaviour: the connection is accepted at
    // once, then reset when the dial fails.
    t.relay("tun1", &["--direct", "--bind-interface", "v1"]);
    let (what, _) = connect_outcome(&t, "AF_INET", "'198.19.0.2'", 9999);
    assert!(
        what == "reset" || what == "ECONNRESET",
        "accepted, then reset: {what}"
    );
}

#[test]
fn churn_of_20000_connections_through_the_relay_leaves_nothing_behind() {
    if !privileged("churn_of_20000_connections_through_the_relay_leaves_nothing_behind") {
        return;
    }
    let mut t = Topology::new();
    let www = t.server.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello through the relay\n").unwrap();
    http_servers(&mut t, &www);
    let relay = t.relay("tun0", &["--direct", "--bind-interface", "v1"]);
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{relay}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    // A warm-up round, so that the baseline includes what the first connections grow.
    t.client.exec(&[
        "ab",
        "-q",
        "-n",
        "500",
        "-c",
        "200",
        "-s",
        "20",
        "http://198.19.0.2:8000/index.html",
    ]);
    let before = rss();
    // Two rounds of 10,000: what the first leaves, the second must not add to again.
    let mut after_round = Vec::new();
    for _ in 0..2 {
        let out = t.client.exec(&[
            "ab",
            "-q",
            "-n",
            "10000",
            "-c",
            "200",
            "-s",
            "20",
            "http://198.19.0.2:8000/index.html",
        ]);
        let report = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |name: &str| {
            report
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        assert_eq!(field("Complete requests:"), "10000", "{report}");
        assert_eq!(field("Failed requests:"), "0", "{report}");
        until("the relay to let go", Duration::from_secs(20), || {
            t.ss("tun0", &["--relay", "--json"]).trim() == "[]"
        });
        after_round.push(rss());
    }
    until("the relay to let go", Duration::from_secs(20), || {
        t.ss("tun0", &["--relay", "--json"]).trim() == "[]"
    });
    for ns in [&t.client, &t.server] {
        let ss = ns.ss();
        assert!(!ss.contains("CLOSE-WAIT"), "{ss}");
    }
    let summary = t.ss("tun0", &["--summary"]);
    for line in summary.lines().skip(1) {
        assert!(
            line.starts_with("TIME-WAIT") || line.starts_with("LISTEN"),
            "only TIME_WAIT (and the listener) remain: {summary}"
        );
    }
    let (first, second) = (after_round[0], after_round[1]);
    eprintln!(
        "relay RSS: {before} kB after warm-up, {first} kB after 10,000 connections, {second} kB after 20,000"
    );
    assert!(
        second <= before + 16 * 1024 && second <= first + 4 * 1024,
        "the relay's memory goes back near its start and does not grow with churn: \
         {before} kB, then {first} kB, then {second} kB"
    );
}

/// `dig +short @server relay.test` in `ns`.
fn dig(ns: &Netns, server: &str) -> String {
    let out = ns
        .cmd(&[
            "dig",
            "+time=3",
            "+tries=2",
            "+short",
            &format!("@{server}"),
            "relay.test",
        ])
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn dns_and_udp_go_through_the_relay_directly_and_through_socks5() {
    if !privileged("dns_and_udp_go_through_the_relay_directly_and_through_socks5") {
        return;
    }
    let mut t = Topology::new();
    t.server
        .exec(&["ip", "addr", "add", "198.19.0.3/32", "dev", "lo"]);
    t.server.spawn(
        &[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=198.19.0.2",
            "--bind-interfaces",
            "--port",
            "53",
            "--address=/relay.test/198.18.7.7",
        ],
        Stdio::null(),
    );
    // UDP echo servers on two addresses, answering with the source they saw.
    t.server.spawn(
        &[
            "python3",
            "-c",
            "import socket, threading\n\
             def echo(addr):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    \
             s.bind((addr, 7))\n    while True:\n        d, src = s.recvfrom(2048)\n        \
             s.sendto(('%s:%d' % src).encode(), src)\n\
             for a in ('198.19.0.2', '198.19.0.3'):\n    threading.Thread(target=echo, args=(a,)).start()",
        ],
        Stdio::null(),
    );
    let direct = t.relay("tun0", &["--direct", "--bind-interface", "v1"]);
    until(
        "dnsmasq to answer through the relay",
        Duration::from_secs(10),
        || dig(&t.client, "198.19.0.2") == "198.18.7.7",
    );
    // One client socket to two destinations: one mapping, the same source seen by both
    // (endpoint-independent), and each answer from the address it was sent to.
    let got = t.client_py(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\n\
         seen = {}\nfor dst in ('198.19.0.2', '198.19.0.3'):\n    s.sendto(b'hi', (dst, 7))\n    \
         d, src = s.recvfrom(2048)\n    seen[src[0]] = d.decode()\n\
         print(len(set(seen.values())), sorted(seen))",
    );
    assert_eq!(got, "1 ['198.19.0.2', '198.19.0.3']");
    let metrics = t.ss("tun0", &["--metrics"]);
    assert!(
        metrics.contains("synack_relay_udp_datagrams_down_total 3"),
        "{metrics}"
    );
    kill(direct);
    // With --dns, a query to an address with no server is answered by that server, from
    // the address asked.
    let redirecting = t.relay(
        "tun1",
        &[
            "--direct",
            "--bind-interface",
            "v1",
            "--dns",
            "198.19.0.2:53",
        ],
    );
    until("the redirected answer", Duration::from_secs(10), || {
        dig(&t.client, "198.19.77.77") == "198.18.7.7"
    });
    let metrics = t.ss("tun1", &["--metrics"]);
    assert!(
        !metrics.contains("synack_relay_dns_redirected_total 0"),
        "{metrics}"
    );
    kill(redirecting);
    // Through a SOCKS5 proxy that relays UDP (dante, RFC 1928 UDP ASSOCIATE).
    let conf = t.server.dir.join("danted.conf");
    std::fs::write(
        &conf,
        "logoutput: stderr\ninternal: 198.18.1.2 port = 1080\nexternal: 198.18.1.2\n\
         clientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n\
         socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect udpassociate udpreply }\n",
    )
    .unwrap();
    t.server
        .spawn(&["danted", "-f", conf.to_str().unwrap()], Stdio::null());
    t.server.wait_listening(1080);
    t.relay("tun2", &["--socks5", "198.18.1.2:1080"]);
    until(
        "an answer through the SOCKS5 proxy",
        Duration::from_secs(10),
        || dig(&t.client, "198.19.0.2") == "198.18.7.7",
    );
    assert!(metric(&t, "tun2", "synack_relay_udp_datagrams_down_total") >= 1);
}

/// One counter from `synack ss --metrics` of the relay on `tun` (0 when absent).
fn metric(t: &Topology, tun: &str, name: &str) -> u64 {
    t.ss(tun, &["--metrics"])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_datagram_iperf3_loses_through_the_relay_is_counted_somewhere() {
    if !privileged("every_datagram_iperf3_loses_through_the_relay_is_counted_somewhere") {
        return;
    }
    let mut t = Topology::new();
    t.server
        .spawn(&["iperf3", "-s", "-B", "198.19.0.2", "-1"], Stdio::null());
    t.server.wait_listening(5201);
    t.relay("tun0", &["--direct", "--bind-interface", "v1"]);
    let tun_dropped = || {
        let out = t.client.exec(&["ip", "-s", "-j", "link", "show", "tun0"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["stats64"]["tx"]["dropped"].as_u64().unwrap()
    };
    let rcvbuf_errors = || nstat(&t.server, "UdpRcvbufErrors");
    let (tun0, rcv0) = (tun_dropped(), rcvbuf_errors());
    // A rate high enough that something may be lost on the way (the test builds are
    // not optimised); each layer counts what it drops.
    let out = t.client.exec(&[
        "iperf3",
        "-c",
        "198.19.0.2",
        "-u",
        "-b",
        "400M",
        "-l",
        "1400",
        "-t",
        "2",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum = &report["end"]["sum"];
    let (sent, lost) = (
        sum["packets"].as_u64().unwrap(),
        sum["lost_packets"].as_u64().unwrap(),
    );
    let received = sent - lost;
    // What reached synack, what its socket queue could not hold, what the relay sent on
    // (the client's first datagram, iperf3's hello, is counted by synack and the relay
    // but not by iperf3).
    let into_synack = metric(&t, "tun0", "synack_udp_datagrams_in_total") - 1;
    let queue_full = metric(&t, "tun0", "synack_drops_total{reason=\"udp_queue_full\"}");
    let relayed = metric(&t, "tun0", "synack_relay_udp_datagrams_up_total") - 1;
    let relay_dropped = metric(
        &t,
        "tun0",
        "synack_relay_udp_dropped_total{reason=\"send_failed\"}",
    );
    let tun = tun_dropped() - tun0;
    let rcvbuf = rcvbuf_errors() - rcv0;
    eprintln!(
        "iperf3 sent {sent}, received {received}; tun queue dropped {tun}, synack took {into_synack} \
         (queue full {queue_full}), relay sent on {relayed} (failed {relay_dropped}), server socket dropped {rcvbuf}"
    );
    assert_eq!(
        sent,
        tun + into_synack,
        "the device: every datagram taken or counted"
    );
    assert_eq!(
        into_synack,
        queue_full + relayed + relay_dropped,
        "synack and the relay"
    );
    // The server's side: what the relay sent either reached iperf3's socket or
    // overflowed it. iperf3's own figure is not exact either way: datagrams still in
    // flight when it stopped counting make it smaller, and it counts as lost only the
    // gaps below the highest sequence number it saw, so datagrams dropped after the last
    // one it read (a full socket at the end of the run) make it larger. Hence a
    // two-sided slack of 1% of what was sent.
    let arrived = relayed - rcvbuf;
    assert!(
        arrived.abs_diff(received) <= sent / 100,
        "the server: {arrived} arrived by the counters, iperf3 got {received}"
    );
}
