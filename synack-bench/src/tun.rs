//! `tun`: through synack's TUN backend in a network namespace, kernel to synack and
//! synack to kernel, with and without segmentation offload, beside kernel to kernel
//! over a veth pair.

use crate::report::Report;
use crate::{Selection, Sizes};

/// Run the TUN benchmarks.
pub fn run(_sizes: &Sizes, report: &mut Report, _systems: &Selection) {
    report.skip("tun", "synack", "not built yet");
    let _ = crate::report::Measurement::new("tun", "linux", 0.0, "Gbit/s")
        .direction("kernel_to_kernel")
        .offload(true);
}

/// The part that runs inside a namespace (`--netns-role ROLE`); returns the exit code.
pub fn netns_role(role: &str) -> i32 {
    eprintln!("synack-bench: unknown namespace role {role}");
    2
}
