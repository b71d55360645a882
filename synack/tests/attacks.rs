//! Blind in-window attacks (RFC 5961) against an established connection, in the
//! simulator's terms: an off-path attacker who knows the 4-tuple but not the sequence
//! numbers sends forged RSTs, SYNs and data with random sequence and acknowledgment
//! numbers. The connection must survive unless a RST lands exactly on RCV.NXT, the
//! answers (challenge ACKs) must stay within their rate limit, and no forged byte may
//! reach the application.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synack::wire::TcpFlags;
use synack::TcpState::Established;

#[test]
fn a_million_forged_segments_do_not_break_an_established_connection() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    let rcv_nxt = 1001u32;
    let snd_nxt = iss.wrapping_add(1);
    let mut rng = ChaCha8Rng::seed_from_u64(5961);
    let (mut rsts, mut exact) = (0u64, 0u64);
    let forged = 1_000_000;
    for i in 0..forged {
        let seq: u32 = rng.random();
        let ack: u32 = rng.random();
        match i % 3 {
            0 => {
                rsts += 1;
                exact += u64::from(seq == rcv_nxt);
                h.inject(TcpFlags::RST, seq, 0, 0, &[]);
            }
            1 => h.inject(TcpFlags::SYN, seq, 0, 65535, &[]),
            _ => h.inject(ack_flag(), seq, ack, 65535, b"forged"),
        }
        // The stack answers some of them (challenge ACKs); drop what it sends.
        if i % 1000 == 0 {
            h.outputs();
            h.advance(std::time::Duration::from_millis(1));
        }
    }
    h.outputs();
    // RFC 5961: only a RST exactly at RCV.NXT resets; with random numbers the chance is
    // one in 2^32 per RST, so the expected number of hits is rsts / 2^32.
    let expected_hits = rsts as f64 / 4_294_967_296.0;
    assert!(expected_hits < 0.001, "{expected_hits}");
    assert_eq!(exact, 0, "the seed drew an exact RST: pick another");
    assert_eq!(h.state(), Some(Established), "the connection survives");
    // No forged byte reached the application.
    h.stack
        .recv(h.now, c, &mut [0u8; 64])
        .expect_err("nothing to read");
    // The challenge ACKs (to SYNs and in-window RSTs) stayed within their limit: one per
    // 500 ms per connection over the one simulated second the attack lasted.
    let stats = h.stack.stats();
    assert!(
        (1..=3).contains(&stats.challenge_acks),
        "{} challenge ACKs",
        stats.challenge_acks
    );
    assert!(stats.dropped("challenge_ack_rate_limited") > 300_000);
    // The connection still works: our data goes out and is acknowledged.
    h.stack.send(h.now, c, b"still here").unwrap();
    let seg = h.expect_one();
    assert_eq!(
        (seg.seq, seg.payload.as_slice()),
        (snd_nxt, &b"still here"[..])
    );
    assert!(
        h.stack.stats().total_dropped() > 0,
        "forged segments are counted as drops"
    );
}

fn ack_flag() -> TcpFlags {
    TcpFlags::ACK | TcpFlags::PSH
}

/// RFC 6528 and RFC 6056: an off-path attacker who sees our earlier connections cannot
/// guess the next one's ISN or port.
#[test]
fn isns_and_ephemeral_ports_are_not_guessable_from_earlier_ones() {
    let mut h = Harness::plain();
    let mut syns = Vec::new();
    for _ in 0..1000 {
        h.stack.connect(h.now, h.peer).unwrap();
        let syn = h.expect_one();
        syns.push((syn.src.port(), syn.seq));
        h.advance(std::time::Duration::from_millis(1));
    }
    // The ISN clock ticks 250 per millisecond; an attacker who knows that and the
    // previous ISN would guess previous + 250. Count guesses within 2^20 of the truth:
    // with keyed hashes per 4-tuple, about 1000 * 2^21 / 2^32 = 0.5 are expected.
    let close_isn = syns
        .windows(2)
        .filter(|w| {
            let guess = w[0].1.wrapping_add(250);
            (w[1].1.wrapping_sub(guess) as i32).unsigned_abs() < 1 << 20
        })
        .count();
    assert!(close_isn < 5, "{close_isn} ISNs were near the guess");
    let close_port = syns
        .windows(2)
        .filter(|w| w[1].0.abs_diff(w[0].0) <= 8)
        .count();
    assert!(
        close_port < 5,
        "{close_port} ports were within 8 of the previous"
    );
}
