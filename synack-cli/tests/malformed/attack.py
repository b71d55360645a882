#!/usr/bin/python3
"""Malformed and hostile packets for `synack serve`, run by synack-cli/tests/malformed.rs
inside the test's own network namespace (synack is 198.18.0.2 behind tun0; nothing
leaves the namespace).

Packets are built with scapy and written to tun0 through an AF_PACKET socket, so even
headers the kernel's IP layer would refuse to send reach synack byte for byte. Answers
to the spoofed source 198.18.9.9 come back on tun0, where this script reads them, and
the kernel drops them (it does not forward).

Meanwhile a real kernel TCP connection to synack's echo service exchanges a message
every 20 ms and checks every echo.

Prints one JSON object: packets sent per category, and what the hand-made connection
and the kernel connection saw.
"""

import json
import socket
import struct
import threading
import time

from scapy.all import IP, TCP, UDP, Raw, conf, fragment

conf.verb = 0

SYNACK = "198.18.0.2"
PEER = "198.18.9.9"
PORT = 8080
ETH_P_ALL = 3
REPEAT = 20

tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind(("tun0", 0))
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
rx.bind(("tun0", 0))
rx.settimeout(0.05)

sent = {}


def send(category, pkt):
    data = pkt if isinstance(pkt, bytes) else bytes(pkt)
    tx.send(data)
    sent[category] = sent.get(category, 0) + 1
    # Pace the burst so tun0's transmit queue (500 packets) never overflows.
    time.sleep(0.001)


def from_synack(timeout=1.0, sport=40000):
    """TCP segments synack sent to PEER:sport, until `timeout` passes quietly."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data, addr = rx.recvfrom(70000)
        except socket.timeout:
            continue
        if len(data) < 40 or data[0] >> 4 != 4:
            continue
        p = IP(data)
        if p.src == SYNACK and p.dst == PEER and TCP in p and p[TCP].dport == sport:
            out.append(p[TCP])
    return out


# ---- the kernel connection that must keep working throughout -------------------------
kernel = {"echoes": 0, "errors": []}
stop = threading.Event()


def kernel_client():
    try:
        s = socket.create_connection((SYNACK, PORT), timeout=5)
        i = 0
        while not stop.is_set():
            msg = b"kernel message %06d\n" % i
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise RuntimeError("connection closed")
                got += chunk
            if got != msg:
                kernel["errors"].append("echo mismatch at %d" % i)
            kernel["echoes"] += 1
            i += 1
            time.sleep(0.02)
        s.close()
    except Exception as e:  # reported, and the test fails on it
        kernel["errors"].append(repr(e))


client = threading.Thread(target=kernel_client)
client.start()
time.sleep(0.2)


def ip_tcp(sport, flags="S", seq=1000, ack=0, payload=b"", **tcp):
    return IP(src=PEER, dst=SYNACK) / TCP(sport=sport, dport=PORT, flags=flags, seq=seq, ack=ack, **tcp) / Raw(payload)


# ---- headers that are not packets -----------------------------------------------------
for i in range(REPEAT):
    good = bytes(ip_tcp(20000 + i))
    send("truncated_ip", good[:12])
    bad = bytearray(good)
    bad[0] = 0x43  # IHL 3: below the 20-byte minimum
    send("bad_ihl", bytes(bad))
    long = IP(good)
    long.len = 2000  # beyond the packet
    long.chksum = None
    send("bad_total_length", long)
    send("bad_ip_checksum", bytes(IP(src=PEER, dst=SYNACK, chksum=0x1234) / TCP(sport=20000 + i, dport=PORT)))
    send("truncated_tcp", bytes(IP(src=PEER, dst=SYNACK, proto=6) / Raw(b"\x4e\x20\x1f\x90" + b"\x00" * 6)))
    send("bad_data_offset_low", ip_tcp(21000 + i, dataofs=3))
    send("bad_data_offset_high", ip_tcp(21000 + i, dataofs=15))
    # An MSS option whose length (8) runs past the 24-byte header.
    send("option_past_header", IP(src=PEER, dst=SYNACK) / TCP(sport=22000 + i, dport=PORT, flags="S", dataofs=6) / Raw(b"\x02\x08\x05\xb4"))
    send("bad_tcp_checksum", ip_tcp(23000 + i, chksum=0xDEAD))

# ---- UDP: lengths that do not fit, bad checksums, cut headers, no socket ----------------
for i in range(REPEAT):
    send("udp_bad_length_short", IP(src=PEER, dst=SYNACK) / UDP(sport=30000 + i, dport=53, len=4) / Raw(b"hello"))
    send("udp_bad_length_long", IP(src=PEER, dst=SYNACK) / UDP(sport=30000 + i, dport=53, len=200) / Raw(b"hello"))
    send("udp_bad_checksum", IP(src=PEER, dst=SYNACK) / UDP(sport=30000 + i, dport=53, chksum=0xDEAD) / Raw(b"hello"))
    send("udp_truncated", bytes(IP(src=PEER, dst=SYNACK, proto=17) / Raw(b"\x75\x30\x00")))
    send("udp_no_socket", IP(src=PEER, dst=SYNACK) / UDP(sport=30000 + i, dport=9999) / Raw(b"anyone?"))

# ---- flag combinations that open nothing ------------------------------------------------
for i in range(REPEAT):
    send("syn_fin", ip_tcp(24000 + i, flags="SF"))
    send("syn_rst", ip_tcp(24100 + i, flags="SR"))
    send("all_flags", ip_tcp(24200 + i, flags="FSRPAUEC"))
    send("no_flags", ip_tcp(24300 + i, flags=""))

# ---- odd but legal options: handled, not dropped ----------------------------------------
for i in range(REPEAT):
    send("wscale_above_14", ip_tcp(25000 + i, options=[("WScale", 15), ("MSS", 1460)]))
    send("mss_zero", ip_tcp(25100 + i, options=[("MSS", 0)]))

# ---- fragments: tiny (offset 1) and overlapping with different bytes --------------------
for i in range(REPEAT):
    whole = ip_tcp(26000 + i, flags="S", payload=b"")
    whole[IP].id = 5000 + i
    raw = bytes(whole)
    hdr, body = raw[:20], raw[20:]
    # RFC 3128: a TCP fragment at offset 1 (8 bytes) could rewrite the flags: drop it.
    first = IP(hdr)
    first.flags = "MF"
    first.len = None
    first.chksum = None
    send("fragment_first_half", bytes(first / Raw(body[:8])))
    tiny = IP(hdr)
    tiny.frag = 1
    tiny.len = None
    tiny.chksum = None
    send("fragment_offset_1", bytes(tiny / Raw(body[8:])))
    # Two fragments that overlap and disagree: the whole datagram goes (RFC 5722).
    ov = ip_tcp(27000 + i, flags="S", payload=b"x" * 64)
    ov[IP].id = 6000 + i
    frags = fragment(ov, fragsize=32)
    liar = frags[1].copy()  # same offset as the second fragment, other bytes
    liar[Raw].load = b"y" * len(liar[Raw].load)
    for f in [frags[0], liar] + frags[1:]:
        send("fragment_overlapping", f)

# ---- a hand-made connection: overlapping segments and data far outside the window -------
syn = ip_tcp(40000, flags="S", seq=1000, options=[("MSS", 1460)])
send("handshake", syn)
synack = [s for s in from_synack(1.0) if s.flags & 0x12 == 0x12]
conn = {"established": bool(synack)}
echoed = b""
expected = b""
if synack:
    iss = synack[0].seq
    send("handshake", ip_tcp(40000, flags="A", seq=1001, ack=iss + 1))
    # First arrival wins where segments overlap (RFC 9293 3.10.7.4 trims what was
    # already received; synack keeps the earliest out-of-order bytes too).
    pieces = [
        (0, b"A" * 10),
        (5, b"B" * 10),    # overlaps A's last 5 bytes
        (30, b"C" * 10),   # out of order
        (25, b"D" * 10),   # overlaps C's first 5 bytes
        (15, b"E" * 10),   # fills the gap
    ]
    have = {}
    for off, data in pieces:
        for k, b in enumerate(data):
            have.setdefault(off + k, b)
        send("overlapping_segments", ip_tcp(40000, flags="PA", seq=1001 + off, ack=iss + 1, payload=data))
    expected = bytes(have[k] for k in range(len(have)))
    # Data 2^30 beyond the window: not acceptable, answered with an ACK at most.
    for i in range(REPEAT):
        send("outside_window", ip_tcp(40000, flags="PA", seq=(1001 + (1 << 30) + i * 100) & 0xFFFFFFFF, ack=iss + 1, payload=b"Z" * 20))
    got = {}
    for s in from_synack(1.5):
        if len(s.payload) > 0:
            got[(s.seq - iss - 1) & 0xFFFFFFFF] = bytes(s.payload)
    pos = 0
    while pos in got:
        echoed += got[pos]
        pos += len(got[pos])
    # Say goodbye with an exact RST.
    send("handshake", ip_tcp(40000, flags="R", seq=1001 + len(expected)))
conn["echoed"] = echoed.decode("latin-1")
conn["expected"] = expected.decode("latin-1")

time.sleep(0.3)
stop.set()
client.join()
print(json.dumps({"sent": sent, "connection": conn, "kernel": kernel}))
