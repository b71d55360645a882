//! Secret keys: unpredictable by default, repeatable only on request. Two stacks made
//! with `Config::default()` must not choose the same ISN, ephemeral port, SYN cookie or
//! timestamp offset; two made with `Config::deterministic(seed)` must repeat each other
//! exactly; and nothing done to a running stack's `Config` changes the keys it drew.

mod common;

use common::*;
use synack::{Config, Secrets};

/// The SYN the stack sends for a connection from `port` (0: an ephemeral one) to the
/// peer's port 80.
fn first_syn(h: &mut Harness, port: u16) -> Seg {
    let local = format!("{LOCAL_IP}:{port}").parse().unwrap();
    let peer = format!("{PEER_IP}:80").parse().unwrap();
    h.stack.connect_from(h.now, local, peer).unwrap();
    h.expect_one()
}

fn stack(config: Config) -> Harness {
    Harness::new(config)
}

/// The first `n` ephemeral ports a stack picks for connections to the peer's port 80.
fn ports(h: &mut Harness, n: usize) -> Vec<u16> {
    (0..n).map(|_| first_syn(h, 0).src.port()).collect()
}

#[test]
fn the_default_config_draws_random_secrets() {
    assert_eq!(Config::default().secrets, Secrets::Random);
}

#[test]
fn two_default_stacks_choose_different_isns_and_ports_for_the_same_four_tuple() {
    let config = Config::default();
    let (mut a, mut b) = (stack(config.clone()), stack(config));
    // Same 4-tuple, same instant: only the keys can tell the ISNs apart (equal with
    // probability 2^-32).
    let (sa, sb) = (first_syn(&mut a, 40000), first_syn(&mut b, 40000));
    assert_eq!((sa.src, sa.dst), (sb.src, sb.dst));
    assert_ne!(sa.seq, sb.seq, "two default stacks chose the same ISN");
    // The timestamp offsets have their own key: the TSvals differ too.
    let ts = |s: &Seg| s.options.timestamps.map(|t| t.tsval);
    assert_ne!(
        ts(&sa),
        ts(&sb),
        "two default stacks share a timestamp clock"
    );
    // Four ephemeral ports each: equal by chance with probability 28,232^-4.
    let (pa, pb) = (ports(&mut a, 4), ports(&mut b, 4));
    assert_ne!(pa, pb, "two default stacks picked the same ephemeral ports");
}

#[test]
fn deterministic_stacks_repeat_each_other_exactly() {
    let (mut a, mut b) = (
        stack(Config::deterministic(42)),
        stack(Config::deterministic(42)),
    );
    assert_eq!(first_syn(&mut a, 40000), first_syn(&mut b, 40000));
    assert_eq!(ports(&mut a, 8), ports(&mut b, 8));
    let mut c = stack(Config::deterministic(43));
    let mut d = stack(Config::deterministic(42));
    assert_ne!(first_syn(&mut c, 40000).seq, first_syn(&mut d, 40000).seq);
}

#[test]
fn a_running_stack_keeps_the_keys_it_drew_whatever_its_config_says_later() {
    // A random stack told afterwards to be deterministic does not take the keys anyone
    // can compute from that seed.
    let mut random = stack(Config::default());
    random.stack.config_mut().secrets = Secrets::Deterministic(5);
    let mut seeded = stack(Config::deterministic(5));
    assert_ne!(
        first_syn(&mut random, 40000).seq,
        first_syn(&mut seeded, 40000).seq
    );
    assert_ne!(ports(&mut random, 4), ports(&mut seeded, 4));
}

#[test]
fn syn_cookies_of_two_default_stacks_differ() {
    // tcp_syncookies = 2: every SYN is answered with a cookie, which only the keys vary.
    let config = {
        let mut config = Config::default();
        config.tcp_syncookies = 2;
        config
    };
    let cookie = |config: Config| {
        let mut h = Harness::new(config);
        h.stack.listen(h.local, 16).unwrap();
        h.inject_syn(1000);
        let synack = h.expect_one();
        assert!(synack.is(syn_ack()));
        synack.seq
    };
    assert_ne!(cookie(config.clone()), cookie(config));
}
