//! TCP-MD5 signatures (RFC 2385) as Linux keeps them (TCP_MD5SIG, TCP_MD5SIG_EXT): keys
//! bound to a peer address or prefix, set on a listener or a connection. A connection
//! keeps the one key for its peer beside it, in its slot (nothing in `Connection` but a
//! flag); a listener's child takes the key for its peer from the listener; a TIME_WAIT
//! entry keeps its connection's key to sign its ACKs. Nothing here runs while no key was
//! ever set on the stack, and no segment carries the option.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use super::*;
use crate::wire::{self, TcpRepr};
use tables::FourTuple;

/// A TCP-MD5 key (RFC 2385) for a peer: an address, or with `prefix_len` all the addresses
/// of a prefix (Linux's `struct tcp_md5sig` with TCP_MD5SIG_FLAG_PREFIX), and the key's
/// bytes (1 to 80, TCP_MD5SIG_MAXKEYLEN).
///
/// # Examples
///
/// ```
/// use synack::Md5Key;
/// let key = Md5Key::new("198.18.0.0".parse().unwrap(), Some(15), b"bgp-secret").unwrap();
/// assert!(key.covers("198.19.1.2".parse().unwrap()));
/// assert!(!key.covers("198.20.0.1".parse().unwrap()));
/// assert!(Md5Key::new("198.18.0.1".parse().unwrap(), None, &[0; 81]).is_err()); // too long
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key {
    peer: IpAddr,
    prefix_len: u8,
    key: Box<[u8]>,
}

impl core::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key's bytes are a secret: never printed.
        f.debug_struct("Md5Key")
            .field("peer", &self.peer)
            .field("prefix_len", &self.prefix_len)
            .finish_non_exhaustive()
    }
}

impl Md5Key {
    /// A key for `peer` (with `prefix_len`: for its prefix; None: that address alone).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty key or one longer than 80 bytes, or a prefix
    /// longer than the address (Linux's tcp_v4_parse_md5_keys: EINVAL).
    pub fn new(peer: IpAddr, prefix_len: Option<u8>, key: &[u8]) -> Result<Md5Key, Error> {
        let full = if peer.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(full);
        if key.is_empty() || key.len() > wire::TCP_MD5_MAX_KEY_LEN || prefix_len > full {
            return Err(Error::InvalidArgument);
        }
        Ok(Md5Key {
            peer,
            prefix_len,
            key: key.into(),
        })
    }

    /// The peer address (or prefix) the key is for.
    pub fn peer(&self) -> (IpAddr, u8) {
        (self.peer, self.prefix_len)
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether the key applies to segments from and to `addr`.
    pub fn covers(&self, addr: IpAddr) -> bool {
        let (len, a, b) = match (self.peer, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                (32, u128::from(p.to_bits()), u128::from(a.to_bits()))
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => (128, p.to_bits(), a.to_bits()),
            _ => return false,
        };
        let host_bits = len - u32::from(self.prefix_len);
        host_bits >= len || (a ^ b) >> host_bits == 0
    }
}

/// A socket's keys (Linux's md5sig_info): the one for a peer is the longest prefix that
/// covers it (tcp_md5_do_lookup's best match).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Md5Keys(Vec<Md5Key>);

impl Md5Keys {
    pub(crate) fn lookup(&self, addr: IpAddr) -> Option<&Md5Key> {
        self.0
            .iter()
            .filter(|k| k.covers(addr))
            .max_by_key(|k| k.prefix_len)
    }

    /// Add `key`, replacing the one for the same peer and prefix (TCP_MD5SIG).
    pub(crate) fn set(&mut self, key: Md5Key) {
        self.remove(key.peer, key.prefix_len);
        self.0.push(key);
    }

    /// Remove the key for this peer and prefix (TCP_MD5SIG with a zero key length);
    /// false when there was none (Linux: ENOENT).
    pub(crate) fn remove(&mut self, peer: IpAddr, prefix_len: u8) -> bool {
        let before = self.0.len();
        self.0
            .retain(|k| !(k.peer == peer && k.prefix_len == prefix_len));
        self.0.len() != before
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The stack's TCP-MD5 state, made when the first key is set.
#[derive(Debug, Default)]
pub(crate) struct Md5State {
    /// The keys of connections now in the TIME_WAIT table (Linux's tw_md5_key), which
    /// sign its ACKs and RSTs.
    pub(crate) time_wait: Vec<(FourTuple, Md5Key)>,
    /// The key that signs the RST for the segment being handled, found through a
    /// listener for a segment to no socket (see `md5_inbound`).
    pub(crate) reply_key: Option<Md5Key>,
}

/// What the inbound check (Linux's tcp_inbound_hash) says of a segment.
pub(crate) enum Md5Verdict {
    Accept,
    Drop(&'static str),
    /// For no socket: answer with a RST signed with this key.
    ReplySigned(Md5Key),
}

impl Stack {
    /// Set a TCP-MD5 key (RFC 2385) on a connection, as Linux's
    /// `setsockopt(TCP_MD5SIG)`: from then on, when the key covers the peer, every segment
    /// it sends is signed and every segment it receives must carry a valid signature. Set
    /// it before the first [`Stack::poll_transmit`] after [`Stack::connect`] so that the
    /// SYN is signed (a key set later applies from then on, as on Linux, where the peer
    /// then drops what was unsigned).
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
    /// #     loop {
    /// #         let mut quiet = true;
    /// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
    /// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
    /// #         if quiet { break; }
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut client = Stack::new(Config::default());
    /// # client.add_address("198.18.0.1".parse()?);
    /// # let mut server = Stack::new(Config::default());
    /// # server.add_address("198.18.0.2".parse()?);
    /// # let now = Instant::ZERO;
    /// use synack::Md5Key;
    /// let listener = server.listen("198.18.0.2:179".parse()?, 16)?;
    /// server.set_listener_md5_key(listener, Md5Key::new("198.18.0.1".parse()?, None, b"s3cret")?)?;
    /// let conn = client.connect(now, "198.18.0.2:179".parse()?)?;
    /// client.set_md5_key(now, conn, Md5Key::new("198.18.0.2".parse()?, None, b"s3cret")?)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.state(conn)?, TcpState::Established);
    /// let accepted = server.accept(listener)?;
    /// client.send(now, conn, b"OPEN")?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.recv_queue(accepted)?, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_md5_key(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        key: Md5Key,
    ) -> Result<(), Error> {
        let index = self.slot_index(conn)?;
        self.md5.get_or_insert_with(Default::default);
        let slot = &mut self.slots[index as usize];
        slot.md5.get_or_insert_with(Default::default).set(key);
        self.md5_keys_changed(now, index);
        Ok(())
    }

    /// Remove a connection's key for `peer` and `prefix_len` (None: the address alone),
    /// as `setsockopt(TCP_MD5SIG)` with no key. [`Error::InvalidArgument`] when it has none
    /// (Linux: ENOENT).
    pub fn remove_md5_key(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        peer: IpAddr,
        prefix_len: Option<u8>,
    ) -> Result<(), Error> {
        let index = self.slot_index(conn)?;
        let prefix_len = prefix_len.unwrap_or(if peer.is_ipv4() { 32 } else { 128 });
        let slot = &mut self.slots[index as usize];
        let removed = slot
            .md5
            .as_mut()
            .is_some_and(|k| k.remove(peer, prefix_len));
        if slot.md5.as_ref().is_some_and(|k| k.is_empty()) {
            slot.md5 = None;
        }
        self.md5_keys_changed(now, index);
        if removed {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    }

    /// Set a TCP-MD5 key on a listener (`setsockopt(TCP_MD5SIG)` on a listening socket):
    /// SYNs from the peers it covers must be signed with it, its SYN-ACKs are, and the
    /// connections it makes for them take the key. SYNs from other peers must not be
    /// signed at all (Linux: TCPMD5UNEXPECTED).
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn set_listener_md5_key(
        &mut self,
        listener: ListenerHandle,
        key: Md5Key,
    ) -> Result<(), Error> {
        let l = self.listener_mut(listener)?;
        l.md5.get_or_insert_with(Default::default).set(key);
        self.md5.get_or_insert_with(Default::default);
        Ok(())
    }

    /// Remove a listener's key for `peer` and `prefix_len`; [`Error::InvalidArgument`] when
    /// it has none.
    pub fn remove_listener_md5_key(
        &mut self,
        listener: ListenerHandle,
        peer: IpAddr,
        prefix_len: Option<u8>,
    ) -> Result<(), Error> {
        let l = self.listener_mut(listener)?;
        let prefix_len = prefix_len.unwrap_or(if peer.is_ipv4() { 32 } else { 128 });
        let removed = l.md5.as_mut().is_some_and(|k| k.remove(peer, prefix_len));
        if l.md5.as_ref().is_some_and(|k| k.is_empty()) {
            l.md5 = None;
        }
        if removed {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    }

    fn slot_index(&self, conn: ConnectionHandle) -> Result<u32, Error> {
        let slot = self
            .slots
            .get(conn.index as usize)
            .filter(|s| s.generation == conn.generation && s.conn.is_some())
            .ok_or(Error::InvalidHandle)?;
        let _ = slot;
        Ok(conn.index)
    }

    /// A connection's keys changed: whether one covers its peer now shapes its segments.
    fn md5_keys_changed(&mut self, now: Instant, index: u32) {
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        let on = slot
            .md5
            .as_ref()
            .is_some_and(|k| k.lookup(conn.remote.ip()).is_some());
        conn.set_md5(on, &self.config);
        self.after_activity(now, index);
    }

    /// The key that signs what goes to `tuple`'s peer, when MD5 is in use: its
    /// connection's, its TIME_WAIT entry's, or its listener's (Linux's
    /// tcp_v4_send_reset and tcp_v4_send_ack with a socket; with none, unsigned).
    pub(super) fn md5_key_for(&self, tuple: FourTuple) -> Option<&Md5Key> {
        let state = self.md5.as_ref()?;
        if let Some(key) = state.reply_key.as_ref() {
            return Some(key);
        }
        if let Some(index) = self.by_tuple.get(&self.slots, &tuple) {
            return self.slots[index as usize]
                .md5
                .as_ref()?
                .lookup(tuple.remote.ip());
        }
        if self.time_wait.contains(&tuple) {
            return state
                .time_wait
                .iter()
                .find(|(t, _)| *t == tuple)
                .map(|(_, key)| key);
        }
        let lid = self.find_listener(tuple.local)?;
        self.listener_md5_key(lid, tuple.remote.ip())
    }

    /// A listener's new connection (in slot `index`) takes the listener's key for its
    /// peer (Linux's tcp_v4_syn_recv_sock copies it), which shapes its segments.
    pub(super) fn md5_adopt(&mut self, index: u32, lid: u32) {
        let slot = &self.slots[index as usize];
        let Some(remote) = slot.conn.as_ref().map(|c| c.remote.ip()) else {
            return;
        };
        let Some(key) = self.listener_md5_key(lid, remote).cloned() else {
            return;
        };
        let slot = &mut self.slots[index as usize];
        let mut keys = Md5Keys::default();
        keys.set(key);
        slot.md5 = Some(Box::new(keys));
        if let Some(conn) = slot.conn.as_mut() {
            conn.set_md5(true, &self.config);
        }
    }

    pub(super) fn listener_md5_key(&self, lid: u32, peer: IpAddr) -> Option<&Md5Key> {
        self.listeners[lid as usize]
            .as_ref()?
            .md5
            .as_ref()?
            .lookup(peer)
    }

    /// Linux's tcp_inbound_hash for a segment that reached a socket (a connection or a
    /// listener; not a TIME_WAIT entry, which Linux does not check); for no socket, see
    /// `md5_no_socket`. `raw` is the whole TCP segment.
    pub(super) fn md5_inbound(
        &self,
        ip: &wire::IpInfo,
        raw: &[u8],
        seg: &TcpRepr<'_>,
        index: Option<u32>,
        tuple: FourTuple,
    ) -> Md5Verdict {
        let key = match index {
            Some(index) => {
                let slot = &self.slots[index as usize];
                slot.md5.as_ref().and_then(|k| k.lookup(ip.src))
            }
            None => {
                if self.time_wait.contains(&tuple) {
                    return Md5Verdict::Accept;
                }
                let Some(lid) = self
                    .find_listener(tuple.local)
                    .or_else(|| self.find_capture(tuple.local))
                else {
                    return self.md5_no_socket(ip, raw, seg, tuple);
                };
                self.listener_md5_key(lid, ip.src)
            }
        };
        // Linux's tcp_parse_auth_options: a malformed or repeated option.
        if seg.options.md5_malformed {
            return Md5Verdict::Drop("md5_bad_option");
        }
        match (seg.options.md5, key) {
            (None, None) => Md5Verdict::Accept,
            // TCPMD5NOTFOUND: a key covers the peer, the segment is unsigned.
            (None, Some(_)) => Md5Verdict::Drop("md5_not_found"),
            // TCPMD5UNEXPECTED: signed, and no key covers the peer.
            (Some(_), None) => Md5Verdict::Drop("md5_unexpected"),
            (Some(got), Some(key)) => {
                match wire::tcp_md5_digest(&ip.src, &ip.dst, raw, key.key()) {
                    Some(want) if want == got => Md5Verdict::Accept,
                    // TCPMD5FAILURE: the digest is wrong.
                    _ => Md5Verdict::Drop("md5_failure"),
                }
            }
        }
    }

    /// Linux's tcp_v4_send_reset for a segment to no socket: an unsigned one gets an
    /// unsigned RST; a signed one gets a RST only when the listener on the segment's
    /// *source* port (BGP's: both ends use port 179, so a connection we lost to a peer's
    /// port 179 finds our own listener there) has a key for the peer that verifies it,
    /// and the RST is signed with that key ("don't send rst if it can't find key").
    fn md5_no_socket(
        &self,
        ip: &wire::IpInfo,
        raw: &[u8],
        seg: &TcpRepr<'_>,
        tuple: FourTuple,
    ) -> Md5Verdict {
        let Some(got) = seg.options.md5 else {
            return Md5Verdict::Accept;
        };
        let Some(key) = self
            .find_listener(SocketAddr::new(tuple.local.ip(), tuple.remote.port()))
            .and_then(|lid| self.listener_md5_key(lid, ip.src))
        else {
            return Md5Verdict::Drop("no_socket");
        };
        match wire::tcp_md5_digest(&ip.src, &ip.dst, raw, key.key()) {
            Some(want) if want == got => Md5Verdict::ReplySigned(key.clone()),
            _ => Md5Verdict::Drop("no_socket"),
        }
    }

    /// A connection with a key moves to the TIME_WAIT table: the entry keeps the key.
    pub(super) fn md5_to_time_wait(&mut self, tuple: FourTuple, key: Option<Md5Key>) {
        let Some(state) = self.md5.as_mut() else {
            return;
        };
        // Entries whose TIME_WAIT has ended go first.
        let time_wait = &self.time_wait;
        state
            .time_wait
            .retain(|(t, _)| *t != tuple && time_wait.contains(t));
        if let Some(key) = key {
            state.time_wait.push((tuple, key));
        }
    }
}
