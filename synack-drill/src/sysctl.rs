//! Shell lines of a script, read for the Linux sysctls they set. The runner executes no
//! shell command; instead the well-known TCP sysctls a line assigns (by `sysctl`,
//! `echo V > /proc/sys/...`, or packetdrill's `set_sysctls.py`, also inside a `.sh` file
//! the line runs, such as packetdrill's `defaults.sh`) are mapped to the stack's
//! [`Config`]. The table:
//!
//! | sysctl | stack setting |
//! |---|---|
//! | `net.ipv4.tcp_syn_retries` | [`Config::tcp_syn_retries`] |
//! | `net.ipv4.tcp_synack_retries` | [`Config::tcp_synack_retries`] |
//! | `net.ipv4.tcp_retries2` | [`Config::tcp_retries2`] |
//! | `net.ipv4.tcp_orphan_retries` | [`Config::tcp_orphan_retries`] |
//! | `net.ipv4.tcp_timestamps` | [`Config::tcp_timestamps`] |
//! | `net.ipv4.tcp_sack` | [`Config::tcp_sack`] |
//! | `net.ipv4.tcp_ecn` | [`Config::tcp_ecn`] (0, 1, 2) |
//! | `net.ipv4.tcp_window_scaling` | [`Config::tcp_window_scaling`] |
//! | `net.ipv4.tcp_rmem` (min default max) | [`Config::recv_buffer`] = default, [`Config::tcp_rmem_max`] = max |
//! | `net.ipv4.tcp_wmem` (min default max) | [`Config::send_buffer`] = default |
//! | `net.ipv4.tcp_fin_timeout` | [`Config::tcp_fin_timeout`] (seconds) |
//! | `net.ipv4.tcp_rfc1337` | [`Config::tcp_rfc1337`] |
//! | `net.ipv4.tcp_max_tw_buckets` | [`Config::tcp_max_tw_buckets`] |
//! | `net.ipv4.tcp_syncookies` | [`Config::tcp_syncookies`] (0, 1, 2) |
//! | `net.ipv4.tcp_max_orphans` | [`Config::tcp_max_orphans`] |
//! | `net.ipv4.tcp_mem` (pages: low pressure high) | [`Config::tcp_mem`] (x 4096 bytes) |
//! | `net.ipv4.ipfrag_high_thresh` | [`Config::ipfrag_high_thresh`] |
//! | `net.ipv4.ipfrag_time`, `net.ipv6.ip6frag_time` | [`Config::ipfrag_time`], [`Config::ip6frag_time`] (seconds) |
//! | `net.ipv4.tcp_congestion_control` | [`Config::congestion_control`] (`cubic`, `reno`) |
//! | `net.ipv4.tcp_min_tso_segs` | [`Config::tcp_min_tso_segs`] (where PSH marks fall) |
//! | `net.ipv4.tcp_notsent_lowat` | [`Config::tcp_notsent_lowat`] (TCP_NOTSENT_LOWAT's default) |
//! | `net.ipv4.tcp_fastopen` | [`Config::tcp_fastopen`] (Linux's bits, hex accepted) |
//! | `net.ipv4.tcp_fastopen_key` | the stack's cookie key ([`synack::Stack::set_fastopen_key`]) |
//! | `ip tcp_metrics flush` | the Fast Open cookie cache is emptied |
//!
//! Any other sysctl is reported in a note as not modelled.

use std::path::Path;
use std::time::Duration;

use synack::{Config, CongestionControl};

/// One `name=value` a shell line assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Dotted name without the `net.ipv4.`/`net.core.` prefix kept (`net.ipv4.tcp_sack`).
    pub name: String,
    pub value: String,
}

/// The assignments in a shell command; `base` is the script's directory, where a
/// `.sh` file the command runs is looked for.
pub fn assignments(command: &str, base: Option<&Path>) -> Vec<Assignment> {
    let mut out = Vec::new();
    // A backslash at the end of a line continues it, as in the shell.
    let joined = command.replace("\\\n", " ");
    for line in joined.lines() {
        let words = shell_words(line);
        let Some(first) = words.first() else { continue };
        if first == "sysctl" {
            for w in words.iter().skip(1).filter(|w| !w.starts_with('-')) {
                if let Some((k, v)) = w.split_once('=') {
                    out.push(Assignment {
                        name: k.to_string(),
                        value: v.to_string(),
                    });
                }
            }
        } else if first.ends_with("set_sysctls.py") {
            for w in &words[1..] {
                if let Some((k, v)) = w.split_once('=') {
                    out.push(Assignment {
                        name: proc_to_dotted(k),
                        value: v.to_string(),
                    });
                }
            }
        } else if first == "echo" {
            // echo V > /proc/sys/net/ipv4/NAME
            if let Some(i) = words.iter().position(|w| w == ">") {
                if let Some(path) = words.get(i + 1) {
                    out.push(Assignment {
                        name: proc_to_dotted(path),
                        value: words[1..i].join(" "),
                    });
                }
            }
        } else if first.ends_with(".sh") {
            if let Some(text) = base.and_then(|b| std::fs::read_to_string(b.join(first)).ok()) {
                out.extend(assignments(&text, base));
            }
        }
    }
    out
}

/// `/proc/sys/net/ipv4/tcp_sack` -> `net.ipv4.tcp_sack`.
fn proc_to_dotted(path: &str) -> String {
    path.trim_start_matches("/proc/sys/").replace('/', ".")
}

/// A line split into words the way a shell would for these simple commands: quotes
/// removed, `$((a*b))` arithmetic evaluated, comments dropped.
fn shell_words(line: &str) -> Vec<String> {
    let line = line.split(" #").next().unwrap_or(line);
    if line.trim_start().starts_with('#') {
        return Vec::new();
    }
    let expanded = expand_arithmetic(line);
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in expanded.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (c, _) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Replace each `$((expr))` holding products and sums of integers by its value.
fn expand_arithmetic(s: &str) -> String {
    let mut out = s.to_string();
    while let Some(start) = out.find("$((") {
        let Some(len) = out[start..].find("))") else {
            break;
        };
        let expr = &out[start + 3..start + len];
        let value: i64 = expr
            .split('+')
            .map(|term| {
                term.split('*')
                    .map(|f| f.trim().parse::<i64>().unwrap_or(0))
                    .product::<i64>()
            })
            .sum();
        out.replace_range(start..start + len + 2, &value.to_string());
    }
    out
}

/// Whether a shell command (or a `.sh` file it runs) flushes the TCP metrics
/// (`ip tcp_metrics flush`), where Linux keeps Fast Open cookies.
pub fn flushes_metrics(command: &str, base: Option<&Path>) -> bool {
    let flushes = |text: &str| {
        text.lines().any(|l| {
            let w = shell_words(l);
            w.len() >= 3 && w[0] == "ip" && w[1] == "tcp_metrics" && w[2] == "flush"
        })
    };
    if flushes(command) {
        return true;
    }
    // A `.sh` file the line runs (packetdrill's defaults.sh flushes first thing).
    command.split_whitespace().any(|w| {
        let w = w.trim_matches('`');
        w.ends_with(".sh")
            && base
                .map(|b| b.join(w))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .is_some_and(|t| flushes(&t))
    })
}

/// Apply one assignment to the configuration; Err says why it was not.
pub fn apply(a: &Assignment, cfg: &mut Config) -> Result<(), String> {
    let short = a
        .name
        .trim_start_matches("net.ipv4.")
        .trim_start_matches("net.ipv6.")
        .trim_start_matches("net.core.");
    let v = a.value.trim();
    let num = || -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("{}={v}: not a number", a.name))
    };
    let fields = || -> Result<Vec<usize>, String> {
        let f: Vec<usize> = v
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() == 3 {
            Ok(f)
        } else {
            Err(format!("{}={v}: expected three numbers", a.name))
        }
    };
    match short {
        "tcp_syn_retries" => cfg.tcp_syn_retries = num()? as u32,
        "tcp_synack_retries" => cfg.tcp_synack_retries = num()? as u32,
        "tcp_retries2" => cfg.tcp_retries2 = num()? as u32,
        "tcp_orphan_retries" => cfg.tcp_orphan_retries = num()? as u32,
        "tcp_timestamps" => cfg.tcp_timestamps = num()? != 0,
        "tcp_sack" => cfg.tcp_sack = num()? != 0,
        "tcp_ecn" => cfg.tcp_ecn = num()?.min(2) as u8,
        // Linux's proc_dointvec reads 0x-prefixed hex too (packetdrill's 0x70403).
        "tcp_fastopen" => {
            cfg.tcp_fastopen = match v.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16)
                    .map_err(|_| format!("{}={v}: not a number", a.name))?,
                None => num()? as u32,
            }
        }
        "tcp_window_scaling" => cfg.tcp_window_scaling = num()? != 0,
        "tcp_rfc1337" => cfg.tcp_rfc1337 = num()? != 0,
        "tcp_max_tw_buckets" => cfg.tcp_max_tw_buckets = num()? as usize,
        "ipfrag_high_thresh" => cfg.ipfrag_high_thresh = num()? as usize,
        "ipfrag_time" => cfg.ipfrag_time = Duration::from_secs(num()?),
        "ip6frag_time" => cfg.ip6frag_time = Duration::from_secs(num()?),
        "tcp_syncookies" => cfg.tcp_syncookies = num()?.min(2) as u8,
        "tcp_max_orphans" => cfg.tcp_max_orphans = num()? as usize,
        "tcp_min_tso_segs" => cfg.tcp_min_tso_segs = num()?.clamp(1, 255) as u32,
        "tcp_notsent_lowat" => cfg.tcp_notsent_lowat = num()?.min(u64::from(u32::MAX)) as u32,
        "tcp_mem" => {
            let f = fields()?;
            cfg.tcp_mem = [f[0] * 4096, f[1] * 4096, f[2] * 4096];
        }
        "tcp_fin_timeout" => cfg.tcp_fin_timeout = Duration::from_secs(num()?),
        "tcp_rmem" => {
            let f = fields()?;
            cfg.recv_buffer = f[1];
            cfg.tcp_rmem_max = f[2];
        }
        "tcp_wmem" => cfg.send_buffer = fields()?[1],
        "tcp_congestion_control" => {
            cfg.congestion_control = match v {
                "cubic" => CongestionControl::Cubic,
                "reno" => CongestionControl::NewReno,
                other => return Err(format!("{}: no congestion control {other}", a.name)),
            }
        }
        _ => return Err(format!("{} is not modelled", a.name)),
    }
    Ok(())
}

/// Files a shell command makes or removes, which drill (running no shell line) keeps in
/// memory for open(): `dd if=/dev/zero of=PATH bs=B count=N` makes PATH of B*N zero
/// bytes (packetdrill's payloads are zeros), `rm -f PATH` removes it (None).
pub fn made_files(command: &str) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for part in command.split(['\n', ';']).flat_map(|l| l.split("&&")) {
        let words: Vec<&str> = part.split_whitespace().collect();
        let Some(prog) = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)) else {
            continue;
        };
        match prog {
            "rm" => {
                for w in words[1..].iter().filter(|w| !w.starts_with('-')) {
                    out.push((w.to_string(), None));
                }
            }
            "dd" => {
                let field = |name: &str| {
                    words
                        .iter()
                        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                };
                let (Some("/dev/zero"), Some(path)) = (field("if"), field("of")) else {
                    continue;
                };
                let bs = field("bs")
                    .and_then(|b| b.parse::<usize>().ok())
                    .unwrap_or(512);
                let count = field("count").and_then(|c| c.parse::<usize>().ok());
                let Some(len) = count
                    .and_then(|c| c.checked_mul(bs))
                    .filter(|l| *l <= 1 << 26)
                else {
                    continue;
                };
                out.push((path.to_string(), Some(vec![0u8; len])));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_continued_with_a_backslash_is_read_whole() {
        let a = assignments(
            "../common/set_sysctls.py /proc/sys/net/ipv4/tcp_sack=0 \\\n\t\t/proc/sys/net/ipv4/tcp_min_tso_segs=10",
            None,
        );
        let names: Vec<_> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["net.ipv4.tcp_sack", "net.ipv4.tcp_min_tso_segs"]);
    }

    #[test]
    fn sysctl_echo_and_set_sysctls_lines_are_read() {
        let a = assignments(
            "sysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\"\n\
             echo 0 > /proc/sys/net/ipv4/tcp_timestamps\n\
             ../common/set_sysctls.py /proc/sys/net/ipv4/tcp_syn_retries=2",
            None,
        );
        let names: Vec<_> = a
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("net.ipv4.tcp_rmem", "4096 540000 15728640"),
                ("net.ipv4.tcp_timestamps", "0"),
                ("net.ipv4.tcp_syn_retries", "2"),
            ]
        );
        let mut cfg = Config::default();
        for x in &a {
            apply(x, &mut cfg).unwrap();
        }
        assert_eq!(
            (
                cfg.recv_buffer,
                cfg.tcp_rmem_max,
                cfg.tcp_timestamps,
                cfg.tcp_syn_retries
            ),
            (540000, 15 * 1024 * 1024, false, 2)
        );
    }

    #[test]
    fn unknown_sysctls_are_refused_with_their_name() {
        let e = apply(
            &Assignment {
                name: "net.ipv4.tcp_frto".into(),
                value: "2".into(),
            },
            &mut Config::default(),
        )
        .unwrap_err();
        assert!(e.contains("tcp_frto"), "{e}");
    }

    #[test]
    fn dd_from_dev_zero_makes_a_file_and_rm_removes_it() {
        let made = made_files(
            "/bin/rm -f /tmp/f\n/bin/dd bs=1 count=5 if=/dev/zero of=/tmp/f status=none",
        );
        assert_eq!(
            made,
            vec![
                ("/tmp/f".to_string(), None),
                ("/tmp/f".to_string(), Some(vec![0u8; 5]))
            ]
        );
        assert!(made_files("dd if=/dev/urandom of=/tmp/g count=1").is_empty());
    }
}
