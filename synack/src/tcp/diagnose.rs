//! Lifecycle diagnostics: the states a connection gets stuck in, and what each means.
//! CLOSE_WAIT that lasts means the application has not closed; FIN_WAIT_1 with the FIN
//! retransmitted means the peer or the path is gone; FIN_WAIT_2 that lasts means the
//! peer has not sent its FIN. The stack raises one warning per connection and state
//! ([`crate::Event::Warning`], also through `tracing`), and `Stack::snapshot` shows the
//! same words beside each socket.

use alloc::format;
use alloc::string::String;
use core::net::SocketAddr;
use core::time::Duration;

use super::TcpState;
use crate::config::Config;

/// When a connection deserves a warning: its state, how long it has been there, and
/// (FIN_WAIT_1) how many times its FIN went again; None while all is well.
pub(crate) fn diagnose(
    state: TcpState,
    age: Duration,
    retransmits: u32,
    local: SocketAddr,
    remote: SocketAddr,
    cfg: &Config,
) -> Option<String> {
    match state {
        TcpState::CloseWait if age >= cfg.warn_close_wait => Some(format!(
            "CLOSE_WAIT for {:.0} s on port {} (peer {remote}): the peer has closed and the application has not called close()",
            age.as_secs_f64(),
            local.port()
        )),
        TcpState::FinWait1 if retransmits >= cfg.warn_fin_wait_1_retransmits => Some(format!(
            "FIN_WAIT_1 on port {}: the FIN to {remote} went {retransmits} more times unanswered: the peer or the path may be gone",
            local.port()
        )),
        TcpState::FinWait2 if age >= cfg.warn_fin_wait_2 => Some(format!(
            "FIN_WAIT_2 for {:.0} s on port {} (peer {remote}): our FIN was acknowledged but the peer has not sent its own",
            age.as_secs_f64(),
            local.port()
        )),
        _ => None,
    }
}

/// The warning when the TIME_WAIT table nears `tcp_max_tw_buckets`.
pub(crate) fn time_wait_pressure(entries: usize, cfg: &Config) -> Option<String> {
    let limit = cfg.tcp_max_tw_buckets;
    (limit > 0 && entries * 10 >= limit * 9).then(|| {
        format!(
            "{entries} connections in TIME_WAIT, {}% of tcp_max_tw_buckets ({limit}): new ones will be closed at once beyond it",
            entries * 100 / limit
        )
    })
}
