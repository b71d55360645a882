//! `synack demo transfer`: a what-if bulk transfer in the simulator. Pick a path
//! (bandwidth, RTT, loss, bursts, reordering) and a stack (congestion control, SACK,
//! window scaling, flows); watch progress in simulated time, then goodput,
//! retransmissions and cwnd over time as a terminal chart (or one JSON object).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use synack::sim::transfer::{jain_index, run, CwndSample, TransferSpec};
use synack::sim::{parse_duration, parse_rate};
use synack::CongestionControl;

/// Options of `synack demo transfer`.
#[derive(Args, Debug, Clone)]
pub struct TransferArgs {
    /// Bytes each flow sends (K, M, G suffixes: decimal).
    #[arg(long, default_value = "100M", value_parser = parse_bytes)]
    pub bytes: u64,
    /// Bottleneck rate, e.g. 100mbit or 1gbit.
    #[arg(long, default_value = "100mbit", value_parser = parse_rate)]
    pub bandwidth: u64,
    /// Round-trip time, e.g. 20ms.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub rtt: Duration,
    /// Random loss of data packets, in percent (a loss event with --loss-burst).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Each loss event drops MIN to MAX consecutive packets, e.g. 3-5.
    #[arg(long, value_parser = parse_burst, value_name = "MIN-MAX")]
    pub loss_burst: Option<(u32, u32)>,
    /// Percent of data packets held back by up to one RTT (reordering).
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Congestion control: cubic or newreno.
    #[arg(long, default_value = "cubic")]
    pub cc: CongestionControl,
    /// Do not negotiate SACK.
    #[arg(long)]
    pub no_sack: bool,
    /// Do not negotiate window scaling (windows stop at 64 KiB).
    #[arg(long)]
    pub no_wscale: bool,
    /// Flows sharing the bottleneck, each starting 2 s after the previous one.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
    /// Send and receive buffer per connection (K, M suffixes).
    #[arg(long, default_value = "4M", value_parser = parse_bytes)]
    pub buffer: u64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object with the result instead of progress and a chart.
    #[arg(long)]
    pub json: bool,
    /// Also draw cwnd over time (one line per flow) into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size; use e.g. 100M, 512K or 1G");
    let (n, scale) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = n.parse().map_err(|_| bad())?;
    if v <= 0.0 {
        return Err(bad());
    }
    Ok((v * scale) as u64)
}

fn parse_burst(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not MIN-MAX packets, e.g. 3-5");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

impl TransferArgs {
    fn spec(&self) -> TransferSpec {
        {
            let mut spec = TransferSpec::default();
            spec.bytes = self.bytes;
            spec.bandwidth_bps = self.bandwidth;
            spec.rtt = self.rtt;
            spec.loss = (self.loss / 100.0).clamp(0.0, 1.0);
            spec.loss_burst = self.loss_burst;
            spec.reorder = (self.reorder / 100.0).clamp(0.0, 1.0);
            spec.reorder_delay = self.rtt;
            spec.cc = self.cc.clone();
            spec.sack = !self.no_sack;
            spec.wscale = !self.no_wscale;
            spec.flows = self.flows.max(1);
            spec.stagger = Duration::from_secs(2);
            spec.buffer = self.buffer as usize;
            spec.seed = self.seed;
            spec
        }
    }
}

/// Run `synack demo transfer`; returns the exit status.
pub fn run_transfer(args: &TransferArgs) -> i32 {
    let spec = args.spec();
    let mut out = std::io::stdout().lock();
    if !args.json {
        let _ = writeln!(
            out,
            "{} flow(s) of {:.1} MB over {:.0} Mbit/s, RTT {:?}, loss {}%{}, reorder {}%, {}, SACK {}, window scaling {}",
            spec.flows,
            spec.bytes as f64 / 1e6,
            spec.bandwidth_bps as f64 / 1e6,
            spec.rtt,
            args.loss,
            args.loss_burst.map_or(String::new(), |(a, b)| format!(" in bursts of {a}-{b}")),
            args.reorder,
            args.cc.name(),
            if spec.sack { "on" } else { "off" },
            if spec.wscale { "on" } else { "off" },
        );
    }
    let mut last: Option<CwndSample> = None;
    let json = args.json;
    let result = run(&spec, Duration::from_millis(100), |s| {
        // A progress line per simulated second.
        let second = s.at.as_secs();
        if json || last.as_ref().is_some_and(|l| l.at.as_secs() == second) {
            return;
        }
        let delivered: u64 = s.delivered.iter().sum();
        let rate = last.as_ref().map_or(0.0, |l| {
            let bytes = delivered - l.delivered.iter().sum::<u64>();
            bytes as f64 * 8.0 / (s.at - l.at).as_secs_f64().max(1e-9) / 1e6
        });
        let cwnd: Vec<String> = s
            .cwnd
            .iter()
            .map(|c| format!("{:.0}K", *c as f64 / 1e3))
            .collect();
        println!(
            "  t={:>6.1}s  delivered {:>9.1} MB  {:>7.1} Mbit/s  cwnd {}",
            s.at.as_secs_f64(),
            delivered as f64 / 1e6,
            rate,
            cwnd.join(" ")
        );
        last = Some(s.clone());
    });
    let goodputs: Vec<f64> = result.flows.iter().map(|f| f.goodput_bps).collect();
    if args.json {
        let v = json!({
            "goodput_bps": result.goodput_bps,
            "link_bps": result.link_bps,
            "retransmits": result.retransmits,
            "bytes_delivered": result.bytes_delivered,
            "byte_exact": result.byte_exact,
            "completed": result.completed,
            "duration_s": result.duration.as_secs_f64(),
            "packets_lost": result.packets_lost,
            "jain_index": jain_index(&goodputs),
            "flows": result.flows.iter().map(|f| json!({
                "goodput_bps": f.goodput_bps,
                "bytes_delivered": f.bytes_delivered,
                "retransmits": f.retransmits,
                "byte_exact": f.byte_exact,
            })).collect::<Vec<_>>(),
        });
        let _ = writeln!(out, "{v}");
    } else {
        let _ = writeln!(out, "{}", chart(&result.samples, 64, 12));
        let _ = writeln!(
            out,
            "goodput {:.2} Mbit/s of {:.0} Mbit/s ({:.1} %), {} retransmits, {} packets lost on the link, {:.1} MB delivered in {:.2} s simulated, byte-exact: {}",
            result.goodput_bps / 1e6,
            result.link_bps as f64 / 1e6,
            result.goodput_bps / result.link_bps as f64 * 100.0,
            result.retransmits,
            result.packets_lost,
            result.bytes_delivered as f64 / 1e6,
            result.duration.as_secs_f64(),
            result.byte_exact
        );
        if result.flows.len() > 1 {
            let per: Vec<String> = goodputs.iter().map(|g| format!("{:.1}", g / 1e6)).collect();
            let _ = writeln!(
                out,
                "per flow (Mbit/s): {}; Jain's fairness index {:.3}",
                per.join(", "),
                jain_index(&goodputs)
            );
        }
    }
    if let Some(path) = &args.svg {
        if let Err(e) = svg(path, &result.samples) {
            eprintln!("synack demo transfer: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    if result.byte_exact && result.completed {
        0
    } else {
        1
    }
}

/// cwnd of every flow over time as an SVG line chart.
fn svg(path: &std::path::Path, samples: &[CwndSample]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = samples
        .last()
        .map_or(1.0, |s| s.at.as_secs_f64())
        .max(0.001);
    let top = samples
        .iter()
        .flat_map(|s| s.cwnd.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        / 1e3;
    let mut chart = ChartBuilder::on(&root)
        .caption("cwnd over time", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc("cwnd (KB)")
        .draw()?;
    let flows = samples.first().map_or(0, |s| s.cwnd.len());
    for f in 0..flows {
        let color = Palette99::pick(f).to_rgba();
        chart
            .draw_series(LineSeries::new(
                samples
                    .iter()
                    .map(|s| (s.at.as_secs_f64(), s.cwnd[f] as f64 / 1e3)),
                &color,
            ))?
            .label(format!("flow {}", f + 1))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// cwnd over time (the sum over flows) as a `rows` x `cols` character chart.
fn chart(samples: &[CwndSample], cols: usize, rows: usize) -> String {
    if samples.is_empty() {
        return String::new();
    }
    let total = |s: &CwndSample| s.cwnd.iter().map(|c| *c as u64).sum::<u64>();
    let per_col = samples.len().div_ceil(cols).max(1);
    let columns: Vec<u64> = samples
        .chunks(per_col)
        .map(|c| c.iter().map(total).max().unwrap_or(0))
        .collect();
    let top = columns.iter().copied().max().unwrap_or(1).max(1);
    let mut lines = vec![format!("cwnd (max {:.0} KB)", top as f64 / 1e3)];
    for r in (0..rows).rev() {
        let threshold = top as f64 * (r as f64 + 0.5) / rows as f64;
        let line: String = columns
            .iter()
            .map(|&v| if v as f64 >= threshold { '#' } else { ' ' })
            .collect();
        lines.push(format!("|{line}"));
    }
    let end = samples.last().map_or(0.0, |s| s.at.as_secs_f64());
    lines.push(format!("+{}", "-".repeat(columns.len())));
    lines.push(format!(
        " 0 s{:>w$.1} s",
        end,
        w = columns.len().saturating_sub(2)
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bursts_parse() {
        assert_eq!(parse_bytes("100M"), Ok(100_000_000));
        assert_eq!(parse_bytes("1.5k"), Ok(1500));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_burst("3-5"), Ok((3, 5)));
        assert!(parse_burst("5-3").is_err());
    }
}
