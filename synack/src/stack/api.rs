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
    pub fn listener_addr(&self, listener: ListenerHandle) -> Result<SocketAddr, Error> {
        self.listeners
            .get(listener.0 as usize)
            .and_then(Option::as_ref)
            .map(|l| l.local)
            .ok_or(Error::InvalidHandle)
    }

    /// Take the next established connection from a listener, or `WouldBlock`.
    pub fn accept(&mut self, listener: ListenerHandle) -> Result<ConnectionHandle, Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        let index = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        let slot = &mut self.slots[index as usize];
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
    pub fn set_listener_options(
        &mut self,
        listener: ListenerHandle,
        options: ListenerOptions,
    ) -> Result<(), Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        l.options = options;
        Ok(())
    }

    /// Stop listening; connections not yet accepted are reset.
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
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnectionHandle, Error> {
        let unspecified = match remote {
            SocketAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        };
        self.connect_from(now, SocketAddr::new(unspecified, 0), remote)
    }

    /// Active open from a chosen local address and port (unspecified IP: pick one of ours
    /// of the same family; port 0: pick an ephemeral port).
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
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
        let conn = Connection::connect(now, local, remote, iss, ts_offset, &self.config);
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
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| c.send(data))?
    }

    /// Zero-copy send: `fill` writes up to `max` bytes straight into the connection's
    /// send buffer and returns how many it wrote (`WouldBlock` if the buffer is full).
    pub fn send_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| {
            c.send_with(|buf| buf.write_with(max, fill))
        })?
    }

    /// Zero-copy receive: `take` sees the received bytes in the stack's buffer (as two
    /// slices, in order) and returns how many it consumed. `Ok(0)` with nothing left is
    /// end-of-stream; `WouldBlock` means nothing yet.
    pub fn recv_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        take: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, cfg| c.recv_with(now, cfg, take))?
    }

    /// Read received bytes: `Ok(0)` is end-of-stream, `WouldBlock` means nothing yet.
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
    pub fn set_nodelay(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        nodelay: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_nodelay(nodelay))
    }

    /// TCP_USER_TIMEOUT (RFC 5482): abort the connection when sent data stays
    /// unacknowledged for this long, in place of the `tcp_retries2` count (None or zero
    /// goes back to it). The last retransmission is timed to end at the limit, as on Linux.
    pub fn set_user_timeout(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        timeout: Option<core::time::Duration>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_user_timeout(timeout))
    }

    /// TCP_MAXSEG: cap the segment size. Called right after `connect` (before the next
    /// `poll_transmit`) it is also the MSS our SYN announces.
    pub fn set_mss(&mut self, now: Instant, conn: ConnectionHandle, mss: u16) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_mss(mss))
    }

    /// Choose the congestion control of one connection (like `setsockopt(TCP_CONGESTION)`):
    /// before it is established, or during, keeping its current cwnd.
    pub fn set_congestion_control(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        cc: crate::tcp::CongestionControl,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_congestion_control(cc))
    }

    /// Shut down the sending half (half-close): a FIN follows the queued data.
    pub fn shutdown(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.shutdown(now))?
    }

    /// Close: the application gives up the handle; the stack finishes the close.
    pub fn close(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, cfg| c.close(now, cfg))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        self.count_orphan(now, conn.index);
        Ok(())
    }

    /// Abort: send RST and drop the connection at once.
    pub fn abort(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.abort(now))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        Ok(())
    }

    /// The connection's current state.
    pub fn state(&self, conn: ConnectionHandle) -> Result<TcpState, Error> {
        Ok(self.conn_ref(conn)?.tcp_state())
    }

    /// Why the connection ended, if it ended with an error.
    pub fn error(&self, conn: ConnectionHandle) -> Result<Option<Error>, Error> {
        Ok(self.conn_ref(conn)?.error)
    }

    /// Whether `recv` would return at once: data, end-of-stream, or the error the
    /// connection ended with (what makes a socket readable to poll).
    pub fn readable(&self, conn: ConnectionHandle) -> Result<bool, Error> {
        let c = self.conn_ref(conn)?;
        Ok(!c.rcv_buf.is_empty() || c.fin_received || c.tcp_state() == TcpState::Closed)
    }

    /// Bytes waiting to be read.
    pub fn recv_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.rcv_buf.len())
    }

    /// Bytes written and not yet acknowledged by the peer.
    pub fn send_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.snd_buf.len())
    }

    /// Our address and port of a connection.
    pub fn local_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.local)
    }

    /// The peer's address and port of a connection.
    pub fn peer_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.remote)
    }

    /// A `TCP_INFO`-like snapshot of one of the application's connections.
    pub fn info(
        &self,
        now: Instant,
        conn: ConnectionHandle,
    ) -> Result<crate::tcp::ConnectionInfo, Error> {
        Ok(self.conn_ref(conn)?.info(now))
    }

    /// Snapshots of every connection in the table (orphans and embryonic ones included;
    /// TIME_WAIT table entries are listed by [`Stack::connections`]).
    pub fn all_info(&self, now: Instant) -> Vec<crate::tcp::ConnectionInfo> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| c.info(now))
            .collect()
    }

    /// The state of any connection by 4-tuple (including orphans and TIME_WAIT entries).
    pub fn state_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<TcpState> {
        let t = FourTuple { local, remote };
        if let Some(i) = self.by_tuple.get(&self.slots, &t) {
            return self.slots[i as usize].conn.as_ref().map(|c| c.tcp_state());
        }
        self.time_wait.contains(&t).then_some(TcpState::TimeWait)
    }
}
