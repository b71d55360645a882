//! Buffers that follow use. The receive buffer grows to what the application reads per
//! round trip (Linux's `tcp_rcv_space_adjust`, "dynamic right-sizing"), the send buffer
//! to twice the congestion window (`tcp_sndbuf_expand`), each up to its sysctl's maximum
//! (`tcp_rmem[2]`, `tcp_wmem[2]`). Neither grows once the application sized it itself
//! (`SO_RCVBUF`/`SO_SNDBUF` lock it, as on Linux) nor above `tcp_mem`'s pressure mark.

use super::conn::{Connection, MemoryLevel};
use crate::{Config, Instant};

/// The receive side's measure: what the application read in the current round trip.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RcvSpace {
    /// Bytes read per round trip at the last measure (Linux's `rcvq_space.space`).
    space: u32,
    /// Bytes the application read in all, wrapping (Linux's `copied_seq`).
    read: u32,
    /// When the current measure began, and `read` then.
    start: Option<(Instant, u32)>,
}

/// Linux's TCP_INIT_CWND: the first measure expects ten segments a round trip.
const INIT_SEGMENTS: u32 = 10;

/// The receive buffer a measure asks for: twice what was read in a round trip plus 16
/// segments, and twice the growth again when reading is speeding up (tcp_rcv_space_adjust).
pub(crate) fn rcv_target(copied: u32, space: u32, mss: u32) -> u64 {
    let (copied, space) = (u64::from(copied), u64::from(space.max(1)));
    let mut win = 2 * copied + 16 * u64::from(mss);
    if copied > space {
        win += 2 * (win * (copied - space) / space);
    }
    win
}

impl Connection {
    /// The application read `n` bytes at `now`: once a round trip has passed since the
    /// measure began, grow the receive buffer to what this round trip's reading needs.
    pub(crate) fn on_app_read(&mut self, now: Instant, n: usize, cfg: &Config) {
        let mss = u32::from(self.local_mss);
        let rs = &mut self.rcv_space;
        rs.read = rs.read.wrapping_add(n as u32);
        let Some((start, at)) = rs.start else {
            rs.space = (self.rcv_cap as u32).min(INIT_SEGMENTS * mss);
            rs.start = Some((now, rs.read.wrapping_sub(n as u32)));
            return;
        };
        // The round trip: our estimate (from the handshake at least); none yet, no measure.
        let Some(rtt) = self.state.snd().and_then(|s| s.rtt.srtt()) else {
            return;
        };
        if now.checked_sub(rtt).is_none_or(|t| t < start) {
            return;
        }
        let copied = rs.read.wrapping_sub(at);
        if copied > rs.space {
            if cfg.tcp_moderate_rcvbuf && !self.rcv_locked && self.memory == MemoryLevel::Normal {
                let target = rcv_target(copied, rs.space, mss).min(cfg.tcp_rmem_max as u64);
                if target as usize > self.rcv_cap {
                    self.rcv_cap = (target as usize).min(super::ring::MAX_STORAGE);
                }
            }
            self.rcv_space.space = copied;
        }
        self.rcv_space.start = Some((now, self.rcv_space.read));
    }

    /// An ACK moved the window: let the send buffer hold twice the congestion window, so
    /// that a full window is in flight while the application queues the next.
    /// `nospace`: a writer had run out of room before this segment (Linux's SOCK_NOSPACE).
    pub(crate) fn expand_sndbuf(&mut self, now: crate::Instant, cfg: &Config, nospace: bool) {
        if self.snd_locked || self.memory != MemoryLevel::Normal {
            return;
        }
        let Some(snd) = self.state.snd() else {
            return;
        };
        let cwnd = snd.cwnd() as usize;
        let want = match cfg.send_accounting {
            crate::SendAccounting::Bytes => 2 * cwnd,
            crate::SendAccounting::LinuxSkb => {
                // Linux's tcp_check_space: only once a writer ran out of room
                // (SOCK_NOSPACE); tcp_should_expand_sndbuf: not while the data the ACK
                // lets go fills the congestion window (the check runs after the push).
                if !nospace {
                    return;
                }
                if self.push_fills_cwnd(now) {
                    return;
                }
                let mss = self.neg.snd_mss.max(1);
                // Linux's tcp_sndbuf_expand: two skbs' truesize (a power-of-two head for
                // the MSS and MAX_TCP_HEADER, plus the skb_shared_info and the sk_buff)
                // per segment of the larger of the initial and congestion windows.
                let mss_clamp = mss + if self.neg.timestamps { 12 } else { 0 };
                let per_mss = (mss_clamp + 320 + 320).next_power_of_two() + 256;
                let segs = (cwnd / mss).max(INIT_SEGMENTS as usize);
                2 * segs * per_mss
            }
        }
        .min(cfg.tcp_wmem_max);
        if want > self.snd_buf.capacity() {
            self.snd_buf.set_capacity(want);
            if self.want_writable && self.write_space() && !self.shut_wr {
                self.want_writable = false;
                self.events.push(super::conn::ConnEvent::Writable);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receive_target_is_twice_a_round_trip_plus_room_and_more_when_speeding_up() {
        // Steady reading: 2 x copied + 16 segments.
        assert_eq!(rcv_target(100_000, 100_000, 1460), 200_000 + 16 * 1460);
        // Reading doubled since the last measure: the growth counts twice again.
        let steady = 2 * 200_000 + 16 * 1460;
        assert_eq!(rcv_target(200_000, 100_000, 1460), steady + 2 * steady);
    }
}
