//! Results: one row per benchmark, system and variant; the table printed at the end and
//! the JSON written by `--json`.

use std::fmt::Write as _;

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// `bulk`, `connections`, `latency_p50`, `latency_p99`, `scale_bytes_per_conn`,
    /// `scale_bytes_per_time_wait`, `scale_cost_ratio`, `tun`, `memcpy`, `http_requests`,
    /// `http_throughput`, `http_p99`, `http_errors`, `http_connections`, `relay`,
    /// `relay_ratio`, `relay_rss`, `relay_bytes_per_conn`; figures outside
    /// that list (the time to establish the scale connections, the cost per segment at
    /// each size) go to [`Report::add_detail`].
    pub bench: &'static str,
    /// `synack`, `smoltcp`, `linux` or `machine`.
    pub system: &'static str,
    pub mtu: Option<u32>,
    /// For `tun`: `kernel_to_synack`, `synack_to_kernel`, `kernel_to_kernel`; for
    /// `relay`: `client_to_server`, `server_to_client`.
    pub direction: Option<&'static str>,
    /// For `tun`: segmentation offload on or off.
    pub offload: Option<bool>,
    /// For `http`: concurrent connections of the load generator; for `relay`: iperf3's
    /// parallel streams, or the idle connections held.
    pub concurrency: Option<u32>,
    /// For `http`: bytes in each response body.
    pub body: Option<u32>,
    pub value: f64,
    pub unit: &'static str,
}

impl Measurement {
    pub fn new(bench: &'static str, system: &'static str, value: f64, unit: &'static str) -> Self {
        Measurement {
            bench,
            system,
            mtu: None,
            direction: None,
            offload: None,
            concurrency: None,
            body: None,
            value,
            unit,
        }
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn direction(mut self, d: &'static str) -> Self {
        self.direction = Some(d);
        self
    }

    pub fn offload(mut self, on: bool) -> Self {
        self.offload = Some(on);
        self
    }

    pub fn concurrency(mut self, c: u32) -> Self {
        self.concurrency = Some(c);
        self
    }

    pub fn body(mut self, bytes: u32) -> Self {
        self.body = Some(bytes);
        self
    }

    /// One progress line on stderr as the figure comes in.
    fn print(&self) {
        eprintln!(
            "  {:<26} {:<8} {:<36} {:>12} {}",
            self.bench,
            self.system,
            self.variant(),
            fmt_value(self.value),
            self.unit
        );
    }

    fn variant(&self) -> String {
        let mut v = Vec::new();
        if let Some(m) = self.mtu {
            v.push(format!("mtu {m}"));
        }
        if let Some(d) = self.direction {
            v.push(d.replace('_', " "));
        }
        if let Some(o) = self.offload {
            v.push(if o { "offload on" } else { "offload off" }.to_string());
        }
        if let Some(c) = self.concurrency {
            v.push(format!("{c} conns"));
        }
        if let Some(b) = self.body {
            v.push(format!("body {b} B"));
        }
        v.join(", ")
    }

    fn json(&self) -> serde_json::Value {
        let mut o = serde_json::json!({
            "bench": self.bench,
            "system": self.system,
            "value": round(self.value),
            "unit": self.unit,
        });
        if let Some(m) = self.mtu {
            o["mtu"] = m.into();
        }
        if let Some(d) = self.direction {
            o["direction"] = d.into();
        }
        if let Some(off) = self.offload {
            o["offload"] = off.into();
        }
        if let Some(c) = self.concurrency {
            o["concurrency"] = c.into();
        }
        if let Some(b) = self.body {
            o["body"] = b.into();
        }
        o
    }
}

/// Four significant digits are plenty for any of these figures.
fn round(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 4 - v.abs().log10().ceil() as i32;
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// A benchmark that could not run for one system, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub bench: &'static str,
    pub system: &'static str,
    pub reason: String,
}

/// Everything one run produced.
#[derive(Debug, Default)]
pub struct Report {
    pub machine: String,
    pub command: String,
    pub results: Vec<Measurement>,
    /// Figures beside the documented benchmarks: in the table, and in the JSON under
    /// `details`, so `results` holds only the documented bench names.
    pub details: Vec<Measurement>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    pub fn add(&mut self, m: Measurement) {
        m.print();
        self.results.push(m);
    }

    /// A figure that is not one of the documented benchmarks.
    pub fn add_detail(&mut self, m: Measurement) {
        m.print();
        self.details.push(m);
    }

    pub fn skip(&mut self, bench: &'static str, system: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        eprintln!("  {bench:<26} {system:<8} skipped: {reason}");
        self.skipped.push(Skipped {
            bench,
            system,
            reason,
        });
    }

    /// The JSON object of the interface: `{"machine": ..., "results": [...]}`,
    /// plus the command and what was skipped and why.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "machine": self.machine,
            "command": self.command,
            "results": self.results.iter().map(Measurement::json).collect::<Vec<_>>(),
            "details": self.details.iter().map(Measurement::json).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(|s| serde_json::json!({
                "bench": s.bench, "system": s.system, "reason": s.reason,
            })).collect::<Vec<_>>(),
        })
    }

    /// The table: one row per benchmark and variant, one column per system.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String, &str)> = Vec::new();
        let all: Vec<&Measurement> = self.results.iter().chain(&self.details).collect();
        for m in &all {
            let key = (m.bench, m.variant(), m.unit);
            if !rows.contains(&key) {
                rows.push(key);
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| bench | variant | unit | synack | smoltcp | linux | machine |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
        for (bench, variant, unit) in rows {
            let cell = |system: &str| {
                all.iter()
                    .find(|m| {
                        m.bench == bench
                            && m.variant() == variant
                            && m.unit == unit
                            && m.system == system
                    })
                    .map_or_else(|| "-".to_string(), |m| fmt_value(m.value))
            };
            let _ = writeln!(
                out,
                "| {bench} | {variant} | {unit} | {} | {} | {} | {} |",
                cell("synack"),
                cell("smoltcp"),
                cell("linux"),
                cell("machine")
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out);
            for s in &self.skipped {
                let _ = writeln!(out, "- {} / {}: skipped: {}", s.bench, s.system, s.reason);
            }
        }
        out
    }

    /// An `http` figure for one system, concurrency and body size, if measured.
    pub fn http_value(&self, bench: &str, system: &str, conns: u32, body: u32) -> Option<f64> {
        self.results
            .iter()
            .find(|m| {
                m.bench == bench
                    && m.system == system
                    && m.concurrency == Some(conns)
                    && m.body == Some(body)
            })
            .map(|m| m.value)
    }

    /// The figure for one bench/system/variant, if measured.
    pub fn value(&self, bench: &str, system: &str, mtu: Option<u32>) -> Option<f64> {
        self.results
            .iter()
            .find(|m| m.bench == bench && m.system == system && m.mtu == mtu)
            .map(|m| m.value)
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let mut r = Report {
            machine: "test".into(),
            ..Report::default()
        };
        r.add(Measurement::new("bulk", "synack", 12.345678, "Gbit/s").mtu(1500));
        r.add(
            Measurement::new("tun", "linux", 3.0, "Gbit/s")
                .direction("kernel_to_kernel")
                .offload(true),
        );
        let j = r.json();
        assert_eq!(j["machine"], "test");
        let first = &j["results"][0];
        assert_eq!(first["bench"], "bulk");
        assert_eq!(first["system"], "synack");
        assert_eq!(first["mtu"], 1500);
        assert_eq!(first["value"], 12.35);
        assert_eq!(first["unit"], "Gbit/s");
        assert!(first.get("direction").is_none());
        assert_eq!(j["results"][1]["direction"], "kernel_to_kernel");
        assert_eq!(j["results"][1]["offload"], true);
        r.add_detail(Measurement::new(
            "scale_establish_seconds",
            "synack",
            5.0,
            "s",
        ));
        let j = r.json();
        assert_eq!(
            j["results"].as_array().unwrap().len(),
            2,
            "details stay apart"
        );
        assert_eq!(j["details"][0]["bench"], "scale_establish_seconds");
        let table = r.table();
        assert!(
            table.contains("| scale_establish_seconds |  | s | 5.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| bulk | mtu 1500 | Gbit/s | 12.3 | - | - | - |"),
            "{table}"
        );
    }
}
