//! `synack-bench`: every benchmark of BENCHMARKS.md, for each system it applies to, in
//! one run on one machine so that the ratios hold even when the machine is noisy.
//!
//! - `bulk`: one connection moves 1 GiB (256 MiB with `--quick`) at MTU 1500, 9000 and
//!   65535 (synack, smoltcp, Linux over loopback);
//! - `connections`: full lifecycles per second (connect, 100-byte request, 100-byte
//!   response, close by the client);
//! - `latency`: round trips of a 64-byte message on one connection, median and p99;
//! - `scale`: 1,000,000 idle established connections in one synack stack (memory per
//!   connection, time to establish, per-segment cost at 1,000,000 over 10, beside the
//!   latency of one dependent memory access at both working sets), TIME_WAIT bytes per
//!   entry, and 10,000 connections moving 1 MB each at once in a 64 MiB buffer budget;
//! - `tun`: through the TUN backend in a network namespace, beside kernel to kernel
//!   over veth;
//! - `http`: a hyper service on synack over TUN beside the same service on kernel
//!   sockets over veth, loaded by wrk (requests/s, MB/s, p99, errors) and ab
//!   (connections/s);
//! - `relay`: `synack relay` (the tun2socks-style command) carrying iperf3 (1 and 8
//!   streams, both directions) beside the same path without it, and the relay's RSS
//!   holding 10,000 idle relayed connections;
//! - `memcpy`: one core's memory copy bandwidth, the ceiling `bulk` is compared with.
//!
//! synack and smoltcp run on one thread over the same in-memory link: raw IP packets in
//! queues, the same MTU and buffer sizes. Linux runs in a network namespace the
//! benchmark makes itself (skipped, with the reason printed, when not root).

mod charts;
mod http;
mod linux;
mod memcpy;
mod netns;
mod relay;
mod report;
mod smoltcp_sys;
mod synack_sys;
mod tun;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant as WallClock;

use clap::Parser;

use report::{Measurement, Report};

/// The MTUs of `bulk`.
pub const MTUS: [u32; 3] = [1500, 9000, 65535];
/// Send and receive buffer of every connection, for every system.
pub const BUFFER: usize = 4 << 20;
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// How much work each benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub bulk_bytes: u64,
    pub connections: usize,
    pub latency_rounds: usize,
    pub scale_connections: usize,
    pub scale_time_wait: usize,
    pub tun_bytes: u64,
    pub memcpy_bytes: usize,
    /// Seconds of each iperf3 run of `relay`.
    pub relay_seconds: u32,
    /// Idle connections held through the relay for its memory figure.
    pub relay_idle: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        bulk_bytes: 1 << 30,
        connections: 100_000,
        latency_rounds: 100_000,
        scale_connections: 1_000_000,
        scale_time_wait: 1_000_000,
        tun_bytes: 1 << 30,
        memcpy_bytes: 1 << 30,
        relay_seconds: 5,
        relay_idle: 10_000,
    };
    pub const QUICK: Sizes = Sizes {
        bulk_bytes: 256 << 20,
        connections: 10_000,
        latency_rounds: 10_000,
        scale_connections: 50_000,
        scale_time_wait: 50_000,
        tun_bytes: 64 << 20,
        memcpy_bytes: 256 << 20,
        relay_seconds: 2,
        relay_idle: 1_000,
    };
}

/// Which benchmarks to run.
#[derive(Clone, Debug)]
pub struct Selection(Vec<String>);

impl Selection {
    pub fn has(&self, bench: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|b| b == bench)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "synack-bench",
    about = "Benchmarks synack beside smoltcp and the Linux kernel, and prints the table"
)]
struct Args {
    /// A reduced run (256 MiB bulk transfers, 10,000 lifecycles and round trips, 50,000
    /// connections for scale, 2 s per iperf3 run and 1,000 idle connections for relay):
    /// for CI.
    #[arg(long)]
    quick: bool,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the charts (SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Run only these benchmarks (bulk, connections, latency, scale, tun, http, relay,
    /// memcpy).
    #[arg(long, value_delimiter = ',', value_name = "BENCH,...")]
    only: Vec<String>,
    /// Only these systems (synack, smoltcp, linux).
    #[arg(long, value_delimiter = ',', value_name = "SYSTEM,...")]
    systems: Vec<String>,
    /// Internal: the part of a benchmark that runs inside a network namespace.
    #[arg(long, hide = true)]
    netns_role: Option<String>,
}

/// A stack that runs in this process, on one thread over the in-memory link: its
/// `bulk` (MTU, bytes -> Gbit/s), `connections` (count -> per second) and `latency`
/// (rounds -> microseconds per round trip).
struct InProcess {
    name: &'static str,
    bulk: fn(usize, u64) -> f64,
    connections: fn(usize) -> f64,
    latency: fn(usize) -> Vec<f64>,
}

impl InProcess {
    fn run(&self, sizes: &Sizes, report: &mut Report, benches: &Selection) {
        if benches.has("bulk") {
            for mtu in MTUS {
                let v = (self.bulk)(mtu as usize, sizes.bulk_bytes);
                report.add(Measurement::new("bulk", self.name, v, "Gbit/s").mtu(mtu));
            }
        }
        if benches.has("connections") {
            let v = (self.connections)(sizes.connections);
            report.add(Measurement::new("connections", self.name, v, "conn/s"));
        }
        if benches.has("latency") {
            let (p50, p99) = percentiles((self.latency)(sizes.latency_rounds));
            report.add(Measurement::new("latency_p50", self.name, p50, "us"));
            report.add(Measurement::new("latency_p99", self.name, p99, "us"));
        }
    }
}

/// Median and 99th percentile of samples.
pub fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// The machine, in one line: CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {kernel}")
}

fn main() {
    let args = Args::parse();
    if let Some(role) = &args.netns_role {
        std::process::exit(tun::netns_role(role));
    }
    let http_sizes = if args.quick { http::QUICK } else { http::FULL };
    let sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let benches = Selection(args.only.clone());
    let systems = Selection(args.systems.clone());
    let mut report = Report {
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..Report::default()
    };
    eprintln!("synack-bench on {}", report.machine);
    let t0 = WallClock::now();
    if systems.has("synack") {
        let system = InProcess {
            name: "synack",
            bulk: synack_sys::bulk,
            connections: synack_sys::connections,
            latency: synack_sys::latency,
        };
        system.run(&sizes, &mut report, &benches);
    }
    if systems.has("smoltcp") {
        let system = InProcess {
            name: "smoltcp",
            bulk: smoltcp_sys::bulk,
            connections: smoltcp_sys::connections,
            latency: smoltcp_sys::latency,
        };
        system.run(&sizes, &mut report, &benches);
    }
    if systems.has("linux") {
        linux::run(&sizes, &mut report, &benches);
    }
    if benches.has("scale") && systems.has("synack") {
        scale(&sizes, &mut report);
    }
    if benches.has("tun") {
        tun::run(&sizes, &mut report, &systems);
    }
    if benches.has("http") {
        http::run(&http_sizes, &mut report, &systems);
    }
    if benches.has("relay") {
        relay::run(&sizes, &mut report, &systems);
    }
    if benches.has("memcpy") {
        let v = memcpy::bandwidth(sizes.memcpy_bytes);
        report.add(Measurement::new("memcpy", "machine", v, "Gbit/s"));
    }
    eprintln!("done in {:.1} s", t0.elapsed().as_secs_f64());
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json()).expect("JSON");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("synack-bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if let Some(dir) = &args.charts {
        if let Err(e) = charts::draw(&report, dir) {
            eprintln!(
                "synack-bench: cannot draw the charts in {}: {e}",
                dir.display()
            );
            std::process::exit(1);
        }
    }
}

/// `scale` runs in its own process (`synack-bench-scale`, beside this binary), whose
/// counting allocator measures memory without slowing the timed benchmarks.
fn scale(sizes: &Sizes, report: &mut Report) {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("synack-bench-scale")));
    let Some(exe) = exe.filter(|p| p.exists()) else {
        report.skip(
            "scale",
            "synack",
            "synack-bench-scale is not beside synack-bench (build the whole package: cargo build --release -p synack-bench)",
        );
        return;
    };
    let out = std::process::Command::new(exe)
        .args([
            sizes.scale_connections.to_string(),
            sizes.scale_time_wait.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output();
    let parsed = out.ok().and_then(|o| {
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&o.stdout).ok()
    });
    let Some(v) = parsed else {
        report.skip(
            "scale",
            "synack",
            "synack-bench-scale failed (see its output above)",
        );
        return;
    };
    let get = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    report.add(Measurement::new(
        "scale_bytes_per_conn",
        "synack",
        get("bytes_per_conn"),
        "bytes",
    ));
    report.add_detail(Measurement::new(
        "scale_establish_seconds",
        "synack",
        get("establish_seconds"),
        "s",
    ));
    for (key, what) in [
        ("ns_per_segment_10", "scale_ns_per_segment_at_10"),
        ("ns_per_segment_tenth", "scale_ns_per_segment_at_tenth"),
        ("ns_per_segment_many", "scale_ns_per_segment_at_all"),
        ("memory_latency_ns_10", "scale_memory_latency_at_10"),
        ("memory_latency_ns_many", "scale_memory_latency_at_all"),
    ] {
        report.add_detail(Measurement::new(what, "synack", get(key), "ns"));
    }
    for (key, what, unit) in [
        (
            "concurrent_connections",
            "scale_concurrent_connections",
            "connections",
        ),
        ("concurrent_seconds", "scale_concurrent_seconds", "s"),
        (
            "concurrent_peak_sender_buffer_bytes",
            "scale_concurrent_sender_buffers",
            "bytes",
        ),
        (
            "concurrent_peak_receiver_buffer_bytes",
            "scale_concurrent_receiver_buffers",
            "bytes",
        ),
        (
            "concurrent_peak_heap_bytes",
            "scale_concurrent_heap",
            "bytes",
        ),
    ] {
        report.add_detail(Measurement::new(what, "synack", get(key), unit));
    }
    report.add(Measurement::new(
        "scale_cost_ratio",
        "synack",
        get("cost_ratio"),
        "ratio",
    ));
    report.add(Measurement::new(
        "scale_bytes_per_time_wait",
        "synack",
        get("bytes_per_time_wait"),
        "bytes",
    ));
}
