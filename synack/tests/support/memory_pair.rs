//! Two synack interfaces joined by the in-memory device pair: sockets on both ends in
//! one process, no root and no TUN device.

use std::net::IpAddr;

use synack::device::{memory, DeviceConfig, Interface};

/// Interface `a` (address `a`) and interface `b` (address `b`): what one sends, the
/// other receives.
pub fn memory_pair(a: IpAddr, b: IpAddr) -> (Interface, Interface) {
    let (dev_a, dev_b) = memory::pair(1024);
    let mut config_a = DeviceConfig::new(a);
    config_a.name = "a".into();
    let mut config_b = DeviceConfig::new(b);
    config_b.name = "b".into();
    (
        Interface::new(dev_a, config_a).expect("an in-memory interface"),
        Interface::new(dev_b, config_b).expect("an in-memory interface"),
    )
}
