//! The custom congestion controller of `examples/custom_cc.rs` on a simulated transfer:
//! the stack makes it per connection, tells it about ACKs, and sends no more than the
//! window it answers.

#[path = "../examples/custom_cc.rs"]
mod custom_cc;

use std::sync::atomic::Ordering;

#[test]
fn a_custom_fixed_window_controller_sets_the_window_of_a_simulated_transfer() {
    let out = custom_cc::transfer(2_000_000);
    let r = &out.result;
    assert!(r.completed && r.byte_exact, "{r:?}");
    assert_eq!(r.bytes_delivered, 2_000_000);
    // One controller for each end of the one connection, and the sender's saw the data
    // acknowledged.
    assert_eq!(out.seen.controllers.load(Ordering::Relaxed), 2);
    assert!(out.seen.acks.load(Ordering::Relaxed) > 100);
    assert!(out.seen.bytes_acked.load(Ordering::Relaxed) > 1_000_000);
    assert_eq!(out.seen.congestion_events.load(Ordering::Relaxed), 0);
    // cwnd is the fixed window in every sample once connected (1448-byte segments
    // with timestamps), never the built-in CUBIC's growing one.
    let cwnds: Vec<u32> = r
        .samples
        .iter()
        .map(|s| s.cwnd[0])
        .filter(|&c| c != 0)
        .collect();
    assert!(cwnds.len() >= 5, "{cwnds:?}");
    let window = custom_cc::SEGMENTS * 1448;
    assert!(cwnds.iter().all(|&c| c == window), "{cwnds:?}");
    // And the window is what limits the rate: about window / RTT, a tenth of the link.
    let ceiling = f64::from(window) * 8.0 / out.rtt.as_secs_f64();
    assert!(
        r.goodput_bps <= ceiling && r.goodput_bps > 0.85 * ceiling,
        "{:.2} Mbit/s against a window / RTT of {:.2} Mbit/s",
        r.goodput_bps / 1e6,
        ceiling / 1e6
    );
}
