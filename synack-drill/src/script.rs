//! The packetdrill script language, parsed: each line is a time, then an inbound (`<`)
//! or outbound (`>`) TCP segment, or a socket call with its expected result. Shell
//! lines (backticks) and `%{ }%` blocks are kept as notes; comments are dropped.

use std::fmt;

use synack::wire::Ecn;

/// The ECN field a segment line names before its flags (packetdrill's `ip_ecn`:
/// `[noecn]`, `[ect0]`, `[ect1]`, `[ce]`, or `[ect01]` for either ECT codepoint; also
/// in parentheses). Inbound: the injected packet's codepoint; outbound: what the
/// stack's packet must carry. Without one an outbound line does not check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcnSpec {
    /// Exactly this codepoint.
    Is(Ecn),
    /// ECT(0) or ECT(1).
    EitherEct,
}

impl EcnSpec {
    /// Whether a packet's codepoint matches.
    pub fn matches(self, got: Ecn) -> bool {
        match self {
            EcnSpec::Is(e) => e == got,
            EcnSpec::EitherEct => got.is_ect(),
        }
    }

    /// The codepoint to put on an injected packet.
    pub fn codepoint(self) -> Ecn {
        match self {
            EcnSpec::Is(e) => e,
            EcnSpec::EitherEct => Ecn::Ect0,
        }
    }
}

impl fmt::Display for EcnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcnSpec::Is(Ecn::NotEct) => "[noecn]",
            EcnSpec::Is(Ecn::Ect0) => "[ect0]",
            EcnSpec::Is(Ecn::Ect1) => "[ect1]",
            EcnSpec::Is(Ecn::Ce) => "[ce]",
            EcnSpec::EitherEct => "[ect01]",
        })
    }
}

/// Read `[ect0]`-style annotations: None when `word` is not one.
fn ecn_spec(word: &str) -> Option<Result<EcnSpec, String>> {
    if !word.starts_with(['[', '(']) {
        return None;
    }
    let inner = word.trim_start_matches(['[', '(']);
    Some(match inner.trim_end_matches([']', ')']) {
        "noecn" => Ok(EcnSpec::Is(Ecn::NotEct)),
        "ect0" => Ok(EcnSpec::Is(Ecn::Ect0)),
        "ect1" => Ok(EcnSpec::Is(Ecn::Ect1)),
        "ce" => Ok(EcnSpec::Is(Ecn::Ce)),
        "ect01" => Ok(EcnSpec::EitherEct),
        other => Err(format!(
            "'{word}': only ECN annotations are supported in brackets ([noecn] [ect0] [ect1] [ce] [ect01]), not '{other}'"
        )),
    })
}

/// When an event happens, as the script writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeSpec {
    /// `T`: seconds since the script started.
    Absolute(f64),
    /// `+T`: seconds after the previous event.
    Relative(f64),
    /// `*`: any time.
    Any,
    /// `A~B` (absolute or relative): any time in the range.
    Range {
        start: f64,
        end: f64,
        relative: bool,
    },
}

/// Which way a segment travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `<`: injected into the stack.
    Inbound,
    /// `>`: expected from the stack.
    Outbound,
}

/// One TCP option as the script writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptOption {
    Nop,
    Eol,
    Mss(u16),
    WindowScale(u8),
    SackOk,
    Sack(Vec<(u32, u32)>),
    Timestamp {
        val: u32,
        ecr: u32,
    },
    /// `FO [hex]` / `FOEXP [hex]`: TCP Fast Open (RFC 7413), a cookie or a request;
    /// `TFO_COOKIE` for the cookie the stack under test gives the script's peer.
    FastOpen {
        experimental: bool,
        cookie: FoCookie,
    },
    /// `md5 <hex>`: a TCP-MD5 signature option (RFC 2385) with this 16-byte digest.
    Md5([u8; 16]),
}

/// The cookie of a `FO`/`FOEXP` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoCookie {
    /// None: a cookie request.
    Request,
    Bytes(Vec<u8>),
    /// `TFO_COOKIE`: what the stack would give the peer (packetdrill's run_all.py
    /// defines it from the same key and addresses).
    Stack,
}

/// A segment line: `< S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 7>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub direction: Direction,
    /// `SRC>DST` before the flags: the segment's ports (another connection than the
    /// script's default one).
    pub ports: Option<(u16, u16)>,
    /// `[ect0]` and the like before the flags: the IP header's ECN field.
    pub ecn: Option<EcnSpec>,
    /// The flag letters (`S`, `F`, `R`, `P`, `.`, `U`, `E`, `W`), `-` for none.
    pub flags: String,
    /// `start:end(len)` in script sequence space.
    pub seq: Option<(u32, u32, u32)>,
    pub ack: Option<u32>,
    pub win: Option<u32>,
    /// `urg N`: the urgent pointer field (0 when not written; packetdrill compares it on
    /// every outbound segment).
    pub urg: u16,
    /// None: `<...>` (not checked on outbound segments). No list at all is an empty
    /// list: an outbound segment must then carry no options, as in packetdrill.
    pub options: Option<Vec<ScriptOption>>,
}

/// What an ICMP line says the message quotes (packetdrill's `opt_icmp_echoed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpQuote {
    /// `[start:end(len)]`, or nothing (`0:0(0)`): one of our TCP segments, by its
    /// sequence number in our script sequence space.
    Tcp { start: u32, len: u32 },
    /// `[udp (N)]`: a UDP datagram of ours, N bytes of payload.
    Udp(u32),
    /// `[raw (N)]`: no quote, N bytes of zeros after the ICMP header.
    Raw(u32),
}

/// An ICMP line: `< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpLine {
    pub direction: Direction,
    /// packetdrill's type name (`unreachable`, `packet_too_big`, `time_exceeded`...) or
    /// `type_N`.
    pub icmp_type: String,
    /// The code's name (`frag_needed`, `host_unreachable`...) or `code_N`; None is 0.
    pub code: Option<String>,
    /// `mtu N`: the next-hop MTU (fragmentation needed, packet too big).
    pub mtu: Option<u32>,
    /// `id N`: an echo's identifier.
    pub id: u16,
    pub quote: IcmpQuote,
}

/// A socket call and what it must return.
#[derive(Clone, Debug, PartialEq)]
pub struct Syscall {
    pub name: String,
    /// The arguments, as written (`...` for "don't care").
    pub args: Vec<String>,
    /// The return value expected.
    pub ret: i64,
    /// The errno name when `ret` is -1.
    pub errno: Option<String>,
    /// `+A...B`: the call blocks until this (script) time.
    pub blocks_until: Option<f64>,
}

/// What a line does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Segment(Segment),
    Icmp(IcmpLine),
    Syscall(Syscall),
    /// A backtick shell command: not executed; the sysctls it sets are applied
    /// (see [`crate::sysctl`]).
    Shell(String),
    /// A `%{ }%` code block: Python run with the connection's `TCP_INFO` at this time
    /// (`tcpi_*` variables), as packetdrill runs it.
    Code(String),
    /// A `--name=value` line: a command-line option given inside the script.
    Option(String, String),
}

/// One event of a script.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1-based line number.
    pub line: usize,
    pub time: TimeSpec,
    pub action: Action,
}

/// A syntax error, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Start a `%{ ... }%` block at `raw`: the whole event if it closes on this line, else
/// None with `block` holding it open.
fn open_block(
    line: usize,
    time: TimeSpec,
    raw: &str,
    block: &mut Option<(usize, TimeSpec, String)>,
) -> Option<Event> {
    let start = raw.find("%{").map_or(0, |i| i + 2);
    let rest = &raw[start..];
    match rest.find("}%") {
        Some(end) => Some(Event {
            line,
            time,
            action: Action::Code(dedent(&rest[..end])),
        }),
        None => {
            *block = Some((line, time, rest.to_string()));
            None
        }
    }
}

/// Python code as written inside `%{ }%`: the common indentation removed, so that a
/// block indented as a whole runs.
fn dedent(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_string()
}

/// Parse a whole script (`defines` replace `NAME` words, as `-D NAME=value`).
pub fn parse(text: &str, defines: &[(String, String)]) -> Result<Vec<Event>, ParseError> {
    let mut events = Vec::new();
    // A `%{ }%` block still open: its first line, time and code so far.
    let mut block: Option<(usize, TimeSpec, String)> = None;
    let mut in_comment = false;
    // A backtick command still open: its first line and text so far.
    let mut shell: Option<(usize, TimeSpec, String)> = None;
    // A call spread over several lines: its first line and text so far.
    let mut open_call: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some((start, time, mut code)) = block.take() {
            match raw.find("}%") {
                Some(end) => {
                    code.push('\n');
                    code.push_str(&raw[..end]);
                    events.push(Event {
                        line: start,
                        time,
                        action: Action::Code(dedent(&code)),
                    });
                }
                None => {
                    code.push('\n');
                    code.push_str(raw);
                    block = Some((start, time, code));
                }
            }
            continue;
        }
        let mut l = raw.to_string();
        if in_comment {
            match l.find("*/") {
                Some(end) => {
                    l = l[end + 2..].to_string();
                    in_comment = false;
                }
                None => continue,
            }
        }
        while let Some(start) = l.find("/*") {
            match l[start..].find("*/") {
                Some(end) => l.replace_range(start..start + end + 2, ""),
                None => {
                    l.truncate(start);
                    in_comment = true;
                }
            }
        }
        if let Some(c) = l.find("//") {
            l.truncate(c);
        }
        for (name, value) in defines {
            l = replace_word(&l, name, value);
        }
        let t = l.trim();
        if let Some((start, time, text)) = &mut shell {
            // A backtick command that spans lines ends at the closing backtick.
            let (part, done) = match t.find('`') {
                Some(i) => (&t[..i], true),
                None => (t, false),
            };
            text.push('\n');
            text.push_str(part);
            if done {
                events.push(Event {
                    line: *start,
                    time: *time,
                    action: Action::Shell(text.trim().to_string()),
                });
                shell = None;
            }
            continue;
        }
        if t.is_empty() {
            continue;
        }
        // A call whose brackets are still open continues on the next lines.
        let joined;
        let (line, t) = match open_call.take() {
            Some((first, mut text)) => {
                text.push(' ');
                text.push_str(t);
                if bracket_depth(&text) > 0 {
                    open_call = Some((first, text));
                    continue;
                }
                joined = text;
                (first, joined.as_str())
            }
            None if !t.contains('`') && !t.contains("%{") && bracket_depth(t) > 0 => {
                open_call = Some((line, t.to_string()));
                continue;
            }
            None => (line, t),
        };
        // Untimed lines: options (`--tolerance_usecs=10000`), shell commands, code blocks.
        if let Some(opt) = t.strip_prefix("--") {
            let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
            events.push(Event {
                line,
                time: TimeSpec::Relative(0.0),
                action: Action::Option(name.trim().to_string(), value.trim().to_string()),
            });
            continue;
        }
        if let Some(cmd) = t.strip_prefix('`') {
            match cmd.find('`') {
                Some(end) => events.push(Event {
                    line,
                    time: TimeSpec::Relative(0.0),
                    action: Action::Shell(cmd[..end].trim().to_string()),
                }),
                None => shell = Some((line, TimeSpec::Relative(0.0), cmd.to_string())),
            }
            continue;
        }
        if raw.trim_start().starts_with("%{") {
            if let Some(event) = open_block(line, TimeSpec::Relative(0.0), raw, &mut block) {
                events.push(event);
            }
            continue;
        }
        let (time, rest) = split_time(t).map_err(|message| ParseError { line, message })?;
        let rest = rest.trim();
        let action = if rest.starts_with("%{") {
            // From the raw line: a comment or define inside the code is the code's.
            if let Some(event) = open_block(line, time, raw, &mut block) {
                events.push(event);
            }
            continue;
        } else if let Some(cmd) = rest.strip_prefix('`') {
            if !cmd.contains('`') {
                // A timed shell command that goes on over the next lines.
                shell = Some((line, time, cmd.to_string()));
                continue;
            }
            Action::Shell(cmd.trim_end_matches('`').trim().to_string())
        } else if let Some((dir, seg)) = rest
            .strip_prefix('<')
            .map(|s| (Direction::Inbound, s))
            .or_else(|| rest.strip_prefix('>').map(|s| (Direction::Outbound, s)))
        {
            let error = |message| ParseError { line, message };
            if is_icmp_line(seg) {
                Action::Icmp(icmp_line(dir, seg).map_err(error)?)
            } else {
                Action::Segment(segment(dir, seg).map_err(error)?)
            }
        } else {
            // `+A ... B call`: the ellipsis and the end time may stand apart.
            let (spaced, rest) = spaced_blocking_end(rest, split_time_word(t).ends_with("..."));
            let mut call = syscall(rest).map_err(|message| ParseError { line, message })?;
            call.blocks_until = blocking_end(t).or(spaced);
            Action::Syscall(call)
        };
        events.push(Event { line, time, action });
    }
    if let Some((line, _)) = open_call {
        return Err(ParseError {
            line,
            message: "unbalanced brackets: the call never closes".into(),
        });
    }
    Ok(events)
}

/// How many brackets of any kind are open at the end of `t` (outside `<...>` lists).
fn bracket_depth(t: &str) -> i32 {
    t.chars()
        .map(|c| match c {
            '(' | '[' | '{' => 1,
            ')' | ']' | '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The leading time of a line, and the rest.
fn split_time(t: &str) -> Result<(TimeSpec, &str), String> {
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    let (word, rest) = t.split_at(end);
    let bad = || format!("'{word}' is not a time (like 0, +.1, * or 1~2)");
    if word == "*" {
        return Ok((TimeSpec::Any, rest));
    }
    let (relative, body) = match word.strip_prefix('+') {
        Some(b) => (true, b),
        None => (false, word),
    };
    // `+A...B`: a blocking call, starting at A.
    let body = body.split("...").next().unwrap_or(body);
    if let Some((a, b)) = body.split_once('~') {
        let start: f64 = a.parse().map_err(|_| bad())?;
        let end: f64 = b.trim_start_matches('+').parse().map_err(|_| bad())?;
        return Ok((
            TimeSpec::Range {
                start,
                end,
                relative,
            },
            rest,
        ));
    }
    let v: f64 = body.parse().map_err(|_| bad())?;
    Ok((
        if relative {
            TimeSpec::Relative(v)
        } else {
            TimeSpec::Absolute(v)
        },
        rest,
    ))
}

/// The first word of a line: its time.
fn split_time_word(t: &str) -> &str {
    t.split_whitespace().next().unwrap_or("")
}

/// `... B` at the start of what follows a line's time (packetdrill's grammar lets the
/// ellipsis and the end time of a blocking call stand apart: `+.002 ... 0.004 connect`),
/// or just `B` when the time word itself ended with `...`: the end, and the rest.
fn spaced_blocking_end(rest: &str, pending: bool) -> (Option<f64>, &str) {
    let r = match rest.strip_prefix("...") {
        Some(after) => after.trim_start(),
        None if pending => rest,
        None => return (None, rest),
    };
    let end = r.find(char::is_whitespace).unwrap_or(r.len());
    match r[..end].parse::<f64>() {
        Ok(v) => (Some(v), r[end..].trim_start()),
        Err(_) => (None, rest),
    }
}

/// The end of `+A...B`, if the line has one (relative to the line's start time).
fn blocking_end(t: &str) -> Option<f64> {
    let word = t.split_whitespace().next()?;
    let (_, b) = word.split_once("...")?;
    b.parse().ok()
}

/// `NAME` replaced by `value` where it stands as a word of its own (a `-D` define does
/// not touch `SO_EE_CODE_...` for `CODE`).
fn replace_word(l: &str, name: &str, value: &str) -> String {
    if name.is_empty() {
        return l.to_string();
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(l.len());
    let mut rest = l;
    while let Some(i) = rest.find(name) {
        out.push_str(&rest[..i]);
        let before = out.chars().last();
        let after = rest[i + name.len()..].chars().next();
        if before.is_some_and(ident) || after.is_some_and(ident) {
            out.push_str(name);
        } else {
            out.push_str(value);
        }
        rest = &rest[i + name.len()..];
    }
    out.push_str(rest);
    out
}

/// A packet line whose packet is ICMP: `icmp` after the direction (and an ECN note).
fn is_icmp_line(s: &str) -> bool {
    let mut words = s.split_whitespace();
    let first = words.next();
    match first {
        Some(w) if ecn_spec(w).is_some() => words.next() == Some("icmp"),
        w => w == Some("icmp"),
    }
}

/// packetdrill's `icmp_packet_spec`: `icmp TYPE [CODE] [mtu N] [id N] [QUOTE]`.
fn icmp_line(dir: Direction, s: &str) -> Result<IcmpLine, String> {
    let (head, quote) = match s.find('[') {
        // An ECN note comes before `icmp`; the quote after it.
        Some(i) if s[..i].contains("icmp") => {
            let inner = s[i + 1..]
                .strip_suffix(']')
                .or_else(|| s[i + 1..].trim_end().strip_suffix(']'))
                .ok_or("an ICMP quote without ']'")?;
            (&s[..i], Some(inner.trim()))
        }
        _ => (s, None),
    };
    let mut words = head.split_whitespace().skip_while(|w| *w != "icmp").skip(1);
    let icmp_type = words.next().ok_or("an ICMP line needs a type")?.to_string();
    let mut line = IcmpLine {
        direction: dir,
        icmp_type,
        code: None,
        mtu: None,
        id: 0,
        quote: IcmpQuote::Tcp { start: 0, len: 0 },
    };
    let mut words = words.peekable();
    if let Some(w) = words.next_if(|w| *w != "mtu" && *w != "id") {
        line.code = Some(w.to_string());
    }
    while let Some(w) = words.next() {
        let number = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| format!("'{w}' needs a number"))
        };
        match w {
            "mtu" => line.mtu = Some(number(words.next())?),
            "id" => {
                line.id = u16::try_from(number(words.next())?)
                    .map_err(|_| "an echo id is at most 65535".to_string())?
            }
            other => return Err(format!("unexpected '{other}' in an ICMP line")),
        }
    }
    if let Some(q) = quote {
        let sized = |q: &str, what: &str| -> Option<u32> {
            let rest = q.strip_prefix(what)?.trim();
            rest.strip_prefix('(')?
                .strip_suffix(')')?
                .trim()
                .parse()
                .ok()
        };
        line.quote = if let Some(n) = sized(q, "udp") {
            IcmpQuote::Udp(n)
        } else if let Some(n) = sized(q, "raw") {
            IcmpQuote::Raw(n)
        } else {
            let bad = || format!("'[{q}]' is not start:end(len), udp (N) or raw (N)");
            let (range, len) = q.split_once('(').ok_or_else(bad)?;
            let (a, _) = range.split_once(':').ok_or_else(bad)?;
            IcmpQuote::Tcp {
                start: a.trim().parse().map_err(|_| bad())?,
                len: len
                    .trim_end_matches(')')
                    .trim()
                    .parse()
                    .map_err(|_| bad())?,
            }
        };
    }
    Ok(line)
}

fn segment(dir: Direction, s: &str) -> Result<Segment, String> {
    let s = s.trim();
    let (head, opts) = match s.find('<') {
        Some(i) => (
            &s[..i],
            Some(&s[i + 1..s.rfind('>').ok_or("an option list without '>'")?]),
        ),
        None => (s, None),
    };
    let mut words = head.split_whitespace().peekable();
    let ports = match words.peek().and_then(|w| w.split_once('>')) {
        Some((a, b)) => {
            let port = |v: &str| v.parse::<u16>().map_err(|_| format!("'{v}' is not a port"));
            let p = (port(a)?, port(b)?);
            words.next();
            Some(p)
        }
        None => None,
    };
    let ecn = match words.peek().copied().and_then(ecn_spec) {
        Some(spec) => {
            words.next();
            Some(spec?)
        }
        None => None,
    };
    let flags = words
        .next()
        .ok_or("a segment line needs flags")?
        .to_string();
    if !flags.chars().all(|c| "SFRP.UEW-".contains(c)) {
        return Err(format!(
            "'{flags}' are not TCP flags (S F R P . U E W or -)"
        ));
    }
    let mut seg = Segment {
        direction: dir,
        ports,
        ecn,
        flags,
        seq: None,
        ack: None,
        win: None,
        urg: 0,
        options: None,
    };
    let num = |w: Option<&str>, what: &str| -> Result<u32, String> {
        w.and_then(|w| w.parse::<u32>().ok())
            .ok_or_else(|| format!("{what} needs a number"))
    };
    while let Some(w) = words.next() {
        match w {
            "ack" => seg.ack = Some(num(words.next(), "ack")?),
            "win" => seg.win = Some(num(words.next(), "win")?),
            "urg" => {
                let n = num(words.next(), "urg")?;
                seg.urg = u16::try_from(n).map_err(|_| "urg_ptr value out of range")?;
            }
            w if w.contains(':') && w.contains('(') => {
                let (range, len) = w.split_once('(').ok_or("start:end(len)")?;
                let (a, b) = range.split_once(':').ok_or("start:end(len)")?;
                let len = len.trim_end_matches(')');
                let parse = |v: &str| {
                    v.parse::<u32>()
                        .map_err(|_| format!("'{w}' is not start:end(len)"))
                };
                seg.seq = Some((parse(a)?, parse(b)?, parse(len)?));
            }
            other => return Err(format!("unexpected '{other}' in a segment line")),
        }
    }
    seg.options = match opts {
        Some(o) if o.trim() == "..." => None,
        Some(o) => Some(options(o)?),
        None => Some(Vec::new()),
    };
    Ok(seg)
}

fn options(s: &str) -> Result<Vec<ScriptOption>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let words: Vec<&str> = item.split_whitespace().collect();
        let num = |i: usize| -> Result<u32, String> {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("option '{item}' needs a number"))
        };
        out.push(match words[0] {
            "nop" => ScriptOption::Nop,
            "eol" => ScriptOption::Eol,
            "sackOK" => ScriptOption::SackOk,
            "FO" | "FOEXP" => ScriptOption::FastOpen {
                experimental: words[0] == "FOEXP",
                cookie: match words.get(1) {
                    None => FoCookie::Request,
                    Some(&"TFO_COOKIE") => FoCookie::Stack,
                    Some(hex) => FoCookie::Bytes(
                        hex_bytes(hex).ok_or_else(|| format!("cookie '{hex}' is not hex"))?,
                    ),
                },
            },
            "md5" => {
                // packetdrill's new_md5_option: hex digits for the digest; synack takes
                // the option's one valid length (16 bytes, RFC 2385 §3.0).
                let hex = words.get(1).ok_or("option 'md5' needs a digest")?;
                let bytes =
                    hex_bytes(hex).ok_or_else(|| format!("md5 digest '{hex}' is not hex"))?;
                let digest: [u8; 16] = bytes
                    .try_into()
                    .map_err(|_| format!("md5 digest '{hex}' is not 16 bytes"))?;
                ScriptOption::Md5(digest)
            }
            "mss" => ScriptOption::Mss(num(1)? as u16),
            "wscale" => ScriptOption::WindowScale(num(1)? as u8),
            "TS" => ScriptOption::Timestamp {
                val: num(2)?,
                ecr: num(4)?,
            },
            "sack" => {
                let mut blocks = Vec::new();
                for b in &words[1..] {
                    let (a, e) = b
                        .split_once(':')
                        .ok_or_else(|| format!("sack block '{b}'"))?;
                    let p = |v: &str| v.parse::<u32>().map_err(|_| format!("sack block '{b}'"));
                    blocks.push((p(a)?, p(e)?));
                }
                ScriptOption::Sack(blocks)
            }
            other => return Err(format!("unknown option '{other}'")),
        });
    }
    Ok(out)
}

/// Bytes written as hex digits (`abcd1234`).
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `name(arg, arg, ...) = ret [ERRNO (text)]`
fn syscall(s: &str) -> Result<Syscall, String> {
    let open = s
        .find('(')
        .ok_or_else(|| format!("'{s}' is neither a segment nor a call"))?;
    let name = s[..open].trim().to_string();
    let mut depth = 0;
    let mut close = None;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close.ok_or("unbalanced parentheses")?;
    let args = split_args(&s[open + 1..close]);
    let rest = s[close + 1..].trim();
    let rest = rest
        .strip_prefix('=')
        .ok_or("a call needs '= result'")?
        .trim();
    let mut words = rest.split_whitespace();
    let ret: i64 = words
        .next()
        .and_then(|w| match w.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => w.parse().ok(),
        })
        .ok_or("the result must be a number")?;
    // `-1 ECONNRESET (text)`, also written `-1 ECONNRESET(text)`; `-1 (text)` names none.
    let errno = words
        .next()
        .map(|w| w.split('(').next().unwrap_or(""))
        .filter(|w| !w.is_empty())
        .map(str::to_string);
    Ok(Syscall {
        name,
        args,
        ret,
        errno,
        blocks_until: None,
    })
}

fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c)
            }
            ')' | ']' | '}' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_md5_option_takes_a_16_byte_digest_in_hex() {
        let o = options("md5 000102030405060708090a0b0c0d0e0f,nop,nop").unwrap();
        assert_eq!(o[0], ScriptOption::Md5(core::array::from_fn(|i| i as u8)));
        assert_eq!(&o[1..], &[ScriptOption::Nop, ScriptOption::Nop]);
        assert!(options("md5 0001020304050607").is_err());
        assert!(options("md5 zz").is_err());
        assert!(options("md5").is_err());
    }

    #[test]
    fn icmp_lines_parse_as_packetdrill_writes_them() {
        let s = "+.01 < icmp unreachable frag_needed mtu 800 [1:1461(1460)]\n\
                 +0 < icmp packet_too_big mtu 1400\n\
                 +0 < icmp unreachable CODE\n";
        let ev = parse(s, &[]).unwrap();
        let icmp = |i: usize| match &ev[i].action {
            Action::Icmp(l) => l.clone(),
            other => panic!("{other:?}"),
        };
        let a = icmp(0);
        assert_eq!(a.icmp_type, "unreachable");
        assert_eq!(a.code.as_deref(), Some("frag_needed"));
        assert_eq!(a.mtu, Some(800));
        assert_eq!(
            a.quote,
            IcmpQuote::Tcp {
                start: 1,
                len: 1460
            }
        );
        let b = icmp(1);
        assert_eq!((b.code, b.mtu), (None, Some(1400)));
        assert_eq!(b.quote, IcmpQuote::Tcp { start: 0, len: 0 });
        assert_eq!(icmp(2).code.as_deref(), Some("CODE"));
    }

    #[test]
    fn defines_replace_whole_words_only() {
        let d = [("CODE".to_string(), "host_unreachable".to_string())];
        let ev = parse("0 < icmp unreachable CODE\n", &d).unwrap();
        assert!(
            matches!(&ev[0].action, Action::Icmp(l) if l.code.as_deref() == Some("host_unreachable"))
        );
        assert_eq!(
            replace_word("SO_EE_CODE_X CODE", "CODE", "y"),
            "SO_EE_CODE_X y"
        );
    }

    #[test]
    fn a_handshake_script_parses() {
        let s = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
                 +0 listen(3, 1) = 0 // comment\n\
                 +0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>\n\
                 +0 > S. 0:0(0) ack 1 <...>\n\
                 +.1 < . 1:1(0) ack 1 win 257\n\
                 +0 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)\n";
        let ev = parse(s, &[]).unwrap();
        assert_eq!(ev.len(), 6);
        assert_eq!(ev[2].time, TimeSpec::Relative(0.0));
        let Action::Segment(syn) = &ev[2].action else {
            panic!()
        };
        assert_eq!(syn.seq, Some((0, 0, 0)));
        assert_eq!(syn.options.as_ref().unwrap()[0], ScriptOption::Mss(1000));
        let Action::Segment(synack) = &ev[3].action else {
            panic!()
        };
        assert_eq!((synack.ack, synack.options.clone()), (Some(1), None));
        let Action::Segment(ack) = &ev[4].action else {
            panic!()
        };
        assert_eq!(ack.options, Some(Vec::new()), "no list: no options");
        assert_eq!(ev[4].time, TimeSpec::Relative(0.1));
        let Action::Syscall(c) = &ev[5].action else {
            panic!()
        };
        assert_eq!((c.ret, c.errno.as_deref()), (-1, Some("ECONNREFUSED")));
    }

    #[test]
    fn ecn_annotations_before_the_flags_parse() {
        let ev = parse(
            "0 > [ect0] P. 1:1001(1000) ack 1\n+0 < [ce] . 1:11(10) ack 1\n\
             +0 < (noecn) E. 1:1(0) ack 1\n+0 > [ect01] . 1:1(0) ack 1\n+0 > S 0:0(0)\n",
            &[],
        )
        .unwrap();
        let specs: Vec<_> = ev
            .iter()
            .map(|e| match &e.action {
                Action::Segment(s) => s.ecn,
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            specs,
            [
                Some(EcnSpec::Is(Ecn::Ect0)),
                Some(EcnSpec::Is(Ecn::Ce)),
                Some(EcnSpec::Is(Ecn::NotEct)),
                Some(EcnSpec::EitherEct),
                None
            ]
        );
        let e = parse("0 > [tos 0x2] . 1:1(0) ack 1\n", &[]).unwrap_err();
        assert!(e.message.contains("ECN annotations"), "{e}");
    }

    #[test]
    fn a_blocking_call_may_write_its_ellipsis_apart() {
        for line in [
            "+.002 ... 0.004 connect(4, ..., ...) = 0\n",
            "+.002... 0.004 connect(4, ..., ...) = 0\n",
            "+.002...0.004 connect(4, ..., ...) = 0\n",
        ] {
            let ev = parse(line, &[]).unwrap();
            let Action::Syscall(c) = &ev[0].action else {
                panic!("{line}")
            };
            assert_eq!((c.name.as_str(), c.blocks_until), ("connect", Some(0.004)));
            assert_eq!(ev[0].time, TimeSpec::Relative(0.002));
        }
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = parse(
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+x < S 0:0(0)\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("0 < Q 0:0(0)\n", &[]).unwrap_err();
        assert!(e.message.contains("not TCP flags"), "{e}");
    }
}
