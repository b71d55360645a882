//! The harnesses behind synack's fuzz targets (`fuzz_targets/*.rs` are thin wrappers)
//! and the seed-corpus generator (`examples/gen_corpus.rs`), in one library so that the
//! generator writes inputs in exactly the encoding the harnesses decode.
//! See docs/fuzzing.md.

pub mod common;
pub mod input;
pub mod pattern;
pub mod seeds;
pub mod stack;
pub mod two_stacks;
pub mod wire;
