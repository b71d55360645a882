#![no_main]
//! The wire parsers (IPv4, IPv6, TCP, TCP options, ICMP, ICMPv6) on arbitrary bytes, with
//! emit/parse round trips. See synack_fuzz::wire.

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::wire::run(data));
