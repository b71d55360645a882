//! A device of one's own is all it takes to run synack's sockets over a packet path: here
//! two ends of std mpsc channels, one of which loses every 20th packet on its way (a loss
//! of the example's own), carrying a blocking `TcpStream` exchange. The device has no file
//! descriptor, so it wakes the driver through the `Waker` it is handed.
//!
//! ```text
//! cargo run --example custom_device
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use synack::device::{Device, DeviceConfig, Interface};
use synack::net::{TcpListener, TcpStream};

/// One end of a link made of two mpsc channels.
pub struct ChannelDevice {
    rx: Mutex<Receiver<Vec<u8>>>,
    tx: Mutex<Sender<Vec<u8>>>,
    /// The other end's waker, woken after each packet sent to it.
    peer_waker: Arc<Mutex<Option<Waker>>>,
    my_waker: Arc<Mutex<Option<Waker>>>,
    /// Drop every `lose_every`-th packet sent (0: none).
    lose_every: u64,
    /// Packets sent and lost so far.
    pub sent: AtomicU64,
    pub lost: AtomicU64,
}

/// Two devices joined by channels; `a` loses every `a_loses_every`-th packet it sends.
pub fn channel_pair(a_loses_every: u64) -> (ChannelDevice, ChannelDevice) {
    let (to_b, from_a) = channel();
    let (to_a, from_b) = channel();
    let (wa, wb) = (Arc::default(), Arc::default());
    let end = |rx, tx, mine: &Arc<_>, peer: &Arc<_>, lose_every| ChannelDevice {
        rx: Mutex::new(rx),
        tx: Mutex::new(tx),
        peer_waker: Arc::clone(peer),
        my_waker: Arc::clone(mine),
        lose_every,
        sent: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    };
    (
        end(from_b, to_b, &wa, &wb, a_loses_every),
        end(from_a, to_a, &wb, &wa, 0),
    )
}

impl Device for ChannelDevice {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let packet = self
            .rx
            .lock()
            .unwrap()
            .try_recv()
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        Ok(n)
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if self.lose_every != 0 && n % self.lose_every == 0 {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // A gone peer is a cut cable: the packet is lost.
        let _ = self.tx.lock().unwrap().send(packet.to_vec());
        if let Some(w) = self.peer_waker.lock().unwrap().as_ref() {
            w.wake_by_ref();
        }
        Ok(())
    }

    fn set_waker(&self, waker: Waker) {
        *self.my_waker.lock().unwrap() = Some(waker.clone());
        // Packets may have come before the driver started.
        waker.wake();
    }
}

/// Send `len` bytes from a client on one stack to a server on the other over the lossy
/// channel link, and return what the server got and how many packets the link lost.
pub fn exchange(len: usize) -> io::Result<(Vec<u8>, Vec<u8>, u64)> {
    let (a, b) = channel_pair(20);
    // An `Arc` of a device is a device: the example keeps one to read the losses.
    let lossy = Arc::new(a);
    let client_iface = Interface::new(
        Arc::clone(&lossy),
        DeviceConfig::new("198.18.1.1".parse().unwrap()),
    )?;
    let server_iface = Interface::new(b, DeviceConfig::new("198.18.1.2".parse().unwrap()))?;
    let addr: SocketAddr = "198.18.1.2:9000".parse().unwrap();

    let listener = TcpListener::bind(&server_iface, addr)?;
    let server = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let (mut stream, _) = listener.accept()?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got)?;
        stream.write_all(b"thanks")?;
        Ok(got)
    });
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    let mut stream = TcpStream::connect(&client_iface, addr)?;
    stream.write_all(&data)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let got = server.join().expect("the server thread")?;
    assert_eq!(got, data, "the server got other bytes than were sent");
    Ok((got, reply, lossy.lost.load(Ordering::Relaxed)))
}

fn main() -> io::Result<()> {
    let (got, reply, lost) = exchange(200_000)?;
    println!(
        "the server got {} bytes intact and answered {:?}; the link lost {lost} packets on the way",
        got.len(),
        String::from_utf8_lossy(&reply)
    );
    Ok(())
}
