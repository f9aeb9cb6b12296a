//! The benchmarked components. Each has a `prepare` (random ITHQ-shape weights and inputs in
//! the work folder, shared with the Python reference) and a run of ours; the reference runs are
//! in `reference.py`.

pub mod clip_encode;
pub mod embedded;
pub mod gemm;
pub mod sampler;
pub mod transformer;
pub mod vq_decode;
