//! `synack demo`: run a scenario in the simulator and show it as a ladder diagram (or as
//! JSON lines with `--json`), then whether its expectations held and what it teaches.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use synack::scenario::{self, ScenarioOptions, ScenarioRun};
use synack::trace::ladder::{self, LadderOptions};
use synack::trace::RecordKind;

/// What else `synack demo` runs besides the named scenarios.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum DemoCommand {
    /// A bulk transfer over a simulated path: goodput, retransmissions, cwnd over time.
    Transfer(crate::transfer::TransferArgs),
}

/// Options of `synack demo`.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
    /// Scenario to run (see --list).
    #[arg(default_value = "handshake-and-close")]
    pub name: String,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Print the run as JSON lines instead of a ladder.
    #[arg(long)]
    pub json: bool,
    /// Seed of the simulation (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extra random loss on the link, in percent (0-100).
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    pub loss: f64,
    /// Extra reordering on the link, in percent (0-100).
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    pub reorder: f64,
    /// One-way delay of the link, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub delay: u64,
    /// Show absolute sequence numbers instead of numbers relative to each ISN.
    #[arg(long)]
    pub absolute: bool,
    /// Also write every packet of the run to FILE in pcap format (for Wireshark or
    /// tcpdump -r), stamped with the simulation's virtual time.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Also draw the run as an SVG ladder diagram in FILE (open it in a browser).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> DemoArgs {
        DemoArgs {
            command: None,
            name: "handshake-and-close".into(),
            list: false,
            json: false,
            seed: 1,
            loss: 0.0,
            reorder: 0.0,
            delay: 10,
            absolute: false,
            pcap: None,
            svg: None,
        }
    }
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a number; give a percentage such as 5 or 2.5"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0-100; give a percentage"))
    }
}

/// Run `synack demo`; returns the exit status.
pub fn run(args: &DemoArgs) -> i32 {
    if let Some(DemoCommand::Transfer(t)) = &args.command {
        return crate::transfer::run_transfer(t);
    }
    let mut out = std::io::stdout().lock();
    if args.list {
        for s in scenario::list() {
            let _ = writeln!(out, "{:<24} {}", s.name, s.summary);
        }
        return 0;
    }
    let Some(s) = scenario::find(&args.name) else {
        eprintln!(
            "synack demo: there is no scenario called '{}'. Run 'synack demo --list' to see them.",
            args.name
        );
        return 2;
    };
    let opts = {
        let mut options = ScenarioOptions::default();
        options.seed = args.seed;
        options.loss_pct = args.loss;
        options.reorder_pct = args.reorder;
        options.delay = Duration::from_millis(args.delay);
        options
    };
    let r = s.run(&opts);
    if let Some(path) = &args.pcap {
        let written = std::fs::File::create(path)
            .map(std::io::BufWriter::new)
            .and_then(|f| synack::trace::pcap::write_sim(f, &r.packets).map(|_| ()));
        if let Err(e) = written {
            eprintln!(
                "synack demo: cannot write the capture to {}: {e}. Check that the directory exists and is writable.",
                path.display()
            );
            return 2;
        }
    }
    if let Some(path) = &args.svg {
        if let Err(e) = std::fs::write(path, synack::trace::ladder_svg::render_svg(&r.trace)) {
            eprintln!(
                "synack demo: cannot write the SVG to {}: {e}. Check that the directory exists and is writable.",
                path.display()
            );
            return 2;
        }
    }
    let written = if args.json {
        write_json(&mut out, &r)
    } else {
        write_ladder(&mut out, &r, args, s.summary)
    };
    if written.is_err() {
        // stdout closed (e.g. piped into head): nothing more to say.
        return if r.passed() { 0 } else { 1 };
    }
    if r.passed() {
        0
    } else {
        1
    }
}

fn write_ladder(
    out: &mut impl Write,
    r: &ScenarioRun,
    args: &DemoArgs,
    summary: &str,
) -> std::io::Result<()> {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let bold = |s: &str| {
        if color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    writeln!(
        out,
        "{} — {}",
        bold(&format!("synack demo {}", r.name)),
        summary
    )?;
    writeln!(
        out,
        "simulated link: {} ms one way, {}% loss, {}% reordering, seed {}\n",
        args.delay, args.loss, args.reorder, args.seed
    )?;
    write!(
        out,
        "{}",
        ladder::render(&r.trace, {
            let mut options = LadderOptions::default();
            options.color = color;
            options.absolute = args.absolute;
            options
        })
    )?;
    writeln!(out)?;
    for c in &r.checks {
        let mark = if c.passed { "✓" } else { "✗" };
        let mark = if color {
            format!("\x1b[{}m{mark}\x1b[0m", if c.passed { 32 } else { 31 })
        } else {
            mark.to_string()
        };
        if c.detail.is_empty() || c.passed {
            writeln!(out, "  {mark} {}", c.name)?;
        } else {
            writeln!(out, "  {mark} {} ({})", c.name, c.detail)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", wrap(r.lesson, 92))?;
    if !r.passed() {
        writeln!(
            out,
            "\nsome expectations did not hold (see ✗ above); try another --seed or less --loss"
        )?;
    }
    Ok(())
}

fn wrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

fn write_json(out: &mut impl Write, r: &ScenarioRun) -> std::io::Result<()> {
    let host = |i: usize| r.trace.hosts.get(i).cloned().unwrap_or_default();
    for rec in &r.trace.records {
        let t_us = rec.at.as_micros();
        let v = match &rec.kind {
            RecordKind::State { from, to, cause } => json!({
                "t_us": t_us, "host": host(rec.host), "event": "state",
                "from": from.name(), "to": to.name(), "cause": cause,
            }),
            RecordKind::Tx { seg, lost, .. } => {
                let mut v = json!({
                    "t_us": t_us, "host": host(rec.host), "event": "tx", "flags": seg.flags.short(),
                    "seq": seg.seq, "ack": seg.ack, "len": seg.len, "win": seg.win,
                });
                if let Some(why) = lost {
                    v["lost"] = json!(true);
                    v["lost_reason"] = json!(why);
                }
                v
            }
            RecordKind::Rx { seg, .. } => json!({
                "t_us": t_us, "host": host(rec.host), "event": "rx", "flags": seg.flags.short(),
                "seq": seg.seq, "ack": seg.ack, "len": seg.len, "win": seg.win,
            }),
            RecordKind::Note(text) => {
                json!({"t_us": t_us, "host": host(rec.host), "event": "note", "text": text})
            }
            // A kind of record newer than this writer: shown as it is, not dropped.
            other => json!({
                "t_us": t_us, "host": host(rec.host), "event": "other",
                "record": format!("{other:?}"),
            }),
        };
        writeln!(out, "{v}")?;
    }
    let checks: Vec<_> = r
        .checks
        .iter()
        .map(|c| json!({"name": c.name, "passed": c.passed, "detail": c.detail}))
        .collect();
    writeln!(
        out,
        "{}",
        json!({"event": "result", "scenario": r.name, "passed": r.passed(), "checks": checks})
    )
}
