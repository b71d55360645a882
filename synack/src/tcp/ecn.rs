//! Explicit Congestion Notification (RFC 3168) for one connection, as Linux's `tcp_ecn`
//! settings have it: the negotiation on the handshake (6.1.1), which segments go out
//! ECN-capable (6.1.2 and Linux's tcp_ecn_send), and the receiver's echo of CE marks
//! with ECE until the sender's CWR (6.1.3, Linux's TCP_ECN_DEMAND_CWR). The sender's
//! congestion response to an ECE lives with loss recovery (`Recovery::Cwr` in input.rs).

use super::conn::Connection;
use super::output::Outgoing;
use crate::wire::{Ecn, TcpFlags, TcpRepr};

/// A connection's ECN state (Linux's `ecn_flags`), two bytes (the connection keeps
/// within its size budget): flags in `bits`, and the ECN field of the packet being
/// processed. The counters live in `ConnStats::ce_received` and
/// `Connection::ece_reductions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EcnState {
    bits: u8,
    /// The ECN field of the packet being processed, set by the stack before each segment.
    pub(crate) rx: Ecn,
}

/// ECN is in use (TCP_ECN_OK): from the SYN we send (`tcp_ecn = 1`) until a SYN-ACK
/// without it, or from a SYN that asks for it when we accept it.
const OK: u8 = 1;
/// A CE mark arrived: every ACK carries ECE until a segment with CWR does
/// (TCP_ECN_DEMAND_CWR).
const DEMAND_CWR: u8 = 2;
/// The window was reduced: the next new data segment carries CWR (TCP_ECN_QUEUE_CWR).
const QUEUE_CWR: u8 = 4;
/// An ECT or CE packet has arrived (TCP_ECN_SEEN).
const SEEN: u8 = 8;

impl EcnState {
    fn has(self, flag: u8) -> bool {
        self.bits & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }

    /// ECN is in use (in SYN_SENT: requested).
    pub(crate) fn ok(self) -> bool {
        self.has(OK)
    }

    pub(crate) fn set_ok(&mut self, on: bool) {
        self.set(OK, on);
    }

    /// The next new data segment is to carry CWR.
    pub(crate) fn set_queue_cwr(&mut self, on: bool) {
        self.set(QUEUE_CWR, on);
    }

    /// A passive open: ECN when `tcp_ecn` accepts it and the SYN asks for it with both
    /// ECE and CWR (RFC 3168 6.1.1), and is itself not ECN-capable (a SYN must be sent
    /// Not-ECT, RFC 3168 6.1.1; Linux's tcp_ecn_create_request).
    pub(crate) fn for_syn(tcp_ecn: u8, syn: &TcpRepr<'_>, rx: Ecn) -> EcnState {
        let mut state = EcnState::default();
        state.set_ok(tcp_ecn != 0 && syn.flags.ece() && syn.flags.cwr() && rx == Ecn::NotEct);
        state
    }
}

/// The ECN flags of our SYN or SYN-ACK when `ok` (ECN requested or accepted): a first
/// SYN asking for ECN carries ECE and CWR, a retransmitted one neither (Linux's
/// tcp_ecn_clear_syn with `tcp_ecn_fallback`: the first may have been dropped for
/// them); a SYN-ACK accepting it carries ECE.
pub(crate) fn ecn_flags(ok: bool, synack: bool, first: bool) -> TcpFlags {
    match (ok, synack) {
        (false, _) => TcpFlags::empty(),
        (true, true) => TcpFlags::ECE,
        (true, false) if first => TcpFlags::ECE | TcpFlags::CWR,
        (true, false) => TcpFlags::empty(),
    }
}

impl Connection {
    /// A SYN-ACK (or, in a simultaneous open, a SYN) arrived in SYN_SENT: ECN stays on
    /// only if it says yes: a SYN-ACK with ECE and without CWR (Linux's
    /// tcp_ecn_rcv_synack), a SYN with both (tcp_ecn_rcv_syn).
    pub(crate) fn ecn_on_syn_sent_reply(&mut self, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        let yes = if f.ack() {
            f.ece() && !f.cwr()
        } else {
            f.ece() && f.cwr()
        };
        let ok = self.ecn.ok() && yes;
        self.ecn.set_ok(ok);
    }

    /// Linux's tcp_ecn_send for a segment of the synchronized states: new data goes out
    /// ECT(0), with CWR when a reduction is queued; ACKs, FIN-only segments and
    /// retransmissions stay Not-ECT; every segment carries ECE while a CE mark waits for
    /// the peer's CWR.
    pub(crate) fn ecn_mark(&mut self, out: &mut Outgoing, new_data: bool) {
        if !self.ecn.ok() {
            return;
        }
        if new_data && !out.payload.is_empty() {
            out.ecn = Ecn::Ect0;
            if self.ecn.has(QUEUE_CWR) {
                self.ecn.set(QUEUE_CWR, false);
                out.flags |= TcpFlags::CWR;
            }
        }
        if self.ecn.has(DEMAND_CWR) {
            out.flags |= TcpFlags::ECE;
        }
    }

    /// RFC 3168 6.1.3 for an arriving segment of the synchronized states: CWR ends our
    /// echo (and its data is ACKed at once: the sender's window may be small); a data
    /// segment marked CE starts it and is ACKed at once (Linux's tcp_ecn_accept_cwr and
    /// __tcp_ecn_check_ce, with quick-ACK mode for two segments).
    pub(crate) fn ecn_on_data(&mut self, seg: &TcpRepr<'_>) {
        if !self.ecn.ok() {
            return;
        }
        if seg.flags.cwr() {
            self.ecn.set(DEMAND_CWR, false);
            if !seg.payload.is_empty() {
                self.ack_now = true;
            }
        }
        if seg.payload.is_empty() {
            return;
        }
        match self.ecn.rx {
            Ecn::NotEct => {
                // A path that stopped marking ECT: ACK quickly so as not to stall it.
                if self.ecn.has(SEEN) {
                    self.ecn_quick_ack();
                }
            }
            Ecn::Ce => {
                if !self.ecn.has(DEMAND_CWR) {
                    self.ecn_quick_ack();
                    self.ecn.set(DEMAND_CWR, true);
                }
                self.ecn.set(SEEN, true);
                self.stats.ce_received = self.stats.ce_received.wrapping_add(1);
            }
            Ecn::Ect0 | Ecn::Ect1 => self.ecn.set(SEEN, true),
        }
    }

    /// Linux's tcp_enter_quickack_mode(sk, 2): the next two segments are ACKed at once,
    /// and interactive mode is left.
    fn ecn_quick_ack(&mut self) {
        self.quick_acks = self.quick_acks.max(2.min(self.max_quick_acks.max(1)));
        self.pingpong = false;
    }
}
