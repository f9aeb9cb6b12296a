//! Multi-head scaled dot-product attention, `softmax(scale · q kᵀ + mask) v` per head (Vaswani
//! et al. 2017, eq. 1), with heads taken from consecutive column blocks of `q`, `k`, `v`
//! `(B, N, H·d)` and merged the same way into the output.
//!
//! Inference on the CPU runs a fused, tiled kernel (in the spirit of FlashAttention, Dao et al.
//! 2022, without the online softmax since a whole row of scores fits in cache): for each
//! (batch, head, block of query rows) it forms the scores of the block against every key with
//! one GEMM, applies scale, mask and softmax in place, and multiplies by the values with a
//! second GEMM written straight into the head's columns of the output. Nothing of size
//! `B·H·N·L` is ever materialised, no head is transposed or copied (the views are strided, so
//! `q`, `k`, `v` may be column blocks of one fused projection), and the tasks run in parallel.
//! With bf16 precision (`mkl` builds on CPUs with native bf16) both GEMMs take bf16 operands
//! with f32 accumulation; scores and softmax stay f32.
//!
//! Training and accelerators use the composite formula (split heads, matmul, softmax, matmul).

use candle_core::{DType, Tensor};
use half::bf16;
use rayon::prelude::*;

use crate::functional::{cast, softmax_last_dim};
use crate::gemm::{MatMut, MatRef, Threads, gemm_bf16, native_bf16, sgemm};
use crate::host::{no_grad, on_cpu, tensor, with_rows, with_slice};
use crate::shared_out::SharedOut;
use crate::{Error, Result, simd};

/// Precision of the attention products on the fused CPU path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPrecision {
    /// f32 operands.
    #[default]
    F32,
    /// bf16 operands, f32 accumulation (where the backend multiplies bf16 natively; f32
    /// elsewhere).
    Bf16,
}

/// Query rows per task of the fused kernel.
const BLOCK: usize = 256;

/// `softmax(scale · q kᵀ + mask) v` for `heads` heads: `q` `(B, N, H·d)`, `k` and `v`
/// `(B, L, H·d)`, `mask` an additive `(N, L)` matrix (0 where allowed, `-inf` where not);
/// returns `(B, N, H·d)`. `q`, `k`, `v` may be strided views along the last axis (e.g. the
/// three column blocks of a fused q/k/v projection).
#[allow(clippy::too_many_arguments)]
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
    mask: Option<&Tensor>,
    precision: AttentionPrecision,
    train: bool,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let (bk, l, ck) = k.dims3()?;
    if bk != b || ck != c || v.dims() != k.dims() || heads == 0 || c % heads != 0 {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "attention: q {:?}, k {:?}, v {:?} with {heads} heads do not fit",
            q.dims(),
            k.dims(),
            v.dims()
        ))));
    }
    if let Some(m) = mask
        && m.dims() != [n, l]
    {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "attention: mask {:?} is not ({n}, {l})",
            m.dims()
        ))));
    }
    let fused = !train
        && [q, k, v]
            .iter()
            .all(|t| on_cpu(t) && t.dtype() == DType::F32)
        && no_grad(&[q, k, v])
        && mask.is_none_or(|m| no_grad(&[m]));
    if fused {
        return fused_attention(q, k, v, heads, scale as f32, mask, precision);
    }
    composite(q, k, v, heads, scale, mask, train)
}

#[allow(clippy::too_many_arguments)]
fn composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
    mask: Option<&Tensor>,
    train: bool,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let l = k.dim(1)?;
    let d = c / heads;
    let dtype = q.dtype();
    let split = |x: &Tensor, len: usize| -> Result<Tensor> {
        Ok(x.reshape((b, len, heads, d))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let q = (split(&q.contiguous()?, n)? * scale)?;
    let k = split(&k.contiguous()?, l)?;
    let v = split(&v.contiguous()?, l)?;
    let scores = q.matmul(&k.t()?)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&cast(m, scores.dtype())?)?,
        None => scores,
    };
    let probs = cast(&softmax_last_dim(&scores, train)?, dtype)?;
    let o = probs.matmul(&v)?;
    Ok(o.transpose(1, 2)?.reshape((b, n, c))?)
}

fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f32,
    mask: Option<&Tensor>,
    precision: AttentionPrecision,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let l = k.dim(1)?;
    let d = c / heads;
    let mask: Option<Vec<f32>> = match mask {
        Some(m) => Some(with_slice::<f32, _>(&cast(m, DType::F32)?, |s| s.to_vec())?),
        None => None,
    };
    // SAFETY: the tasks cover every (row, head) block of the output, and write it before any
    // read (the P·V products overwrite, `normalise_rows` then scales what they wrote).
    let mut out: Vec<f32> = unsafe { crate::host::uninit_vec(b * n * c) };
    let ptr = SharedOut::new(&mut out);
    let blocks = n.div_ceil(BLOCK);
    let tasks: Vec<(usize, usize, usize)> = (0..b)
        .flat_map(|bi| (0..heads).flat_map(move |h| (0..blocks).map(move |qb| (bi, h, qb))))
        .collect();
    // Short key sequences (cross-attention to 77 text tokens) are faster in f32: the bf16
    // GEMMs' packing does not pay off there (measured).
    let bf16_path = precision == AttentionPrecision::Bf16 && native_bf16() && l >= 256;
    with_rows::<f32, _>(q, |qd, q_rs| {
        with_rows::<f32, _>(k, |kd, k_rs| {
            with_rows::<f32, _>(v, |vd, v_rs| {
                let mask = mask.as_deref();
                if bf16_path {
                    let to16 = |x: &[f32]| {
                        let mut o = vec![bf16::ZERO; x.len()];
                        simd::f32_to_bf16(x, &mut o);
                        o
                    };
                    let (q16, k16, v16) = (to16(qd), to16(kd), to16(vd));
                    tasks.par_iter().for_each_init(
                        || (vec![0f32; BLOCK * l], vec![bf16::ZERO; BLOCK * l]),
                        |(s, p16), &(bi, h, qb)| {
                            let i0 = qb * BLOCK;
                            let rows = BLOCK.min(n - i0);
                            let qv = MatRef::row_major(
                                &q16[(bi * n + i0) * q_rs + h * d..],
                                rows,
                                d,
                                q_rs,
                            );
                            let kv =
                                MatRef::row_major(&k16[bi * l * k_rs + h * d..], l, d, k_rs).t();
                            gemm_bf16(
                                MatMut::new(&mut s[..rows * l], rows, l, l),
                                qv,
                                kv,
                                false,
                                Threads::One,
                            );
                            let sums = exp_rows(
                                &mut s[..rows * l],
                                l,
                                scale,
                                mask,
                                i0,
                                Some(&mut p16[..rows * l]),
                            );
                            let vv = MatRef::row_major(&v16[bi * l * v_rs + h * d..], l, d, v_rs);
                            // SAFETY: rows `bi·n + i0 .. + rows`, columns `h·d .. + d` of `out`
                            // belong to this task alone.
                            let o = unsafe {
                                MatMut::from_raw(ptr.at((bi * n + i0) * c + h * d), rows, d, c)
                            };
                            gemm_bf16(
                                o,
                                MatRef::row_major(&p16[..rows * l], rows, l, l),
                                vv,
                                false,
                                Threads::One,
                            );
                            // SAFETY: as above.
                            unsafe {
                                normalise_rows(ptr.at((bi * n + i0) * c + h * d), rows, d, c, &sums)
                            };
                        },
                    );
                } else {
                    tasks.par_iter().for_each_init(
                        || vec![0f32; BLOCK * l],
                        |s, &(bi, h, qb)| {
                            let i0 = qb * BLOCK;
                            let rows = BLOCK.min(n - i0);
                            let qv = MatRef::row_major(
                                &qd[(bi * n + i0) * q_rs + h * d..],
                                rows,
                                d,
                                q_rs,
                            );
                            let kv =
                                MatRef::row_major(&kd[bi * l * k_rs + h * d..], l, d, k_rs).t();
                            sgemm(
                                MatMut::new(&mut s[..rows * l], rows, l, l),
                                qv,
                                kv,
                                false,
                                Threads::One,
                            );
                            let sums = exp_rows(&mut s[..rows * l], l, scale, mask, i0, None);
                            let vv = MatRef::row_major(&vd[bi * l * v_rs + h * d..], l, d, v_rs);
                            // SAFETY: as above.
                            let o = unsafe {
                                MatMut::from_raw(ptr.at((bi * n + i0) * c + h * d), rows, d, c)
                            };
                            sgemm(
                                o,
                                MatRef::row_major(&s[..rows * l], rows, l, l),
                                vv,
                                false,
                                Threads::One,
                            );
                            // SAFETY: as above.
                            unsafe {
                                normalise_rows(ptr.at((bi * n + i0) * c + h * d), rows, d, c, &sums)
                            };
                        },
                    );
                }
            })
        })
    })???;
    tensor(out, &[b, n, c])
}

/// Scale, mask (rows `i0..` of the `(N, L)` mask) and the unnormalised softmax of a block of
/// score rows (in place, or as bf16 into `out`); returns the row sums. The normalisation is
/// applied to the (narrower) output rows instead, by [`normalise_rows`].
fn exp_rows(
    s: &mut [f32],
    l: usize,
    scale: f32,
    mask: Option<&[f32]>,
    i0: usize,
    mut out: Option<&mut [bf16]>,
) -> Vec<f32> {
    s.chunks_exact_mut(l)
        .enumerate()
        .map(|(i, row)| {
            let m = mask.map_or(&[][..], |m| &m[(i0 + i) * l..(i0 + i + 1) * l]);
            match out.as_deref_mut() {
                Some(o) => {
                    simd::softmax_unnormalised_bf16(row, scale, m, &mut o[i * l..(i + 1) * l])
                }
                None => simd::softmax_unnormalised(row, scale, m),
            }
        })
        .collect()
}

/// Divides `rows` output rows of `d` elements (row stride `rs`, at `ptr`) by their softmax sums.
///
/// # Safety
/// The rows must be valid for writes and owned by the caller's task.
unsafe fn normalise_rows(ptr: *mut f32, rows: usize, d: usize, rs: usize, sums: &[f32]) {
    for (i, &total) in sums.iter().enumerate().take(rows) {
        // SAFETY: per the contract.
        let row = unsafe { std::slice::from_raw_parts_mut(ptr.add(i * rs), d) };
        let inv = 1.0 / total;
        for x in row {
            *x *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_kernel_matches_the_composite_formula() {
        let dev = Device::Cpu;
        // Two query blocks (one partial), views of a fused projection, and a causal mask.
        let (b, n, l, heads, d) = (2, 150, 150, 3, 8);
        let qkv = Tensor::randn(0f32, 1.0, (b, n, 3 * heads * d), &dev).unwrap();
        let q = qkv.narrow(2, 0, heads * d).unwrap();
        let k = qkv.narrow(2, heads * d, heads * d).unwrap();
        let v = qkv.narrow(2, 2 * heads * d, heads * d).unwrap();
        let mask: Vec<f32> = (0..n * l)
            .map(|i| {
                if i % l > i / l {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, l), &dev).unwrap();
        for m in [None, Some(&mask)] {
            let fused =
                multi_head_attention(&q, &k, &v, heads, 0.35, m, AttentionPrecision::F32, false)
                    .unwrap();
            let want = composite(&q, &k, &v, heads, 0.35, m, false).unwrap();
            assert!(
                max_diff(&fused, &want) < 1e-5,
                "{}",
                max_diff(&fused, &want)
            );
            let half =
                multi_head_attention(&q, &k, &v, heads, 0.35, m, AttentionPrecision::Bf16, false)
                    .unwrap();
            assert!(max_diff(&half, &want) < 5e-2);
        }
        // Cross-attention: fewer keys than queries.
        let kv = Tensor::randn(0f32, 1.0, (b, 7, 2 * heads * d), &dev).unwrap();
        let (k2, v2) = (
            kv.narrow(2, 0, heads * d).unwrap(),
            kv.narrow(2, heads * d, heads * d).unwrap(),
        );
        let fused = multi_head_attention(
            &q,
            &k2,
            &v2,
            heads,
            0.35,
            None,
            AttentionPrecision::F32,
            false,
        )
        .unwrap();
        let want = composite(&q, &k2, &v2, heads, 0.35, None, false).unwrap();
        assert!(max_diff(&fused, &want) < 1e-5);
        assert!(
            multi_head_attention(&q, &k2, &v2, 5, 1.0, None, AttentionPrecision::F32, false)
                .is_err()
        );
    }
}
