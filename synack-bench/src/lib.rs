//! What the `synack-bench` binary shares with its tests: the in-memory link smoltcp runs
//! over (the same raw-IP-packet queues synack's side of the benchmarks uses).

pub mod link;
