//! smoltcp's side of `bulk`, `connections` and `latency`, over the same in-memory link
//! as synack's (raw IP packets in queues, the same MTU and buffer sizes, one thread).

use crate::report::Report;
use crate::{Selection, Sizes};

/// Run the three for smoltcp.
pub fn run(_sizes: &Sizes, report: &mut Report, _benches: &Selection) {
    report.skip("bulk", "smoltcp", "not built yet");
}
