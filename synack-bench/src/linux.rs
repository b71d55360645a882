//! The Linux kernel's side of `bulk`, `connections` and `latency`: ordinary `std::net`
//! sockets over 127.0.0.1 inside a network namespace the benchmark makes for each
//! measurement (its own loopback; nothing leaves it), measured by a child process
//! (`ip netns exec NS synack-bench --netns-role linux-...`, see [`crate::netns`]).
//!
//! - `bulk` (`--netns-role linux-bulk:MTU:BYTES`): the namespace's loopback gets
//!   `ip link set lo mtu MTU up` (1500, 9000, 65535; loopback's default is 65536). One
//!   connection; the main thread connects and writes BYTES in 128 KiB writes then shuts
//!   down its sending half, a reader thread reads to the end of the stream. SO_SNDBUF and
//!   SO_RCVBUF are left alone: the kernel's defaults with receive-buffer and send-buffer
//!   autotuning (`net.ipv4.tcp_rmem`/`tcp_wmem`, which a new namespace copies from the
//!   initial one; the child prints them to stderr). Timed from just before connect() to
//!   the reader's end of stream; the byte count is checked. Gbit/s.
//! - `connections` (`linux-connections:N`): N lifecycles (connect, 100-byte request,
//!   100-byte response, close by the client first, then by the server), spread over 100
//!   concurrent client threads (the same 100 in flight as synack's batches), served by
//!   100 server threads each looping on accept() of one shared listener. The client's
//!   TIME_WAIT entries would exhaust the default 28,232 ephemeral ports (32768-60999) at
//!   100,000 connections, so the namespace gets `net.ipv4.ip_local_port_range = 1024 65535`
//!   and `net.ipv4.tcp_tw_reuse = 1` (both per namespace), and the clients connect to
//!   eight destination addresses, 127.0.0.1 to 127.0.0.8, all on the one listener bound
//!   to 0.0.0.0:80 (a port below the range): a 4-tuple in TIME_WAIT only blocks its own
//!   destination. Timed from the first connect until every client and every server side
//!   has closed. Connections per second.
//! - `latency` (`linux-latency:ROUNDS`): ROUNDS round trips of a 64-byte message on one
//!   connection with TCP_NODELAY on both sides, blocking sockets, an echoing server
//!   thread; median and 99th percentile in microseconds (`latency_p50`, `latency_p99`).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::netns::{self, Netns};
use crate::report::{Measurement, Report};
use crate::{Selection, Sizes};

/// Bytes per write() and read() of `bulk`.
const CHUNK: usize = 128 << 10;
/// Concurrent client threads (and server threads) of `connections`.
const CONCURRENCY: usize = 100;
/// Destination addresses of `connections` (127.0.0.1 to 127.0.0.DESTINATIONS).
const DESTINATIONS: u8 = 8;
/// A socket that makes no progress this long fails the measurement.
const STALL: Duration = Duration::from_secs(20);

/// Run the three for Linux.
pub fn run(sizes: &Sizes, report: &mut Report, benches: &Selection) {
    let wanted: Vec<&'static str> = ["bulk", "connections", "latency"]
        .into_iter()
        .filter(|b| benches.has(b))
        .collect();
    if wanted.is_empty() {
        return;
    }
    if let Err(why) = netns::available() {
        for b in wanted {
            report.skip(b, "linux", why.clone());
        }
        return;
    }
    if benches.has("bulk") {
        for mtu in crate::MTUS {
            let role = format!("linux-bulk:{mtu}:{}", sizes.bulk_bytes);
            let r = measure(&role, |ns| {
                ns.exec(&["ip", "link", "set", "lo", "mtu", &mtu.to_string(), "up"])
            });
            match r.and_then(|v| field(&v, "gbit")) {
                Ok(v) => report.add(Measurement::new("bulk", "linux", v, "Gbit/s").mtu(mtu)),
                Err(e) => report.skip("bulk", "linux", format!("mtu {mtu}: {e}")),
            }
        }
    }
    if benches.has("connections") {
        let role = format!("linux-connections:{}", sizes.connections);
        let r = measure(&role, |ns| {
            ns.exec(&["ip", "link", "set", "lo", "up"])?;
            ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
            ns.sysctl("net.ipv4.tcp_tw_reuse", "1")
        });
        match r.and_then(|v| field(&v, "conn_per_s")) {
            Ok(v) => report.add(Measurement::new("connections", "linux", v, "conn/s")),
            Err(e) => report.skip("connections", "linux", e),
        }
    }
    if benches.has("latency") {
        let role = format!("linux-latency:{}", sizes.latency_rounds);
        let r = measure(&role, |ns| ns.exec(&["ip", "link", "set", "lo", "up"]));
        match r.and_then(|v| Ok((field(&v, "p50")?, field(&v, "p99")?))) {
            Ok((p50, p99)) => {
                report.add(Measurement::new("latency_p50", "linux", p50, "us"));
                report.add(Measurement::new("latency_p99", "linux", p99, "us"));
            }
            Err(e) => report.skip("latency", "linux", e),
        }
    }
}

/// A fresh namespace, set up by `setup`, the role run in it; the namespace is deleted
/// whatever happens.
fn measure(
    role: &str,
    setup: impl FnOnce(&Netns) -> Result<(), String>,
) -> Result<serde_json::Value, String> {
    let ns = Netns::new()?;
    setup(&ns)?;
    ns.run_role(role)
}

/// A number from a child's result.
pub fn field(v: &serde_json::Value, key: &str) -> Result<f64, String> {
    v[key]
        .as_f64()
        .ok_or_else(|| format!("the result has no number {key}: {v}"))
}

/// The `linux-*` roles, inside the namespace; the JSON result or what went wrong.
pub fn netns_role(role: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = role.split(':').collect();
    let num = |i: usize| -> Result<u64, String> {
        parts
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("role {role}: argument {i} is not a number"))
    };
    let r = match parts[0] {
        "linux-bulk" if parts.len() == 3 => bulk(num(1)? as u32, num(2)?),
        "linux-connections" if parts.len() == 2 => connections(num(1)? as usize),
        "linux-latency" if parts.len() == 2 => latency(num(1)? as usize),
        _ => return Err(format!("unknown namespace role {role}")),
    };
    r.map_err(|e| format!("{role}: {e}"))
}

fn sysfs(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Read to the end of the stream; the byte count and when the end came.
pub fn drain(s: &mut impl Read) -> io::Result<(u64, Instant)> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok((got, Instant::now())),
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("read failed after {got} bytes: {e}"),
                ))
            }
        }
    }
}

/// Write `bytes` bytes in `CHUNK` writes.
pub fn fill(s: &mut impl Write, bytes: u64) -> io::Result<()> {
    let buf = vec![0x5au8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("write failed after {} bytes: {e}", bytes - left),
            )
        })?;
        left -= n as u64;
    }
    Ok(())
}

fn bulk(mtu: u32, bytes: u64) -> io::Result<serde_json::Value> {
    let lo_mtu = sysfs("/sys/class/net/lo/mtu");
    if lo_mtu != mtu.to_string() {
        return Err(io::Error::other(format!(
            "loopback MTU is {lo_mtu}, not {mtu}"
        )));
    }
    let (rmem, wmem) = (
        sysfs("/proc/sys/net/ipv4/tcp_rmem"),
        sysfs("/proc/sys/net/ipv4/tcp_wmem"),
    );
    eprintln!(
        "  (linux bulk, mtu {mtu}: default buffers, autotuning; tcp_rmem {rmem}, tcp_wmem {wmem})"
    );
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 5001))?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> io::Result<(u64, Instant)> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(STALL))?;
        drain(&mut s)
    });
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_write_timeout(Some(STALL))?;
    fill(&mut s, bytes)?;
    s.shutdown(Shutdown::Write)?;
    let (got, t1) = reader
        .join()
        .map_err(|_| io::Error::other("the reader panicked"))??;
    if got != bytes {
        return Err(io::Error::other(format!("received {got} bytes of {bytes}")));
    }
    Ok(json!({
        "gbit": crate::synack_sys::gbit(got, t1 - t0),
        "bytes": got,
        "mtu": mtu,
        "tcp_rmem": rmem,
        "tcp_wmem": wmem,
    }))
}

fn connections(n: usize) -> io::Result<serde_json::Value> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 80))?;
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // The server threads stay blocked in accept() at the end; the process exits.
    for _ in 0..CONCURRENCY {
        let (l, served, failed) = (
            listener.try_clone()?,
            Arc::clone(&served),
            Arc::clone(&failed),
        );
        std::thread::spawn(move || loop {
            let mut s = match l.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("linux connections: accept: {e}");
                    failed.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let ok = (|| -> io::Result<()> {
                s.set_read_timeout(Some(STALL))?;
                let mut req = [0u8; 100];
                s.read_exact(&mut req)?;
                s.write_all(&[b'r'; 100])?;
                let mut rest = [0u8; 1];
                match s.read(&mut rest)? {
                    0 => Ok(()),
                    _ => Err(io::Error::other("more than 100 bytes of request")),
                }
            })();
            drop(s);
            if let Err(e) = ok {
                eprintln!("linux connections: server side: {e}");
                failed.fetch_add(1, Ordering::SeqCst);
            }
            served.fetch_add(1, Ordering::SeqCst);
        });
    }
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let count = n / CONCURRENCY + usize::from(t < n % CONCURRENCY);
            std::thread::spawn(move || -> io::Result<()> {
                for i in 0..count {
                    let dest =
                        Ipv4Addr::new(127, 0, 0, 1 + ((t + i) % DESTINATIONS as usize) as u8);
                    let mut s = TcpStream::connect(SocketAddr::from((dest, 80)))
                        .map_err(|e| io::Error::new(e.kind(), format!("connect {dest}: {e}")))?;
                    s.set_read_timeout(Some(STALL))?;
                    s.write_all(&[b'q'; 100])?;
                    let mut resp = [0u8; 100];
                    s.read_exact(&mut resp)?;
                }
                Ok(())
            })
        })
        .collect();
    let mut errors = Vec::new();
    for c in clients {
        match c.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    if let Some(e) = errors.first() {
        return Err(io::Error::other(format!(
            "{} client threads failed, first: {e}",
            errors.len()
        )));
    }
    let deadline = Instant::now() + STALL;
    while served.load(Ordering::SeqCst) < n {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "the server finished {} of {n} connections",
                served.load(Ordering::SeqCst)
            )));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let elapsed = t0.elapsed();
    let failed = failed.load(Ordering::SeqCst);
    if failed > 0 {
        return Err(io::Error::other(format!("{failed} server-side failures")));
    }
    Ok(json!({
        "conn_per_s": n as f64 / elapsed.as_secs_f64(),
        "connections": n,
        "concurrency": CONCURRENCY,
    }))
}

fn latency(rounds: usize) -> io::Result<serde_json::Value> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 5001))?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(STALL))?;
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(STALL))?;
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    s.shutdown(Shutdown::Write)?;
    server
        .join()
        .map_err(|_| io::Error::other("the server panicked"))??;
    if buf != msg {
        return Err(io::Error::other("the echo differs"));
    }
    let (p50, p99) = crate::percentiles(times);
    Ok(json!({ "p50": p50, "p99": p99, "rounds": rounds }))
}
