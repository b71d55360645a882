//! `synack drill FILE...`: run packetdrill scripts against synack on its virtual clock
//! and say which pass; a summary line `N passed, N failed` ends the output, and the exit
//! status is 1 if any failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use synack_drill::{run, DrillOptions};

/// Options of `synack drill`.
#[derive(Args, Debug, Clone)]
pub struct DrillArgs {
    /// Script files (.pkt).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Show each event: what was injected, sent and called.
    #[arg(short, long)]
    pub verbose: bool,
    /// How far (in microseconds) an outbound segment may be from its script time.
    #[arg(long = "tolerance_usecs", default_value_t = 4000)]
    pub tolerance_usecs: u64,
    /// The tolerance is at least this percentage of the time since the previous event.
    #[arg(long = "tolerance_percent", default_value_t = 12.5)]
    pub tolerance_percent: f64,
    /// ipv4 or ipv6 (default: ipv6 for a script whose name ends in v6.pkt, as
    /// packetdrill's run_all.py runs those over IPv6 only; else ipv4).
    #[arg(long = "ip_version", value_parser = ["ipv4", "ipv6"])]
    pub ip_version: Option<String>,
    /// Compare each segment synack sends with one script line (no merging of
    /// consecutive segments into one script packet, as packetdrill does for TSO).
    #[arg(long = "strict_segments")]
    pub strict_segments: bool,
    /// Fail as soon as synack sends a segment no line expects (packetdrill notices one
    /// only when the next outbound line is compared with it).
    #[arg(long = "strict_unexpected")]
    pub strict_unexpected: bool,
    /// MTU of synack's interface (its MSS follows: 1500 gives 1460 over IPv4).
    #[arg(long)]
    pub mtu: Option<usize>,
    /// As packetdrill's --mss: the segment size of injected packets (longer ones arrive
    /// in pieces of this size, as the GSO packets packetdrill gives the kernel).
    #[arg(long)]
    pub mss: Option<usize>,
    /// Define NAME=value, replaced in the scripts.
    #[arg(short = 'D', value_name = "NAME=value")]
    pub defines: Vec<String>,
}

/// The files to run: each argument, or, for a pattern the shell passed on unexpanded
/// (`tests/drill/**/*.pkt` without bash's globstar), the files it matches, in order.
fn expand(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in args {
        let text = a.to_string_lossy();
        let is_pattern = !a.exists() && text.contains(['*', '?', '[']);
        match glob::glob(&text).ok().filter(|_| is_pattern) {
            Some(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                found.sort();
                if found.is_empty() {
                    // Nothing matches: report the pattern itself as unreadable.
                    out.push(a.clone());
                }
                out.extend(found);
            }
            None => out.push(a.clone()),
        }
    }
    out
}

/// Run `synack drill`; returns the exit status.
pub fn run_drill(args: &DrillArgs) -> i32 {
    let mut defines = Vec::new();
    for d in &args.defines {
        match d.split_once('=') {
            Some((k, v)) => defines.push((k.to_string(), v.to_string())),
            None => {
                eprintln!("synack drill: -D {d}: expected NAME=value");
                return 2;
            }
        }
    }
    let ipv6 = args.ip_version.as_deref() == Some("ipv6");
    let mut opts = DrillOptions {
        tolerance: Duration::from_micros(args.tolerance_usecs),
        tolerance_percent: args.tolerance_percent,
        ipv6,
        defines,
        strict_segments: args.strict_segments,
        strict_unexpected: args.strict_unexpected,
        ..DrillOptions::default()
    };
    if let Some(mtu) = args.mtu {
        opts.config.mtu = mtu;
    }
    opts.inbound_mss = args.mss;
    let (mut passed, mut failed) = (0, 0);
    for file in &expand(&args.files) {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                println!("FAIL {}: cannot read it: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        opts.base_dir = file.parent().map(|d| d.to_path_buf());
        opts.ipv6 = match args.ip_version.as_deref() {
            Some(v) => v == "ipv6",
            None => file.to_string_lossy().ends_with("v6.pkt"),
        };
        let out = run(&text, &opts);
        if args.verbose {
            for l in &out.log {
                println!("    {l}");
            }
        }
        for n in &out.notes {
            println!("    note: {n}");
        }
        match out.failure {
            None => {
                passed += 1;
                println!("ok   {}", file.display());
            }
            Some(f) => {
                failed += 1;
                println!("FAIL {}:{}: {}", file.display(), f.line, f.message);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}
