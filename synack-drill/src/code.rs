//! `%{ }%` code blocks: Python run with the connection's `TCP_INFO`, as packetdrill runs
//! them. Each block sees `tcpi_*` variables taken at its time (Linux's names, units and
//! numbering, from synack's [`ConnectionInfo`]) and the symbols packetdrill defines
//! (`TCP_ESTABLISHED`, `TCP_CA_Open`, `TCPI_OPT_SACK`, ...); an assertion that fails, or a
//! `tcpi_*` field synack does not provide, fails the script at the block's line.

use std::fmt::Write as _;
use std::process::Command;

use synack::{ConnectionInfo, TcpState};

/// Linux's `tcpi_state` numbering (include/net/tcp_states.h).
fn linux_state(s: TcpState) -> u8 {
    match s {
        TcpState::Established => 1,
        TcpState::SynSent => 2,
        TcpState::SynReceived => 3,
        TcpState::FinWait1 => 4,
        TcpState::FinWait2 => 5,
        TcpState::TimeWait => 6,
        TcpState::Closed => 7,
        TcpState::CloseWait => 8,
        TcpState::LastAck => 9,
        TcpState::Listen => 10,
        TcpState::Closing => 11,
    }
}

/// The symbols packetdrill defines for every block (its code.c `write_symbols`).
const SYMBOLS: &str = "\
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
TCP_CA_Open = 0
TCP_CA_Disorder = 1
TCP_CA_CWR = 2
TCP_CA_Recovery = 3
TCP_CA_Loss = 4
TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
TCPI_OPT_SYN_DATA = 32
TCPI_OPT_USEC_TS = 64
TCPI_OPT_TFO_CHILD = 128
TCP_INFINITE_SSTHRESH = 2147483647
";

/// Linux's ssthresh before any reduction (TCP_INFINITE_SSTHRESH).
const INFINITE_SSTHRESH: u64 = 0x7fff_ffff;

/// The `tcpi_*` fields synack can give, as Python assignments (see [`linux_tcp_info`]).
pub fn tcpi_vars(i: &ConnectionInfo) -> String {
    let mut out = String::new();
    for (name, value) in linux_tcp_info(i) {
        let _ = writeln!(out, "{name} = {value}");
    }
    out
}

/// The fields of Linux's `struct tcp_info` that synack's [`ConnectionInfo`] gives, by
/// name, in Linux's units and numbering: states as `tcpi_state`, windows and queues in
/// segments where Linux counts packets, times in microseconds. The packetdrill library
/// fills a `struct tcp_info` from the same list.
pub fn linux_tcp_info(i: &ConnectionInfo) -> [(&'static str, u64); 35] {
    let mss = i.snd_mss.max(1) as u64;
    let us = |d: Option<core::time::Duration>| d.map_or(0, |d| d.as_micros() as u64);
    let in_flight = match (i.snd_nxt, i.snd_una) {
        (Some(nxt), Some(una)) => u64::from(nxt.wrapping_sub(una)),
        _ => 0,
    };
    // Before any reduction synack's ssthresh is "as large as can be" (in bytes): Linux
    // shows TCP_INFINITE_SSTHRESH then.
    let ssthresh = match i.ssthresh {
        Some(s) if u64::from(s) < INFINITE_SSTHRESH => u64::from(s) / mss,
        _ => INFINITE_SSTHRESH,
    };
    let mut options = 0;
    if i.timestamps {
        options |= 1;
    }
    if i.sack {
        options |= 2;
    }
    if i.wscale != (0, 0) {
        options |= 4;
    }
    if i.ecn {
        options |= 8;
    }
    if i.syn_data_acked {
        options |= 32;
    }
    [
        ("tcpi_state", u64::from(linux_state(i.state))),
        ("tcpi_options", options),
        ("tcpi_snd_wscale", u64::from(i.wscale.0)),
        ("tcpi_rcv_wscale", u64::from(i.wscale.1)),
        ("tcpi_rto", us(i.rto)),
        ("tcpi_backoff", u64::from(i.backoff)),
        ("tcpi_snd_mss", mss),
        ("tcpi_unacked", in_flight.div_ceil(mss)),
        ("tcpi_sacked", u64::from(i.sacked_bytes) / mss),
        ("tcpi_rtt", us(i.srtt)),
        ("tcpi_rttvar", us(i.rttvar)),
        ("tcpi_snd_ssthresh", ssthresh),
        ("tcpi_snd_cwnd", i.cwnd.map_or(0, |c| u64::from(c) / mss)),
        ("tcpi_total_retrans", i.retransmits),
        ("tcpi_bytes_acked", i.bytes_acked),
        ("tcpi_bytes_received", i.bytes_received),
        ("tcpi_segs_out", i.segs_out),
        ("tcpi_segs_in", i.segs_in),
        (
            "tcpi_notsent_bytes",
            (i.send_queue as u64).saturating_sub(in_flight),
        ),
        ("tcpi_bytes_sent", i.bytes_sent),
        ("tcpi_snd_wnd", u64::from(i.snd_wnd.unwrap_or(0))),
        ("tcpi_rcv_wnd", u64::from(i.rcv_wnd.unwrap_or(0))),
        ("tcpi_ca_state", u64::from(i.ca_state)),
        ("tcpi_lost", u64::from(i.lost_bytes).div_ceil(mss)),
        ("tcpi_rcv_mss", u64::from(i.rcv_mss)),
        ("tcpi_advmss", u64::from(i.adv_mss)),
        ("tcpi_reordering", u64::from(i.reordering)),
        ("tcpi_reord_seen", u64::from(i.reord_seen)),
        ("tcpi_retrans", u64::from(i.retrans_bytes).div_ceil(mss)),
        ("tcpi_dsack_dups", u64::from(i.dsack_dups)),
        ("tcpi_delivered", i.delivered),
        ("tcpi_busy_time", i.busy_time.as_micros() as u64),
        ("tcpi_rwnd_limited", i.rwnd_limited.as_micros() as u64),
        ("tcpi_sndbuf_limited", i.sndbuf_limited.as_micros() as u64),
        (
            "tcpi_last_data_recv",
            i.since_data_in.map_or(0, |d| d.as_millis() as u64),
        ),
    ]
}

/// Run one block with python3: `info` is [`tcpi_vars`] of the socket under test (None
/// when there is no connection). Err says what failed, in Python's words.
pub fn run_block(info: Option<&str>, code: &str) -> Result<(), String> {
    run_blocks(&[(info, code)]).map_err(|(_, message)| message)
}

/// Run a script's blocks in order, each in a namespace of its own, in one python3
/// process (starting Python is what costs): Err gives the index of the first block that
/// failed and what failed, in Python's words.
pub fn run_blocks(blocks: &[(Option<&str>, &str)]) -> Result<(), (usize, String)> {
    if blocks.is_empty() {
        return Ok(());
    }
    // Each block's source is passed as hex, so no quoting can break the program.
    let hex = |s: &str| {
        s.bytes().fold(String::new(), |mut h, b| {
            let _ = write!(h, "{b:02x}");
            h
        })
    };
    let mut program = String::from("import sys, traceback\nblocks = [\n");
    for (info, code) in blocks {
        // (A blank line last: a block may end with a line continuation.)
        let source = format!("{SYMBOLS}{}\n{code}\n\n", info.unwrap_or(""));
        let _ = writeln!(program, "    '{}',", hex(&source));
    }
    program.push_str(
        "]\n\
         for i, b in enumerate(blocks):\n\
         \x20   try:\n\
         \x20       exec(compile(bytes.fromhex(b).decode(), '<block>', 'exec'), {})\n\
         \x20   except BaseException as e:\n\
         \x20       sys.stderr.write('%d\\n%s' % (i, traceback.format_exception_only(type(e), e)[-1]))\n\
         \x20       sys.exit(1)\n",
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&program)
        .output()
        .map_err(|e| {
            let why = format!(
                "code block: cannot run python3 ({e}); install python3 to run %{{ }}% blocks"
            );
            (0, why)
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stderr.lines().filter(|l| !l.trim().is_empty());
    let index = lines
        .next()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|i| *i < blocks.len());
    let Some(index) = index else {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err((0, last.unwrap_or("python3 failed").trim().to_string()));
    };
    let last = lines
        .next_back()
        .unwrap_or("python3 failed")
        .trim()
        .to_string();
    let (info, code) = blocks[index];
    Err((index, why_failed(info, code, last)))
}

/// A failed block's message: its first line and Python's last words.
fn why_failed(info: Option<&str>, code: &str, last: String) -> String {
    let why = if last.starts_with("NameError") && info.is_none() {
        format!("{last} (no connection to take TCP_INFO from)")
    } else if last.starts_with("NameError") && last.contains("tcpi_") {
        format!("{last} (synack's TCP_INFO does not provide this field)")
    } else {
        last
    };
    let first = code.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    format!("code block `{}`: {why}", first.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_true_assertion_passes_and_a_false_one_fails_with_pythons_words() {
        let vars = "tcpi_snd_cwnd = 10\n";
        assert_eq!(run_block(Some(vars), "assert tcpi_snd_cwnd == 10"), Ok(()));
        let e = run_block(Some(vars), "assert tcpi_snd_cwnd == 4, tcpi_snd_cwnd").unwrap_err();
        assert!(e.contains("AssertionError: 10"), "{e}");
        let e = run_block(Some(vars), "assert tcpi_ca_state == TCP_CA_CWR").unwrap_err();
        assert!(e.contains("does not provide"), "{e}");
        assert_eq!(
            run_block(Some(vars), "if True:\n    x = TCP_CA_Loss\nassert x == 4"),
            Ok(())
        );
    }

    #[test]
    fn blocks_run_in_one_process_and_the_first_failing_one_is_named() {
        let vars = "tcpi_snd_cwnd = 10\n";
        // Each block has its own namespace: a name set in one is unknown in the next.
        let blocks = [
            (Some(vars), "x = 1\nassert tcpi_snd_cwnd == 10"),
            (Some(vars), "assert 'x' not in dir()"),
            (Some(vars), "assert tcpi_snd_cwnd == 4, tcpi_snd_cwnd"),
            (Some(vars), "assert False, 'never reached'"),
        ];
        let (i, e) = run_blocks(&blocks).unwrap_err();
        assert_eq!(i, 2);
        assert!(e.contains("AssertionError: 10"), "{e}");
        // A block ending in a line continuation runs, as under python3 -c.
        assert_eq!(run_blocks(&[(Some(vars), "y = 1;\\")]), Ok(()));
        assert_eq!(run_blocks(&[]), Ok(()));
    }
}
