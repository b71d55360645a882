//! The application's calls: listen, accept, connect, send, receive, socket options,
//! shutdown, close, abort, and what a connection's state and addresses are.

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use super::*;
use crate::tcp::Connection;
use crate::{Instant, TcpState};
use tables::FourTuple;

impl Stack {
    /// Listen on `local` (an unspecified IP listens on all of the stack's addresses).
    /// Port 0 picks a free port of [`Config::ephemeral_ports`], as binding to port 0
    /// does on Linux; [`Stack::listener_addr`] tells which. Nothing listens on port 0
    /// itself, so a SYN to port 0 is answered with a RST.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let addr: std::net::SocketAddr = "198.18.0.2:80".parse()?;
    /// assert_eq!(server.listener_addr(listener)?, addr);
    ///
    /// // Port 0: a free ephemeral port, as bind(0) gives on Linux.
    /// let any = server.listen("0.0.0.0:0".parse()?, 128)?;
    /// let port = server.listener_addr(any)?.port();
    /// assert!(server.config().ephemeral_ports.contains(&port));
    ///
    /// // The same port again overlaps the first listener.
    /// assert_eq!(server.listen("0.0.0.0:80".parse()?, 128), Err(Error::AddressInUse));
    /// // An address the stack does not have.
    /// assert_eq!(server.listen("198.19.9.9:80".parse()?, 128), Err(Error::AddressNotAvailable));
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(&mut self, local: SocketAddr, backlog: usize) -> Result<ListenerHandle, Error> {
        if !local.ip().is_unspecified() && !self.addresses.contains(&local.ip()) {
            return Err(Error::AddressNotAvailable);
        }
        let local = if local.port() == 0 {
            self.free_listen_port(local)?
        } else if self.listener_clash(local) {
            return Err(Error::AddressInUse);
        } else {
            local
        };
        Ok(self.add_listener(local, backlog))
    }

    /// A new listener in the first free place.
    pub(super) fn add_listener(&mut self, local: SocketAddr, backlog: usize) -> ListenerHandle {
        let backlog = backlog.clamp(1, self.config.somaxconn.max(1));
        let listener = Listener {
            local,
            backlog,
            embryonic: 0,
            last_cookie: None,
            accept_queue: VecDeque::new(),
            options: ListenerOptions::default(),
            capture: None,
            requests: VecDeque::new(),
            pending: 0,
            fastopen_pending: 0,
            md5: None,
        };
        let id = match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(listener);
                i
            }
            None => {
                self.listeners.push(Some(listener));
                self.listeners.len() - 1
            }
        };
        ListenerHandle(id as u32)
    }

    /// Whether a listener already holds `local`'s port on an address that overlaps it.
    pub(super) fn listener_clash(&self, local: SocketAddr) -> bool {
        self.listeners.iter().flatten().any(|l| {
            l.capture.is_none()
                && l.local.port() == local.port()
                && l.local.is_ipv4() == local.is_ipv4()
                && (l.local.ip() == local.ip()
                    || l.local.ip().is_unspecified()
                    || local.ip().is_unspecified())
        })
    }

    /// `listen` on port 0: a random free port of the ephemeral range, as Linux's
    /// `inet_csk_get_port` picks one for a socket bound to port 0 (no listener on it,
    /// no connection using it on an overlapping address).
    pub(super) fn free_listen_port(&mut self, local: SocketAddr) -> Result<SocketAddr, Error> {
        let overlaps = |ip: IpAddr| {
            ip.is_ipv4() == local.is_ipv4() && (ip == local.ip() || local.ip().is_unspecified())
        };
        let busy: alloc::collections::BTreeSet<u16> = self
            .by_tuple
            .slots()
            .filter_map(|i| self.slots[i as usize].conn.as_ref())
            .filter(|c| overlaps(c.local.ip()))
            .map(|c| c.local.port())
            .collect();
        let range = self.config.ephemeral_ports.clone();
        let nowhere = SocketAddr::new(local.ip(), 0);
        let candidates = self.ports.candidates(local.ip(), nowhere, &range);
        for port in candidates {
            let addr = SocketAddr::new(local.ip(), port);
            if port != 0 && !busy.contains(&port) && !self.listener_clash(addr) {
                return Ok(addr);
            }
        }
        Err(Error::NoEphemeralPorts)
    }

    /// The address a listener listens on (with the port chosen when it asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("0.0.0.0:0".parse()?, 16)?;
    /// let port = server.listener_addr(listener)?.port();
    /// assert_ne!(port, 0);
    /// // Clients connect to the port it chose.
    /// let conn = client.connect(now, std::net::SocketAddr::new("198.18.0.2".parse()?, port))?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.state(conn)?, TcpState::Established);
    /// # Ok(())
    /// # }
    /// ```
    pub fn listener_addr(&self, listener: ListenerHandle) -> Result<SocketAddr, Error> {
        self.listeners
            .get(listener.0 as usize)
            .and_then(Option::as_ref)
            .map(|l| l.local)
            .ok_or(Error::InvalidHandle)
    }

    /// Take the next established connection from a listener, or `WouldBlock`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// assert_eq!(server.accept(listener), Err(Error::WouldBlock));
    ///
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// // The handshake completed without the application: the listener says so.
    /// assert!(std::iter::from_fn(|| server.poll_event()).any(|e| e == Event::Incoming(listener)));
    /// assert_eq!(server.accept_queue_len(listener)?, 1);
    ///
    /// let accepted = server.accept(listener)?;
    /// assert_eq!(server.state(accepted)?, TcpState::Established);
    /// assert_eq!(server.peer_addr(accepted)?, client.local_addr(conn)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn accept(&mut self, listener: ListenerHandle) -> Result<ConnectionHandle, Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        let index = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        let slot = &mut self.slots[index as usize];
        if slot.conn.as_ref().is_some_and(|c| c.fastopen_pending()) {
            l.fastopen_pending = l.fastopen_pending.saturating_sub(1);
        }
        slot.app_owned = true;
        slot.listener = None;
        let readable = slot
            .conn
            .as_ref()
            .is_some_and(|c| !c.rcv_buf.is_empty() || c.fin_received);
        let handle = self.handle(index);
        if readable {
            self.events.push_back(Event::Readable(handle));
        }
        Ok(handle)
    }

    /// How many established connections wait in the listener's accept queue (what
    /// makes a listening socket readable to poll).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// client.connect(now, "198.18.0.2:80".parse()?)?;
    /// client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.accept_queue_len(listener)?, 2);
    /// server.accept(listener)?;
    /// assert_eq!(server.accept_queue_len(listener)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn accept_queue_len(&self, listener: ListenerHandle) -> Result<usize, Error> {
        self.listeners
            .get(listener.0 as usize)
            .and_then(Option::as_ref)
            .map(|l| l.accept_queue.len())
            .ok_or(Error::InvalidHandle)
    }

    /// Options that connections accepted from now on start with, as sockets accepted on
    /// Linux inherit the listening socket's (SO_RCVBUF, SO_SNDBUF, TCP_MAXSEG,
    /// TCP_NODELAY, TCP_USER_TIMEOUT).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// use synack::ListenerOptions;
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let mut options = ListenerOptions::default();
    /// options.nodelay = Some(true);
    /// options.mss = Some(1200);
    /// server.set_listener_options(listener, options)?;
    ///
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// let accepted = server.accept(listener)?;
    /// // The SYN-ACK announced 1200 bytes: the client's segments carry 1200 less the
    /// // 12 bytes of the timestamp option.
    /// assert_eq!(client.info(now, conn)?.snd_mss, 1200 - 12);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_listener_options(
        &mut self,
        listener: ListenerHandle,
        options: ListenerOptions,
    ) -> Result<(), Error> {
        let l = self.listener_mut(listener)?;
        l.options = options;
        Ok(())
    }

    /// The listener behind `listener`.
    pub(crate) fn listener_mut(
        &mut self,
        listener: ListenerHandle,
    ) -> Result<&mut Listener, Error> {
        self.listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)
    }

    /// Stop listening; connections not yet accepted are reset.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// // Established but never accepted: closing the listener resets it.
    /// server.close_listener(now, listener)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.error(conn)?, Some(Error::ConnectionReset));
    /// assert_eq!(server.accept(listener), Err(Error::InvalidHandle));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close_listener(&mut self, now: Instant, listener: ListenerHandle) -> Result<(), Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::take)
            .ok_or(Error::InvalidHandle)?;
        self.capturing.retain(|&lid| lid != listener.0);
        self.forget_requests(listener.0);
        let pending: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| {
                self.slots[i as usize].listener == Some(listener.0) || l.accept_queue.contains(&i)
            })
            .collect();
        for index in pending {
            let slot = &mut self.slots[index as usize];
            slot.listener = None;
            slot.embryonic = false;
            if let Some(conn) = slot.conn.as_mut() {
                conn.abort(now);
            }
            self.after_activity(now, index);
        }
        Ok(())
    }

    /// Active open to `remote` from an ephemeral port of one of our addresses.
    ///
    /// The result comes as an event: [`Event::Connected`] once ESTABLISHED, or
    /// [`Event::Error`] (refused, unreachable, timed out).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// // The SYN is queued; it leaves with the next poll_transmit.
    /// assert_eq!(client.state(conn)?, TcpState::SynSent);
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.state(conn)?, TcpState::Established);
    /// assert!(std::iter::from_fn(|| client.poll_event()).any(|e| e == Event::Connected(conn)));
    ///
    /// // Nobody listens on port 81: the peer's RST fails the connect.
    /// let refused = client.connect(now, "198.18.0.2:81".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// let failed = std::iter::from_fn(|| client.poll_event()).find_map(|e| match e {
    ///     Event::Error { conn, error } if conn == refused => Some(error),
    ///     _ => None,
    /// });
    /// assert_eq!(failed, Some(Error::ConnectionRefused));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnectionHandle, Error> {
        let unspecified = match remote {
            SocketAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        };
        self.connect_from(now, SocketAddr::new(unspecified, 0), remote)
    }

    /// Active open from a chosen local address and port (unspecified IP: pick one of ours
    /// of the same family; port 0: pick an ephemeral port).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let conn = client.connect_from(now, "198.18.0.1:5000".parse()?, "198.18.0.2:80".parse()?)?;
    /// assert_eq!(client.local_addr(conn)?.port(), 5000);
    /// // One connection per 4-tuple.
    /// assert_eq!(
    ///     client.connect_from(now, "198.18.0.1:5000".parse()?, "198.18.0.2:80".parse()?),
    ///     Err(Error::AddressInUse)
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, Error> {
        self.open(now, local, remote, None)
    }

    /// TCP Fast Open (RFC 7413), as Linux's `sendto(MSG_FASTOPEN)`: an active open whose
    /// SYN carries the start of `data`, when the stack holds a cookie from this server
    /// (or `Config::tcp_fastopen` has 0x4, no cookie needed). Returns the connection and
    /// how many bytes of `data` the SYN carries: at most the server's MSS less 40 (room
    /// for options middleboxes add, as Linux). With no cookie yet the SYN asks for one
    /// and carries nothing (0): send the data once connected, and the next connection
    /// to this server carries it in its SYN.
    ///
    /// A server that does not take the data acknowledges only the SYN; the data is then
    /// sent again at once, so nothing is lost either way. `local` as in
    /// [`Stack::connect_from`].
    ///
    /// # Errors
    /// [`Error::Unsupported`] when `Config::tcp_fastopen` lacks the client bit (0x1);
    /// the errors of [`Stack::connect_from`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let mut config = Config::default();
    /// config.tcp_fastopen = 0x3; // this stack serves Fast Open too
    /// let mut server = Stack::new(config);
    /// # server.add_address("198.18.0.2".parse()?);
    /// # let now = Instant::ZERO;
    /// use synack::ListenerOptions;
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let mut options = ListenerOptions::default();
    /// options.fastopen_queue = Some(16); // TCP_FASTOPEN
    /// server.set_listener_options(listener, options)?;
    /// let any = "0.0.0.0:0".parse()?;
    ///
    /// // The first connection asks for a cookie: its SYN carries no data.
    /// let (first, sent) = client.connect_fastopen(now, any, "198.18.0.2:80".parse()?, b"hello")?;
    /// assert_eq!(sent, 0);
    /// pump(now, &mut client, &mut server);
    /// let plain = server.accept(listener)?;
    /// client.close(now, first)?;
    /// server.close(now, plain)?;
    /// pump(now, &mut client, &mut server);
    ///
    /// // The second has the cookie: the request rides in the SYN, and the server can
    /// // read it before the handshake has completed.
    /// let (second, sent) = client.connect_fastopen(now, any, "198.18.0.2:80".parse()?, b"GET /")?;
    /// assert_eq!(sent, 5);
    /// server.receive(now, &client.poll_transmit(now).unwrap()); // the SYN alone
    /// let accepted = server.accept(listener)?;
    /// assert_eq!(server.state(accepted)?, TcpState::SynReceived);
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv(now, accepted, &mut buf)?, 5);
    /// assert_eq!(&buf[..5], b"GET /");
    /// pump(now, &mut client, &mut server);
    /// assert!(client.info(now, second)?.syn_data_acked);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_fastopen(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(ConnectionHandle, usize), Error> {
        let fo = self.fastopen_request(remote, false)?;
        let handle = self.open(now, local, remote, Some(fo))?;
        let sent = self.with_conn(now, handle, |c, _| c.fill_syn_data(data))?;
        Ok((handle, sent))
    }

    /// TCP_FASTOPEN_CONNECT (Linux 4.11): an active open that, when the stack holds a
    /// cookie from this server, sends nothing yet: the SYN leaves with the first
    /// [`Stack::send`], carrying its data (that first send takes only what the SYN
    /// carries). Without a cookie it is [`Stack::connect_from`] with a SYN that asks
    /// for one. The connection is in SYN_SENT either way.
    ///
    /// # Errors
    /// As [`Stack::connect_fastopen`].
    pub fn connect_fastopen_deferred(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, Error> {
        let fo = self.fastopen_request(remote, true)?;
        self.open(now, local, remote, Some(fo))
    }

    /// A blocking writer waits for the connection's handshake (Linux's sk_write_pending,
    /// as in sk_stream_wait_connect, or a blocking Fast Open sendto with data the SYN
    /// did not carry): the SYN-ACK's ACK then waits to ride on the writer's data.
    pub fn set_write_pending(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        pending: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_write_pending(pending))
    }

    /// Whether [`Stack::connect_fastopen_deferred`] left the SYN waiting for the first
    /// send (Linux's `defer_connect`).
    pub fn fastopen_deferred(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        Ok(self.conn_ref(conn)?.syn_deferred())
    }

    /// The stack's TCP Fast Open cookie key (Linux's `net.ipv4.tcp_fastopen_key`): the
    /// primary key makes cookies, a backup one (the previous key, while clients still
    /// hold its cookies) is accepted too. By default a random key drawn when the stack
    /// was made (see [`crate::Secrets`]).
    pub fn set_fastopen_key(&mut self, primary: [u8; 16], backup: Option<[u8; 16]>) {
        self.fastopen_keys = crate::tcp::fastopen::CookieKeys { primary, backup };
    }

    /// The Fast Open cookie this stack gives `client` for its address `server` (RFC
    /// 7413 4.1.2), with the stack's key: what a test or a tool needs to write a SYN
    /// that carries a valid cookie.
    pub fn fastopen_cookie(&self, client: IpAddr, server: IpAddr) -> wire::FastOpenCookie {
        self.fastopen_keys.make(client, server)
    }

    /// Forget the Fast Open cookies and MSS learned from servers (Linux's
    /// `ip tcp_metrics flush`).
    pub fn flush_fastopen_cache(&mut self) {
        self.fastopen_cache.flush();
    }

    /// What the first SYN of a Fast Open towards `remote` carries (Linux's
    /// tcp_fastopen_cookie_check and tcp_send_syn_data).
    fn fastopen_request(
        &self,
        remote: SocketAddr,
        deferred: bool,
    ) -> Result<crate::tcp::SynFastOpen, Error> {
        use crate::tcp::fastopen as fo;
        let flags = self.config.tcp_fastopen;
        if flags & fo::CLIENT_ENABLE == 0 {
            return Err(Error::Unsupported);
        }
        let (cached_mss, cookie, exp) = self.fastopen_cache.get(remote.ip());
        let no_cookie = flags & fo::CLIENT_NO_COOKIE != 0;
        let option = if no_cookie {
            None
        } else {
            Some(cookie.unwrap_or_else(|| wire::FastOpenCookie::request(exp)))
        };
        let can_send = no_cookie || cookie.is_some();
        // The MSS for data in the SYN: the server's, as cached, within our path MTU,
        // less 40 bytes of room for options (MAX_TCP_OPTION_SPACE).
        let headers = if remote.is_ipv6() { 60 } else { 40 };
        let own = self.config.mtu.saturating_sub(headers) as u32;
        let mss = cached_mss.map_or(own, |m| u32::from(m).min(own));
        let space = if can_send { mss.saturating_sub(40) } else { 0 };
        Ok(crate::tcp::SynFastOpen {
            option,
            space,
            syn_data: 0,
            deferred: deferred && can_send,
            retried: false,
        })
    }

    /// Active open, with Fast Open or not.
    fn open(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        fo: Option<crate::tcp::SynFastOpen>,
    ) -> Result<ConnectionHandle, Error> {
        let ip = if local.ip().is_unspecified() {
            *self
                .addresses
                .iter()
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(Error::AddressNotAvailable)?
        } else if self.addresses.contains(&local.ip()) && local.is_ipv4() == remote.is_ipv4() {
            local.ip()
        } else {
            return Err(Error::AddressNotAvailable);
        };
        let local = if local.port() == 0 {
            let range = self.config.ephemeral_ports.clone();
            let mut chosen = None;
            for port in self.ports.candidates(ip, remote, &range) {
                let addr = SocketAddr::new(ip, port);
                if self.tuple_free(addr, remote) && self.find_listener(addr).is_none() {
                    chosen = Some(addr);
                    break;
                }
            }
            chosen.ok_or(Error::NoEphemeralPorts)?
        } else {
            let addr = SocketAddr::new(ip, local.port());
            if !self.tuple_free(addr, remote) {
                return Err(Error::AddressInUse);
            }
            addr
        };
        if self.live_connections >= self.config.max_connections {
            return Err(Error::NoBufferSpace);
        }
        let iss = self.isn.isn(now, local, remote);
        let ts_offset = self.ts_offset(FourTuple { local, remote });
        let conn = Connection::connect(now, local, remote, iss, ts_offset, &self.config, fo);
        let index = self.insert(conn, None, true);
        self.stats.active_opens += 1;
        self.after_activity(now, index);
        Ok(self.handle(index))
    }

    pub(super) fn tuple_free(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let t = FourTuple { local, remote };
        !self.by_tuple.contains(&self.slots, &t) && !self.time_wait.contains(&t)
    }

    /// Run `f` on the application's connection, then do the bookkeeping.
    pub(super) fn with_conn<T>(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        f: impl FnOnce(&mut Connection, &Config) -> T,
    ) -> Result<T, Error> {
        let slot = self
            .slots
            .get_mut(h.index as usize)
            .ok_or(Error::InvalidHandle)?;
        if slot.generation != h.generation || !slot.app_owned {
            return Err(Error::InvalidHandle);
        }
        let conn = slot.conn.as_mut().ok_or(Error::InvalidHandle)?;
        conn.memory = self.memory_level;
        self.scratch.lend(conn);
        let out = f(conn, &self.config);
        self.after_activity(now, h.index);
        Ok(out)
    }

    pub(super) fn conn_ref(&self, h: ConnectionHandle) -> Result<&Connection, Error> {
        let slot = self
            .slots
            .get(h.index as usize)
            .ok_or(Error::InvalidHandle)?;
        if slot.generation != h.generation || !slot.app_owned {
            return Err(Error::InvalidHandle);
        }
        slot.conn.as_deref().ok_or(Error::InvalidHandle)
    }

    /// Queue bytes for sending; returns how many fit in the send buffer (`WouldBlock` if none).
    ///
    /// When the send buffer is full, `WouldBlock`; [`Event::Writable`] says when there is
    /// room again.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let n = client.send(now, conn, b"GET / HTTP/1.0\r\n\r\n")?;
    /// assert_eq!(n, 18);
    /// assert_eq!(client.send_queue(conn)?, 18); // not acknowledged yet
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.recv_queue(accepted)?, 18);
    /// assert_eq!(client.send_queue(conn)?, 0);
    ///
    /// // After shutdown, the sending half is closed.
    /// client.shutdown(now, conn)?;
    /// assert_eq!(client.send(now, conn, b"more"), Err(Error::BrokenPipe));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        self.send_reported(now, conn, data, SendReport::default())
    }

    /// [`Stack::send`] with send(2)'s flags: [`SendFlags::more`] (MSG_MORE: a partial
    /// segment waits for the data that follows, and the write is not marked PSH) and
    /// [`SendFlags::eor`] (MSG_EOR: no later byte shares a segment with this write's last
    /// one, even when retransmitted).
    ///
    /// [`SendFlags::more`]: crate::SendFlags::more
    /// [`SendFlags::eor`]: crate::SendFlags::eor
    pub fn send_flags(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
        flags: crate::SendFlags,
    ) -> Result<usize, Error> {
        let how = SendReport {
            flags,
            ..SendReport::default()
        };
        self.send_reported(now, conn, data, how)
    }

    /// Zero-copy send: `fill` writes up to `max` bytes straight into the connection's
    /// send buffer and returns how many it wrote (`WouldBlock` if the buffer is full).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let n = client.send_with(now, conn, 5, |room| {
    ///     let n = room.len().min(5);
    ///     room[..n].copy_from_slice(&b"hello"[..n]);
    ///     n
    /// })?;
    /// assert_eq!(n, 5);
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.recv_queue(accepted)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, Error> {
        self.noting_send(conn, SendReport::default(), |s| {
            s.with_conn(now, conn, |c, cfg| {
                let cap = c.notsent_room(cfg);
                let max = cap.map_or(max, |cap| max.min(cap));
                c.send_with(cap, |buf| buf.write_with(max, fill))
            })?
        })
    }

    /// Zero-copy receive: `take` sees the received bytes in the stack's buffer (as two
    /// slices, in order) and returns how many it consumed. `Ok(0)` with nothing left is
    /// end-of-stream; `WouldBlock` means nothing yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, b"hello")?;
    /// pump(now, &mut client, &mut server);
    /// let mut line = Vec::new();
    /// // Take the bytes where they lie (two slices when the ring wraps).
    /// let n = server.recv_with(now, accepted, |a, b| {
    ///     line.extend_from_slice(a);
    ///     line.extend_from_slice(b);
    ///     a.len() + b.len()
    /// })?;
    /// assert_eq!((n, &line[..]), (5, &b"hello"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        take: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, cfg| c.recv_with(now, cfg, take))?
    }

    /// Read received bytes: `Ok(0)` is end-of-stream, `WouldBlock` means nothing yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let mut buf = [0u8; 64];
    /// assert_eq!(server.recv(now, accepted, &mut buf), Err(Error::WouldBlock));
    ///
    /// client.send(now, conn, b"hello")?;
    /// pump(now, &mut client, &mut server);
    /// assert!(std::iter::from_fn(|| server.poll_event()).any(|e| e == Event::Readable(accepted)));
    /// let n = server.recv(now, accepted, &mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    ///
    /// // The client's FIN is end-of-stream.
    /// client.shutdown(now, conn)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.recv(now, accepted, &mut buf), Ok(0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, cfg| c.recv(now, buf, cfg))?
    }

    /// SO_SNDBUF / SO_RCVBUF for one connection (None keeps the current size). Call it
    /// right after `connect` (before the next `poll_transmit`) for the receive buffer to
    /// set the window scale offered in the SYN.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// // SO_RCVBUF 32 KiB, before the SYN leaves: a window that needs no scaling.
    /// client.set_buffers(now, conn, None, Some(32 * 1024))?;
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.info(now, conn)?.wscale.1, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_buffers(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_buffers(send, recv))
    }

    /// SO_KEEPALIVE: probe an idle connection with these settings (None turns it off;
    /// `Keepalive::default()` has Linux's 7200 s / 75 s / 9 probes).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// use std::time::Duration;
    /// use synack::Keepalive;
    /// let mut keepalive = Keepalive::default();
    /// keepalive.idle = Duration::from_secs(60);
    /// client.set_keepalive(now, conn, Some(keepalive))?;
    /// // Idle: the next timer is the first probe, a minute away.
    /// assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(60)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_keepalive(now, keepalive))
    }

    /// TCP_NODELAY: true sends small segments at once; false (the default) applies
    /// Nagle's algorithm (RFC 1122 4.2.3.4).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.set_nodelay(now, conn, true)?;
    /// client.send(now, conn, b"a")?;
    /// assert!(client.poll_transmit(now).is_some());
    /// // Without Nagle, the second small write does not wait for the first one's ACK.
    /// client.send(now, conn, b"b")?;
    /// assert!(client.poll_transmit(now).is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_nodelay(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        nodelay: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_nodelay(nodelay))
    }

    /// IP_MTU_DISCOVER: with `false` (IP_PMTUDISC_DONT) an ICMP "fragmentation needed"
    /// no longer lowers the connection's segment size (IPv4; as Linux's
    /// tcp_v4_mtu_reduced()).
    pub fn set_path_mtu_discovery(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        on: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |_, _| ())?;
        if let Some(slot) = self.slots.get_mut(conn.index as usize) {
            slot.pmtu_disc_off = !on;
        }
        Ok(())
    }

    /// TCP_CORK: while on, a segment smaller than the MSS at the end of the written data
    /// waits for more data (at most until the persist timer sends it, about an RTO, as
    /// Linux's probe timer does); turning it off sends what waits.
    pub fn set_cork(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        on: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_cork(on))
    }

    /// TCP_CORK as set by [`Stack::set_cork`].
    pub fn cork(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        Ok(self.conn_ref(conn)?.cork())
    }

    /// TCP_USER_TIMEOUT (RFC 5482): abort the connection when sent data stays
    /// unacknowledged for this long, in place of the `tcp_retries2` count (None or zero
    /// goes back to it). The last retransmission is timed to end at the limit, as on Linux.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// use std::time::Duration;
    /// client.set_user_timeout(now, conn, Some(Duration::from_secs(5)))?;
    /// client.send(now, conn, b"lost")?;
    /// while client.poll_transmit(now).is_some() {} // the server never hears of it
    /// let mut t = now;
    /// while let Some(deadline) = client.poll_timeout() {
    ///     t = deadline;
    ///     client.on_timeout(t);
    ///     while client.poll_transmit(t).is_some() {}
    /// }
    /// assert_eq!(client.error(conn)?, Some(Error::TimedOut));
    /// assert!(t <= now + Duration::from_secs(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_user_timeout(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        timeout: Option<core::time::Duration>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_user_timeout(timeout))
    }

    /// TCP_SYNCNT: how many times an unanswered SYN is retransmitted before the
    /// connection fails (at most 127, Linux's MAX_TCP_SYNCNT; None or 0: the stack's
    /// [`Config::tcp_syn_retries`]).
    pub fn set_syn_retries(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        retries: Option<u8>,
    ) -> Result<(), Error> {
        let n = retries.map_or(0, |n| n.min(127));
        self.with_conn(now, conn, |c, _| {
            if n != 0 || c.rare.is_some() {
                c.rare.get_or_insert_default().syn_retries = n;
            }
        })
    }

    /// TCP_MAXSEG: cap the segment size. Called right after `connect` (before the next
    /// `poll_transmit`) it is also the MSS our SYN announces.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// client.set_mss(now, conn, 536)?;
    /// let syn = client.poll_transmit(now).unwrap();
    /// let (_, tcp) = synack::wire::parse_tcp_packet(&syn)?;
    /// assert_eq!(tcp.options.mss, Some(536));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_mss(&mut self, now: Instant, conn: ConnectionHandle, mss: u16) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_mss(mss))
    }

    /// Choose the congestion control of one connection (like `setsockopt(TCP_CONGESTION)`):
    /// before it is established, or during, keeping its current cwnd.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// use synack::CongestionControl;
    /// client.set_congestion_control(now, conn, CongestionControl::NewReno)?;
    /// assert_eq!(client.info(now, conn)?.congestion_control, CongestionControl::NewReno);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_congestion_control(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        cc: crate::tcp::CongestionControl,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_congestion_control(cc))
    }

    /// Shut down the sending half (half-close): a FIN follows the queued data.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.shutdown(now, conn)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.state(conn)?, TcpState::FinWait2);
    /// assert_eq!(server.state(accepted)?, TcpState::CloseWait);
    ///
    /// // The other direction still flows.
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv(now, accepted, &mut buf), Ok(0));
    /// server.send(now, accepted, b"reply")?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.recv(now, conn, &mut buf)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.shutdown(now))?
    }

    /// Shut down the reading half (`shutdown(SHUT_RD)`), as Linux does: bytes already
    /// received, and bytes that still arrive, can be read; a read that finds none returns
    /// end-of-stream (`Ok(0)`) at once instead of waiting. Nothing is sent. Once the
    /// sending half is shut down too (FIN_WAIT_1, FIN_WAIT_2), new data from the peer is
    /// answered with a RST (RFC 1122 4.2.2.13, Linux's TCPAbortOnData).
    pub fn shutdown_read(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.rcv_shutdown = true)?;
        // Wake whoever waits to read: their read now ends.
        self.events.push_back(Event::Readable(conn));
        Ok(())
    }

    /// Copy received bytes into `buf` without consuming them (MSG_PEEK): `Ok(0)` is
    /// end-of-stream, `WouldBlock` means nothing yet.
    pub fn peek(&self, conn: ConnectionHandle, buf: &mut [u8]) -> Result<usize, Error> {
        self.conn_ref(conn)?.peek(buf)
    }

    /// recv(MSG_OOB): the urgent byte the peer marked (RFC 9293 3.8.5; only the last
    /// one marked is kept, as on Linux). `peek` (MSG_PEEK) leaves it to read again.
    /// `Ok(None)` is end-of-stream; `WouldBlock` (EAGAIN) while the marked byte has not
    /// arrived; `InvalidState` (EINVAL) when there is none to read: no mark, already
    /// read, or SO_OOBINLINE on ([`Stack::set_oob_inline`]). Ordinary reads skip that
    /// byte and never cross the mark in one call (see [`Stack::at_mark`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, SendFlags, Stack};
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// // send(MSG_OOB): the last byte written ("!") is urgent.
    /// let oob = SendFlags { oob: true, ..SendFlags::default() };
    /// client.send_flags(now, conn, b"abc!", oob)?;
    /// pump(now, &mut client, &mut server);
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv(now, accepted, &mut buf)?, 3); // stops at the mark
    /// assert!(server.at_mark(accepted)?);
    /// assert_eq!(server.recv_oob(now, accepted, false)?, Some(b'!'));
    /// assert_eq!(server.recv_oob(now, accepted, false), Err(Error::InvalidState(synack::TcpState::Established)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_oob(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        peek: bool,
    ) -> Result<Option<u8>, Error> {
        self.with_conn(now, conn, |c, _| c.recv_oob(peek))?
    }

    /// Read as splice() reads a socket (Linux's tcp_read_sock): up to the urgent mark
    /// and never past it, so `Ok(0)` while [`Stack::recv_queue`] is not zero means the
    /// read is at the mark (an ordinary [`Stack::recv`] goes on past it). Otherwise as
    /// [`Stack::recv`]: `Ok(0)` is end-of-stream, `WouldBlock` nothing yet.
    pub fn recv_to_mark(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, cfg| c.recv_to_mark(now, buf, cfg))?
    }

    /// SIOCINQ (FIONREAD) and TCP_INQ's count as Linux gives them (tcp_inq): as
    /// [`Stack::recv_queue`], but with an out-of-band urgent byte received and not yet
    /// read past, only the bytes before it (0 at the mark).
    pub fn inq(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.inq())
    }

    /// SIOCATMARK (sockatmark): the next byte to read is the urgent mark.
    pub fn at_mark(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        Ok(self.conn_ref(conn)?.at_mark())
    }

    /// An urgent byte waits to be read with [`Stack::recv_oob`] (poll's POLLPRI).
    pub fn urgent_pending(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        Ok(self.conn_ref(conn)?.urgent_ready())
    }

    /// SO_OOBINLINE: the urgent byte stays in the stream (read by ordinary reads, which
    /// still stop at the mark) instead of being read with [`Stack::recv_oob`].
    pub fn set_oob_inline(&mut self, conn: ConnectionHandle, on: bool) -> Result<(), Error> {
        let slot = self
            .slots
            .get_mut(conn.index as usize)
            .filter(|s| s.generation == conn.generation && s.app_owned)
            .ok_or(Error::InvalidHandle)?;
        let c = slot.conn.as_mut().ok_or(Error::InvalidHandle)?;
        c.set_oob_inline(on);
        Ok(())
    }

    /// SO_OOBINLINE as set.
    pub fn oob_inline(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        Ok(self.conn_ref(conn)?.oob_inline())
    }

    /// The error the connection ended with or the last ICMP error it survived, taken
    /// (SO_ERROR): a second call returns None.
    pub fn take_error(&mut self, conn: ConnectionHandle) -> Result<Option<Error>, Error> {
        let slot = self
            .slots
            .get_mut(conn.index as usize)
            .filter(|s| s.generation == conn.generation && s.app_owned)
            .ok_or(Error::InvalidHandle)?;
        let c = slot.conn.as_mut().ok_or(Error::InvalidHandle)?;
        Ok(c.error.take().or_else(|| c.soft_error.take()))
    }

    /// IP_TTL / IPV6_UNICAST_HOPS for one connection's packets (None: `Config::ttl`).
    pub fn set_ttl(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        ttl: Option<core::num::NonZeroU8>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.ttl = ttl.map(|t| t.get()))
    }

    /// The TTL (hop limit) of one connection's packets.
    pub fn ttl(&self, conn: ConnectionHandle) -> Result<u8, Error> {
        Ok(self.conn_ref(conn)?.ttl.unwrap_or(self.config.ttl))
    }

    /// Close: the application gives up the handle; the stack finishes the close.
    ///
    /// After `close` the handle is no longer valid (`InvalidHandle`): what becomes of the
    /// connection shows in [`Event::StateChanged`] events (which carry its handle),
    /// [`Stack::state_of`] and [`Stack::snapshot`]. Unread received data makes the close an
    /// abort (a RST, as on Linux).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.close(now, conn)?;
    /// // The handle is given up at once ...
    /// assert_eq!(client.state(conn), Err(Error::InvalidHandle));
    /// pump(now, &mut client, &mut server);
    /// // ... while the stack finishes the close: FIN_WAIT_2 until the server closes too.
    /// let (local, remote) = (server.peer_addr(accepted)?, server.local_addr(accepted)?);
    /// assert_eq!(client.state_of(local, remote), Some(TcpState::FinWait2));
    ///
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv(now, accepted, &mut buf), Ok(0));
    /// server.close(now, accepted)?;
    /// pump(now, &mut client, &mut server);
    /// // The client side waits out TIME_WAIT in the stack's compact table; the server is gone.
    /// assert_eq!(client.time_wait_count(), 1);
    /// assert_eq!(server.connection_count(), 0);
    /// // Its last states come as events.
    /// let last = std::iter::from_fn(|| client.poll_event()).filter_map(|e| match e {
    ///     Event::StateChanged { to, .. } => Some(to),
    ///     _ => None,
    /// }).last();
    /// assert_eq!(last, Some(TcpState::TimeWait));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, cfg| c.close(now, cfg))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        self.count_orphan(now, conn.index);
        Ok(())
    }

    /// Abort: send RST and drop the connection at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.abort(now, conn)?;
    /// pump(now, &mut client, &mut server);
    /// let reset = std::iter::from_fn(|| server.poll_event()).any(|e| {
    ///     e == Event::Error { conn: accepted, error: Error::ConnectionReset }
    /// });
    /// assert!(reset);
    /// // The server's handle stays valid, CLOSED, until the server closes it.
    /// assert_eq!(server.state(accepted)?, TcpState::Closed);
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv(now, accepted, &mut buf), Err(Error::ConnectionReset));
    /// server.close(now, accepted)?;
    /// assert_eq!(server.connection_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.abort(now))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        Ok(())
    }

    /// The connection's current state.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// assert_eq!(client.state(conn)?, TcpState::Established);
    /// client.close(now, conn)?;
    /// assert_eq!(client.state(conn), Err(Error::InvalidHandle));
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self, conn: ConnectionHandle) -> Result<TcpState, Error> {
        Ok(self.conn_ref(conn)?.tcp_state())
    }

    /// Why the connection ended, if it ended with an error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// assert_eq!(client.error(conn)?, None);
    /// server.abort(now, accepted)?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.error(conn)?, Some(Error::ConnectionReset));
    /// # Ok(())
    /// # }
    /// ```
    pub fn error(&self, conn: ConnectionHandle) -> Result<Option<Error>, Error> {
        Ok(self.conn_ref(conn)?.error)
    }

    /// Whether `recv` would return at once: data, end-of-stream, or the error the
    /// connection ended with (what makes a socket readable to poll).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// assert!(!server.readable(accepted)?);
    /// client.send(now, conn, b"x")?;
    /// pump(now, &mut client, &mut server);
    /// assert!(server.readable(accepted)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn readable(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        let c = self.conn_ref(conn)?;
        Ok(!c.rcv_buf.is_empty()
            || c.fin_received
            || c.rcv_shutdown
            || c.tcp_state() == TcpState::Closed)
    }

    /// Whether the connection is writable, as Linux's poll judges it: a third of the
    /// send buffer free (free space at least half of what is queued), or the error the
    /// connection would fail a `send` with. When it is not, an [`Event::Writable`]
    /// follows as soon as it is (`send` may still take a little before that).
    ///
    /// With a TCP_NOTSENT_LOWAT limit ([`Stack::set_notsent_lowat`]), writable also
    /// needs the unsent bytes below half the limit.
    pub fn writable(&mut self, now: Instant, conn: ConnectionHandle) -> Result<bool, Error> {
        self.with_conn(now, conn, |c, cfg| c.poll_writable(cfg))
    }

    /// TCP_NOTSENT_LOWAT: limit the bytes written but not yet sent. `send` takes more
    /// only while they are below `limit` (in whole segments, so it may go a segment
    /// past), [`Stack::writable`] is true and [`Event::Writable`] comes only once they
    /// are below half of it (Linux's `tcp_stream_memory_free`): an application that
    /// waits for writability keeps little data queued, and writes the freshest. None
    /// (or `Some(0)`, as on Linux) goes back to [`Config::tcp_notsent_lowat`] (off by
    /// default); `Some(u32::MAX)` turns the limit off whatever the configuration says.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # let mut client = Stack::new(Config::default());
    /// # client.add_address("198.18.0.1".parse().unwrap());
    /// let now = Instant::ZERO;
    /// let conn = client.connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
    /// client.set_notsent_lowat(now, conn, Some(4000)).unwrap();
    /// assert_eq!(client.notsent_lowat(conn).unwrap(), Some(4000));
    /// // Nothing is sent before the handshake: the first write fills the limit (in
    /// // whole segments), the next must wait.
    /// let n = client.send(now, conn, &[0; 10_000]).unwrap();
    /// assert!((4000..10_000).contains(&n));
    /// assert_eq!(client.send(now, conn, b"more"), Err(Error::WouldBlock));
    /// assert!(!client.writable(now, conn).unwrap());
    /// ```
    pub fn set_notsent_lowat(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        limit: Option<u32>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_notsent_lowat(limit))
    }

    /// The connection's own TCP_NOTSENT_LOWAT (None: it follows
    /// [`Config::tcp_notsent_lowat`]).
    pub fn notsent_lowat(&self, conn: ConnectionHandle) -> Result<Option<u32>, Error> {
        Ok(Some(self.conn_ref(conn)?.notsent_lowat).filter(|l| *l != 0))
    }

    /// Bytes waiting to be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, b"hello")?;
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(server.recv_queue(accepted)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.rcv_buf.len())
    }

    /// Bytes written and not yet acknowledged by the peer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, b"hello")?;
    /// assert_eq!(client.send_queue(conn)?, 5);
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.send_queue(conn)?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.snd_buf.len())
    }

    /// Our address and port of a connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let local = client.local_addr(conn)?;
    /// assert_eq!(local.ip().to_string(), "198.18.0.1");
    /// assert_eq!(server.peer_addr(accepted)?, local);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.local)
    }

    /// The peer's address and port of a connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// assert_eq!(client.peer_addr(conn)?, server.local_addr(accepted)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.remote)
    }

    /// A `TCP_INFO`-like snapshot of one of the application's connections.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, &[0u8; 3000])?;
    /// pump(now, &mut client, &mut server);
    /// let info = client.info(now, conn)?;
    /// assert_eq!(info.state, TcpState::Established);
    /// assert_eq!(info.bytes_acked, 3000);
    /// assert!(info.cwnd.is_some() && info.srtt.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn info(
        &self,
        now: Instant,
        conn: ConnectionHandle,
    ) -> Result<crate::tcp::ConnectionInfo, Error> {
        Ok(self.conn_ref(conn)?.info(now))
    }

    /// Snapshots of every connection in the table (orphans and embryonic ones included;
    /// TIME_WAIT table entries are listed by [`Stack::connections`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.close(now, conn)?;
    /// // The orphan is still listed while it closes.
    /// let all = client.all_info(now);
    /// assert_eq!(all.len(), 1);
    /// assert!(all[0].orphaned);
    /// # Ok(())
    /// # }
    /// ```
    pub fn all_info(&self, now: Instant) -> Vec<crate::tcp::ConnectionInfo> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| c.info(now))
            .collect()
    }

    /// The state of any connection by 4-tuple (including orphans and TIME_WAIT entries).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let (local, remote) = (client.local_addr(conn)?, client.peer_addr(conn)?);
    /// assert_eq!(client.state_of(local, remote), Some(TcpState::Established));
    /// assert_eq!(client.state_of(remote, local), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<TcpState> {
        let t = FourTuple { local, remote };
        if let Some(i) = self.by_tuple.get(&self.slots, &t) {
            return self.slots[i as usize].conn.as_ref().map(|c| c.tcp_state());
        }
        self.time_wait.contains(&t).then_some(TcpState::TimeWait)
    }
}
