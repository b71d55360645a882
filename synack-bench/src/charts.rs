//! The charts of BENCHMARKS.md, drawn from a run's results as SVG: throughput by MTU,
//! connections per second, memory per connection, the HTTP service over TUN beside
//! the kernel (requests per second with small bodies, MB/s with 100 KB ones), and iperf3
//! through `synack relay` beside the direct path.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Report;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Grouped bars: one group per label, one bar per series (None: not measured).
fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(&str, Vec<Option<f64>>)],
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let n = series.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top)?;
    let labels = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()?;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let width = 0.8 / n;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, v)| {
                let v = (*v)?;
                let x0 = g as f64 + 0.1 + s as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, v)],
                    color.filled(),
                ))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(values.iter().enumerate().filter_map(|(g, v)| {
            let v = (*v)?;
            let x = g as f64 + 0.1 + (s as f64 + 0.45) * width;
            let label = if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            };
            // Centred over its bar.
            Some(Text::new(
                label,
                (x, v + top * 0.01),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Write into `dir` the charts of the benchmarks that ran: `throughput.svg`,
/// `connections.svg`, `memory.svg`, `http.svg`, `http-bulk.svg` and `relay.svg`.
pub fn draw(report: &Report, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let systems = ["synack", "smoltcp", "linux"];
    let mtus: Vec<String> = crate::MTUS.iter().map(|m| format!("MTU {m}")).collect();
    let mut series: Vec<(&str, Vec<Option<f64>>)> = systems
        .iter()
        .map(|s| {
            let v = crate::MTUS
                .iter()
                .map(|&m| report.value("bulk", s, Some(m)))
                .collect();
            (*s, v)
        })
        .collect();
    let memcpy = report.value("memcpy", "machine", None);
    series.push(("memcpy (one core)", vec![memcpy; crate::MTUS.len()]));
    // A chart is drawn only when its benchmark ran (a run of one part keeps the others').
    let ran = |series: &[(&str, Vec<Option<f64>>)]| {
        series.iter().any(|(_, v)| v.iter().any(Option::is_some))
    };
    if ran(&series[..systems.len()]) {
        bars(
            &dir.join("throughput.svg"),
            "bulk: one connection, throughput by MTU",
            "Gbit/s",
            &mtus,
            &series,
        )?;
    }
    let conns: Vec<(&str, Vec<Option<f64>>)> = systems
        .iter()
        .map(|s| (*s, vec![report.value("connections", s, None)]))
        .collect();
    if ran(&conns) {
        bars(
            &dir.join("connections.svg"),
            "connections: full lifecycles per second",
            "connections per second",
            &["connect, 100 B each way, close".to_string()],
            &conns,
        )?;
    }
    let memory = vec![(
        "synack",
        vec![
            report.value("scale_bytes_per_conn", "synack", None),
            report.value("scale_bytes_per_time_wait", "synack", None),
        ],
    )];
    if ran(&memory) {
        bars(
            &dir.join("memory.svg"),
            "scale: memory per connection (counting allocator)",
            "bytes",
            &[
                "established, idle".to_string(),
                "TIME_WAIT entry".to_string(),
            ],
            &memory,
        )?;
    }
    let concurrency: Vec<u32> = crate::http::FULL
        .concurrency
        .iter()
        .copied()
        .filter(|&c| {
            ["synack", "linux"].iter().any(|s| {
                report
                    .http_value("http_requests", s, c, crate::http::BODIES[0])
                    .is_some()
            })
        })
        .collect();
    if !concurrency.is_empty() {
        let groups: Vec<String> = concurrency
            .iter()
            .map(|c| format!("{c} connections"))
            .collect();
        for (file, bench, body, title, unit) in [
            (
                "http.svg",
                "http_requests",
                crate::http::BODIES[0],
                "http: hyper, 64-byte answers (wrk, keep-alive)",
                "requests per second",
            ),
            (
                "http-bulk.svg",
                "http_throughput",
                crate::http::BODIES[1],
                "http: hyper, 100 KB answers (wrk, keep-alive)",
                "MB/s",
            ),
        ] {
            let series: Vec<(&str, Vec<Option<f64>>)> =
                [("synack over TUN", "synack"), ("Linux over veth", "linux")]
                    .into_iter()
                    .map(|(name, s)| {
                        (
                            name,
                            concurrency
                                .iter()
                                .map(|&c| report.http_value(bench, s, c, body))
                                .collect(),
                        )
                    })
                    .collect();
            bars(&dir.join(file), title, unit, &groups, &series)?;
        }
    }
    let points: Vec<(&str, u32)> = crate::relay::STREAMS
        .iter()
        .flat_map(|&p| crate::relay::DIRECTIONS.iter().map(move |&(d, _)| (d, p)))
        .collect();
    let relay: Vec<(&str, Vec<Option<f64>>)> = [
        ("direct path (kernel, veth)", "linux"),
        ("through synack relay", "synack"),
    ]
    .into_iter()
    .map(|(name, system)| {
        let values = points
            .iter()
            .map(|&(d, p)| {
                report
                    .results
                    .iter()
                    .find(|m| {
                        m.bench == "relay"
                            && m.system == system
                            && m.direction == Some(d)
                            && m.concurrency == Some(p)
                    })
                    .map(|m| m.value)
            })
            .collect();
        (name, values)
    })
    .collect();
    if ran(&relay) {
        let groups: Vec<String> = points
            .iter()
            .map(|(d, p)| format!("-P {p}, {}", d.replace('_', " ")))
            .collect();
        bars(
            &dir.join("relay.svg"),
            "relay: iperf3 through synack relay beside the direct path",
            "Gbit/s",
            &groups,
            &relay,
        )?;
    }
    Ok(())
}
