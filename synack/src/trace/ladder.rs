//! The terminal ladder diagram: two vertical time lines, one arrow per segment labelled
//! with flags, sequence and acknowledgment numbers (relative to each side's ISN), length
//! and window, lost segments stopping short, and each side's state written where it
//! changes, so a reader sees which segment caused which transition.

use std::fmt::Write;

use super::{RecordKind, SegmentKind, SegmentSummary, Trace};
use crate::Instant;

const TIME_W: usize = 10;
const SIDE_W: usize = 14;
const ARROW_W: usize = 66;
/// A pause longer than this between two lines is drawn as an elision.
const GAP_US: u64 = 2_000_000;

/// How to draw.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::{LinkConfig, Network};
/// # use synack::{Config, Instant, Stack, TcpState};
/// # fn host(addr: &str) -> Stack {
/// #     let mut stack = Stack::new(Config::deterministic(1));
/// #     stack.add_address(addr.parse().unwrap());
/// #     stack
/// # }
/// # let mut net: Network<Stack> = Network::new(7);
/// # let client = net.add_host("client", &["198.18.0.1".parse().unwrap()], host("198.18.0.1"));
/// # let server = net.add_host("server", &["198.18.0.2".parse().unwrap()], host("198.18.0.2"));
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// use synack::trace::ladder::{self, LadderOptions};
/// let mut options = LadderOptions::default();
/// options.absolute = true; // raw sequence numbers
/// let text = ladder::render(&trace, options);
/// assert!(text.contains("SYN"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct LadderOptions {
    /// ANSI colours (for a terminal; off when piped).
    pub color: bool,
    /// Absolute sequence numbers instead of numbers relative to each side's ISN.
    pub absolute: bool,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn pad_left(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{}{}", " ".repeat(w - n), s)
    }
}

fn ms(t: Instant) -> String {
    format!("{:.3}", t.as_micros() as f64 / 1000.0)
}

/// Render a two-host trace as a ladder diagram.
pub fn render(trace: &Trace, opts: LadderOptions) -> String {
    let paint = Paint { on: opts.color };
    let mut out = String::new();
    let name = |i: usize| trace.hosts.get(i).cloned().unwrap_or_default();
    let addr = |i: usize| {
        trace.records.iter().find_map(|r| match &r.kind {
            RecordKind::Tx { seg, .. } if r.host == i => Some(seg.src.to_string()),
            _ => None,
        })
    };
    // Names above the time lines, addresses below them.
    let head_w = TIME_W + 1 + SIDE_W;
    let left_w = head_w + if opts.color { 8 } else { 0 };
    let _ = writeln!(
        out,
        "{} │{}│ {}",
        pad_left(&paint.wrap("1", &name(0)), left_w),
        " ".repeat(ARROW_W),
        paint.wrap("1", &name(1))
    );
    let _ = writeln!(
        out,
        "{} │{}│ {}",
        pad_left(&addr(0).unwrap_or_default(), head_w),
        " ".repeat(ARROW_W),
        addr(1).unwrap_or_default()
    );
    let numbering = if opts.absolute {
        "sequence numbers are absolute"
    } else {
        "seq/ack relative to each side's ISN (the ISN is shown on each SYN)"
    };
    let _ = writeln!(
        out,
        "{}  {}",
        " ".repeat(TIME_W),
        paint.wrap("2", numbering)
    );
    // Each side's ISN, updated when it sends a SYN (so a reused 4-tuple renumbers).
    let mut isn: [Option<u32>; 2] = [None, None];
    let mut last: Option<Instant> = None;
    for r in &trace.records {
        if r.host > 1 {
            continue;
        }
        let line = match &r.kind {
            RecordKind::Rx { .. } => continue,
            RecordKind::State { to, cause, .. } => {
                let label = paint.wrap("1", to.name());
                // The cause goes inside the ladder, next to the side it belongs to.
                let cause_text = format!("({cause})");
                if r.host == 0 {
                    let cause = paint.wrap("2", &pad_right_to(&format!(" {cause_text}"), ARROW_W));
                    format!(
                        "{} │{}│",
                        pad_left(&label, SIDE_W + if opts.color { 8 } else { 0 }),
                        cause
                    )
                } else {
                    let cause = paint.wrap("2", &pad_left(&format!("{cause_text} "), ARROW_W));
                    format!("{} │{}│ {}", " ".repeat(SIDE_W), cause, label)
                }
            }
            RecordKind::Note(text) => {
                format!(
                    "{} │{}│ {}",
                    " ".repeat(SIDE_W),
                    " ".repeat(ARROW_W),
                    paint.wrap("3", &format!("note: {text}"))
                )
            }
            RecordKind::Tx {
                seg, arrived, lost, ..
            } => {
                if seg.flags.syn() {
                    isn[r.host] = Some(seg.seq);
                }
                let label = label(seg, r.host, &isn, opts.absolute);
                let colour = match seg.kind() {
                    SegmentKind::Rst => "31",
                    SegmentKind::Syn => "32",
                    SegmentKind::Fin => "33",
                    SegmentKind::Data => "36",
                    SegmentKind::Ack => "0",
                };
                let arrow = arrow(&label, r.host == 0, lost.is_some());
                let arrow = if lost.is_some() {
                    paint.wrap("31", &arrow)
                } else {
                    paint.wrap(colour, &arrow)
                };
                let fate = match (arrived, lost) {
                    (_, Some(why)) => paint.wrap("31", &format!("✗ lost ({why})")),
                    (Some(at), None) => paint.wrap("2", &format!("arrives {}", ms(*at))),
                    (None, None) => String::new(),
                };
                format!("{} │{}│ {}", " ".repeat(SIDE_W), arrow, fate)
            }
        };
        if let Some(prev) = last {
            let gap = r.at.as_micros().saturating_sub(prev.as_micros());
            if gap > GAP_US {
                let text = format!("┆ {:.1} s later ┆", gap as f64 / 1e6);
                let _ = writeln!(
                    out,
                    "{} {} │{}│",
                    " ".repeat(TIME_W),
                    " ".repeat(SIDE_W),
                    pad_mid(&text, ARROW_W)
                );
            }
        }
        last = Some(r.at);
        let _ = writeln!(
            out,
            "{} {}",
            paint.wrap("2", &pad_left(&ms(r.at), TIME_W)),
            line
        );
    }
    out
}

fn pad_right_to(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{}{}", s, " ".repeat(w - n))
    }
}

fn pad_mid(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        return s.to_string();
    }
    let l = (w - n) / 2;
    format!("{}{}{}", " ".repeat(l), s, " ".repeat(w - n - l))
}

/// `S seq=0 win=65535 <mss 1460,TS,ws 3>` and friends.
fn label(seg: &SegmentSummary, host: usize, isn: &[Option<u32>; 2], absolute: bool) -> String {
    let own = isn[host];
    let peer = isn[1 - host];
    let rel = |v: u32, base: Option<u32>| match (absolute, base) {
        (false, Some(b)) => v.wrapping_sub(b),
        _ => v,
    };
    let mut s = format!("{} seq={}", seg.flags.short(), rel(seg.seq, own));
    if seg.flags.ack() {
        let _ = write!(s, " ack={}", rel(seg.ack, peer));
    }
    if seg.len > 0 {
        let _ = write!(s, " len={}", seg.len);
    }
    let _ = write!(s, " win={}", seg.win);
    if seg.flags.syn() {
        if !absolute {
            let _ = write!(s, " ISN={}", seg.seq);
        }
        if !seg.options.is_empty() {
            let _ = write!(s, " <{}>", seg.options);
        }
    }
    s
}

/// An arrow of exactly ARROW_W characters carrying `label`; a lost one stops short.
fn arrow(label: &str, rightwards: bool, lost: bool) -> String {
    let body = format!(" {label} ");
    let n = body.chars().count();
    let total = ARROW_W;
    if lost {
        let reach = (total * 2 / 3).max(n + 4);
        let dashes = reach.saturating_sub(n + 1);
        let s = if rightwards {
            format!(
                "{}{}{}✗",
                "─".repeat(2),
                body,
                "─".repeat(dashes.saturating_sub(2))
            )
        } else {
            format!(
                "✗{}{}{}",
                "─".repeat(dashes.saturating_sub(2)),
                body,
                "─".repeat(2)
            )
        };
        let len = s.chars().count();
        return if rightwards {
            format!("{}{}", s, " ".repeat(total.saturating_sub(len)))
        } else {
            format!("{}{}", " ".repeat(total.saturating_sub(len)), s)
        };
    }
    let dashes = total.saturating_sub(n + 1);
    if rightwards {
        format!(
            "{}{}{}▶",
            "─".repeat(2.min(dashes)),
            body,
            "─".repeat(dashes.saturating_sub(2))
        )
    } else {
        format!(
            "◀{}{}{}",
            "─".repeat(dashes.saturating_sub(2)),
            body,
            "─".repeat(2.min(dashes))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Record;
    use crate::wire::TcpFlags;
    use crate::TcpState;

    fn seg(flags: TcpFlags, seq: u32, ack: u32, len: u32, from_client: bool) -> SegmentSummary {
        let (c, s) = (
            "198.18.0.1:40000".parse().unwrap(),
            "198.18.0.2:80".parse().unwrap(),
        );
        SegmentSummary {
            src: if from_client { c } else { s },
            dst: if from_client { s } else { c },
            flags,
            seq,
            ack,
            len,
            win: 65535,
            options: if flags.syn() {
                "mss 1460".into()
            } else {
                String::new()
            },
        }
    }

    fn sample() -> Trace {
        let mut t = Trace::new(&["client", "server"]);
        let rec = |at: u64, host, kind| Record {
            at: Instant::from_millis(at),
            host,
            kind,
        };
        t.records = vec![
            rec(
                0,
                0,
                RecordKind::State {
                    from: TcpState::Closed,
                    to: TcpState::SynSent,
                    cause: "connect()",
                },
            ),
            rec(
                0,
                0,
                RecordKind::Tx {
                    seg: seg(TcpFlags::SYN, 1000, 0, 0, true),
                    to: 1,
                    arrived: None,
                    lost: Some("random loss"),
                },
            ),
            rec(
                1000,
                0,
                RecordKind::Tx {
                    seg: seg(TcpFlags::SYN, 1000, 0, 0, true),
                    to: 1,
                    arrived: Some(Instant::from_millis(1010)),
                    lost: None,
                },
            ),
            rec(
                1010,
                1,
                RecordKind::State {
                    from: TcpState::Listen,
                    to: TcpState::SynReceived,
                    cause: "rcv SYN",
                },
            ),
            rec(
                1010,
                1,
                RecordKind::Tx {
                    seg: seg(TcpFlags::SYN | TcpFlags::ACK, 5000, 1001, 0, false),
                    to: 0,
                    arrived: Some(Instant::from_millis(1020)),
                    lost: None,
                },
            ),
            rec(
                1020,
                0,
                RecordKind::Tx {
                    seg: seg(TcpFlags::ACK, 1001, 5001, 5, true),
                    to: 1,
                    arrived: Some(Instant::from_millis(1030)),
                    lost: None,
                },
            ),
        ];
        t
    }

    #[test]
    fn segments_are_numbered_relative_to_each_isn() {
        let s = render(&sample(), LadderOptions::default());
        assert!(s.contains("SA seq=0 ack=1 win=65535 ISN=5000"), "{s}");
        assert!(s.contains("A seq=1 ack=1 len=5"), "{s}");
        let abs = render(
            &sample(),
            LadderOptions {
                absolute: true,
                ..LadderOptions::default()
            },
        );
        assert!(abs.contains("SA seq=5000 ack=1001"), "{abs}");
    }

    #[test]
    fn a_lost_segment_stops_short_and_says_why() {
        let s = render(&sample(), LadderOptions::default());
        let line = s.lines().find(|l| l.contains("lost")).unwrap();
        assert!(line.contains('✗') && line.contains("random loss"), "{line}");
        assert!(!line.contains('▶'), "{line}");
    }

    #[test]
    fn states_are_written_on_their_own_side() {
        let s = render(&sample(), LadderOptions::default());
        let syn_sent = s.lines().find(|l| l.contains("SYN_SENT")).unwrap();
        let syn_rcvd = s.lines().find(|l| l.contains("SYN_RECEIVED")).unwrap();
        assert!(syn_sent.find("SYN_SENT").unwrap() < syn_sent.find('│').unwrap());
        assert!(syn_rcvd.find("SYN_RECEIVED").unwrap() > syn_rcvd.rfind('│').unwrap());
    }

    #[test]
    fn no_ansi_codes_without_color_and_some_with() {
        assert!(!render(&sample(), LadderOptions::default()).contains('\x1b'));
        assert!(render(
            &sample(),
            LadderOptions {
                color: true,
                absolute: false
            }
        )
        .contains("\x1b["));
    }

    #[test]
    fn long_pauses_are_elided_with_their_length() {
        let s = render(&sample(), LadderOptions::default());
        // 1000 ms between the lost SYN and its retransmission is below the elision threshold.
        assert!(!s.contains("later"));
        let mut t = sample();
        t.records.push(Record {
            at: Instant::from_secs(61),
            host: 0,
            kind: RecordKind::State {
                from: TcpState::TimeWait,
                to: TcpState::Closed,
                cause: "TIME_WAIT expired",
            },
        });
        assert!(render(&t, LadderOptions::default()).contains("60.0 s later"));
    }
}
