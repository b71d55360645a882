//! Each demo scenario is also a test: it must meet every expectation it checks itself,
//! with the default path and with a lossy one where its promise should survive loss.

use synack::scenario::{self, ScenarioOptions, ScenarioRun};

fn run(name: &str, opts: ScenarioOptions) -> ScenarioRun {
    let s = scenario::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let r = s.run(&opts);
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(
        failed.is_empty(),
        "{name} (seed {}): failed checks {failed:#?}",
        opts.seed
    );
    assert!(!r.checks.is_empty());
    r
}

fn default(name: &str) -> ScenarioRun {
    run(name, ScenarioOptions::default())
}

#[test]
fn handshake_and_close_goes_through_every_close_state_and_time_wait() {
    let r = default("handshake-and-close");
    assert!(
        r.check("client waits 2*MSL (60 s) in TIME_WAIT")
            .unwrap()
            .passed
    );
}

#[test]
fn server_closing_first_makes_the_server_hold_time_wait() {
    default("server-closes-first");
}

#[test]
fn fast_open_puts_the_second_request_in_the_syn_and_saves_a_round_trip() {
    let r = default("fast-open");
    assert!(
        r.check("the answer comes one round trip sooner")
            .unwrap()
            .passed
    );
}

#[test]
fn simultaneous_open_passes_syn_received_on_both_sides() {
    default("simultaneous-open");
}

#[test]
fn simultaneous_close_passes_closing_on_both_sides() {
    default("simultaneous-close");
}

#[test]
fn lost_syn_is_retransmitted_after_one_second() {
    default("syn-lost");
}

#[test]
fn connect_to_closed_port_is_refused_by_rst() {
    default("refused");
}

#[test]
fn fin_before_data_delivers_every_byte_then_eof() {
    default("fin-before-data");
}

#[test]
fn lost_last_ack_is_repeated_from_time_wait_which_restarts() {
    default("time-wait-late-segment");
}

#[test]
fn application_that_never_closes_stays_in_close_wait() {
    default("close-wait-leak");
}

#[test]
fn unreachable_peer_ends_fin_wait_1_after_orphan_retries() {
    default("fin-wait-1-unreachable");
}

#[test]
fn fin_wait_2_of_an_orphan_times_out_after_60_seconds() {
    default("fin-wait-2-timeout");
}

#[test]
fn reused_four_tuple_rejects_old_delayed_segments() {
    default("port-reuse");
}

#[test]
fn scenarios_whose_promise_survives_loss_pass_on_a_lossy_path() {
    for name in [
        "handshake-and-close",
        "server-closes-first",
        "fin-before-data",
        "close-wait-leak",
        "fin-wait-1-unreachable",
    ] {
        for seed in 1..=5 {
            run(name, {
                let mut options = ScenarioOptions::default();
                options.seed = seed;
                options.loss_pct = 5.0;
                options.reorder_pct = 5.0;
                options
            });
        }
    }
}

#[test]
fn same_seed_same_run() {
    let a = default("handshake-and-close");
    let b = default("handshake-and-close");
    assert_eq!(a.trace, b.trace);
}
