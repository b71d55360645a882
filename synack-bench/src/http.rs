//! `http`: what an application gets from synack over TUN, beside the kernel: one hyper
//! HTTP/1.1 service on a tokio runtime (two worker threads), served once on synack's
//! tokio sockets over a TUN device (offload on) and once on kernel sockets across a veth
//! pair, loaded by `wrk` and `ab` from the kernel side. Every packet stays inside network
//! namespaces the benchmark makes (see [`crate::netns`]).
//!
//! - `http_requests` (req/s), `http_throughput` (MB/s, 10^6 bytes of responses, headers
//!   included, as wrk counts them), `http_p99` (ms) and `http_errors` (socket errors,
//!   timeouts and non-2xx answers): `wrk -t2 -cN -dS --latency` at each concurrency and
//!   body size (`GET /bytes/64` and `GET /bytes/100000`), keep-alive on.
//! - `http_connections` (conn/s): `ab -c 200` without keep-alive, `GET /` (a new
//!   connection per request, the server closing it after the answer).
//!
//! Each point runs both systems back to back, each in fresh namespaces, so the ratio holds
//! on a noisy machine. synack: one namespace; the child opens `tun0` (synack
//! 198.18.0.2/15, the kernel 198.18.0.1) and runs wrk against 198.18.0.2 in the same
//! namespace. Linux: two namespaces and a veth pair (198.18.0.1/15 and 198.18.0.2/15);
//! the child runs wrk in the first and its listener is made by a thread that entered
//! the second with setns(2), so the service's sockets live there.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::netns::{self, Netns};
use crate::report::{Measurement, Report};
use crate::Selection;

const KERNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PREFIX: u8 = 15;
const PORT: u16 = 8080;
/// The two bodies: a small answer and a 100 KB one.
pub const BODIES: [u32; 2] = [64, 100_000];
/// `ab`'s concurrency.
const AB_CONCURRENCY: u32 = 200;

/// How much `http` does.
#[derive(Clone, Copy, Debug)]
pub struct HttpSizes {
    /// The concurrencies wrk runs at.
    pub concurrency: &'static [u32],
    /// Seconds per wrk run.
    pub seconds: u32,
    /// Requests per `ab` run.
    pub ab_requests: u32,
}

pub const FULL: HttpSizes = HttpSizes {
    concurrency: &[10, 100, 1_000, 10_000],
    seconds: 4,
    ab_requests: 20_000,
};

pub const QUICK: HttpSizes = HttpSizes {
    concurrency: &[100, 1_000],
    seconds: 2,
    ab_requests: 4_000,
};

const SYSTEMS: [&str; 2] = ["synack", "linux"];

/// Run the HTTP benchmarks.
pub fn run(sizes: &HttpSizes, report: &mut Report, systems: &Selection) {
    let wanted: Vec<&'static str> = SYSTEMS.into_iter().filter(|s| systems.has(s)).collect();
    if wanted.is_empty() {
        return;
    }
    let missing = || -> Result<(), String> {
        netns::available()?;
        for tool in ["wrk", "ab"] {
            let found = Command::new(tool)
                .arg("-V")
                .output()
                .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty());
            if !found {
                return Err(format!(
                    "{tool} is not installed (apt-get install wrk apache2-utils)"
                ));
            }
        }
        Ok(())
    };
    if let Err(why) = missing() {
        for system in wanted {
            report.skip("http", system, why.clone());
        }
        return;
    }
    for &body in &BODIES {
        for &conns in sizes.concurrency {
            for &system in &wanted {
                let role = format!("http:{system}:wrk:{conns}:{body}:{}", sizes.seconds);
                match in_namespaces(system, &role) {
                    Ok(v) => record_wrk(report, system, conns, body, &v),
                    Err(e) => {
                        report.skip("http", system, format!("{conns} conns, body {body}: {e}"))
                    }
                }
            }
        }
    }
    for &system in &wanted {
        let role = format!("http:{system}:ab:{AB_CONCURRENCY}:{}:0", sizes.ab_requests);
        match in_namespaces(system, &role).and_then(|v| crate::linux::field(&v, "per_second")) {
            Ok(cps) => report.add(
                Measurement::new("http_connections", system, cps, "conn/s")
                    .concurrency(AB_CONCURRENCY),
            ),
            Err(e) => report.skip("http", system, format!("ab: {e}")),
        }
    }
}

fn record_wrk(
    report: &mut Report,
    system: &'static str,
    conns: u32,
    body: u32,
    v: &serde_json::Value,
) {
    let get = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let m = |bench, value, unit| {
        Measurement::new(bench, system, value, unit)
            .concurrency(conns)
            .body(body)
    };
    report.add(m("http_requests", get("requests_per_second"), "req/s"));
    report.add(m("http_throughput", get("mb_per_second"), "MB/s"));
    report.add(m("http_p99", get("p99_ms"), "ms"));
    report.add(m("http_errors", get("errors"), "count"));
    // The serving process's own memory at its peak (the kernel's socket buffers are not
    // in Linux's figure; synack's are in its).
    if let Some(mb) = v["rss_peak_mb"].as_f64() {
        report.add_detail(m("http_rss_peak", mb, "MB"));
    }
}

/// Make the namespaces `system` needs and run `role` in them.
fn in_namespaces(system: &str, role: &str) -> Result<serde_json::Value, String> {
    if system == "synack" {
        let a = Netns::new()?;
        a.exec(&["ip", "link", "set", "lo", "up"])?;
        return a.run_role(role);
    }
    let (a, b) = netns::veth_pair(KERNEL, SERVER, PREFIX)?;
    // The server closes each `ab` connection: its TIME_WAITs are the server's, but let
    // the client reuse ports as a load generator would.
    a.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    a.run_role(&format!("{role}:{}", b.name))
}

/// `/` greets; `/bytes/N` answers with N bytes; anything else is 404.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let response = if path == "/" {
        Response::new(Full::new(Bytes::from_static(b"Hello from hyper\n")))
    } else if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= 10_000_000)
    {
        // A slice of one pattern made once: the service costs the same on both stacks
        // and little, so that the stacks are what is measured.
        static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let pattern =
            PATTERN.get_or_init(|| (0..10_000_000).map(|i| b'a' + (i % 26) as u8).collect());
        Response::new(Full::new(pattern.slice(..n)))
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    Ok(response)
}

/// Serve one accepted connection (errors are the load generator hanging up; not printed).
fn serve<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .await;
    });
}

/// The part inside the namespaces: `http:SYSTEM:TOOL:CONNS:ARG:ARG[:PEER]`.
pub fn netns_role(role: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = role.split(':').collect();
    let (system, tool, conns, a, b, peer) = match parts.as_slice() {
        ["http", s @ "synack", t, c, a, b] => (*s, *t, *c, *a, *b, None),
        ["http", s @ "linux", t, c, a, b, peer] => (*s, *t, *c, *a, *b, Some(*peer)),
        _ => return Err(format!("unknown http role {role}")),
    };
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("role {role}: {v} is not a number"))
    };
    let (conns, a, b) = (num(conns)?, num(a)?, num(b)?);
    netns::raise_fd_limit(u64::from(conns) + 1024)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // Held until the load is over: the interface (synack) must outlive the service.
    let _iface = match (system, peer) {
        ("synack", _) => Some(start_synack(&runtime)?),
        (_, Some(peer)) => {
            start_linux(&runtime, peer)?;
            None
        }
        _ => unreachable!("matched above"),
    };
    let url = |path: &str| format!("http://{SERVER}:{PORT}{path}");
    let mut result = match tool {
        "wrk" => wrk(conns, &url(&format!("/bytes/{a}")), b),
        "ab" => ab(conns, a, &url("/")),
        _ => Err(format!("role {role}: unknown tool {tool}")),
    }?;
    result["rss_peak_mb"] = json!(peak_rss_mb());
    if let Some(iface) = &_iface {
        let r = iface.runtime_stats();
        result["runtime"] = json!({
            "driver_wakeups": r.driver_wakeups,
            "driver_kicks": r.driver_kicks,
            "packets_read": r.packets_read,
            "packets_written": r.packets_written,
            "socket_wakeups": r.socket_wakeups,
            "misrouted": r.misrouted,
            "queues": iface.queues(),
        });
    }
    Ok(result)
}

/// The service on synack over tun0.
fn start_synack(runtime: &tokio::runtime::Runtime) -> Result<synack::tun::Interface, String> {
    use synack::tun::{Cidr, Interface, InterfaceConfig};
    let config = InterfaceConfig::new(
        "tun0",
        Cidr {
            addr: IpAddr::V4(SERVER),
            prefix: PREFIX,
        },
        IpAddr::V4(KERNEL),
    );
    let iface = Interface::open(config).map_err(|e| format!("cannot open tun0: {e}"))?;
    let listener = runtime
        .block_on(synack::tokio::TcpListener::bind(
            &iface,
            SocketAddr::from((SERVER, PORT)),
        ))
        .map_err(|e| format!("listen: {e}"))?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            serve(stream);
        }
    });
    Ok(iface)
}

/// The service on kernel sockets in namespace `peer` (the listener is made there).
fn start_linux(runtime: &tokio::runtime::Runtime, peer: &str) -> Result<(), String> {
    let netns = std::fs::File::open(format!("/run/netns/{peer}"))
        .map_err(|e| format!("cannot open namespace {peer}: {e}"))?;
    let listener = std::thread::spawn(move || -> io::Result<std::net::TcpListener> {
        use std::os::fd::AsRawFd;
        // SAFETY: setns takes a file descriptor we own (open for the call's duration)
        // and moves only this thread into that network namespace; no memory is shared.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let l = std::net::TcpListener::bind((SERVER, PORT))?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .join()
    .map_err(|_| "the listener thread panicked".to_string())?
    .map_err(|e| format!("listen in {peer}: {e}"))?;
    let _guard = runtime.enter();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            serve(stream);
        }
    });
    Ok(())
}

/// This process's peak resident memory (VmHWM), in MB; 0 if unknown.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Run `cmd` to completion; its stdout, or why it failed.
fn output(cmd: &mut Command) -> Result<String, String> {
    let o = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            out,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(out)
}

fn wrk(conns: u32, url: &str, seconds: u32) -> Result<serde_json::Value, String> {
    let threads = conns.min(2);
    let out = output(Command::new("wrk").args([
        &format!("-t{threads}"),
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "5s",
        "--latency",
        url,
    ]))?;
    let w = parse_wrk(&out)?;
    Ok(json!({
        "requests_per_second": w.requests_per_second,
        "mb_per_second": w.bytes_per_second / 1e6,
        "p99_ms": w.p99.as_secs_f64() * 1e3,
        "errors": w.errors,
    }))
}

fn ab(conns: u32, requests: u32, url: &str) -> Result<serde_json::Value, String> {
    let out = output(Command::new("ab").args([
        "-q",
        "-s",
        "10",
        "-c",
        &conns.to_string(),
        "-n",
        &requests.to_string(),
        url,
    ]))?;
    let (per_second, failed) = parse_ab(&out)?;
    if failed > 0 {
        return Err(format!("{failed} of {requests} requests failed"));
    }
    Ok(json!({ "per_second": per_second }))
}

/// What wrk reports.
#[derive(Debug, PartialEq)]
pub struct WrkResult {
    pub requests_per_second: f64,
    pub bytes_per_second: f64,
    pub p99: Duration,
    /// Socket errors (connect, read, write, timeout) and non-2xx/3xx answers.
    pub errors: u64,
}

/// Read wrk's report (`--latency`).
pub fn parse_wrk(out: &str) -> Result<WrkResult, String> {
    let after = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let rps = after("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output: {out}"))?;
    let transfer = after("Transfer/sec:")
        .and_then(size)
        .ok_or_else(|| format!("no Transfer/sec in wrk's output: {out}"))?;
    let p99 = after("99%")
        .and_then(duration)
        .ok_or_else(|| format!("no 99% latency in wrk's output (--latency): {out}"))?;
    let mut errors = 0;
    if let Some(e) = after("Socket errors:") {
        // "connect 0, read 0, write 0, timeout 0"
        errors += e
            .split(',')
            .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    if let Some(n) = after("Non-2xx or 3xx responses:").and_then(|v| v.parse::<u64>().ok()) {
        errors += n;
    }
    Ok(WrkResult {
        requests_per_second: rps,
        bytes_per_second: transfer,
        p99,
        errors,
    })
}

/// "1.23MB" in bytes (wrk's units are powers of 1024).
fn size(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "" | "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024f64.powi(4),
        _ => return None,
    };
    Some(n * scale)
}

/// "12.34ms" as a duration (wrk's units: us, ms, s, m, h).
fn duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Requests per second and failed requests from ab's report.
pub fn parse_ab(out: &str) -> Result<(f64, u64), String> {
    let after = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let rps = after("Requests per second:")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .ok_or_else(|| format!("no 'Requests per second' in ab's output: {out}"))?;
    let failed = after("Failed requests:")
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let non2xx = after("Non-2xx responses:")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok((rps, failed + non2xx))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://198.18.0.2:8080/bytes/64
  2 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  412.33us   9.87ms   80.12%
    Req/Sec    33.10k     2.01k   36.52k    71.00%
  Latency Distribution
     50%    1.45ms
     75%    1.70ms
     90%    2.01ms
     99%    3.12ms
  131704 requests in 2.00s, 19.60MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 1
Requests/sec:  65811.40
Transfer/sec:      9.79MB
";

    #[test]
    fn wrk_reports_are_read_with_their_units() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(w.requests_per_second, 65811.40);
        assert!((w.bytes_per_second - 9.79 * 1024.0 * 1024.0).abs() < 1.0);
        assert_eq!(w.p99, Duration::from_micros(3120));
        assert_eq!(w.errors, 6);
        assert!(parse_wrk("wrk: nothing").is_err());
        assert_eq!(duration("412.33us"), Some(Duration::from_nanos(412_330)));
        assert_eq!(size("512.00KB"), Some(512.0 * 1024.0));
    }

    #[test]
    fn ab_reports_are_read_with_failures() {
        let out = "Concurrency Level:      200\nComplete requests:      4000\nFailed requests:        2\n   (Connect: 0, Receive: 0, Length: 2, Exceptions: 0)\nRequests per second:    8123.45 [#/sec] (mean)\n";
        assert_eq!(parse_ab(out).unwrap(), (8123.45, 2));
        assert!(parse_ab("nothing").is_err());
    }

    #[test]
    fn malformed_http_roles_are_refused() {
        for role in [
            "http:bsd:wrk:1:2:3",
            "http:synack:wrk:x:2:3",
            "http:linux:wrk:1:2:3",
        ] {
            assert!(netns_role(role).is_err(), "{role}");
        }
    }
}
