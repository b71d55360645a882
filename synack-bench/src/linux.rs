//! The Linux kernel's side of `bulk`, `connections` and `latency`: ordinary sockets over
//! loopback inside a network namespace the benchmark makes itself.

use crate::report::Report;
use crate::{Selection, Sizes};

/// Run the three for Linux.
pub fn run(_sizes: &Sizes, report: &mut Report, _benches: &Selection) {
    report.skip("bulk", "linux", "not built yet");
}
