//! `%{ }%` code blocks: Python run with the connection's `TCP_INFO`, as packetdrill runs
//! them. Each block sees `tcpi_*` variables taken at its time (Linux's names, units and
//! numbering, from synack's [`ConnectionInfo`]) and the symbols packetdrill defines
//! (`TCP_ESTABLISHED`, `TCP_CA_Open`, `TCPI_OPT_SACK`, ...); an assertion that fails, or a
//! `tcpi_*` field synack does not provide, fails the script at the block's line.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

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

/// The Python side of [`run_blocks`]: one line in per script (its blocks, each in hex,
/// so that no quoting can break them), one line out: `ok`, or `fail`, the index of the
/// first block that failed and Python's last words in hex. What blocks print goes to
/// /dev/null, not into the answers.
const WORKER: &str = "\
import os, sys, traceback
answers = os.fdopen(os.dup(1), 'w')
sys.stdout = open(os.devnull, 'w')
for line in sys.stdin:
    answer = 'ok'
    for i, h in enumerate(line.split()):
        try:
            exec(compile(bytes.fromhex(h).decode(), '<block>', 'exec'), {})
        except BaseException as e:
            words = traceback.format_exception_only(type(e), e)[-1]
            answer = 'fail %d %s' % (i, words.encode().hex())
            break
    answers.write(answer + '\\n')
    answers.flush()
";

/// A python3 kept running for the blocks of every script this process runs: starting
/// Python is what costs, and a corpus run has many scripts with blocks.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start() -> std::io::Result<Worker> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(WORKER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(std::io::Error::other("python3 without pipes"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// One script's blocks, hex-encoded and space-separated: the worker's answer line.
    fn ask(&mut self, line: &str) -> std::io::Result<String> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            return Err(std::io::Error::other(
                "python3 exited while running a block",
            ));
        }
        Ok(answer)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static PYTHON: Mutex<Option<Worker>> = Mutex::new(None);

/// Run a script's blocks in order, each in a namespace of its own, in the python3 this
/// process keeps for them: Err gives the index of the first block that failed and what
/// failed, in Python's words.
pub fn run_blocks(blocks: &[(Option<&str>, &str)]) -> Result<(), (usize, String)> {
    if blocks.is_empty() {
        return Ok(());
    }
    let mut line = String::new();
    for (info, code) in blocks {
        // (A blank line last: a block may end with a line continuation.)
        let source = format!("{SYMBOLS}{}\n{code}\n\n", info.unwrap_or(""));
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&hex(source.as_bytes()));
    }
    let mut python = PYTHON.lock().unwrap_or_else(|e| e.into_inner());
    let cannot = |e: std::io::Error| {
        let why =
            format!("code block: cannot run python3 ({e}); install python3 to run %{{ }}% blocks");
        (0, why)
    };
    if python.is_none() {
        *python = Some(Worker::start().map_err(cannot)?);
    }
    let answer = match python.as_mut().map(|w| w.ask(&line)) {
        Some(Ok(answer)) => answer,
        Some(Err(e)) => {
            // A block that ended Python (os._exit, a crash): the next script gets a new one.
            *python = None;
            return Err((0, format!("code block: {e}")));
        }
        None => return Err((0, "code block: no python3".to_string())),
    };
    let answer = answer.trim_end();
    if answer == "ok" {
        return Ok(());
    }
    let mut parts = answer.splitn(3, ' ').skip(1);
    let index = parts
        .next()
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i < blocks.len());
    let words = parts.next().and_then(unhex);
    let (Some(index), Some(words)) = (index, words) else {
        return Err((0, format!("code block: python3 answered `{answer}`")));
    };
    let (info, code) = blocks[index];
    Err((index, why_failed(info, code, words.trim().to_string())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    })
}

fn unhex(h: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
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

    #[test]
    fn a_block_that_prints_or_ends_python_does_not_break_the_next_script() {
        let vars = "tcpi_snd_cwnd = 10\n";
        // What a block prints is not taken for the worker's answer.
        assert_eq!(
            run_blocks(&[(Some(vars), "print('ok'); print(tcpi_snd_cwnd)")]),
            Ok(())
        );
        // sys.exit is an exception like another; os._exit ends Python: that script fails
        // and the next one gets a new python3.
        assert!(run_blocks(&[(Some(vars), "import sys; sys.exit(0)")]).is_err());
        let (i, e) = run_blocks(&[(Some(vars), "import os; os._exit(0)")]).unwrap_err();
        assert_eq!(i, 0);
        assert!(e.contains("python3 exited"), "{e}");
        assert_eq!(
            run_blocks(&[(Some(vars), "assert tcpi_snd_cwnd == 10")]),
            Ok(())
        );
    }
}
