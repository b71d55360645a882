//! The control socket of a TUN interface (opt-in: `InterfaceConfig::control`): a Unix
//! socket answering `synack ss`. The protocol is one request line and one answer:
//! `ss` gives a JSON array of sockets (`Stack::snapshot`), `summary` a JSON array of
//! per-state counts with the oldest age, `metrics` the counters and gauges in Prometheus'
//! text format, `relay` a JSON array of relayed connections (empty unless the process
//! relays: [`serve_extended`]), `udp` a JSON array of UDP sockets.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::StackHandle;
use crate::stack::StackStats;
use crate::{SocketSnapshot, StateSummary};

/// Where control sockets live by default.
pub const CONTROL_DIR: &str = "/run/synack";

/// The default control socket of the interface `tun`.
pub fn default_control(tun: &str) -> PathBuf {
    Path::new(CONTROL_DIR).join(format!("{tun}.sock"))
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64() * 1000.0))
}

/// One socket as JSON (what `synack ss --json` prints).
pub fn socket_json(s: &SocketSnapshot) -> Value {
    let mut v = json!({
        "state": s.state.name(),
        "local": s.local.to_string(),
        "remote": s.remote.map(|r| r.to_string()),
        "recv_q": s.recv_q,
        "send_q": s.send_q,
        "timer_ms": ms(s.timer),
        "age_ms": ms(s.age),
        "warning": s.warning,
    });
    if let Some(i) = &s.info {
        v["rtt_ms"] = ms(i.srtt);
        v["rttvar_ms"] = ms(i.rttvar);
        v["rto_ms"] = ms(i.rto);
        v["cwnd"] = json!(i.cwnd);
        v["ssthresh"] = json!(i.ssthresh);
        v["mss"] = json!(i.snd_mss);
        v["bytes_sent"] = json!(i.bytes_sent);
        v["bytes_acked"] = json!(i.bytes_acked);
        v["bytes_received"] = json!(i.bytes_received);
        v["retransmits"] = json!(i.retransmits);
    }
    v
}

/// The answer to one request line, from the sockets and counters of an interface's
/// stacks (one per queue).
pub fn answer(sockets: &[SocketSnapshot], stats: &StackStats, request: &str) -> String {
    match request.trim() {
        "metrics" => stats.prometheus(&StateSummary::of(sockets)),
        "summary" => {
            let v: Vec<Value> = StateSummary::of(sockets)
                .iter()
                .map(|s| json!({"state": s.state.name(), "count": s.count, "oldest_ms": ms(s.oldest)}))
                .collect();
            format!("{}\n", Value::Array(v))
        }
        _ => {
            let v: Vec<Value> = sockets.iter().map(socket_json).collect();
            format!("{}\n", Value::Array(v))
        }
    }
}

/// Answer `synack ss` on `path` from a thread of its own, for as long as the process runs.
pub fn serve(path: &Path, stack: StackHandle) -> std::io::Result<()> {
    serve_extended(path, stack, |_| None)
}

/// [`serve`], with what the process adds: `extra("relay")` answers `relay` (a JSON
/// array), and `extra("metrics")` is appended to the metrics.
pub fn serve_extended(
    path: &Path,
    stack: StackHandle,
    extra: impl Fn(&str) -> Option<String> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(path, move |request| {
        let request = request.trim();
        if request == "relay" {
            return extra("relay").unwrap_or_else(|| "[]\n".to_string());
        }
        if request == "udp" {
            let v: Vec<Value> = stack
                .with_stacks(|st, _| st.udp_sockets())
                .into_iter()
                .flatten()
                .map(|u| {
                    json!({
                        "local": u.local.to_string(),
                        "peer": u.peer.map(|p| p.to_string()),
                        "recv_q": u.recv_q,
                        "datagrams": u.datagrams,
                        "catch_all": u.catch_all,
                    })
                })
                .collect();
            return format!("{}\n", Value::Array(v));
        }
        let mut sockets = Vec::new();
        let mut stats = StackStats::default();
        for (s, st) in stack.with_stacks(|st, now| (st.snapshot(now), st.stats())) {
            sockets.extend(s);
            stats += &st;
        }
        let mut out = answer(&sockets, &stats, request);
        if request == "metrics" {
            out += &extra("metrics").unwrap_or_default();
        }
        out
    })
}

/// The socket plumbing of [`serve`]: each connection sends one line and gets `reply(line)`.
fn serve_with(path: &Path, reply: impl Fn(&str) -> String + Send + 'static) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by an earlier run that ended without cleaning up.
    if path.exists() && UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let _ = (&conn).write_all(reply(&line).as_bytes());
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Instant, Stack};
    use std::io::Read;

    fn ask(path: &Path, line: &str) -> String {
        let mut c = UnixStream::connect(path).unwrap();
        c.write_all(line.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn the_control_socket_answers_ss_summary_and_metrics() {
        let mut stack = Stack::new(Config::deterministic(1));
        stack.add_address([198, 18, 0, 2].into());
        stack
            .listen("198.18.0.2:8080".parse().unwrap(), 16)
            .unwrap();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(stack));
        let dir = std::env::temp_dir().join(format!("synack-control-{}", std::process::id()));
        let path = dir.join("t.sock");
        let s2 = std::sync::Arc::clone(&shared);
        serve_with(&path, move |req| {
            let st = s2.lock().unwrap();
            answer(&st.snapshot(Instant::from_secs(1)), &st.stats(), req)
        })
        .unwrap();
        let ss: Value = serde_json::from_str(&ask(&path, "ss\n")).unwrap();
        assert_eq!(ss[0]["state"], "LISTEN");
        assert_eq!(ss[0]["local"], "198.18.0.2:8080");
        let summary: Value = serde_json::from_str(&ask(&path, "summary\n")).unwrap();
        assert_eq!(summary[0]["count"], 1);
        let metrics = ask(&path, "metrics\n");
        assert!(
            metrics.contains("synack_sockets{state=\"LISTEN\"} 1"),
            "{metrics}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
