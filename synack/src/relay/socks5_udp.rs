//! UDP through a SOCKS5 proxy (RFC 1928 section 7, UDP ASSOCIATE): a TCP control
//! connection asks the proxy for a UDP relay port (authenticating with RFC 1929 if the
//! proxy wants it) and stays open for as long as the association lives; each datagram
//! to the proxy's relay port carries a header naming its destination, and each answer
//! one naming its source. (tokio-socks, which the TCP side uses, has no UDP.)

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ::tokio::net::{TcpStream, UdpSocket};

const VERSION: u8 = 5;
const CMD_UDP_ASSOCIATE: u8 = 3;
const ATYP_V4: u8 = 1;
const ATYP_V6: u8 = 4;
const METHOD_NONE: u8 = 0;
const METHOD_PASSWORD: u8 = 2;

/// One UDP association with the proxy.
#[derive(Debug)]
pub(super) struct Association {
    /// The control connection: the association ends when it closes.
    _control: TcpStream,
    /// Connected to the proxy's relay port.
    socket: UdpSocket,
}

/// An address in SOCKS5's form: type, address, port.
fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(a) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Read an address in SOCKS5's form from the front of `b`; returns it and its length.
fn get_addr(b: &[u8]) -> Option<(SocketAddr, usize)> {
    let (ip, len): (IpAddr, usize) = match *b.first()? {
        ATYP_V4 => {
            let o: [u8; 4] = b.get(1..5)?.try_into().ok()?;
            (Ipv4Addr::from(o).into(), 5)
        }
        ATYP_V6 => {
            let o: [u8; 16] = b.get(1..17)?.try_into().ok()?;
            (Ipv6Addr::from(o).into(), 17)
        }
        _ => return None,
    };
    let p = b.get(len..len + 2)?;
    Some((
        SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]])),
        len + 2,
    ))
}

fn refused(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, format!("SOCKS5: {what}"))
}

impl Association {
    /// Ask the proxy, over `control` (connected to it), for a UDP association; `udp` is
    /// the kernel socket the datagrams go from.
    pub(super) async fn open(
        mut control: TcpStream,
        udp: UdpSocket,
        auth: Option<&(String, String)>,
    ) -> io::Result<Association> {
        let proxy = control.peer_addr()?;
        let methods: &[u8] = if auth.is_some() {
            &[METHOD_NONE, METHOD_PASSWORD]
        } else {
            &[METHOD_NONE]
        };
        let mut hello = vec![VERSION, methods.len() as u8];
        hello.extend_from_slice(methods);
        control.write_all(&hello).await?;
        let mut reply = [0u8; 2];
        control.read_exact(&mut reply).await?;
        match (reply, auth) {
            ([VERSION, METHOD_NONE], _) => {}
            ([VERSION, METHOD_PASSWORD], Some((user, pass))) => {
                // RFC 1929 2: version 1, the user name and the password.
                let mut req = vec![1, user.len() as u8];
                req.extend_from_slice(user.as_bytes());
                req.push(pass.len() as u8);
                req.extend_from_slice(pass.as_bytes());
                control.write_all(&req).await?;
                let mut status = [0u8; 2];
                control.read_exact(&mut status).await?;
                if status[1] != 0 {
                    return Err(refused("the proxy refused the user name and password"));
                }
            }
            _ => return Err(refused("no authentication method the proxy accepts")),
        }
        // RFC 1928 7: the address the datagrams will come from (ours, as far as we
        // know it; the proxy may take all zeros as "not known yet").
        let mut req = vec![VERSION, CMD_UDP_ASSOCIATE, 0];
        put_addr(&mut req, udp.local_addr()?);
        control.write_all(&req).await?;
        let mut head = [0u8; 4];
        control.read_exact(&mut head).await?;
        if head[1] != 0 {
            return Err(refused(&format!(
                "UDP ASSOCIATE failed with reply {}",
                head[1]
            )));
        }
        let addr_len = match head[3] {
            ATYP_V4 => 4,
            ATYP_V6 => 16,
            _ => return Err(refused("the proxy's relay address is not an IP address")),
        };
        let mut rest = vec![0u8; addr_len + 2];
        control.read_exact(&mut rest).await?;
        let mut bound = vec![head[3]];
        bound.extend_from_slice(&rest);
        let (mut relay_at, _) = get_addr(&bound).ok_or_else(|| refused("a bad reply"))?;
        if relay_at.ip().is_unspecified() {
            relay_at.set_ip(proxy.ip());
        }
        udp.connect(relay_at).await?;
        Ok(Association {
            _control: control,
            socket: udp,
        })
    }

    /// Send `data` to `to` through the proxy.
    pub(super) async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        // RSV (2), FRAG 0 (this datagram is whole), the destination, the data.
        let mut d = Vec::with_capacity(data.len() + 22);
        d.extend_from_slice(&[0, 0, 0]);
        put_addr(&mut d, to);
        d.extend_from_slice(data);
        self.socket.send(&d).await.map(|_| ())
    }

    /// The next datagram the proxy relays back: its data moved to the front of `buf`,
    /// its length, and who sent it. Fragments and malformed datagrams are skipped
    /// (RFC 1928 7 lets a client drop fragments).
    pub(super) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let n = self.socket.recv(buf).await?;
            if n < 4 || buf[2] != 0 {
                continue;
            }
            let Some((from, len)) = get_addr(&buf[3..n]) else {
                continue;
            };
            let start = 3 + len;
            buf.copy_within(start..n, 0);
            return Ok((n - start, from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_in_socks5_form() {
        for a in ["198.18.0.1:53", "[2001:db8::1]:5353"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut b = Vec::new();
            put_addr(&mut b, a);
            assert_eq!(get_addr(&b), Some((a, b.len())));
        }
        assert_eq!(get_addr(&[3, 4, b'h']), None, "domain names are not taken");
        assert_eq!(get_addr(&[1, 1, 2]), None, "cut short");
    }
}
