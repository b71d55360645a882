//! The eleven connection states of RFC 9293 section 3.3.2, named as `netstat` and `ss` name them.

use core::fmt;

/// A TCP connection state, as shown by `netstat`/`ss` and drawn in RFC 9293's state diagram.
///
/// # Examples
///
/// ```
/// use synack::TcpState;
/// assert_eq!(TcpState::FinWait2.name(), "FIN_WAIT_2");
/// assert_eq!(TcpState::ALL.len(), 11);
/// assert!(TcpState::Closed < TcpState::TimeWait); // RFC diagram order
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// No connection.
    Closed,
    /// Waiting for a connection request (a listener).
    Listen,
    /// Our SYN is out; waiting for the peer's SYN and ACK.
    SynSent,
    /// A SYN arrived and our SYN-ACK is out; waiting for its ACK.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// We sent FIN; waiting for its ACK (or the peer's FIN).
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent FIN; waiting for our application to close.
    CloseWait,
    /// Both sides sent FIN at once; waiting for the ACK of ours.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Both FINs are acknowledged; waiting 2*MSL for stray segments.
    TimeWait,
}

impl TcpState {
    /// Every state, in RFC diagram order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Closed,
        TcpState::Listen,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
    ];

    /// The name `netstat` prints: `SYN_SENT`, `FIN_WAIT_1`, ...
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynReceived => "SYN_RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }

    /// Parse a `netstat`-style name (as printed by [`TcpState::name`]).
    pub fn from_name(name: &str) -> Option<TcpState> {
        TcpState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// True in the states RFC 9293 calls synchronized (ESTABLISHED and later).
    pub const fn is_synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_name() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_name(s.name()), Some(s));
        }
        assert_eq!(TcpState::FinWait1.to_string(), "FIN_WAIT_1");
        assert_eq!(TcpState::from_name("BOGUS"), None);
    }
}
