//! A congestion controller of one's own, plugged into synack: a fixed window of
//! `SEGMENTS` segments that never grows and never backs off, run on a simulated
//! 100 Mbit/s path with a 20 ms RTT (`synack::sim`, a virtual clock: it takes well under
//! a second). It prints what the controller saw and what the window allowed:
//! about `SEGMENTS * MSS / RTT`, far below the link, however long the transfer runs.
//!
//! ```text
//! cargo run --release --example custom_cc
//! ```
//!
//! `synack/tests/custom_cc.rs` runs it and checks that the window stayed fixed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synack::sim::transfer::{run, TransferResult, TransferSpec};
use synack::tcp::{AckEvent, CongestionController, CustomController};
use synack::{CongestionControl, Instant};

/// The window, in segments.
pub const SEGMENTS: u32 = 20;

/// What the controllers of a run saw, shared by every connection they were made for.
#[derive(Debug, Default)]
pub struct Seen {
    /// Controllers made (one per connection: the client's and the server's).
    pub controllers: AtomicU64,
    /// ACKs that delivered new data.
    pub acks: AtomicU64,
    /// Bytes those ACKs delivered.
    pub bytes_acked: AtomicU64,
    /// Losses and timeouts reported.
    pub congestion_events: AtomicU64,
}

/// A fixed congestion window: `SEGMENTS` segments whatever happens. Not a good idea on
/// a shared path (it never backs off), but it shows the stack obeys the controller.
#[derive(Debug)]
pub struct FixedWindow {
    mss: u32,
    seen: Arc<Seen>,
}

impl FixedWindow {
    fn window(&self) -> u32 {
        SEGMENTS * self.mss
    }
}

impl CongestionController for FixedWindow {
    fn cwnd(&self) -> u32 {
        self.window()
    }

    fn ssthresh(&self) -> u32 {
        // Equal to cwnd: never in slow start.
        self.window()
    }

    fn set_cwnd(&mut self, _cwnd: u32) {
        // The stack's loss recovery would move the window; a fixed window stays.
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        self.seen.acks.fetch_add(1, Ordering::Relaxed);
        self.seen
            .bytes_acked
            .fetch_add(u64::from(ack.bytes_acked), Ordering::Relaxed);
    }

    fn on_congestion(&mut self, _now: Instant, _flight: u32) {
        self.seen.congestion_events.fetch_add(1, Ordering::Relaxed);
    }

    fn on_rto(&mut self, _now: Instant, _flight: u32, _during_recovery: bool) {
        self.seen.congestion_events.fetch_add(1, Ordering::Relaxed);
    }

    fn on_mss_change(&mut self, mss: u32) {
        self.mss = mss;
    }
}

/// What [`transfer`] reports.
#[derive(Debug)]
pub struct Outcome {
    /// The simulated transfer's result (cwnd samples included).
    pub result: TransferResult,
    /// What the controllers saw.
    pub seen: Arc<Seen>,
    /// The path's round-trip time.
    pub rtt: Duration,
}

/// Send `bytes` over the simulated path with the fixed-window controller.
pub fn transfer(bytes: u64) -> Outcome {
    let seen = Arc::new(Seen::default());
    let for_factory = Arc::clone(&seen);
    let fixed = CustomController::new("fixed", move |mss| {
        for_factory.controllers.fetch_add(1, Ordering::Relaxed);
        Box::new(FixedWindow {
            mss,
            seen: Arc::clone(&for_factory),
        })
    });
    let mut spec = TransferSpec::default();
    spec.bytes = bytes;
    spec.bandwidth_bps = 100_000_000;
    spec.rtt = Duration::from_millis(20);
    spec.cc = CongestionControl::Custom(fixed);
    let result = run(&spec, Duration::from_millis(100), |_| {});
    Outcome {
        result,
        seen,
        rtt: spec.rtt,
    }
}

#[allow(dead_code)] // `main` is unused when a test includes this file.
fn main() {
    let out = transfer(5_000_000);
    let r = &out.result;
    let cwnds: Vec<u32> = r.samples.iter().map(|s| s.cwnd[0]).collect();
    let window = cwnds.iter().copied().max().unwrap_or(0);
    println!(
        "fixed window of {SEGMENTS} segments on 100 Mbit/s, RTT {:?}",
        out.rtt
    );
    println!(
        "  controllers made: {}, ACKs seen: {}, bytes acknowledged: {}, congestion events: {}",
        out.seen.controllers.load(Ordering::Relaxed),
        out.seen.acks.load(Ordering::Relaxed),
        out.seen.bytes_acked.load(Ordering::Relaxed),
        out.seen.congestion_events.load(Ordering::Relaxed),
    );
    println!(
        "  cwnd in every sample: {} bytes ({} samples)",
        window,
        cwnds.len()
    );
    println!(
        "  {} bytes in {:.2} s: {:.1} Mbit/s (window / RTT = {:.1} Mbit/s), byte-exact: {}",
        r.bytes_delivered,
        r.duration.as_secs_f64(),
        r.goodput_bps / 1e6,
        f64::from(window) * 8.0 / out.rtt.as_secs_f64() / 1e6,
        r.byte_exact
    );
}
