//! Where a sending connection's time goes, as Linux's "chrono" statistics (tcp_output.c
//! `tcp_chrono_start`/`tcp_chrono_stop`, reported as `tcpi_busy_time`,
//! `tcpi_rwnd_limited` and `tcpi_sndbuf_limited`): while data waits or is in flight the
//! connection is busy, and the busy time is split by what limits it, the peer's window or
//! the send buffer. One limit is charged at a time, the one of highest priority.
//!
//! Also home to the connection's other rarely needed state ([`Rare`]), kept out of line so
//! that `Connection` stays within its size budget.

use core::time::Duration;

use crate::Instant;

/// What the connection's time is being charged to (Linux's `enum tcp_chrono`, in its
/// order of priority).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Limit {
    /// Nothing to send and nothing in flight.
    #[default]
    Idle,
    /// Sending, or waiting for ACKs of what was sent.
    Busy,
    /// New data waits because the peer's window has no room for it.
    RwndLimited,
    /// The application waits because the send buffer is full.
    SndbufLimited,
}

/// The time charged to each [`Limit`] so far, and the one being charged now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Chrono {
    current: Limit,
    since: Option<Instant>,
    /// Busy, rwnd-limited, sndbuf-limited.
    spent: [Duration; 3],
}

impl Chrono {
    /// Charge from `now` on to `limit` (Linux's `tcp_chrono_set`).
    pub(crate) fn set(&mut self, now: Instant, limit: Limit) {
        if limit == self.current {
            return;
        }
        self.close(now);
        self.current = limit;
        self.since = Some(now);
    }

    fn close(&mut self, now: Instant) {
        if let (Some(i), Some(since)) = (Self::slot(self.current), self.since) {
            self.spent[i] += now.saturating_duration_since(since);
        }
    }

    fn slot(limit: Limit) -> Option<usize> {
        match limit {
            Limit::Idle => None,
            Limit::Busy => Some(0),
            Limit::RwndLimited => Some(1),
            Limit::SndbufLimited => Some(2),
        }
    }

    /// (busy in all, rwnd-limited, sndbuf-limited) up to `now`, as `tcp_get_info_chrono_stats`
    /// reports them: the busy time includes the limited times.
    pub(crate) fn totals(&self, now: Instant) -> (Duration, Duration, Duration) {
        let mut c = *self;
        c.close(now);
        let [busy, rwnd, sndbuf] = c.spent;
        (busy + rwnd + sndbuf, rwnd, sndbuf)
    }
}

/// State few connections need, allocated when first needed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rare {
    /// Where the sending time went (allocated once the connection first has data to send).
    pub(crate) chrono: Chrono,
    /// When we last answered an unacceptable segment (rate limit against ACK loops).
    pub(crate) last_oow_ack: Option<Instant>,
    /// TCP Fast Open, client: bytes of our SYN's data the SYN-ACK acknowledged (one
    /// packet for `tcpi_delivered`, as Linux counts the SYN-data skb).
    pub(crate) syn_data_acked: u32,
    /// TCP_SYNCNT: SYN retransmissions before giving up (0: `Config::tcp_syn_retries`).
    pub(crate) syn_retries: u8,
    /// Urgent data (RFC 9293 3.8.5), once used (`urgent.rs`): boxed again, as few of
    /// even these connections use it.
    pub(crate) urgent: Option<alloc::boxed::Box<super::urgent::Urgent>>,
}

/// The [`Limit`] a connection's state calls for: idle with nothing queued or in flight,
/// else the send buffer if the application waits for room, else the peer's window if new
/// data waits for it, else busy. (Linux reaches the same by starting and stopping each
/// limit where it is noticed; here the connection's state is read after every change.)
pub(crate) fn limit_for(queued: bool, app_waits: bool, rwnd_limited: bool) -> Limit {
    if !queued {
        Limit::Idle
    } else if app_waits {
        Limit::SndbufLimited
    } else if rwnd_limited {
        Limit::RwndLimited
    } else {
        Limit::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn limited_time_counts_as_busy_too_and_idle_time_not_at_all() {
        let mut c = Chrono::default();
        c.set(at(100), Limit::RwndLimited);
        c.set(at(300), Limit::Busy);
        c.set(at(330), Limit::Idle);
        c.set(at(1000), Limit::SndbufLimited);
        let (busy, rwnd, sndbuf) = c.totals(at(1050));
        assert_eq!(rwnd, Duration::from_millis(200));
        assert_eq!(sndbuf, Duration::from_millis(50));
        assert_eq!(busy, Duration::from_millis(280));
    }

    #[test]
    fn the_highest_priority_condition_is_the_one_charged() {
        assert_eq!(limit_for(false, true, true), Limit::Idle);
        assert_eq!(limit_for(true, true, true), Limit::SndbufLimited);
        assert_eq!(limit_for(true, false, true), Limit::RwndLimited);
        assert_eq!(limit_for(true, false, false), Limit::Busy);
    }
}
