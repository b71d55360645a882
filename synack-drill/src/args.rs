//! The arguments of socket calls as scripts write them: `[21000]` option values,
//! `{l_onoff=1, l_linger=0}` lingers, `[{fd=4, events=POLLIN, revents=POLLIN}]` poll
//! sets, `[{..., 1000}, {..., 500}]` iovecs, and errno names and numbers.

/// The value inside `[...]` (`[1000]` -> `1000`, `[ECONNREFUSED]` -> `ECONNREFUSED`).
pub fn bracketed(arg: &str) -> Option<&str> {
    let a = arg.trim();
    a.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(str::trim)
}

/// A numeric option value: `[1000]` or `1000` (or `[0xffffffff]`).
pub fn number(arg: &str) -> Option<i64> {
    integer(bracketed(arg).unwrap_or(arg.trim()))
}

/// `[IP_PMTUDISC_DONT]` and the other IP_MTU_DISCOVER values, as numbers (Linux's
/// in.h).
pub fn ip_pmtudisc(arg: &str) -> Option<i64> {
    let name = bracketed(arg).unwrap_or(arg.trim());
    let names = ["DONT", "WANT", "DO", "PROBE", "INTERFACE", "OMIT"];
    let suffix = name.strip_prefix("IP_PMTUDISC_")?;
    names.iter().position(|n| *n == suffix).map(|i| i as i64)
}

/// An integer in decimal or, with `0x`, hexadecimal.
pub fn integer(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `{l_onoff=1, l_linger=0}`: is lingering on with a zero time (close sends RST)?
pub fn linger_zero(arg: &str) -> bool {
    let field = |name: &str| {
        arg.split([',', '{', '}', '[', ']'])
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .and_then(|(_, v)| v.trim().parse::<i64>().ok())
    };
    field("l_onoff").unwrap_or(0) != 0 && field("l_linger") == Some(0)
}

/// One entry of a poll set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollFd {
    pub fd: i64,
    pub events: u32,
    pub revents: u32,
}

pub const POLLIN: u32 = 0x001;
pub const POLLPRI: u32 = 0x002;
pub const POLLOUT: u32 = 0x004;
pub const POLLERR: u32 = 0x008;
pub const POLLHUP: u32 = 0x010;
pub const POLLNVAL: u32 = 0x020;
pub const POLLRDNORM: u32 = 0x040;
pub const POLLWRNORM: u32 = 0x100;
pub const POLLRDHUP: u32 = 0x2000;

const POLL_NAMES: [(&str, u32); 9] = [
    ("POLLIN", POLLIN),
    ("POLLPRI", POLLPRI),
    ("POLLOUT", POLLOUT),
    ("POLLERR", POLLERR),
    ("POLLHUP", POLLHUP),
    ("POLLNVAL", POLLNVAL),
    ("POLLRDNORM", POLLRDNORM),
    ("POLLWRNORM", POLLWRNORM),
    ("POLLRDHUP", POLLRDHUP),
];

/// `POLLIN|POLLOUT` (or a number) as bits.
pub fn poll_bits(s: &str) -> Result<u32, String> {
    flag_bits(&POLL_NAMES, s, "a poll event")
}

/// Bits back to names, as a script writes them.
pub fn poll_names(bits: u32) -> String {
    flag_names(&POLL_NAMES, bits)
}

/// `A|B` (names from `table`, or numbers) as bits; `what` names the kind in errors.
pub fn flag_bits(table: &[(&str, u32)], s: &str, what: &str) -> Result<u32, String> {
    let mut bits = 0;
    for name in s.split('|').map(str::trim).filter(|n| !n.is_empty()) {
        bits |= match table.iter().find(|(n, _)| *n == name) {
            Some((_, b)) => *b,
            None => integer(name)
                .map(|n| n as u32)
                .ok_or_else(|| format!("'{name}' is not {what}"))?,
        };
    }
    Ok(bits)
}

/// Bits back to their names in `table` (`0` for none), as a script writes them.
pub fn flag_names(table: &[(&str, u32)], bits: u32) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// `[{fd=4, events=POLLIN, revents=POLLIN}, ...]`.
pub fn poll_set(arg: &str) -> Result<Vec<PollFd>, String> {
    let mut out = Vec::new();
    for entry in arg.split('{').skip(1) {
        let body = entry.split('}').next().unwrap_or("");
        let mut p = PollFd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        for kv in body.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k.trim() {
                "fd" => p.fd = v.trim().parse().map_err(|_| format!("fd '{v}'"))?,
                "events" => p.events = poll_bits(v)?,
                "revents" => p.revents = poll_bits(v)?,
                _ => {}
            }
        }
        out.push(p);
    }
    Ok(out)
}

/// The total length of an iovec list: `[{..., 1000}, {..., 500}]` -> 1500.
pub fn iov_len(arg: &str) -> usize {
    arg.split('{')
        .skip(1)
        .filter_map(|e| e.split('}').next())
        .filter_map(|body| body.rsplit(',').next())
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .sum()
}

const ERRNOS: [(&str, i64); 26] = [
    ("EFAULT", 14),
    ("EEXIST", 17),
    ("ENOENT", 2),
    ("ENOSYS", 38),
    ("ENOPROTOOPT", 92),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
    ("EPIPE", 32),
    ("EAGAIN", 11),
    ("EBADF", 9),
    ("EINVAL", 22),
    ("ENOTCONN", 107),
    ("ECONNREFUSED", 111),
    ("ECONNRESET", 104),
    ("ECONNABORTED", 103),
    ("ETIMEDOUT", 110),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETUNREACH", 101),
    ("EHOSTUNREACH", 113),
    ("EINPROGRESS", 115),
    ("EALREADY", 114),
    ("EISCONN", 106),
    ("EIO", 5),
    ("EMSGSIZE", 90),
    ("ENOBUFS", 105),
];

/// The number of an errno name (`ECONNREFUSED` -> 111); numbers pass through.
pub fn errno_number(s: &str) -> Option<i64> {
    s.parse()
        .ok()
        .or_else(|| ERRNOS.iter().find(|(n, _)| *n == s).map(|(_, v)| *v))
}

/// A C string literal argument (`"\xf7\x63..."`) as bytes: `\xNN`, `\n`, `\t`, `\0`,
/// `\\` and `\"` escapes. None when it is not a quoted string.
pub fn c_string(arg: &str) -> Option<Vec<u8>> {
    let s = arg.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next()? {
            'x' => {
                let hex: String = chars.clone().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
                chars.nth(1);
            }
            'n' => out.push(b'\n'),
            't' => out.push(b'\t'),
            '0' => out.push(0),
            other => out.push(other as u8),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_sets_parse_with_their_event_names() {
        let p = poll_set("[{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}]").unwrap();
        assert_eq!(
            p,
            [PollFd {
                fd: 4,
                events: POLLIN | POLLOUT,
                revents: POLLOUT
            }]
        );
        assert_eq!(poll_names(POLLIN | POLLRDHUP), "POLLIN|POLLRDHUP");
        assert!(poll_bits("POLLFOO").is_err());
    }

    #[test]
    fn values_lingers_iovecs_and_errnos_are_read() {
        assert_eq!(number("[21000]"), Some(21000));
        assert!(linger_zero("{l_onoff=1, l_linger=0}"));
        assert!(!linger_zero("{l_onoff=0, l_linger=0}"));
        assert_eq!(iov_len("[{..., 1000}, {..., 500}]"), 1500);
        assert_eq!(errno_number("ECONNREFUSED"), Some(111));
        assert_eq!(errno_number("0"), Some(0));
    }

    #[test]
    fn c_string_reads_hex_escapes() {
        assert_eq!(c_string(r#""\xf7\x63a""#), Some(vec![0xf7, 0x63, b'a']));
        assert_eq!(c_string("no quotes"), None);
    }
}
