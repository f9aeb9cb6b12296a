//! Borrowing the f32 data of a contiguous CPU tensor as a slice (no copy), for the fused
//! sampler kernels; other tensors are copied.

use candle_core::{Storage, Tensor};

use crate::Result;

/// Runs `f` on the elements of the CPU f32 tensor `t` in C order.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if !t.is_contiguous() {
        return with_f32(&t.contiguous()?, f);
    }
    let (storage, layout) = t.storage_and_layout();
    if let Storage::Cpu(cpu) = &*storage
        && let Ok(data) = cpu.as_slice::<f32>()
        && let Some((a, b)) = layout.contiguous_offsets()
    {
        return Ok(f(&data[a..b]));
    }
    drop(storage);
    let v = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(f(&v))
}
