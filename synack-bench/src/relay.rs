//! `relay`: what `synack relay` (synack-cli's tun2socks-style command: a TUN device the
//! captured prefixes are routed to, every TCP connection to them terminated in synack and
//! carried to its real destination over kernel sockets) costs beside the path it sits
//! on, measured on the release binary `synack` found beside this one.
//!
//! Two namespaces the benchmark makes (see [`crate::netns`]) joined by a veth pair: the
//! first holds the clients and the relay (`veth-a`, 198.18.1.1/24), the second the real
//! servers (`veth-b`, 198.18.1.2/24, and 198.19.0.2/32 on its loopback). The first routes
//! 198.19.0.0/16 via 198.18.1.2 at metric 100: that is the direct path. While the relay
//! runs (`synack relay --tun tun0 --addr 198.18.0.2/24 --kernel-addr 198.18.0.1 --capture
//! 198.19.0.0/16 --direct --bind-interface veth-a --no-control`, default queues: one per
//! core) its own route to tun0 (metric 0) wins, and its kernel sockets leave by veth-a;
//! when it is stopped (SIGTERM) the device and its route go and traffic takes veth again.
//! Before each measurement `ip route get 198.19.0.2` must name the path measured.
//!
//! - `relay` (Gbit/s; system `linux` for the direct path, `synack` through the relay) and
//!   `relay_ratio` (relay / direct): `iperf3 -c 198.19.0.2 -t S -P 1|8 [-R] --json` from
//!   the first namespace to `iperf3 -s` in the second, `client_to_server` (iperf3's
//!   default) and `server_to_client` (`-R`); the receiver's figure
//!   (`end.sum_received`). Each of the four points runs the direct path and then the
//!   relay (started for that run, stopped after it) back to back, so the ratio holds on
//!   a noisy machine. S is 5 s (`--quick`: 2 s).
//! - `relay_rss` (MB, 10^6 bytes) and `relay_bytes_per_conn`: a fresh relay carries
//!   10,000 idle connections (`--quick`: 1,000) from a child in the first namespace
//!   (`--netns-role relay-idle:N:PID:PORT`, 16 threads dialling) to a child in the
//!   second that accepts each, sends it one byte and holds it (`relay-hold:PORT:N`). A
//!   connection counts once the client has read that byte through the relay; when all N
//!   have, and 2 s later, the relay's VmRSS is read from /proc. `relay_bytes_per_conn`
//!   is (that RSS - the RSS before the first connection) / N. The kernel's memory for
//!   the relay's N sockets (and for tun0's queues) is not in its RSS. Details: the RSS
//!   before, the peak (VmHWM), the relay's open descriptors, the seconds to establish N
//!   and how many were still open after the reading.
//!
//! Needs root (skipped otherwise), `iperf3` for the throughput part, and the `synack`
//! binary beside `synack-bench` (`cargo build --release -p synack-cli -p synack-bench`);
//! each is skipped with the reason when missing. Every wait is bounded: a relay not ready
//! in 10 s, an iperf3 run not over 30 s after its time, the idle connections not open in
//! 40 s (and the child's watchdog, 60 s) fail that point, which is reported as skipped.
//! Whatever the relay prints besides its start line is echoed to stderr.

use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::linux::field;
use crate::netns::{self, Background, Netns};
use crate::report::{Measurement, Report};
use crate::{Selection, Sizes};

/// The clients' end of the veth pair (first namespace).
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The servers' end of the veth pair (second namespace), the direct path's gateway.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const VETH_PREFIX: u8 = 24;
/// synack's side of tun0 and the kernel's.
const TUN_ADDR: &str = "198.18.0.2/24";
const TUN_KERNEL: &str = "198.18.0.1";
/// The real servers' address, on the second namespace's loopback.
const DESTINATION: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const CAPTURE: &str = "198.19.0.0/16";
const IPERF_PORT: u16 = 5201;
const HOLD_PORT: u16 = 7000;
/// iperf3's parallel streams (`-P`).
pub const STREAMS: [u32; 2] = [1, 8];
/// Direction names and whether iperf3 runs reversed (`-R`: the server sends).
pub const DIRECTIONS: [(&str, bool); 2] = [("client_to_server", false), ("server_to_client", true)];
/// Longest wait for a server to listen, the relay to be ready or to be gone.
const READY: Duration = Duration::from_secs(10);
/// Threads opening the idle connections.
const DIALERS: usize = 16;
/// All idle connections must be open within this (the child's watchdog is 60 s).
const ESTABLISH: Duration = Duration::from_secs(40);
/// Dialling stops after this many failures.
const MAX_FAILURES: usize = 100;
/// Wait between the last connection and the reading of the RSS.
const SETTLE: Duration = Duration::from_secs(2);
/// One connection's connect or greeting, at most.
const STALL: Duration = Duration::from_secs(10);

/// Run the relay benchmarks.
pub fn run(sizes: &Sizes, report: &mut Report, systems: &Selection) {
    let (relay, direct) = (systems.has("synack"), systems.has("linux"));
    let wanted: Vec<&'static str> = [(relay, "synack"), (direct, "linux")]
        .into_iter()
        .filter_map(|(w, s)| w.then_some(s))
        .collect();
    let skip_all = |report: &mut Report, why: &str| {
        for &system in &wanted {
            report.skip("relay", system, why);
        }
    };
    if wanted.is_empty() {
        return;
    }
    if let Err(why) = netns::available() {
        return skip_all(report, &why);
    }
    let synack = match synack_binary() {
        Ok(p) => p,
        Err(why) => return skip_all(report, &why),
    };
    // The relay and the holding server need a descriptor per idle connection; every
    // child inherits this process's limit.
    let fds = netns::raise_fd_limit(sizes.relay_idle as u64 + 1024);
    let (a, b) = match topology() {
        Ok(pair) => pair,
        Err(why) => return skip_all(report, &format!("cannot make the namespaces: {why}")),
    };
    if iperf3_present() {
        if let Err(why) = throughput(sizes, report, (&a, &b), &synack, relay, direct) {
            skip_all(report, &format!("throughput: {why}"));
        }
    } else {
        skip_all(
            report,
            "throughput: iperf3 is not installed (apt-get install iperf3)",
        );
    }
    if relay {
        let r = fds.and_then(|()| memory(sizes.relay_idle, report, (&a, &b), &synack));
        if let Err(why) = r {
            report.skip("relay", "synack", format!("memory: {why}"));
        }
    }
}

/// `synack` beside this binary, if it has the `relay` command.
fn synack_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("synack")))
        .ok_or("cannot find the directory of synack-bench")?;
    if !exe.exists() {
        return Err(format!(
            "{} is absent (build it: cargo build --release -p synack-cli -p synack-bench)",
            exe.display()
        ));
    }
    let help = Command::new(&exe).args(["relay", "--help"]).output();
    if !help.is_ok_and(|o| o.status.success()) {
        return Err(format!("{} has no relay command", exe.display()));
    }
    Ok(exe)
}

fn iperf3_present() -> bool {
    Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The two namespaces: clients (and the relay) in the first, servers in the second.
fn topology() -> Result<(Netns, Netns), String> {
    let (a, b) = netns::veth_pair(CLIENT, GATEWAY, VETH_PREFIX)?;
    b.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{DESTINATION}/32"),
        "dev",
        "lo",
    ])?;
    a.exec(&[
        "ip",
        "route",
        "add",
        CAPTURE,
        "via",
        &GATEWAY.to_string(),
        "dev",
        "veth-a",
        "metric",
        "100",
    ])?;
    Ok((a, b))
}

/// The four iperf3 points, each on the direct path then through the relay.
fn throughput(
    sizes: &Sizes,
    report: &mut Report,
    (a, b): (&Netns, &Netns),
    synack: &Path,
    relay: bool,
    direct: bool,
) -> Result<(), String> {
    let dest = DESTINATION.to_string();
    let port = IPERF_PORT.to_string();
    let mut server = b.spawn(&["iperf3", "-s", "-B", &dest, "-p", &port])?;
    wait_listening(b, IPERF_PORT, &mut server)?;
    for streams in STREAMS {
        for (direction, reverse) in DIRECTIONS {
            let point = format!("{direction}, -P {streams}");
            let row = |system, gbit| {
                Measurement::new("relay", system, gbit, "Gbit/s")
                    .direction(direction)
                    .concurrency(streams)
            };
            let mut direct_gbit = None;
            if direct {
                let r = expect_path(a, "veth-a")
                    .and_then(|()| iperf(a, streams, reverse, sizes.relay_seconds));
                match r {
                    Ok(gbit) => {
                        report.add(row("linux", gbit));
                        direct_gbit = Some(gbit);
                    }
                    Err(e) => report.skip("relay", "linux", format!("{point}: {e}")),
                }
            }
            if relay {
                let r = start_relay(a, synack).and_then(|mut p| {
                    let r = iperf(a, streams, reverse, sizes.relay_seconds);
                    stop_relay(a, &mut p).and(r)
                });
                match r {
                    Ok(gbit) => {
                        report.add(row("synack", gbit));
                        if let Some(d) = direct_gbit {
                            report.add(
                                Measurement::new("relay_ratio", "synack", gbit / d, "ratio")
                                    .direction(direction)
                                    .concurrency(streams),
                            );
                        }
                    }
                    Err(e) => report.skip("relay", "synack", format!("{point}: {e}")),
                }
            }
        }
    }
    if let Some(status) = server.exited() {
        return Err(format!(
            "the iperf3 server exited ({status}): {}",
            server.stderr().trim()
        ));
    }
    Ok(())
}

/// One iperf3 run from the first namespace; the receiver's Gbit/s.
fn iperf(a: &Netns, streams: u32, reverse: bool, seconds: u32) -> Result<f64, String> {
    let (dest, port) = (DESTINATION.to_string(), IPERF_PORT.to_string());
    let (t, p) = (seconds.to_string(), streams.to_string());
    let mut argv = vec![
        "iperf3",
        "-c",
        &dest,
        "-p",
        &port,
        "-t",
        &t,
        "-P",
        &p,
        "--json",
        "--connect-timeout",
        "5000",
    ];
    if reverse {
        argv.push("-R");
    }
    let limit = Duration::from_secs(u64::from(seconds) + 30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut client = a.spawn(&argv)?;
        let status = client.wait(limit)?;
        let out = client.stdout();
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            format!(
                "iperf3 ({status}) printed no JSON ({e}): {} {}",
                out.trim(),
                client.stderr().trim()
            )
        })?;
        if let Some(e) = v["error"].as_str() {
            // The server takes one test at a time and may not have closed the last yet.
            if e.contains("busy") && attempt < 3 {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            return Err(format!("iperf3: {e}"));
        }
        if !status.success() {
            return Err(format!("iperf3 failed ({status}): {}", client.stderr()));
        }
        return v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .map(|bps| bps / 1e9)
            .ok_or_else(|| "iperf3's JSON has no end.sum_received".to_string());
    }
}

/// Wait until something in `ns` listens on TCP `port`; `server` must not exit meanwhile.
fn wait_listening(ns: &Netns, port: u16, server: &mut Background) -> Result<(), String> {
    let deadline = Instant::now() + READY;
    let filter = format!("sport = :{port}");
    loop {
        if let Some(status) = server.exited() {
            return Err(format!(
                "the server for port {port} exited ({status}): {}",
                server.stderr().trim()
            ));
        }
        if !ns.output(&["ss", "-Hltn", &filter])?.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on port {port} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The device `ip route get` picks for the destination in `ns`.
fn route_dev(ns: &Netns) -> Result<String, String> {
    let out = ns.output(&["ip", "-o", "route", "get", &DESTINATION.to_string()])?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words
                .next()
                .map(str::to_string)
                .ok_or_else(|| format!("no device in {out:?}"));
        }
    }
    Err(format!("no device in {out:?}"))
}

fn expect_path(ns: &Netns, dev: &str) -> Result<(), String> {
    let got = route_dev(ns)?;
    if got != dev {
        return Err(format!(
            "{DESTINATION} is routed via {got}, not {dev} as this run needs"
        ));
    }
    Ok(())
}

/// Start the relay in `ns` and wait until it carries: tun0 has the kernel's address and
/// the destination is routed to it, and the relay said it listens (or 2 s passed since).
fn start_relay(ns: &Netns, synack: &Path) -> Result<Background, String> {
    let exe = synack
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", synack.display()))?;
    let mut relay = ns.spawn(&[
        exe,
        "relay",
        "--tun",
        "tun0",
        "--addr",
        TUN_ADDR,
        "--kernel-addr",
        TUN_KERNEL,
        "--capture",
        CAPTURE,
        "--direct",
        "--bind-interface",
        "veth-a",
        "--no-control",
    ])?;
    let deadline = Instant::now() + READY;
    let mut routed: Option<Instant> = None;
    loop {
        if let Some(status) = relay.exited() {
            return Err(format!(
                "synack relay exited ({status}) before it was ready: {}",
                relay.stderr().trim()
            ));
        }
        if routed.is_none() {
            let addr = ns
                .output(&["ip", "-o", "addr", "show", "dev", "tun0"])
                .unwrap_or_default();
            if addr.contains(TUN_KERNEL) && route_dev(ns).is_ok_and(|d| d == "tun0") {
                routed = Some(Instant::now());
            }
        }
        if let Some(t) = routed {
            let said = relay.stderr().contains("relaying TCP");
            if said || t.elapsed() >= Duration::from_secs(2) {
                return Ok(relay);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "synack relay not ready after {} s: {}",
                READY.as_secs(),
                relay.stderr().trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stop the relay (SIGTERM, SIGKILL after 2 s), wait until the destination is routed
/// via veth again, and echo what the relay printed besides its start line.
fn stop_relay(ns: &Netns, relay: &mut Background) -> Result<(), String> {
    relay.stop(Duration::from_secs(2));
    for line in relay
        .stderr()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("relaying TCP"))
        .take(20)
    {
        eprintln!("    (synack relay: {line})");
    }
    let deadline = Instant::now() + READY;
    loop {
        if route_dev(ns).is_ok_and(|d| d == "veth-a") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{DESTINATION} still routed via tun0 10 s after the relay stopped"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The idle-connection point: a holding server in the second namespace, a fresh relay,
/// the dialling child in the first.
fn memory(
    n: usize,
    report: &mut Report,
    (a, b): (&Netns, &Netns),
    synack: &Path,
) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let me = me.to_str().ok_or("own path is not UTF-8")?;
    let mut hold = b.spawn(&[me, "--netns-role", &format!("relay-hold:{HOLD_PORT}:{n}")])?;
    wait_listening(b, HOLD_PORT, &mut hold)?;
    let mut relay = start_relay(a, synack)?;
    let v = a.run_role(&format!("relay-idle:{n}:{}:{HOLD_PORT}", relay.pid()));
    let stopped = stop_relay(a, &mut relay);
    let v = v?;
    stopped?;
    let established = field(&v, "established")? as usize;
    let kb = |k| field(&v, k);
    let (before, rss, peak) = (kb("rss_before_kb")?, kb("rss_kb")?, kb("hwm_kb")?);
    let mb = |kb: f64| kb * 1024.0 / 1e6;
    if established < n {
        return Err(format!(
            "{established} of {n} idle connections opened through the relay ({} failed; first error: {}); its RSS then {:.1} MB",
            v["failed"],
            v["first_error"].as_str().unwrap_or("none"),
            mb(rss)
        ));
    }
    let conns = n as u32;
    report.add(Measurement::new("relay_rss", "synack", mb(rss), "MB").concurrency(conns));
    report.add(
        Measurement::new(
            "relay_bytes_per_conn",
            "synack",
            (rss - before) * 1024.0 / n as f64,
            "bytes",
        )
        .concurrency(conns),
    );
    let detail = |bench, value, unit| Measurement::new(bench, "synack", value, unit);
    report.add_detail(detail("relay_rss_before", mb(before), "MB"));
    report.add_detail(detail("relay_rss_peak", mb(peak), "MB").concurrency(conns));
    report.add_detail(
        detail("relay_establish_seconds", kb("establish_seconds")?, "s").concurrency(conns),
    );
    report.add_detail(detail("relay_fds", kb("relay_fds")?, "count").concurrency(conns));
    report.add_detail(
        detail("relay_still_open", kb("still_open")?, "connections").concurrency(conns),
    );
    Ok(())
}

/// The `relay-*` roles, inside a namespace: `relay-idle:N:RELAY_PID:PORT` (dial N idle
/// connections through the relay, read its memory) and `relay-hold:PORT:N` (accept,
/// greet with one byte and hold; runs until killed, at most three watchdogs).
pub fn netns_role(role: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = role.split(':').collect();
    let num = |i: usize| -> Result<u64, String> {
        parts
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("role {role}: argument {i} is not a number"))
    };
    let port = |i: usize| -> Result<u16, String> {
        u16::try_from(num(i)?).map_err(|_| format!("role {role}: argument {i} is not a port"))
    };
    match parts[0] {
        "relay-idle" if parts.len() == 4 => idle(num(1)? as usize, num(2)? as u32, port(3)?),
        "relay-hold" if parts.len() == 3 => hold(port(1)?, num(2)?),
        _ => Err(format!("unknown namespace role {role}")),
    }
    .map_err(|e| format!("{role}: {e}"))
}

/// Accept every connection on DESTINATION:`port`, send it one byte and keep it.
fn hold(port: u16, n: u64) -> Result<serde_json::Value, String> {
    netns::raise_fd_limit(n + 256)?;
    let listener = TcpListener::bind((DESTINATION, port))
        .map_err(|e| format!("listen on {DESTINATION}:{port}: {e}"))?;
    // Bounded even if nobody kills it (the parent does, long before).
    std::thread::spawn(|| {
        std::thread::sleep(netns::WATCHDOG * 3);
        std::process::exit(0);
    });
    let mut held = Vec::new();
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                if s.write_all(b"!").is_ok() {
                    held.push(s);
                }
            }
            // Out of descriptors or a transient error: the dialler's failure shows it.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Open `n` connections to DESTINATION:`port` (through the relay, whose process is
/// `pid`), each counted once its greeting arrived; the relay's memory before and after.
fn idle(n: usize, pid: u32, port: u16) -> Result<serde_json::Value, String> {
    netns::raise_fd_limit(n as u64 + 256)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|e| format!("no process {pid}: {e}"))?;
    if comm.trim() != "synack" {
        return Err(format!(
            "process {pid} is {:?}, not the relay (synack)",
            comm.trim()
        ));
    }
    let before = status_kb(pid, "VmRSS")?;
    let dest = SocketAddr::from((DESTINATION, port));
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let t0 = Instant::now();
    let per_thread: Vec<(Vec<TcpStream>, Option<String>)> = std::thread::scope(|s| {
        let dialers: Vec<_> = (0..DIALERS)
            .map(|_| {
                s.spawn(|| {
                    let (mut held, mut first_error) = (Vec::new(), None);
                    while next.fetch_add(1, Ordering::Relaxed) < n
                        && failed.load(Ordering::Relaxed) < MAX_FAILURES
                        && t0.elapsed() < ESTABLISH
                    {
                        match open(dest) {
                            Ok(c) => held.push(c),
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                first_error.get_or_insert(e.to_string());
                            }
                        }
                    }
                    (held, first_error)
                })
            })
            .collect();
        dialers
            .into_iter()
            .map(|d| d.join().unwrap_or_default())
            .collect()
    });
    let establish = t0.elapsed();
    let first_error = per_thread.iter().find_map(|(_, e)| e.clone());
    let held: Vec<TcpStream> = per_thread.into_iter().flat_map(|(h, _)| h).collect();
    std::thread::sleep(SETTLE);
    let rss = status_kb(pid, "VmRSS")?;
    let hwm = status_kb(pid, "VmHWM")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let still_open = held.iter().filter(|c| still_open(c)).count();
    Ok(json!({
        "established": held.len(),
        "failed": failed.load(Ordering::Relaxed),
        "first_error": first_error,
        "establish_seconds": establish.as_secs_f64(),
        "rss_before_kb": before,
        "rss_kb": rss,
        "hwm_kb": hwm,
        "relay_fds": fds,
        "still_open": still_open,
    }))
}

/// One connection, once its one-byte greeting came through.
fn open(dest: SocketAddr) -> io::Result<TcpStream> {
    let mut c = TcpStream::connect_timeout(&dest, STALL)?;
    c.set_read_timeout(Some(STALL))?;
    let mut greeting = [0u8; 1];
    c.read_exact(&mut greeting)
        .map_err(|e| io::Error::new(e.kind(), format!("no greeting: {e}")))?;
    Ok(c)
}

/// Neither closed nor reset (nothing more to read, and no error).
fn still_open(c: &TcpStream) -> bool {
    if c.set_nonblocking(true).is_err() {
        return false;
    }
    match c.peek(&mut [0u8; 1]) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        Ok(got) => got > 0,
    }
}

/// A `kB` line of /proc/PID/status.
fn status_kb(pid: u32, key: &str) -> Result<f64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    parse_status_kb(&status, key).ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

fn parse_status_kb(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_in_kb() {
        let status = "Name:\tsynack\nVmHWM:\t   66868 kB\nVmRSS:\t   30444 kB\nThreads:\t5\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(30444.0));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(66868.0));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn malformed_relay_roles_are_refused() {
        for role in [
            "relay-idle:10:1",
            "relay-idle:x:1:7000",
            "relay-idle:10:1:70000",
            "relay-hold:7000",
            "relay-nothing:1",
        ] {
            assert!(netns_role(role).is_err(), "{role}");
        }
    }
}
