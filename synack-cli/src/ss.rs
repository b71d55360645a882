//! `synack ss`: the live connection table of running `synack serve`/`connect`/`relay`
//! processes, as `ss -tani` shows the kernel's, asked of the control socket each answers
//! on (`synack::tun::control`: one request line, `ss`, `summary`, `relay` or `metrics`;
//! JSON answers for the first three, Prometheus text for the last).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use synack::tun::control::CONTROL_DIR;

/// Options of `synack ss`.
#[derive(Args, Debug, Clone)]
pub struct SsArgs {
    /// A control socket to ask (default: every socket in /run/synack).
    #[arg(long, value_name = "PATH")]
    pub socket: Vec<PathBuf>,
    /// A per-state summary: how many sockets, and the oldest in each state.
    #[arg(short = 's', long)]
    pub summary: bool,
    /// JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The counters and per-state gauges in Prometheus' text format.
    #[arg(long)]
    pub metrics: bool,
    /// The connections `synack relay` carries: both sides' addresses and states, bytes
    /// each way, how long the dial took.
    #[arg(short = 'r', long)]
    pub relay: bool,
    /// UDP sockets instead of TCP (as `ss -u`): address, peer, datagrams waiting.
    #[arg(short = 'u', long)]
    pub udp: bool,
}

/// Why a control socket gave no answer.
#[derive(Debug)]
enum AskError {
    /// Nobody listens on it: a file left by a process that was killed.
    Stale,
    /// Anything else, in words for the user.
    Failed(String),
}

impl From<String> for AskError {
    fn from(s: String) -> AskError {
        AskError::Failed(s)
    }
}

/// Connect to a control socket and send one request line.
fn request(path: &Path, request: &str) -> Result<UnixStream, AskError> {
    let mut conn = UnixStream::connect(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            return AskError::Stale;
        }
        AskError::Failed(format!(
            "cannot reach {}: {e} (is synack serve/connect running?)",
            path.display()
        ))
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    conn.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// One JSON answer.
fn ask(path: &Path, req: &str) -> Result<Value, AskError> {
    let mut answer = String::new();
    BufReader::new(request(path, req)?)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(
        serde_json::from_str(&answer)
            .map_err(|e| format!("{}: bad answer: {e}", path.display()))?,
    )
}

/// The whole answer to a request, as text (the metrics).
fn fetch_text(path: &Path, req: &str) -> Result<String, AskError> {
    use std::io::Read;
    let mut conn = request(path, req)?;
    conn.shutdown(std::net::Shutdown::Write).ok();
    let mut text = String::new();
    conn.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// The control sockets in `dir` (files ending in `.sock`), in a stable order.
fn sockets_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Ask every socket; a stale one found by scanning the directory is removed and counted
/// (one named with --socket is an error: the user asked for that process).
fn ask_all<T>(
    sockets: &[PathBuf],
    scanned: bool,
    mut ask_one: impl FnMut(&Path) -> Result<T, AskError>,
) -> Result<(Vec<T>, usize), String> {
    let (mut answers, mut stale) = (Vec::new(), 0);
    for path in sockets {
        match ask_one(path) {
            Ok(a) => answers.push(a),
            Err(AskError::Stale) if scanned => {
                stale += 1;
                let _ = std::fs::remove_file(path);
            }
            Err(AskError::Stale) => {
                return Err(format!(
                    "nobody answers on {}: the process that made it is gone",
                    path.display()
                ))
            }
            Err(AskError::Failed(e)) => return Err(e),
        }
    }
    Ok((answers, stale))
}

/// ss's name for a state (`ESTAB`, `CLOSE-WAIT`, ...).
fn ss_name(state: &str) -> String {
    match state {
        "ESTABLISHED" => "ESTAB".into(),
        "SYN_RECEIVED" => "SYN-RECV".into(),
        other => other.replace('_', "-"),
    }
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn table_line(s: &Value) -> String {
    let state = s["state"].as_str().unwrap_or("?");
    let mut line = format!(
        "{:<11} {:<6} {:<6} {:<25} {}",
        ss_name(state),
        s["recv_q"],
        s["send_q"],
        s["local"].as_str().unwrap_or(""),
        s["remote"].as_str().unwrap_or("*:*")
    );
    let mut detail = Vec::new();
    if let Some(t) = num(s, "timer_ms") {
        let kind = match state {
            "TIME_WAIT" => "timewait",
            "FIN_WAIT_2" => "fin_wait_2",
            _ => "on",
        };
        detail.push(format!("timer:({kind},{:.0}ms)", t));
    }
    if let Some(a) = num(s, "age_ms") {
        detail.push(format!("age:{:.1}s", a / 1000.0));
    }
    if let (Some(r), Some(v)) = (num(s, "rtt_ms"), num(s, "rttvar_ms")) {
        detail.push(format!("rtt:{r:.3}/{v:.3}"));
    }
    if let Some(r) = num(s, "rto_ms") {
        detail.push(format!("rto:{r:.0}"));
    }
    for key in [
        "mss",
        "cwnd",
        "ssthresh",
        "bytes_sent",
        "bytes_acked",
        "bytes_received",
        "retransmits",
    ] {
        if let Some(v) = s.get(key).filter(|v| !v.is_null()) {
            detail.push(format!("{key}:{v}"));
        }
    }
    if !detail.is_empty() {
        line += &format!("\n\t {}", detail.join(" "));
    }
    if let Some(w) = s.get("warning").and_then(Value::as_str) {
        line += &format!("\n\t ! {w}");
    }
    line
}

/// One UDP socket as `ss -u` prints it: UNCONN, or ESTAB when connected.
fn udp_line(u: &Value) -> String {
    let peer = u["peer"].as_str();
    let local = if u["catch_all"].as_bool() == Some(true) {
        "* (catch-all)".to_string()
    } else {
        u["local"].as_str().unwrap_or("?").to_string()
    };
    format!(
        "{:<7} {:<8} {:<25} {}",
        if peer.is_some() { "ESTAB" } else { "UNCONN" },
        u["recv_q"],
        local,
        peer.unwrap_or("*:*")
    )
}

fn relay_line(c: &Value) -> String {
    let text = |key: &str| c[key].as_str().unwrap_or("-").to_string();
    let dial = num(c, "dial_ms").map_or("-".to_string(), |d| format!("{d:.1}ms"));
    format!(
        "{:<25} {:<25} {:<13} {:<13} {:>10} {:>10} {:>8}  {} -> {}",
        text("client"),
        text("destination"),
        text("client_side"),
        text("upstream_side"),
        c["bytes_up"],
        c["bytes_down"],
        dial,
        text("upstream_local"),
        text("upstream_peer"),
    )
}

/// Run `synack ss`; returns the exit status.
pub fn run(args: &SsArgs) -> i32 {
    run_in(args, Path::new(CONTROL_DIR))
}

/// `synack ss` with the default sockets looked for in `dir`.
fn run_in(args: &SsArgs, dir: &Path) -> i32 {
    let scanned = args.socket.is_empty();
    let sockets = if scanned {
        sockets_in(dir)
    } else {
        args.socket.clone()
    };
    if sockets.is_empty() {
        eprintln!(
            "synack ss: no control socket in {}; start synack serve or connect, or give --socket PATH",
            dir.display()
        );
        return 1;
    }
    let say_stale = |stale: usize, live: usize| {
        if stale > 0 {
            eprintln!(
                "synack ss: removed {stale} stale control socket{} in {} (left by processes that are gone); {live} live",
                if stale == 1 { "" } else { "s" },
                dir.display()
            );
        }
        if live == 0 {
            eprintln!("synack ss: no running synack serve or connect answers; start one, or give --socket PATH");
        }
    };
    if args.metrics {
        return match ask_all(&sockets, scanned, |p| fetch_text(p, "metrics")) {
            Ok((texts, stale)) => {
                say_stale(stale, texts.len());
                texts.iter().for_each(|t| print!("{t}"));
                i32::from(texts.is_empty())
            }
            Err(e) => {
                eprintln!("synack ss: {e}");
                1
            }
        };
    }
    let request = if args.relay {
        "relay"
    } else if args.udp {
        "udp"
    } else if args.summary {
        "summary"
    } else {
        "ss"
    };
    let (answers, stale) = match ask_all(&sockets, scanned, |p| ask(p, request)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synack ss: {e}");
            return 1;
        }
    };
    say_stale(stale, answers.len());
    if answers.is_empty() {
        return 1;
    }
    let mut all = Vec::new();
    for a in answers {
        if let Value::Array(items) = a {
            all.extend(items);
        }
    }
    if args.json {
        println!("{}", Value::Array(all));
    } else if args.udp {
        println!(
            "{:<7} {:<8} {:<25} Peer Address:Port",
            "State", "Recv-Q", "Local Address:Port"
        );
        for u in &all {
            println!("{}", udp_line(u));
        }
    } else if args.relay {
        println!(
            "{:<25} {:<25} {:<13} {:<13} {:>10} {:>10} {:>8}  Upstream socket",
            "Client", "Destination", "Client side", "Upstream side", "Up", "Down", "Dial"
        );
        for c in &all {
            println!("{}", relay_line(c));
        }
    } else if args.summary {
        println!("{:<12} {:>6}  oldest", "State", "Count");
        for s in &all {
            let oldest =
                num(s, "oldest_ms").map_or("-".to_string(), |m| format!("{:.1}s", m / 1000.0));
            println!(
                "{:<12} {:>6}  {oldest}",
                ss_name(s["state"].as_str().unwrap_or("?")),
                s["count"]
            );
        }
    } else {
        println!(
            "{:<11} {:<6} {:<6} {:<25} Peer Address:Port",
            "State", "Recv-Q", "Send-Q", "Local Address:Port"
        );
        for s in &all {
            println!("{}", table_line(s));
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_socket_prints_as_ss_does_with_its_timer_and_numbers() {
        let s = json!({
            "state": "CLOSE_WAIT", "local": "198.18.0.2:8080", "remote": "198.18.0.1:40000",
            "recv_q": 0, "send_q": 0, "timer_ms": null, "age_ms": 1500.0,
            "rtt_ms": 0.25, "rttvar_ms": 0.125, "rto_ms": 200.0, "cwnd": 14480, "mss": 1448,
        });
        let line = table_line(&s);
        assert!(line.starts_with("CLOSE-WAIT "), "{line}");
        assert!(line.contains("198.18.0.2:8080") && line.contains("198.18.0.1:40000"));
        assert!(line.contains("age:1.5s rtt:0.250/0.125 rto:200"), "{line}");
        assert!(line.contains("cwnd:14480"), "{line}");
        let tw = json!({"state": "TIME_WAIT", "local": "a", "remote": "b", "recv_q": 0,
                        "send_q": 0, "timer_ms": 59000.0, "age_ms": 1000.0});
        assert!(table_line(&tw).contains("timer:(timewait,59000ms)"));
        assert_eq!(ss_name("ESTABLISHED"), "ESTAB");
        assert_eq!(ss_name("FIN_WAIT_2"), "FIN-WAIT-2");
    }

    #[test]
    fn a_udp_socket_prints_as_ss_u_does() {
        let u = json!({"local": "198.18.0.2:53", "peer": null, "recv_q": 12, "datagrams": 1, "catch_all": false});
        assert!(udp_line(&u).starts_with("UNCONN  12 "), "{}", udp_line(&u));
        let c = json!({"local": "198.18.0.2:5000", "peer": "198.18.0.1:53", "recv_q": 0, "datagrams": 0, "catch_all": false});
        assert!(udp_line(&c).starts_with("ESTAB ") && udp_line(&c).ends_with("198.18.0.1:53"));
    }

    #[test]
    fn a_relayed_connection_prints_both_sides() {
        let c = json!({"client": "198.18.0.1:40000", "destination": "198.19.0.2:80",
            "upstream_local": "198.18.1.1:51000", "upstream_peer": "198.19.0.2:80",
            "client_side": "FIN_RECEIVED", "upstream_side": "FIN_SENT",
            "bytes_up": 120, "bytes_down": 20000000, "dial_ms": 1.25, "age_ms": 30.0});
        let line = relay_line(&c);
        assert!(line.starts_with("198.18.0.1:40000 "), "{line}");
        assert!(
            line.contains("FIN_RECEIVED") && line.contains("FIN_SENT"),
            "{line}"
        );
        assert!(
            line.contains("20000000") && line.contains("1.2ms"),
            "{line}"
        );
        assert!(
            line.ends_with("198.18.1.1:51000 -> 198.19.0.2:80"),
            "{line}"
        );
    }

    /// A control socket at `path` that answers every request with one socket in `state`.
    fn live_socket(path: &Path, state: &'static str) {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                let answer =
                    json!([{"state": state, "local": "198.18.0.2:8080", "recv_q": 0, "send_q": 0}]);
                let _ = (&conn).write_all(format!("{answer}\n").as_bytes());
            }
        });
    }

    #[test]
    fn a_stale_socket_is_skipped_removed_and_counted_and_every_live_one_shown() {
        let dir = std::env::temp_dir().join(format!("synack-ss-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // "a" sorts first: a file left by a killed process (bound, then nobody listens).
        let stale = dir.join("a-killed.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        live_socket(&dir.join("b-serve.sock"), "CLOSE_WAIT");
        live_socket(&dir.join("c-connect.sock"), "ESTABLISHED");
        let sockets = sockets_in(&dir);
        assert_eq!(sockets.len(), 3);
        let (answers, stale_count) = ask_all(&sockets, true, |p| ask(p, "ss")).unwrap();
        assert_eq!(stale_count, 1);
        let states: Vec<&str> = answers
            .iter()
            .map(|a| a[0]["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["CLOSE_WAIT", "ESTABLISHED"]);
        assert!(!stale.exists(), "the stale socket file is removed");
        // Named with --socket, a dead socket is an error that says so (and is kept).
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = ask_all(std::slice::from_ref(&stale), false, |p| ask(p, "ss")).unwrap_err();
        assert!(
            err.contains("nobody answers") && err.contains("a-killed.sock"),
            "{err}"
        );
        assert!(stale.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
