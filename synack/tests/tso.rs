//! Segmentation offload (`Config::tso_max`): new data leaves as one super-segment per
//! Linux TSO packet, and the device that cuts it puts on the wire exactly the segments
//! the stack sends without offload. Two runs of one transfer, with and without, their
//! super-segments cut as a kernel's GSO does: the same segments, in the same order.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use synack::wire::{self, TcpFlags};
use synack::{Config, Instant, Stack};

const CLIENT: &str = "198.18.0.1";
const SERVER: &str = "198.18.0.2";

/// What a segment on the wire says (the checksums are checked by parsing it).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    at: Instant,
    seq: u32,
    ack: u32,
    flags: String,
    window: u16,
    len: usize,
    tsval: Option<u32>,
}

/// Cut a super-segment into segments of `size` payload bytes, as GSO does: the same
/// headers with the sequence number moved on, PSH (and FIN) only on the last piece.
fn cut(packet: &[u8], size: usize) -> Vec<Vec<u8>> {
    let (ip, tcp) = wire::parse_tcp_packet(packet).expect("a valid super-segment");
    let pieces: Vec<&[u8]> = tcp.payload.chunks(size).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut seg = tcp.clone();
            seg.seq = tcp.seq + (i * size) as u32;
            seg.payload = piece;
            if i != last {
                seg.flags = TcpFlags::from_bits(
                    tcp.flags.bits() & !(TcpFlags::PSH.bits() | TcpFlags::FIN.bits()),
                );
            }
            wire::emit_tcp_packet(ip.src, ip.dst, 64, &seg).unwrap()
        })
        .collect()
}

/// 3 MB from client to server over a 2 ms round trip (`lossy`: the first transmission
/// of one segment in 41 is lost); every segment the server gets, and how many packets
/// the client's stack handed out.
fn transfer(tso_max: usize, lossy: bool) -> (Vec<Seen>, usize, usize) {
    let config = |seed| {
        let mut config = Config::deterministic(seed);
        config.tso_max = tso_max;
        config
    };
    let (mut a, mut b) = (Stack::new(config(1)), Stack::new(config(2)));
    a.add_address(CLIENT.parse().unwrap());
    b.add_address(SERVER.parse().unwrap());
    let server = SocketAddr::new(SERVER.parse::<IpAddr>().unwrap(), 80);
    let listener = b.listen(server, 16).unwrap();
    let mut now = Instant::from_secs(1);
    let c = a.connect(now, server).unwrap();
    let mut s = None;
    let (mut seen, mut packets, mut supers) = (Vec::new(), 0, 0);
    let (mut to_b, mut to_a): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let total = 3_000_000usize;
    let (mut sent, mut got) = (0, 0);
    let data = vec![0x42u8; 64 * 1024];
    let mut dropped = std::collections::HashSet::new();
    for _ in 0..20_000 {
        now += Duration::from_millis(1);
        for p in to_b.drain(..) {
            let (_, t) = wire::parse_tcp_packet(&p).unwrap();
            // One segment in 83 lost (once each). One in 41 was a loss every 30 ms at this
            // 2 ms RTT: shorter than the 1/32 s after which CUBIC (Linux's integer form)
            // recomputes its Reno-friendly growth, so cwnd stayed at 3 segments and
            // there was nothing for offload to join.
            if lossy
                && !t.payload.is_empty()
                && (t.seq.get() / 1448) % 83 == 7
                && dropped.insert(t.seq.get())
            {
                continue;
            }
            seen.push(Seen {
                at: now,
                seq: t.seq.get(),
                ack: t.ack.get(),
                flags: t.flags.short(),
                window: t.window,
                len: t.payload.len(),
                tsval: t.options.timestamps.map(|ts| ts.tsval),
            });
            b.receive(now, &p);
        }
        for p in to_a.drain(..) {
            a.receive(now, &p);
        }
        for st in [&mut a, &mut b] {
            if st.poll_timeout().is_some_and(|t| t <= now) {
                st.on_timeout(now);
            }
        }
        if s.is_none() {
            s = b.accept(listener).ok();
        }
        while sent < total {
            match a.send(now, c, &data[..(total - sent).min(data.len())]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        if let Some(s) = s {
            while let Ok(n) = b.recv_with(now, s, |x, y| x.len() + y.len()) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        let mut buf = vec![0u8; a.max_packet_size()];
        while let Some(t) = a.poll_transmit_into(now, &mut buf) {
            packets += 1;
            match t.segment_size {
                Some(size) => {
                    supers += 1;
                    to_b.extend(cut(&buf[..t.len], usize::from(size)));
                }
                None => to_b.push(buf[..t.len].to_vec()),
            }
        }
        while let Some(p) = b.poll_transmit(now) {
            to_a.push(p);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if got == total {
            break;
        }
    }
    assert_eq!(got, total, "the transfer completes (tso_max {tso_max})");
    (seen, packets, supers)
}

#[test]
fn super_segments_cut_by_the_device_are_the_segments_sent_without_offload() {
    for lossy in [false, true] {
        let (plain, plain_packets, none) = transfer(0, lossy);
        let (cut, tso_packets, supers) = transfer(65535, lossy);
        println!(
            "lossy {lossy}: {} segments; without offload {plain_packets} packets, with it {tso_packets} ({supers} super-segments)",
            plain.len()
        );
        assert_eq!(none, 0, "no super-segment without offload");
        assert!(
            supers > 0 && tso_packets < plain_packets / 2,
            "offload made few packets"
        );
        assert_eq!(plain.len(), cut.len(), "lossy {lossy}");
        for (i, (p, c)) in plain.iter().zip(&cut).enumerate() {
            assert_eq!(p, c, "lossy {lossy}: segment {i} differs");
        }
    }
}
