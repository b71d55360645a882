//! A trace as an SVG ladder diagram, like the pictures in TCP textbooks: the two hosts'
//! time lines run down the page, each segment is a slanted arrow from the moment it left
//! one side to the moment it reached the other, labelled with its flags, sequence and
//! acknowledgment numbers and length; a lost segment is an arrow that stops half way with
//! a cross; each state change is written beside its host's line at the moment it happens.
//! Time runs down by event, not to scale, and long quiet stretches are cut out and marked
//! with their length, as in the terminal ladder.

use std::fmt::Write as _;

use super::{RecordKind, SegmentKind, SegmentSummary, Trace};
use crate::Instant;

const WIDTH: f64 = 1150.0;
const LEFT_X: f64 = 250.0;
const RIGHT_X: f64 = 710.0;
const TOP: f64 = 90.0;
const ROW: f64 = 26.0;
/// Quiet stretches longer than this are cut out of the picture.
const GAP_US: u64 = 5_000_000;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The label of a segment, numbered relative to each side's ISN.
fn label(seg: &SegmentSummary, host: usize, isn: &[Option<u32>; 2]) -> String {
    let rel = |v: u32, base: Option<u32>| base.map_or(v, |b| v.wrapping_sub(b));
    let mut s = format!("{} seq={}", seg.flags.short(), rel(seg.seq, isn[host]));
    if seg.flags.ack() {
        let _ = write!(s, " ack={}", rel(seg.ack, isn[1 - host]));
    }
    if seg.len > 0 {
        let _ = write!(s, " len={}", seg.len);
    }
    s
}

fn colour(seg: &SegmentSummary) -> &'static str {
    match seg.kind() {
        SegmentKind::Rst => "#c0392b",
        SegmentKind::Syn => "#1e8449",
        SegmentKind::Fin => "#b9770e",
        SegmentKind::Data => "#1f618d",
        SegmentKind::Ack => "#424949",
    }
}

/// Render `trace` (its first two hosts) as a standalone SVG document.
pub fn render_svg(trace: &Trace) -> String {
    // Every record gets a row of its own (so things happening at one instant do not
    // overlap); an arrow runs from its send row to the row of its arrival.
    let records: Vec<&super::Record> = trace.records.iter().filter(|r| r.host <= 1).collect();
    let mut row_y: Vec<f64> = Vec::with_capacity(records.len());
    let mut cuts: Vec<(f64, f64)> = Vec::new();
    let mut y = TOP - ROW;
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            let gap = (r.at - records[i - 1].at).as_micros() as u64;
            if gap > GAP_US {
                cuts.push((y + ROW * 0.9, gap as f64 / 1e6));
                y += ROW * 1.5;
            }
        }
        // An arrival shares the time line with what follows it: half a row.
        y += if matches!(r.kind, RecordKind::Rx { .. }) {
            ROW * 0.5
        } else {
            ROW
        };
        row_y.push(y);
    }
    // Where the segment a record sent arrived: the row of its Rx record.
    let arrival_y = |i: usize| -> Option<f64> {
        let RecordKind::Tx {
            seg,
            to,
            arrived: Some(at),
            ..
        } = &records[i].kind
        else {
            return None;
        };
        records
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, r)| {
                r.host == *to
                    && r.at == *at
                    && matches!(&r.kind, RecordKind::Rx { seg: s, .. } if s == seg)
            })
            .map(|(j, _)| row_y[j])
    };
    let height = y + ROW * 2.0;
    let x_of = |host: usize| if host == 0 { LEFT_X } else { RIGHT_X };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="context-stroke"/></marker></defs>"##
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for host in 0..2 {
        let name = trace.hosts.get(host).cloned().unwrap_or_default();
        let addr = trace.records.iter().find_map(|r| match &r.kind {
            RecordKind::Tx { seg, .. } if r.host == host => Some(seg.src.to_string()),
            _ => None,
        });
        let x = x_of(host);
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            esc(&name)
        );
        let _ = writeln!(
            s,
            r##"<text x="{x}" y="50" text-anchor="middle" fill="#555">{}</text>"##,
            esc(&addr.unwrap_or_default())
        );
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="black" stroke-width="2"/>"#,
            TOP - 20.0,
            height - ROW
        );
    }
    for (cy, secs) in &cuts {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{cy}" text-anchor="end" fill="#777">┆ {secs:.1} s later ┆</text>"##,
            RIGHT_X - 10.0
        );
    }
    let mut isn: [Option<u32>; 2] = [None, None];
    for (i, r) in records.iter().enumerate() {
        let y = row_y[i];
        match &r.kind {
            RecordKind::Tx {
                seg, arrived, lost, ..
            } => {
                if seg.flags.syn() {
                    isn[r.host] = Some(seg.seq);
                }
                let (x1, x2) = (x_of(r.host), x_of(1 - r.host));
                let colour = colour(seg);
                let text = esc(&label(seg, r.host, &isn));
                match (arrived.and(arrival_y(i)), lost) {
                    (Some(y2), None) => {
                        let angle = (y2 - y).atan2(x2 - x1).to_degrees();
                        let angle = if x2 < x1 { angle - 180.0 } else { angle };
                        let (mx, my) = ((x1 + x2) / 2.0, (y + y2) / 2.0 - 4.0);
                        let _ = writeln!(
                            s,
                            r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="1.5" marker-end="url(#head)"/>"#
                        );
                        let _ = writeln!(
                            s,
                            r#"<text x="{mx}" y="{my}" text-anchor="middle" fill="{colour}" transform="rotate({angle:.2} {mx} {my})">{text}</text>"#
                        );
                    }
                    _ => {
                        // Lost: the arrow stops half way, with a cross and the reason.
                        let xm = (x1 + x2) / 2.0;
                        let ym = y + ROW * 0.6;
                        let why = lost.unwrap_or("not delivered");
                        let _ = writeln!(
                            s,
                            r##"<line x1="{x1}" y1="{y}" x2="{xm}" y2="{ym}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 3"/>"##
                        );
                        let _ = writeln!(
                            s,
                            r##"<text x="{xm}" y="{}" text-anchor="middle" fill="#c0392b" font-size="16">✗</text>"##,
                            ym + 5.0
                        );
                        let (lx, anchor) = if x1 < x2 {
                            (x1 + 10.0, "start")
                        } else {
                            (x1 - 10.0, "end")
                        };
                        let _ = writeln!(
                            s,
                            r##"<text x="{lx}" y="{}" text-anchor="{anchor}" fill="#c0392b">{text} (lost: {})</text>"##,
                            y - 4.0,
                            esc(why)
                        );
                    }
                }
            }
            RecordKind::State { to, .. } => {
                let (x, anchor) = if r.host == 0 {
                    (LEFT_X - 10.0, "end")
                } else {
                    (RIGHT_X + 10.0, "start")
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{x}" y="{}" text-anchor="{anchor}" font-weight="bold">{}</text>"#,
                    y + 4.0,
                    esc(to.name())
                );
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{}" text-anchor="{anchor}" fill="#999" font-size="10">{:.3} ms</text>"##,
                    x,
                    y + 16.0,
                    (r.at - Instant::ZERO).as_secs_f64() * 1000.0
                );
            }
            RecordKind::Note(text) => {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{}" fill="#7d3c98" font-style="italic">note: {}</text>"##,
                    RIGHT_X + 10.0,
                    y + 4.0,
                    esc(text)
                );
            }
            RecordKind::Rx { .. } => {}
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    #[test]
    fn a_run_becomes_an_svg_with_both_lines_every_segment_and_each_state() {
        let run = scenario::find("handshake-and-close")
            .unwrap()
            .run(&scenario::ScenarioOptions::default());
        let svg = render_svg(&run.trace);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let sent = run
            .trace
            .records
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::Tx { .. }) && r.host <= 1)
            .count();
        // Two time lines, then one arrow per segment.
        assert_eq!(svg.matches("<line").count(), 2 + sent);
        for state in [
            "SYN_SENT",
            "ESTABLISHED",
            "TIME_WAIT",
            "CLOSE_WAIT",
            "LAST_ACK",
        ] {
            assert!(svg.contains(&format!(">{state}<")), "{state}");
        }
        assert!(
            svg.contains("s later"),
            "the TIME_WAIT wait is cut out and marked"
        );
    }

    #[test]
    fn a_lost_segment_stops_half_way_with_a_cross() {
        let run = scenario::find("syn-lost")
            .unwrap()
            .run(&scenario::ScenarioOptions::default());
        let svg = render_svg(&run.trace);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("✗"));
        assert!(svg.contains("lost:"));
    }
}
