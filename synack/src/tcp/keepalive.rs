//! Keepalive (RFC 1122 4.2.3.6, off unless asked for, as on Linux): after `idle` without
//! hearing from the peer, send a probe (an ACK carrying SND.UNA - 1, which the peer must
//! answer), every `interval`; after `probes` unanswered ones, the connection is dead:
//! abort it with a RST, as Linux does.

use super::conn::Connection;
use super::state::State;
pub use crate::config::Keepalive;
use crate::error::Error;
use crate::Instant;
use alloc::boxed::Box;

/// Keepalive state of a connection that has it on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepaliveState {
    pub(crate) settings: Keepalive,
    /// Probes sent since the peer was last heard.
    pub(crate) sent: u32,
    /// When it was turned on: as on Linux, the first probe waits the idle time from
    /// then even if the connection was already idle longer.
    pub(crate) armed_at: Instant,
}

impl Connection {
    /// Turn keepalive on (with these settings) or off.
    pub(crate) fn set_keepalive(&mut self, now: Instant, settings: Option<Keepalive>) {
        self.keepalive = settings.map(|settings| {
            Box::new(KeepaliveState {
                settings,
                sent: 0,
                armed_at: now,
            })
        });
    }

    /// The peer was heard from: silence starts again.
    pub(crate) fn keepalive_heard(&mut self, now: Instant) {
        self.last_heard = now;
        if let Some(k) = self.keepalive.as_mut() {
            k.sent = 0;
        }
    }

    /// When the next probe is due: only while the connection sits idle with nothing in
    /// flight, in ESTABLISHED or CLOSE_WAIT (data in flight has its own timer).
    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        let k = self.keepalive.as_deref()?;
        let idle_state = match &self.state {
            State::Established(s) => s.snd.una == s.snd.max,
            State::CloseWait(s) => s.snd.una == s.snd.max,
            _ => false,
        };
        if !idle_state {
            return None;
        }
        Some(self.last_heard.max(k.armed_at) + k.settings.idle + k.settings.interval * k.sent)
    }

    /// The keepalive timer fired: probe, or give up.
    pub(crate) fn on_keepalive_timer(&mut self, now: Instant) {
        let Some(k) = self.keepalive.as_deref().copied() else {
            return;
        };
        if self.keepalive_deadline().is_none_or(|d| d > now) {
            return;
        }
        if k.sent >= k.settings.probes {
            // RFC 1122 4.2.3.6: the peer is gone. Linux resets and reports ETIMEDOUT.
            self.queue_active_reset(now);
            self.terminate(now, "keepalive probes unanswered", Some(Error::TimedOut));
            return;
        }
        if let Some(kept) = self.keepalive.as_deref_mut() {
            kept.sent = k.sent + 1;
        }
        self.probe_due = true;
    }
}
