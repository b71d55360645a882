//! The scenarios themselves, one function each, in the order `synack demo --list` shows.

use std::net::SocketAddr;
use std::time::Duration;

use super::world::{World, CLIENT, SERVER};
use super::{Checks, Scenario, ScenarioOptions, ScenarioRun};
use crate::sim::Verdict;
use crate::trace::{RecordKind, Trace};
use crate::wire;
use crate::{ConnectionHandle, Error, Instant, TcpState, TcpState::*};

pub(super) static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "handshake-and-close",
        summary: "3-way handshake, a request and its answer, the client closes first",
        run: handshake_and_close,
    },
    Scenario {
        name: "server-closes-first",
        summary: "the same, with the server as active closer (either side may send the first FIN)",
        run: server_closes_first,
    },
    Scenario {
        name: "fast-open",
        summary: "TCP Fast Open (RFC 7413): a cookie first, then the request rides in the SYN, one round trip saved",
        run: fast_open,
    },
    Scenario {
        name: "simultaneous-open",
        summary: "both sides send SYN at once: SYN_SENT -> SYN_RECEIVED -> ESTABLISHED",
        run: simultaneous_open,
    },
    Scenario {
        name: "simultaneous-close",
        summary: "both sides close at once: FIN_WAIT_1 -> CLOSING -> TIME_WAIT",
        run: simultaneous_close,
    },
    Scenario {
        name: "syn-lost",
        summary: "the first SYN is lost; the retransmission after the 1 s RTO succeeds",
        run: syn_lost,
    },
    Scenario {
        name: "refused",
        summary: "connect to a port nobody listens on: RST, ConnectionRefused",
        run: refused,
    },
    Scenario {
        name: "fin-before-data",
        summary: "the FIN overtakes the last data segment; every byte is still delivered, then EOF",
        run: fin_before_data,
    },
    Scenario {
        name: "time-wait-late-segment",
        summary: "the last ACK is lost; the retransmitted FIN is re-ACKed in TIME_WAIT",
        run: time_wait_late_segment,
    },
    Scenario {
        name: "close-wait-leak",
        summary:
            "the server application never closes: CLOSE_WAIT forever, client FIN_WAIT_2 times out",
        run: close_wait_leak,
    },
    Scenario {
        name: "fin-wait-1-unreachable",
        summary:
            "the peer vanishes after the client closes: FIN retransmitted with backoff, then abort",
        run: fin_wait_1_unreachable,
    },
    Scenario {
        name: "fin-wait-2-timeout",
        summary: "the peer ACKs our FIN but never sends its own: FIN_WAIT_2 times out after 60 s",
        run: fin_wait_2_timeout,
    },
    Scenario {
        name: "port-reuse",
        summary: "a new connection reuses a 4-tuple; the new ISN keeps old delayed segments out",
        run: port_reuse,
    },
];

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nhello\n";
const WAIT: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(300);

/// Listen, connect, send the request, answer it. Returns (client conn, server conn).
fn open_and_exchange(
    w: &mut World,
    k: &mut Checks,
) -> Option<(ConnectionHandle, ConnectionHandle)> {
    let l = w.listen();
    let c = w.connect(World::server_addr());
    let s = w.accept(l, WAIT);
    let established = w.wait_established(CLIENT, c, WAIT);
    k.add(
        "handshake completes",
        s.is_some() && established,
        format!("client {:?}", w.stack(CLIENT).state(c)),
    );
    let s = s?;
    w.send_all(CLIENT, c, REQUEST).ok()?;
    let (req, _) = w.read(SERVER, s, REQUEST.len(), WAIT);
    w.send_all(SERVER, s, RESPONSE).ok()?;
    let (resp, _) = w.read(CLIENT, c, RESPONSE.len(), WAIT);
    k.add(
        "request and response arrive intact",
        req == REQUEST && resp == RESPONSE,
        format!(
            "{} of {} request bytes, {} of {} response bytes",
            req.len(),
            REQUEST.len(),
            resp.len(),
            RESPONSE.len()
        ),
    );
    Some((c, s))
}

/// True when `want` appears in `seen` in order (other states may come between).
fn passes_through(seen: &[TcpState], want: &[TcpState]) -> bool {
    let mut it = seen.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

fn path(states: &[TcpState]) -> String {
    states
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn check_path(k: &mut Checks, t: &Trace, host: usize, want: &[TcpState]) {
    let who = if host == CLIENT { "client" } else { "server" };
    let seen = t.states(host);
    k.add(
        &format!("{who}: {}", path(want)),
        passes_through(&seen, want),
        format!("saw {}", path(&seen)),
    );
}

fn settle(w: &mut World) -> bool {
    w.run_until(SETTLE, |w| {
        [CLIENT, SERVER]
            .iter()
            .all(|&h| w.stack(h).connection_count() == 0 && w.stack(h).time_wait_count() == 0)
    })
}

fn check_empty(k: &mut Checks, w: &mut World) {
    let empty = settle(w);
    k.add(
        "both stacks end with no connection and no TIME_WAIT entry",
        empty,
        format!("at {}", w.now()),
    );
}

/// How long `host` stayed in `state` the first time it entered it.
fn dwell(t: &Trace, host: usize, state: TcpState) -> Option<Duration> {
    let enter = t.entered(host, state, Instant::ZERO)?;
    let leave = t.records.iter().find_map(|r| match r.kind {
        RecordKind::State { from, .. } if r.host == host && from == state && r.at >= enter => {
            Some(r.at)
        }
        _ => None,
    })?;
    Some(leave - enter)
}

fn run(name: &'static str, w: &World, k: Checks, lesson: &'static str) -> ScenarioRun {
    ScenarioRun {
        name,
        trace: w.trace(),
        packets: w.net.log().to_vec(),
        checks: k.0,
        lesson,
    }
}

fn handshake_and_close(o: &ScenarioOptions) -> ScenarioRun {
    orderly_close(
        o,
        CLIENT,
        "handshake-and-close",
        "SYN, SYN-ACK, ACK open the connection; each side's ISN is random (RFC 6528) so segments of an \
         older connection on the same ports cannot be mistaken for this one. The client closes first: \
         FIN_WAIT_1, FIN_WAIT_2, then TIME_WAIT for 2*MSL so late segments die out; the server passes \
         through CLOSE_WAIT and LAST_ACK.",
    )
}

fn server_closes_first(o: &ScenarioOptions) -> ScenarioRun {
    orderly_close(
        o,
        SERVER,
        "server-closes-first",
        "Active close is a role, not a side: here the server sends the first FIN, so it is the server \
         that goes through FIN_WAIT_1/FIN_WAIT_2 and holds TIME_WAIT, while the client passes CLOSE_WAIT \
         and LAST_ACK.",
    )
}

/// Open, exchange a request and its answer, and close with `active` sending the first FIN.
fn orderly_close(
    o: &ScenarioOptions,
    active: usize,
    name: &'static str,
    lesson: &'static str,
) -> ScenarioRun {
    let passive = 1 - active;
    let who = |h: usize| if h == CLIENT { "client" } else { "server" };
    let mut w = World::new(o);
    let mut k = Checks::default();
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        let conn = |h: usize| if h == CLIENT { c } else { s };
        w.close(active, conn(active));
        let (_, eof) = w.read_to_end(passive, conn(passive), WAIT);
        k.add(
            &format!(
                "{} reads end-of-stream after the {}'s FIN",
                who(passive),
                who(active)
            ),
            eof,
            "",
        );
        w.close(passive, conn(passive));
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    let opened = |h: usize| if h == CLIENT { SynSent } else { SynReceived };
    check_path(
        &mut k,
        &t,
        active,
        &[opened(active), Established, FinWait1, TimeWait, Closed],
    );
    check_path(
        &mut k,
        &t,
        passive,
        &[opened(passive), Established, CloseWait, LastAck, Closed],
    );
    let tw = dwell(&t, active, TimeWait);
    k.add(
        &format!("{} waits 2*MSL (60 s) in TIME_WAIT", who(active)),
        tw.is_some_and(|d| d >= Duration::from_secs(60)),
        format!("{tw:?}"),
    );
    run(name, &w, k, lesson)
}

fn simultaneous_open(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let (ca, sa) = (
        SocketAddr::new(World::client_ip(), 5000),
        SocketAddr::new(World::server_ip(), 6000),
    );
    let now = w.now();
    let c = w
        .stack(CLIENT)
        .connect_from(now, ca, sa)
        .expect("client port 5000 is free");
    let s = w
        .stack(SERVER)
        .connect_from(now, sa, ca)
        .expect("server port 6000 is free");
    w.after_call();
    let both = w.wait_established(CLIENT, c, WAIT) && w.wait_established(SERVER, s, WAIT);
    k.add("both sides reach ESTABLISHED", both, "");
    if both {
        let _ = w.send_all(CLIENT, c, b"hello");
        let (got, _) = w.read(SERVER, s, 5, WAIT);
        k.add(
            "data flows over the simultaneously opened connection",
            got == b"hello",
            format!("{got:?}"),
        );
        w.close(CLIENT, c);
        let _ = w.read_to_end(SERVER, s, WAIT);
        w.close(SERVER, s);
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    check_path(&mut k, &t, CLIENT, &[SynSent, SynReceived, Established]);
    check_path(&mut k, &t, SERVER, &[SynSent, SynReceived, Established]);
    run(
        "simultaneous-open",
        &w,
        k,
        "When both ends send a SYN before seeing the other's, each answers the other's SYN with a SYN-ACK \
         from SYN_SENT, passes SYN_RECEIVED, and one connection results (RFC 9293 3.5, figure 7).",
    )
}

/// One Fast Open exchange from the client: connect with the request, read the answer,
/// both close. Returns (bytes the SYN carried, the server's state when it read the
/// request, the time from connect to the whole response, the response).
fn fast_open_exchange(
    w: &mut World,
    l: crate::ListenerHandle,
) -> Option<(usize, TcpState, Duration, Vec<u8>)> {
    let start = w.now();
    let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0);
    let (c, carried) = w
        .stack(CLIENT)
        .connect_fastopen(start, any, World::server_addr(), REQUEST)
        .ok()?;
    w.after_call();
    let s = w.accept(l, WAIT)?;
    if carried == 0 {
        // No cookie yet: the request goes once the handshake is done.
        w.wait_established(CLIENT, c, WAIT);
        w.send_all(CLIENT, c, REQUEST).ok()?;
    }
    let (req, _) = w.read(SERVER, s, REQUEST.len(), WAIT);
    let state = w.stack(SERVER).state(s).ok()?;
    if req != REQUEST {
        return None;
    }
    w.send_all(SERVER, s, RESPONSE).ok()?;
    let (resp, _) = w.read(CLIENT, c, RESPONSE.len(), WAIT);
    let took = w.now() - start;
    w.close(CLIENT, c);
    let _ = w.read_to_end(SERVER, s, WAIT);
    w.close(SERVER, s);
    Some((carried, state, took, resp))
}

fn fast_open(o: &ScenarioOptions) -> ScenarioRun {
    let config = crate::Config {
        delayed_ack: Duration::ZERO,
        tcp_nodelay: true,
        // Clients may send data in the SYN, listeners with a queue may take it.
        tcp_fastopen: crate::tcp::fastopen::CLIENT_ENABLE | crate::tcp::fastopen::SERVER_ENABLE,
        ..crate::Config::default()
    };
    let mut w = World::with_config(o, config);
    let mut k = Checks::default();
    let l = w.listen();
    let options = crate::ListenerOptions {
        fastopen_queue: Some(16),
        ..Default::default()
    };
    let _ = w.stack(SERVER).set_listener_options(l, options);
    w.note(
        CLIENT,
        "first connection: no cookie yet, the SYN asks for one",
    );
    let first = fast_open_exchange(&mut w, l);
    w.run_until(WAIT, |w| w.stack(CLIENT).connection_count() == 0);
    w.note(
        CLIENT,
        "second connection: the SYN carries the cookie and the request",
    );
    let second = fast_open_exchange(&mut w, l);
    check_empty(&mut k, &mut w);
    let (Some(first), Some(second)) = (first, second) else {
        k.add("both exchanges complete", false, "");
        return run("fast-open", &w, k, FAST_OPEN_LESSON);
    };
    k.add(
        "the first SYN asks for a cookie and carries no data",
        first.0 == 0,
        format!("{} bytes in the SYN", first.0),
    );
    k.add(
        "the second SYN carries the whole request",
        second.0 == REQUEST.len(),
        format!("{} of {} bytes in the SYN", second.0, REQUEST.len()),
    );
    k.add(
        "the server reads the request before the handshake completes",
        second.1 == SynReceived,
        format!("server in {} when it read it", second.1.name()),
    );
    k.add(
        "both responses arrive intact",
        first.3 == RESPONSE && second.3 == RESPONSE,
        "",
    );
    let rtt = 2 * o.delay;
    k.add(
        "the answer comes one round trip sooner",
        first.2 >= second.2 + rtt.mul_f64(0.9),
        format!("{:?} without a cookie, {:?} with it", first.2, second.2),
    );
    let t = w.trace();
    let syns: Vec<usize> = t
        .sent(CLIENT)
        .iter()
        .filter(|(_, s, _)| s.flags.syn())
        .map(|(_, s, _)| s.len as usize)
        .collect();
    k.add(
        "on the wire: a bare SYN, then a SYN with the request",
        syns == [0, REQUEST.len()],
        format!("client SYN payloads {syns:?}"),
    );
    run("fast-open", &w, k, FAST_OPEN_LESSON)
}

const FAST_OPEN_LESSON: &str = "The 3-way handshake costs a round trip before any data. TCP Fast Open \
     (RFC 7413) lets a client that has been here before put its request in the SYN: the first \
     connection asks for a cookie (a keyed hash of the client's address the server can check without \
     keeping state), the next presents it with the data. The server accepts the data, hands the \
     connection to the application in SYN_RECEIVED and answers at once, so the response arrives one \
     round trip sooner. A SYN whose data the server did not take is only a SYN: the data is sent again \
     after the handshake, so nothing is lost either way.";

fn simultaneous_close(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        let now = w.now();
        let _ = w.stack(CLIENT).close(now, c);
        let _ = w.stack(SERVER).close(now, s);
        w.after_call();
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    if o.loss_pct == 0.0 && o.reorder_pct == 0.0 {
        check_path(&mut k, &t, CLIENT, &[FinWait1, Closing, TimeWait, Closed]);
        check_path(&mut k, &t, SERVER, &[FinWait1, Closing, TimeWait, Closed]);
    } else {
        check_path(&mut k, &t, CLIENT, &[FinWait1, TimeWait, Closed]);
        check_path(&mut k, &t, SERVER, &[FinWait1, TimeWait, Closed]);
    }
    run(
        "simultaneous-close",
        &w,
        k,
        "Both FINs cross on the wire: each side gets the peer's FIN while still waiting for the ACK of its \
         own, enters CLOSING, and then TIME_WAIT when that ACK arrives. Both sides hold TIME_WAIT.",
    )
}

fn syn_lost(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let client = w.client;
    w.net.set_filter(move |m| {
        if m.from == client && m.index_on_link == 0 {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        w.close(CLIENT, c);
        let _ = w.read_to_end(SERVER, s, WAIT);
        w.close(SERVER, s);
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    let syns: Vec<Instant> = t
        .sent(CLIENT)
        .iter()
        .filter(|(_, s, _)| s.flags.syn())
        .map(|(at, _, _)| *at)
        .collect();
    let gap = syns.get(1).map(|b| *b - syns[0]);
    k.add(
        "the SYN is retransmitted after the initial RTO of 1 s",
        gap == Some(Duration::from_secs(1)),
        format!("SYNs at {syns:?}"),
    );
    run(
        "syn-lost",
        &w,
        k,
        "A lost SYN is recovered by the retransmission timer: with no RTT measured yet the RTO is 1 s \
         (RFC 6298), doubling on each further loss; Linux gives up after tcp_syn_retries (6) retries.",
    )
}

fn refused(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let c = w.connect(SocketAddr::new(World::server_ip(), 81));
    w.run_until(WAIT, |w| w.stack(CLIENT).state(c) == Ok(Closed));
    k.add(
        "connect() fails with ConnectionRefused",
        w.errors(CLIENT).contains(&Error::ConnectionRefused),
        format!("errors {:?}", w.errors(CLIENT)),
    );
    let t = w.trace();
    let syn = t
        .sent(CLIENT)
        .iter()
        .find(|(_, s, _)| s.flags.syn())
        .map(|(_, s, _)| s.seq);
    let rst = t
        .sent(SERVER)
        .iter()
        .find(|(_, s, _)| s.flags.rst())
        .map(|(_, s, _)| (s.flags, s.ack));
    k.add(
        "the server answers the SYN with RST,ACK acknowledging SEQ+1",
        matches!((syn, rst), (Some(seq), Some((f, ack))) if f.ack() && ack == seq.wrapping_add(1)),
        format!("SYN seq {syn:?}, RST {rst:?}"),
    );
    check_path(&mut k, &t, CLIENT, &[SynSent, Closed]);
    w.close(CLIENT, c);
    run(
        "refused",
        &w,
        k,
        "A SYN to a port with no listener is answered with a RST (RFC 9293 3.10.7.1); the client's \
         connect() fails at once with ConnectionRefused instead of waiting for a timeout.",
    )
}

fn fin_before_data(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let server = w.server;
    let hold = o.delay * 4;
    let mut held = false;
    w.net.set_filter(move |m| {
        let last_part = m.from == server
            && wire::parse_tcp_packet(m.bytes)
                .is_ok_and(|(_, t)| t.payload.windows(10).any(|x| x == b"part three"));
        if last_part && !held {
            held = true;
            Verdict::Delay(hold)
        } else {
            Verdict::Pass
        }
    });
    let parts: [&[u8]; 3] = [b"part one|", b"part two|", b"part three"];
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        for p in parts {
            let _ = w.send_all(SERVER, s, p);
            w.run_for(Duration::from_millis(1));
        }
        w.close(SERVER, s);
        let (got, eof) = w.read_to_end(CLIENT, c, WAIT);
        let want: Vec<u8> = RESPONSE
            .iter()
            .chain(parts.concat().iter())
            .copied()
            .skip(RESPONSE.len())
            .collect();
        k.add(
            "every byte is delivered, in order",
            got == want,
            format!("{:?}", String::from_utf8_lossy(&got)),
        );
        k.add("then end-of-stream", eof, "");
        w.close(CLIENT, c);
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    let arrival = |pred: &dyn Fn(&crate::trace::SegmentSummary) -> bool| {
        t.records.iter().find_map(|r| match &r.kind {
            RecordKind::Rx { seg, .. } if r.host == CLIENT && pred(seg) => Some(r.at),
            _ => None,
        })
    };
    let fin_at = arrival(&|s| s.flags.fin());
    let last_at = arrival(&|s| s.len == 10);
    // On a lossy path retransmissions may reorder things differently; the setup is only
    // guaranteed on the clean path.
    let clean = o.loss_pct == 0.0 && o.reorder_pct == 0.0;
    k.add(
        "the FIN arrived before the last data segment",
        !clean || matches!((fin_at, last_at), (Some(f), Some(d)) if f < d),
        format!("FIN at {fin_at:?}, last data at {last_at:?}"),
    );
    run(
        "fin-before-data",
        &w,
        k,
        "Segments can arrive out of order: here the FIN overtakes the last data. The receiver keeps the \
         FIN until the gap is filled (RFC 9293 3.10.7.4), delivers every byte, and only then reports \
         end-of-stream; closing on the early FIN would have lost data.",
    )
}

fn time_wait_late_segment(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let (client, server) = (w.client, w.server);
    let mut server_fin: Option<u32> = None;
    let mut dropped = false;
    w.net.set_filter(move |m| {
        let Ok((_, t)) = wire::parse_tcp_packet(m.bytes) else {
            return Verdict::Pass;
        };
        if m.from == server && t.flags.fin() {
            server_fin = Some(t.seq.get().wrapping_add(t.payload.len() as u32));
        }
        let last_ack = m.from == client && !dropped && t.payload.is_empty() && !t.flags.fin();
        if last_ack && server_fin.is_some_and(|f| t.ack.get() == f.wrapping_add(1)) {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Pass
    });
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        w.close(CLIENT, c);
        let _ = w.read_to_end(SERVER, s, WAIT);
        w.close(SERVER, s);
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    let fins: Vec<Instant> = t
        .sent(SERVER)
        .iter()
        .filter(|(_, s, _)| s.flags.fin())
        .map(|(at, _, _)| *at)
        .collect();
    k.add(
        "the server retransmits its FIN after the lost ACK",
        fins.len() >= 2,
        format!("FINs at {fins:?}"),
    );
    let enter = t.entered(CLIENT, TimeWait, Instant::ZERO);
    let closed = enter.and_then(|e| t.entered(CLIENT, Closed, e));
    let last_ack = t
        .sent(CLIENT)
        .iter()
        .filter(|(_, s, _)| s.flags.ack() && !s.flags.fin() && s.len == 0)
        .map(|(at, _, _)| *at)
        .next_back();
    k.add(
        "the retransmitted FIN is re-ACKed from TIME_WAIT",
        matches!((enter, last_ack), (Some(e), Some(a)) if a > e),
        format!("TIME_WAIT from {enter:?}, last ACK at {last_ack:?}"),
    );
    k.add(
        "TIME_WAIT restarts: it ends 2*MSL after the re-ACK",
        matches!((last_ack, closed), (Some(a), Some(c)) if c - a == Duration::from_secs(60)),
        format!("last ACK {last_ack:?}, CLOSED {closed:?}"),
    );
    check_path(&mut k, &t, SERVER, &[CloseWait, LastAck, Closed]);
    run(
        "time-wait-late-segment",
        &w,
        k,
        "TIME_WAIT exists for this: the client's last ACK was lost, so the server retransmits its FIN. \
         A client that had already forgotten the connection would answer with RST; in TIME_WAIT it \
         re-ACKs the FIN and starts its 2*MSL wait again, and the server closes cleanly.",
    )
}

fn close_wait_leak(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        w.close(CLIENT, c);
        let (_, eof) = w.read_to_end(SERVER, s, WAIT);
        k.add("the server application sees end-of-stream", eof, "");
        w.note(SERVER, "the server application never calls close()");
        w.run_for(Duration::from_secs(150));
        let state = w.stack(SERVER).state(s);
        k.add(
            "the server's socket is still in CLOSE_WAIT after 150 s",
            state == Ok(CloseWait),
            format!("{state:?}"),
        );
        let local = w.stack(CLIENT).connections();
        k.add(
            "the client's side is gone (CLOSED)",
            local.is_empty(),
            format!("{local:?}"),
        );
        w.note(
            SERVER,
            format!(
                "still CLOSE_WAIT at {}: only the application can end it",
                w.now()
            ),
        );
    }
    let t = w.trace();
    let fw2 = dwell(&t, CLIENT, FinWait2);
    k.add(
        "the client gives up FIN_WAIT_2 after tcp_fin_timeout (60 s)",
        fw2 == Some(Duration::from_secs(60)),
        format!("{fw2:?}"),
    );
    run(
        "close-wait-leak",
        &w,
        k,
        "CLOSE_WAIT means the peer has closed and the application has not. No timer ends it: an \
         application that never calls close() leaks one socket per connection, and enough of them \
         exhaust the server. The client, orphaned in FIN_WAIT_2, gives up after tcp_fin_timeout.",
    )
}

fn fin_wait_1_unreachable(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    if let Some((c, _s)) = open_and_exchange(&mut w, &mut k) {
        let (now, forever) = (w.now(), Instant::from_secs(1_000_000));
        let (client, server) = (w.client, w.server);
        w.net
            .link_config_mut(client, server)
            .down
            .push((now, forever));
        w.net
            .link_config_mut(server, client)
            .down
            .push((now, forever));
        w.note(CLIENT, "the server becomes unreachable");
        w.close(CLIENT, c);
        w.run_until(Duration::from_secs(600), |w| {
            w.stack(CLIENT).connection_count() == 0
        });
    }
    let t = w.trace();
    let fins: Vec<Instant> = t
        .sent(CLIENT)
        .iter()
        .filter(|(_, s, _)| s.flags.fin())
        .map(|(at, _, _)| *at)
        .collect();
    k.add(
        "the FIN is sent once, probed once (RFC 8985 tail loss probe), then retransmitted tcp_orphan_retries (8) times",
        fins.len() == 10,
        format!("{} FINs", fins.len()),
    );
    let gaps: Vec<Duration> = fins.windows(2).map(|p| p[1] - p[0]).collect();
    k.add(
        "after the probe, each retransmission waits twice as long as the one before",
        gaps.len() >= 3
            && gaps[0] <= gaps[1]
            && gaps[1..]
                .windows(2)
                .all(|g| g[1] == g[0] * 2 || g[1] == Duration::from_secs(120)),
        format!("{gaps:?}"),
    );
    let aborted = t.records.iter().any(|r| {
        matches!(r.kind, RecordKind::State { from: FinWait1, to: Closed, cause } if r.host == CLIENT && cause == "retransmissions exhausted")
    });
    k.add("the connection is aborted from FIN_WAIT_1", aborted, "");
    run(
        "fin-wait-1-unreachable",
        &w,
        k,
        "FIN_WAIT_1 that lasts means the FIN is not being acknowledged: the peer or the path is gone \
         (a firewall, a dead host). The FIN is probed once (a tail loss probe), then retransmitted \
         with exponential backoff and, for a connection the application has closed, given up \
         after tcp_orphan_retries.",
    )
}

fn fin_wait_2_timeout(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    if let Some((c, s)) = open_and_exchange(&mut w, &mut k) {
        w.close(CLIENT, c);
        w.note(SERVER, "the server application holds the connection open");
        w.run_for(Duration::from_secs(90));
        w.note(SERVER, "the server application finally closes");
        w.close(SERVER, s);
        w.run_until(WAIT, |w| w.stack(SERVER).connection_count() == 0);
        k.add(
            "the server's late FIN ends its connection",
            w.stack(SERVER).connection_count() == 0,
            "",
        );
    }
    let t = w.trace();
    let fw2 = dwell(&t, CLIENT, FinWait2);
    k.add(
        "FIN_WAIT_2 lasts tcp_fin_timeout (60 s)",
        fw2 == Some(Duration::from_secs(60)),
        format!("{fw2:?}"),
    );
    let rst = t.sent(CLIENT).iter().any(|(_, s, _)| s.flags.rst());
    k.add(
        "the server's late FIN meets no connection and is answered with RST",
        rst,
        "",
    );
    run(
        "fin-wait-2-timeout",
        &w,
        k,
        "FIN_WAIT_2 means our FIN was acknowledged but the peer's application has not closed. For a \
         connection our application already closed, tcp_fin_timeout (60 s) bounds the wait; when the \
         peer's FIN comes later, it meets no connection and gets a RST.",
    )
}

fn port_reuse(o: &ScenarioOptions) -> ScenarioRun {
    let mut w = World::new(o);
    let mut k = Checks::default();
    let client = w.client;
    let mut held = false;
    let hold = Duration::from_secs(2);
    w.net.set_filter(move |m| {
        let first_data = m.from == client
            && wire::parse_tcp_packet(m.bytes).is_ok_and(|(_, t)| t.payload == b"first");
        if first_data && !held {
            held = true;
            Verdict::Delay(hold)
        } else {
            Verdict::Pass
        }
    });
    let l = w.listen();
    let local = SocketAddr::new(World::client_ip(), 40000);
    let mut second_data = Vec::new();
    let now = w.now();
    let c1 = w
        .stack(CLIENT)
        .connect_from(now, local, World::server_addr())
        .expect("port 40000 is free");
    w.after_call();
    let s1 = w.accept(l, WAIT);
    if let Some(s1) = s1 {
        w.wait_established(CLIENT, c1, WAIT);
        let _ = w.send_all(CLIENT, c1, b"first");
        let (got1, _) = w.read(SERVER, s1, 5, WAIT);
        k.add(
            "the first connection gets its bytes (by retransmission)",
            got1 == b"first",
            format!("{got1:?}"),
        );
        w.close(SERVER, s1);
        let _ = w.read_to_end(CLIENT, c1, WAIT);
        w.close(CLIENT, c1);
        w.run_until(WAIT, |w| w.stack(CLIENT).connection_count() == 0);
        w.note(CLIENT, "the client reconnects from the same port 40000");
        let now = w.now();
        let c2 = w
            .stack(CLIENT)
            .connect_from(now, local, World::server_addr());
        w.after_call();
        if let (Ok(c2), Some(s2)) = (c2, w.accept(l, WAIT)) {
            w.wait_established(CLIENT, c2, WAIT);
            let _ = w.send_all(CLIENT, c2, b"second");
            // Keep the connection open while the old segment is still on its way.
            w.run_for(Duration::from_secs(3));
            second_data = w.read(SERVER, s2, 6, WAIT).0;
            w.close(CLIENT, c2);
            let _ = w.read_to_end(SERVER, s2, WAIT);
            w.close(SERVER, s2);
        }
    }
    check_empty(&mut k, &mut w);
    let t = w.trace();
    k.add(
        "the second stream holds only its own bytes",
        second_data == b"second",
        format!("{:?}", String::from_utf8_lossy(&second_data)),
    );
    let isns: Vec<u32> = t
        .sent(CLIENT)
        .iter()
        .filter(|(_, s, _)| s.flags.syn())
        .map(|(_, s, _)| s.seq)
        .collect();
    let above = isns.len() >= 2 && (isns[isns.len() - 1].wrapping_sub(isns[0]) as i32) > 5;
    k.add(
        "the new ISN lies above the old connection's sequence space",
        above,
        format!("client ISNs {isns:?}"),
    );
    // Rejected by PAWS (RFC 7323: its timestamp is older) or by the window test.
    let stats = w.stack(SERVER).stats();
    let (paws, window) = (stats.dropped("paws"), stats.dropped("not_acceptable"));
    k.add(
        "the delayed old segment is rejected by the new connection",
        paws + window >= 1,
        format!("{paws} dropped by PAWS, {window} outside the window"),
    );
    run(
        "port-reuse",
        &w,
        k,
        "Ports are reused, so a new connection can have the very 4-tuple of an old one. Because ISNs \
         come from a clock plus a keyed hash (RFC 6528), the new connection's sequence numbers start \
         above the old ones; a delayed segment of the old connection falls outside the new window (and, \
         with RFC 7323 timestamps, fails the PAWS test too) and is dropped instead of corrupting the \
         new stream. This is why the ISN is not zero.",
    )
}
