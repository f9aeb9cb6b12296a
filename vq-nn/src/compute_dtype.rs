//! The dtype activations are computed in for weights stored as a given dtype on a device: the
//! storage dtype on accelerators, f32 on the CPU for half-precision storage (candle's CPU
//! kernels for f16/bf16 are not faster than f32 and lose precision; the layers of this crate
//! use the BLAS backend's half-precision GEMMs where they exist, with f32 activations).

use candle_core::{DType, Device};

/// Activation dtype for weights stored as `storage` on `device`.
pub fn compute_dtype(storage: DType, device: &Device) -> DType {
    match (storage, device) {
        (DType::F16 | DType::BF16, Device::Cpu) => DType::F32,
        (d, _) => d,
    }
}
