//! Borrowing the data of CPU tensors as slices, without copies, for the kernels of this crate.

use candle_core::{Device, Storage, Tensor, WithDType};

use crate::{Error, Result};

/// Whether `t` lives on the CPU.
pub(crate) fn on_cpu(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu)
}

/// Whether no gradient can flow through `ts` (the fused kernels have no backward pass).
pub fn no_grad(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| !t.track_op())
}

/// Runs `f` on the elements of the CPU tensor `t` in C order (copied only when `t` is not
/// contiguous).
pub(crate) fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    if !t.is_contiguous() {
        return with_slice(&t.contiguous()?, f);
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Unsupported {
            op: "host slice",
            device: format!("{:?}", t.device().location()),
            reason: "the tensor is not on the CPU".into(),
        });
    };
    let data: &[T] = cpu.as_slice::<T>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .expect("checked contiguous above");
    Ok(f(&data[start..end]))
}

/// Rows of a 3-D CPU tensor `(B, N, C)` whose last axis is contiguous and whose rows are evenly
/// strided (a contiguous tensor, or a `narrow` of its last axis): `f(data, row_stride)` where
/// row `r = b·N + i` starts at `data[r · row_stride]`. Other layouts are copied first.
pub(crate) fn with_rows<T: WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T], usize) -> R,
) -> Result<R> {
    let (b, n, c) = t.dims3()?;
    let stride = t.stride().to_vec();
    let row_stride = match (b, n) {
        (_, 1) if b > 1 => Some(stride[0]),
        (_, 1) => Some(c),
        (1, _) => Some(stride[1]),
        _ if stride[0] == n * stride[1] => Some(stride[1]),
        _ => None,
    };
    let row_stride = match row_stride {
        Some(rs) if stride[2] == 1 || c == 1 => rs.max(c),
        _ => return with_slice(&t.contiguous()?, |s| f(s, c)),
    };
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Unsupported {
            op: "host rows",
            device: format!("{:?}", t.device().location()),
            reason: "the tensor is not on the CPU".into(),
        });
    };
    let data: &[T] = cpu.as_slice::<T>()?;
    let start = layout.start_offset();
    let rows = b * n;
    let end = if rows == 0 {
        start
    } else {
        start + (rows - 1) * row_stride + c
    };
    Ok(f(&data[start..end], row_stride))
}

/// A CPU tensor of `shape` from `data`.
pub(crate) fn tensor<T: WithDType>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// A vector of `n` elements whose contents are not initialised, for output buffers that a
/// kernel writes completely before anything reads them (zeroing 46 MB buffers costs as much as
/// the activation that fills them).
///
/// # Safety
/// Every element must be written before it is read, and the vector must not be dropped with
/// elements that need dropping (only plain numbers are allowed).
#[allow(clippy::uninit_vec)] // the point of the function; see the contract
pub(crate) unsafe fn uninit_vec<T: Copy>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: per the contract; `T: Copy` has no destructor.
    unsafe { v.set_len(n) };
    v
}
