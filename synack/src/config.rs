//! Configuration, one place for every knob: what the stack and each of its connections
//! obey (below both `stack` and `tcp`, which read it). Knobs that mirror a Linux sysctl
//! carry its name and its default, so behaviour matches a stock Linux host.

use alloc::format;
use alloc::string::String;
use core::ops::RangeInclusive;
use core::time::Duration;

use crate::secrets::Secrets;

/// Every tunable of a [`crate::Stack`], with Linux's defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::{CongestionControl, Config, Stack};
/// // Start from Linux's defaults and change fields (Config is non-exhaustive).
/// let mut config = Config::default();
/// config.mtu = 9000;
/// config.recv_buffer = 1 << 20;
/// config.congestion_control = CongestionControl::NewReno;
/// config.time_wait = Duration::from_secs(30);
/// let stack = Stack::new(config);
/// assert_eq!(stack.config().tcp_retries2, 15);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Where the stack's secret keys come from (ISNs, ephemeral ports, SYN cookies,
    /// timestamp offsets): [`Secrets::Random`] by default, fresh from the operating
    /// system for every stack; [`Secrets::Deterministic`] (see [`Config::deterministic`])
    /// for simulations and tests that must repeat exactly. The keys themselves are drawn
    /// by [`crate::Stack::new`] and never kept here, so cloning a `Config` does not share
    /// them.
    pub secrets: Secrets,
    /// `net.ipv4.tcp_syn_retries` (6): SYN retransmissions before connect() fails with TimedOut.
    pub tcp_syn_retries: u32,
    /// `net.ipv4.tcp_synack_retries` (5): SYN-ACK retransmissions before an embryonic connection is dropped.
    pub tcp_synack_retries: u32,
    /// `net.ipv4.tcp_retries2` (15): retransmissions of data/FIN before the connection is aborted.
    pub tcp_retries2: u32,
    /// `net.ipv4.tcp_orphan_retries` (0, which Linux reads as 8): retries for connections the application closed.
    pub tcp_orphan_retries: u32,
    /// `net.ipv4.tcp_fin_timeout` (60 s): how long an orphaned connection waits in FIN_WAIT_2 for the peer's FIN.
    pub tcp_fin_timeout: Duration,
    /// Length of TIME_WAIT, 2*MSL (Linux's TCP_TIMEWAIT_LEN, 60 s).
    pub time_wait: Duration,
    /// `net.ipv4.tcp_rfc1337`: when true, a RST does not end TIME_WAIT early (RFC 1337).
    /// Linux defaults to false; synack defaults to the protected behaviour (true).
    pub tcp_rfc1337: bool,
    /// `net.ipv4.tcp_max_tw_buckets` (262144): most TIME_WAIT entries kept at once.
    pub tcp_max_tw_buckets: usize,
    /// `net.ipv4.tcp_timestamps` (true): offer and accept RFC 7323 timestamps.
    pub tcp_timestamps: bool,
    /// `net.ipv4.tcp_window_scaling` (true): offer and accept RFC 7323 window scaling.
    pub tcp_window_scaling: bool,
    /// `net.ipv4.tcp_sack` (true): offer and accept selective acknowledgements (RFC 2018).
    pub tcp_sack: bool,
    /// `net.ipv4.tcp_ecn` (2): Explicit Congestion Notification (RFC 3168). 0 never;
    /// 1 requests it on outgoing connections (a SYN with ECE and CWR) and accepts it on
    /// incoming ones; 2, Linux's default, accepts it when the peer requests it but does
    /// not request it. On an ECN connection new data goes out ECT(0), a CE mark is echoed
    /// with ECE until the peer's CWR, and an ECE reduces cwnd once per window, without a
    /// retransmission. (A connection made from a SYN cookie keeps ECN in the cookie's
    /// timestamp, as Linux's cookie_init_timestamp; without timestamps it has none.)
    pub tcp_ecn: u8,
    /// `net.ipv4.tcp_congestion_control` (cubic): the congestion control of new
    /// connections; [`crate::Stack::set_congestion_control`] changes one connection's.
    pub congestion_control: CongestionControl,
    /// Longest an ACK for in-order data may wait (RFC 1122 4.2.3.2: under 500 ms;
    /// Linux's 40 ms). At most every second segment waits. Zero ACKs every segment.
    pub delayed_ack: Duration,
    /// Quick ACKs at the start of a connection and after an idle of more than an RTO:
    /// up to this many data segments are ACKed at once before delayed ACKs begin
    /// (Linux's quick-ACK mode, TCP_MAX_QUICKACKS = 16; fewer when the window holds
    /// fewer than twice as many segments). Zero turns the mode off.
    pub quick_acks: u32,
    /// Default of TCP_NODELAY for new connections: false keeps Nagle's algorithm on
    /// (RFC 1122 4.2.3.4), as Linux does.
    pub tcp_nodelay: bool,
    /// SO_KEEPALIVE for new connections: None (off, as on Linux) or the settings to use;
    /// [`crate::Stack::set_keepalive`] changes one connection's.
    pub keepalive: Option<Keepalive>,
    /// Initial retransmission timeout (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Lower bound of the RTO (Linux's TCP_RTO_MIN, 200 ms).
    pub rto_min: Duration,
    /// Upper bound of the RTO (Linux's TCP_RTO_MAX, 120 s).
    pub rto_max: Duration,
    /// The tick of Linux's TCP timers (a jiffy: 4 ms on kernels built with CONFIG_HZ=250,
    /// as Debian's are). RACK's reordering timer fires 2 ms after its deadline rounded up
    /// to whole ticks (Linux's `usecs_to_jiffies(timeout + TCP_REO_TIMEOUT_MIN)`).
    pub timer_tick: Duration,
    /// MTU of the interface; the advertised MSS is derived from it (1500 -> 1460 for IPv4).
    pub mtu: usize,
    /// Receive buffer per connection, in bytes (bounds the advertised window).
    pub recv_buffer: usize,
    /// Send buffer per connection, in bytes.
    pub send_buffer: usize,
    /// `net.ipv4.tcp_rmem[2]` (6 MiB): the most a receive buffer may grow to. As on Linux,
    /// the window scale offered on a SYN is derived from it (the smallest shift that fits
    /// the larger of it and `recv_buffer` in 16 bits: 6 MiB gives 7), unless the application
    /// sized the buffer itself ([`crate::Stack::set_buffers`]).
    pub tcp_rmem_max: usize,
    /// `net.ipv4.tcp_moderate_rcvbuf` (true): receive buffers grow to twice what the
    /// application reads per round trip, up to `tcp_rmem_max`, unless sized by
    /// [`crate::Stack::set_buffers`] or a listener's option.
    pub tcp_moderate_rcvbuf: bool,
    /// `net.ipv4.tcp_wmem[2]` (4 MiB): the most a send buffer grows to as the congestion
    /// window grows (twice the window), unless sized by the application.
    pub tcp_wmem_max: usize,
    /// `net.ipv4.ip_local_port_range` (32768-60999): ephemeral ports for connect().
    pub ephemeral_ports: RangeInclusive<u16>,
    /// `net.core.rmem_default` (212,992): bytes a UDP socket's receive queue holds, each
    /// datagram counted with 256 bytes of overhead (as Linux counts an skb's true
    /// size); datagrams past it are dropped and counted (`udp_queue_full`).
    pub udp_recv_buffer: usize,
    /// Datagrams a UDP socket's receive queue holds at most (1,024).
    pub udp_recv_datagrams: usize,
    /// `net.core.somaxconn` (4096): the largest listen backlog honoured.
    pub somaxconn: usize,
    /// `net.ipv4.tcp_syncookies` (1): 0 never sends SYN cookies (a SYN to a full SYN
    /// queue is dropped), 1 sends them when a listener's SYN queue is full (RFC 4987
    /// 3.6), 2 always sends them.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_fastopen` (1): TCP Fast Open (RFC 7413), Linux's bits
    /// ([`crate::tcp::fastopen`]): 0x1 clients may send data in the SYN
    /// ([`crate::Stack::connect_fastopen`]), 0x2 listeners with a Fast Open queue accept
    /// it ([`crate::ListenerOptions::fastopen_queue`]), 0x4 clients send it without a
    /// cookie, 0x200 listeners take it without one, 0x400 every listener gets a queue as
    /// long as its backlog.
    pub tcp_fastopen: u32,
    /// Most connections (every state but LISTEN and the TIME_WAIT table) the stack holds
    /// at once; beyond it connect() fails with [`crate::Error::NoBufferSpace`] and SYNs are
    /// dropped (counted as `max_connections`). Linux has no such sysctl (its limits are
    /// file descriptors and memory); the default, 4,194,304, is well above what the
    /// buffer memory limit allows for busy connections.
    pub max_connections: usize,
    /// `net.ipv4.tcp_max_orphans` (65536): most connections closed by the application
    /// that are still finishing (FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK). Beyond it
    /// the oldest orphan is reset (Linux resets the newest; see docs/security.md).
    pub tcp_max_orphans: usize,
    /// `net.ipv4.tcp_mem`, in bytes (Linux counts pages): [low, pressure, high] for the
    /// bytes held in all connections' send and receive buffers. Above `pressure`,
    /// receive windows stop opening (the right edge stays put) until usage falls below
    /// `low`; above `high`, windows close to what is already promised and send() takes
    /// no more data. Accepted data is never dropped. Default: 192, 256 and 384 MiB.
    pub tcp_mem: [usize; 3],
    /// `net.ipv4.tcp_min_tso_segs` (2): the fewest segments Linux puts in one TSO/GSO
    /// packet. Whether or not synack sends super-segments (`tso_max`), its segments
    /// appear on the wire as Linux's: PSH on the last segment of each such packet (Linux
    /// forces PSH on every multi-segment packet) and at the end of the written data.
    pub tcp_min_tso_segs: u32,
    /// `net.ipv4.tcp_notsent_lowat` (`u32::MAX`, off): TCP_NOTSENT_LOWAT for connections
    /// that set none of their own ([`crate::Stack::set_notsent_lowat`]). With a limit, a
    /// connection takes more data only while its unsent bytes (written, not yet sent) are
    /// below it, and is writable (poll, [`crate::Event::Writable`]) only while they are
    /// below half of it, as Linux's `tcp_stream_memory_free`.
    pub tcp_notsent_lowat: u32,
    /// How the send buffer counts what it holds ([`SendAccounting::Bytes`] by default;
    /// [`SendAccounting::LinuxSkb`] takes writes and reports room as Linux does, with
    /// its per-skb overhead; `synack drill` uses it).
    pub send_accounting: SendAccounting,
    /// Segmentation offload: the largest IP packet the device cuts into segments (65535
    /// for a TUN device with `virtio_net_hdr`), or 0 (the default) when every packet
    /// must be one segment. With it, new data leaves as one packet per Linux TSO packet,
    /// and [`crate::Stack::poll_transmit_into`] gives the segment size to cut it at.
    pub tso_max: usize,
    /// Hop limit / TTL of outgoing packets (64).
    pub ttl: u8,
    /// How the TCP checksum of outgoing packets is filled: `Full` (default), or
    /// `Partial` for a device that finishes it (checksum offload; the TUN driver sets it
    /// when the kernel takes `virtio_net_hdr` offload).
    pub tx_checksum: crate::wire::TxChecksum,
    /// `net.ipv4.ipfrag_high_thresh` (4 MiB): the most memory incomplete datagrams may
    /// hold (fragment bytes plus a fixed overhead per datagram); a fragment that would
    /// go beyond it is dropped. One pool for IPv4 and IPv6 (Linux has a second sysctl,
    /// `net.ipv6.ip6frag_high_thresh`, with the same default). Zero turns reassembly off.
    pub ipfrag_high_thresh: usize,
    /// `net.ipv4.ipfrag_time` (30 s): how long an IPv4 datagram may take to arrive whole,
    /// counted from its first fragment (RFC 1122 3.3.2 suggests 60 to 120 s; Linux's
    /// 30 s is kept).
    pub ipfrag_time: Duration,
    /// `net.ipv6.ip6frag_time` (60 s, RFC 8200 4.5): the same for IPv6.
    pub ip6frag_time: Duration,
    /// Most fragments one datagram may arrive in (64); one more discards it. Linux has no
    /// such sysctl (memory alone bounds a datagram there); FreeBSD's
    /// `net.inet.ip.maxfragsperpacket` is the nearest.
    pub ipfrag_max_fragments: usize,
    /// Lifecycle diagnostics: warn about a connection in CLOSE_WAIT this long (60 s):
    /// the peer closed and the application has not.
    pub warn_close_wait: Duration,
    /// Warn about a connection in FIN_WAIT_2 this long (30 s): the peer has not sent its FIN.
    pub warn_fin_wait_2: Duration,
    /// Warn when a FIN in FIN_WAIT_1 has gone this many more times unanswered (3).
    pub warn_fin_wait_1_retransmits: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            secrets: Secrets::Random,
            tcp_syn_retries: 6,
            tcp_synack_retries: 5,
            tcp_retries2: 15,
            tcp_orphan_retries: 0,
            tcp_fin_timeout: Duration::from_secs(60),
            time_wait: Duration::from_secs(60),
            tcp_rfc1337: true,
            tcp_max_tw_buckets: 262_144,
            tcp_timestamps: true,
            tcp_window_scaling: true,
            tcp_sack: true,
            tcp_ecn: 2,
            congestion_control: CongestionControl::Cubic,
            delayed_ack: Duration::from_millis(40),
            quick_acks: 16,
            tcp_nodelay: false,
            keepalive: None,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            timer_tick: Duration::from_millis(4),
            mtu: 1500,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            tcp_rmem_max: 6 * 1024 * 1024,
            tcp_moderate_rcvbuf: true,
            tcp_wmem_max: 4 * 1024 * 1024,
            ephemeral_ports: 32768..=60999,
            udp_recv_buffer: 212_992,
            udp_recv_datagrams: 1024,
            somaxconn: 4096,
            tcp_syncookies: 1,
            tcp_fastopen: crate::tcp::fastopen::CLIENT_ENABLE,
            max_connections: 4 << 20,
            tcp_max_orphans: 65_536,
            tcp_mem: [192 << 20, 256 << 20, 384 << 20],
            tcp_min_tso_segs: 2,
            tcp_notsent_lowat: u32::MAX,
            send_accounting: SendAccounting::Bytes,
            ttl: 64,
            tx_checksum: crate::wire::TxChecksum::Full,
            tso_max: 0,
            ipfrag_high_thresh: 4 * 1024 * 1024,
            ipfrag_time: Duration::from_secs(30),
            ip6frag_time: Duration::from_secs(60),
            ipfrag_max_fragments: 64,
            warn_close_wait: Duration::from_secs(60),
            warn_fin_wait_2: Duration::from_secs(30),
            warn_fin_wait_1_retransmits: 3,
        }
    }
}

impl Config {
    /// Linux's defaults with every secret key derived from `seed`: two stacks made with
    /// the same seed choose the same ISNs, ports and cookies, so a simulation repeats
    /// exactly. Predictable by design: for the simulator, tests and fuzzing only.
    ///
    /// ```
    /// let config = synack::Config::deterministic(7);
    /// assert_eq!(config.secrets, synack::Secrets::Deterministic(7));
    /// assert_eq!(synack::Config::default().secrets, synack::Secrets::Random);
    /// ```
    pub fn deterministic(seed: u64) -> Config {
        Config {
            secrets: Secrets::Deterministic(seed),
            ..Config::default()
        }
    }

    /// The window scale a new connection offers (RFC 7323 2.2), derived as Linux does.
    pub(crate) fn wscale_offer(&self) -> Option<u8> {
        self.tcp_window_scaling
            .then(|| wscale_for(self.recv_buffer.max(self.tcp_rmem_max)))
    }

    /// Retries allowed for an orphaned connection (Linux reads 0 as 8).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = synack::Config::default();
    /// assert_eq!(config.orphan_retries(), 8); // tcp_orphan_retries 0 reads as 8
    /// config.tcp_orphan_retries = 3;
    /// assert_eq!(config.orphan_retries(), 3);
    /// ```
    pub fn orphan_retries(&self) -> u32 {
        if self.tcp_orphan_retries == 0 {
            8
        } else {
            self.tcp_orphan_retries
        }
    }
}

/// Which congestion control a connection uses: a built-in one, or a
/// [`crate::tcp::CongestionController`] of the application's own. More built-ins may
/// be added (hence `non_exhaustive`).
///
/// # Examples
///
/// ```
/// use synack::CongestionControl;
/// let cc: CongestionControl = "reno".parse().unwrap();
/// assert_eq!(cc, CongestionControl::NewReno);
/// assert_eq!(CongestionControl::default().name(), "cubic");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CongestionControl {
    /// CUBIC (RFC 9438): Linux's default.
    #[default]
    Cubic,
    /// NewReno (RFC 5681, RFC 6582).
    NewReno,
    /// The application's own controller, made per connection by the factory (see
    /// [`crate::tcp::CongestionController`] for an example).
    Custom(crate::tcp::CustomController),
}

impl CongestionControl {
    /// The name Linux uses (`cubic`, `reno`), or the name a custom controller was given.
    pub fn name(&self) -> &'static str {
        match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::NewReno => "reno",
            CongestionControl::Custom(custom) => custom.name(),
        }
    }
}

impl core::str::FromStr for CongestionControl {
    type Err = String;
    fn from_str(s: &str) -> Result<CongestionControl, String> {
        match s {
            "cubic" => Ok(CongestionControl::Cubic),
            "newreno" | "reno" => Ok(CongestionControl::NewReno),
            _ => Err(format!(
                "unknown congestion control '{s}' (use cubic or newreno)"
            )),
        }
    }
}

/// Keepalive settings of one connection (Linux's TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::{Config, Keepalive};
/// let mut keepalive = Keepalive::default(); // 7200 s, 75 s, 9 probes
/// keepalive.idle = Duration::from_secs(30);
/// let mut config = Config::default();
/// config.keepalive = Some(keepalive); // every new connection probes after 30 s idle
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe (`net.ipv4.tcp_keepalive_time`, 7200 s).
    pub idle: Duration,
    /// Time between unanswered probes (`net.ipv4.tcp_keepalive_intvl`, 75 s).
    pub interval: Duration,
    /// Unanswered probes before giving up (`net.ipv4.tcp_keepalive_probes`, 9).
    pub probes: u32,
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Window scale we offer: the smallest shift that lets the whole receive buffer be advertised.
pub(crate) fn wscale_for(buffer: usize) -> u8 {
    let mut shift = 0u8;
    while shift < 14 && (65535usize << shift) < buffer {
        shift += 1;
    }
    shift
}

/// How a connection's send buffer ([`Config::send_buffer`], SO_SNDBUF) is counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendAccounting {
    /// The buffer holds at most its size in bytes: a write takes what fits, and the
    /// connection is writable again once the free room is half of what is queued.
    #[default]
    Bytes,
    /// As Linux's `tcp_sendmsg_locked` does: a write fills skbs of `size_goal` bytes (up
    /// to 64 KiB, half the peer's largest window), starting a new one only while the
    /// queued bytes plus a per-skb overhead are below the buffer size (and the unsent
    /// bytes below TCP_NOTSENT_LOWAT); an skb once started is filled, so the buffer may
    /// hold up to one skb more than its size. What programs written against Linux see
    /// (a write of 59000 bytes into a 50000-byte buffer takes 58000); not the default,
    /// because its overshoot and overhead make the buffer's size a loose bound.
    LinuxSkb,
}
