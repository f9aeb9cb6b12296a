//! Row kernels in plain float code that LLVM vectorises inside `#[target_feature]` clones
//! (AVX-512 or AVX2+FMA, chosen at run time by [`dispatch!`]), and the thread split of row
//! blocks. `exp` is a Cephes-style polynomial (≈1 ulp on the clamped range `[-87.3, 88.3]`):
//! candle's CPU kernels call scalar `expf` per element, which dominates softmax and activation
//! costs at the ITHQ shape.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer in the low bits.

/// `e^x` for `x` clamped to `[-87.3, 88.3]` (relative error ≈ 1e-7).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((bits + 127) << 23) as u32);
    er * scale
}

/// `e^x` to 2.5e-4 relative error (a degree-3 polynomial for `2^f`), for values that are
/// rounded to bf16 (2⁻⁹ relative precision) right after: twice as cheap as [`exp`].
#[inline(always)]
pub(crate) fn exp_bf16(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let f = x * LOG2E - n; // in [-0.5, 0.5]
    // A relative-error fit of 2^f on [-0.5, 0.5] (2.2e-4 worst case).
    let p = ((5.286_744e-2f32 * f + 2.421_519e-1) * f + 6.935_867e-1) * f + 0.999_962_8;
    p * f32::from_bits(((bits + 127) << 23) as u32)
}

const LANES: usize = 16;

#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
pub(crate) fn softmax_row_generic(src: &[f32], dst: &mut [f32]) {
    let m = max(src);
    if m == f32::NEG_INFINITY {
        // All -inf: like PyTorch, a NaN row.
        dst.fill(f32::NAN);
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = exp(s - m);
    }
    let inv = 1.0 / sum(dst);
    for d in dst.iter_mut() {
        *d *= inv;
    }
}

#[inline(always)]
pub(crate) fn layer_norm_row_generic(
    src: &[f32],
    dst: &mut [f32],
    alpha: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = src.len() as f32;
    let mean = sum(src) / n;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s - mean;
    }
    let mut acc = [0f32; LANES];
    let chunks = dst.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i] * c[i];
        }
    }
    let var = (acc.iter().sum::<f32>() + rest) / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    for ((d, &a), &b) in dst.iter_mut().zip(alpha).zip(beta) {
        *d = *d * inv_std * a + b;
    }
}

#[inline(always)]
pub(crate) fn approx_gelu_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &z) in dst.iter_mut().zip(src) {
        *d = z / (1.0 + exp(-1.702 * z));
    }
}

macro_rules! dispatch {
    ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*)) => {
        dispatch!($name, $generic, ($($arg: $ty),*) -> ());
    };
    ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

pub(crate) use dispatch;

dispatch!(softmax_rows, softmax_rows_generic, (src: &[f32], dst: &mut [f32], cols: usize));
dispatch!(approx_gelu_slice, approx_gelu_generic, (src: &[f32], dst: &mut [f32]));
dispatch!(
    layer_norm_rows,
    layer_norm_rows_generic,
    (src: &[f32], dst: &mut [f32], cols: usize, first_row: usize, rows_per_group: usize, alpha: &[f32], beta: &[f32], eps: f32)
);

#[inline(always)]
pub(crate) fn softmax_rows_generic(src: &[f32], dst: &mut [f32], cols: usize) {
    for (s, d) in src.chunks_exact(cols).zip(dst.chunks_exact_mut(cols)) {
        softmax_row_generic(s, d);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn layer_norm_rows_generic(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    first_row: usize,
    rows_per_group: usize,
    alpha: &[f32],
    beta: &[f32],
    eps: f32,
) {
    for (i, (s, d)) in src
        .chunks_exact(cols)
        .zip(dst.chunks_exact_mut(cols))
        .enumerate()
    {
        let g = (first_row + i) / rows_per_group;
        let (a, b) = (
            &alpha[g * cols..(g + 1) * cols],
            &beta[g * cols..(g + 1) * cols],
        );
        layer_norm_row_generic(s, d, a, b, eps);
    }
}

/// Runs `f(first_row, src_rows, dst_rows)` over row blocks on the candle thread count.
pub(crate) fn par_rows(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) {
    let rows = src.len() / cols.max(1);
    let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
    // Below ~64k elements a thread costs more than it saves.
    if threads == 1 || src.len() < 1 << 16 {
        f(0, src, dst);
        return;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut chunks = src
            .chunks(per * cols)
            .zip(dst.chunks_mut(per * cols))
            .enumerate();
        let first = chunks.next();
        for (i, (s, d)) in chunks {
            let f = &f;
            handles.push(scope.spawn(move || f(i * per, s, d)));
        }
        if let Some((_, (s, d))) = first {
            f(0, s, d);
        }
        for h in handles {
            h.join().expect("kernel thread panicked");
        }
    });
}

pub(crate) fn log_softmax_f64_rows(src: &[f32], dst: &mut [f32], cols: usize) {
    for (s, d) in src.chunks_exact(cols).zip(dst.chunks_exact_mut(cols)) {
        let m = max(s) as f64;
        if m == f64::NEG_INFINITY {
            d.fill(f32::NAN);
            continue;
        }
        let total: f64 = s.iter().map(|&v| (v as f64 - m).exp()).sum();
        let log_total = total.ln();
        for (o, &v) in d.iter_mut().zip(s) {
            *o = ((v as f64 - m) - log_total) as f32;
        }
    }
}

#[inline(always)]
pub(crate) fn bf16_bits_to_f32_generic(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s as u32) << 16);
    }
}

dispatch!(bf16_bits_to_f32, bf16_bits_to_f32_generic, (src: &[u16], dst: &mut [f32]));

/// bf16 → f32 of a slice (exact).
pub(crate) fn bf16_to_f32(src: &[half::bf16], dst: &mut [f32]) {
    // SAFETY: `half::bf16` is `repr(transparent)` over `u16`.
    let bits: &[u16] = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u16>(), src.len()) };
    bf16_bits_to_f32(bits, dst);
}

#[inline(always)]
fn f32_to_bf16_bits_generic(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        // Round to nearest even, as `half` and PyTorch do (NaN stays NaN).
        let b = s.to_bits();
        *d = if s.is_nan() {
            ((b >> 16) | 0x40) as u16
        } else {
            ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
        };
    }
}

dispatch!(f32_to_bf16_bits, f32_to_bf16_bits_generic, (src: &[f32], dst: &mut [u16]));

/// f32 → bf16 of a slice, rounding to nearest even.
pub(crate) fn f32_to_bf16(src: &[f32], dst: &mut [half::bf16]) {
    // SAFETY: as above.
    let bits: &mut [u16] =
        unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u16>(), dst.len()) };
    f32_to_bf16_bits(src, bits);
}

#[inline(always)]
fn silu_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &z) in dst.iter_mut().zip(src) {
        *d = z / (1.0 + exp(-z));
    }
}

dispatch!(silu, silu_generic, (src: &[f32], dst: &mut [f32]));

#[inline(always)]
fn approx_gelu_in_place_generic(xs: &mut [f32]) {
    for z in xs.iter_mut() {
        *z = *z / (1.0 + exp(-1.702 * *z));
    }
}

dispatch!(approx_gelu_in_place, approx_gelu_in_place_generic, (xs: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "relative error {worst}");
    }

    #[test]
    fn the_bf16_exp_is_accurate_to_bf16_precision() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp_bf16(x) as f64 - want) / want).abs());
            x += 0.0071;
        }
        assert!(worst < 2.5e-4, "relative error {worst}");
    }

    #[test]
    fn bf16_rounding_matches_half() {
        let xs: Vec<f32> = (0..5000)
            .map(|i| (i as f32 - 2500.0) * 0.37 + 1e-3 * i as f32)
            .collect();
        let mut out = vec![half::bf16::ZERO; xs.len()];
        f32_to_bf16(&xs, &mut out);
        for (x, b) in xs.iter().zip(&out) {
            assert_eq!(*b, half::bf16::from_f32(*x), "{x}");
        }
    }
}

/// Applies `f` to chunks of `buf` of `chunk` elements, on candle's thread count (inline below
/// four chunks).
pub(crate) fn par_chunks_mut(buf: &mut [f32], chunk: usize, f: impl Fn(&mut [f32]) + Sync) {
    use rayon::prelude::*;
    if buf.len() <= 4 * chunk || candle_core::utils::get_num_threads() <= 1 {
        f(buf);
        return;
    }
    buf.par_chunks_mut(chunk).for_each(&f);
}

/// `row ← exp(scale · row + mask − max)` in place (the unnormalised softmax), returning the
/// sum; an all `-inf` row gives NaN.
#[inline(always)]
fn softmax_unnormalised_generic(row: &mut [f32], scale: f32, mask: &[f32]) -> f32 {
    if !mask.is_empty() {
        for (r, &m) in row.iter_mut().zip(mask) {
            *r = *r * scale + m;
        }
    } else if scale != 1.0 {
        for r in row.iter_mut() {
            *r *= scale;
        }
    }
    let m = max(row);
    if m == f32::NEG_INFINITY {
        row.fill(f32::NAN);
        return f32::NAN;
    }
    for r in row.iter_mut() {
        *r = exp(*r - m);
    }
    sum(row)
}

dispatch!(softmax_unnormalised_impl, softmax_unnormalised_generic, (row: &mut [f32], scale: f32, mask: &[f32]) -> f32);

/// See [`softmax_unnormalised_generic`].
pub(crate) fn softmax_unnormalised(row: &mut [f32], scale: f32, mask: &[f32]) -> f32 {
    softmax_unnormalised_impl(row, scale, mask)
}

/// As [`softmax_unnormalised`], writing the exponentials as bf16 into `out` (the row itself is
/// left holding `scale · row + mask`).
#[inline(always)]
fn softmax_unnormalised_bf16_generic(
    row: &mut [f32],
    scale: f32,
    mask: &[f32],
    out: &mut [u16],
) -> f32 {
    if !mask.is_empty() {
        for (r, &m) in row.iter_mut().zip(mask) {
            *r = *r * scale + m;
        }
    } else if scale != 1.0 {
        for r in row.iter_mut() {
            *r *= scale;
        }
    }
    let m = max(row);
    if m == f32::NEG_INFINITY {
        out.fill(0x7fc0);
        return f32::NAN;
    }
    let mut acc = [0f32; LANES];
    let n = row.len() / LANES * LANES;
    for (c, o) in row[..n]
        .chunks_exact(LANES)
        .zip(out[..n].chunks_exact_mut(LANES))
    {
        for i in 0..LANES {
            let e = exp(c[i] - m);
            acc[i] += e;
            let b = e.to_bits();
            o[i] = ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16;
        }
    }
    let mut total = acc.iter().sum::<f32>();
    for (r, o) in row[n..].iter().zip(&mut out[n..]) {
        let e = exp_bf16(*r - m);
        total += e;
        let b = e.to_bits();
        *o = ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    }
    total
}

dispatch!(softmax_unnormalised_bf16_impl, softmax_unnormalised_bf16_generic, (row: &mut [f32], scale: f32, mask: &[f32], out: &mut [u16]) -> f32);

/// See [`softmax_unnormalised_bf16_generic`].
pub(crate) fn softmax_unnormalised_bf16(
    row: &mut [f32],
    scale: f32,
    mask: &[f32],
    out: &mut [half::bf16],
) -> f32 {
    // SAFETY: `half::bf16` is `repr(transparent)` over `u16`.
    let bits: &mut [u16] =
        unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), out.len()) };
    softmax_unnormalised_bf16_impl(row, scale, mask, bits)
}

#[inline(always)]
fn approx_gelu_to_bf16_generic(src: &[f32], dst: &mut [u16]) {
    for (d, &z) in dst.iter_mut().zip(src) {
        let g = z / (1.0 + exp_bf16(-1.702 * z));
        let b = g.to_bits();
        *d = ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    }
}

dispatch!(approx_gelu_to_bf16_bits, approx_gelu_to_bf16_generic, (src: &[f32], dst: &mut [u16]));

/// `approx_gelu(src)` rounded to bf16 into `dst`.
pub(crate) fn approx_gelu_to_bf16(src: &[f32], dst: &mut [half::bf16]) {
    // SAFETY: `half::bf16` is `repr(transparent)` over `u16`.
    let bits: &mut [u16] =
        unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u16>(), dst.len()) };
    approx_gelu_to_bf16_bits(src, bits);
}

/// Applies `f` to matching chunks of `src` and `dst` on candle's thread count.
pub(crate) fn par_zip_chunks<T: Send>(
    src: &[f32],
    dst: &mut [T],
    chunk: usize,
    f: impl Fn(&[f32], &mut [T]) + Sync,
) {
    use rayon::prelude::*;
    if src.len() <= 4 * chunk || candle_core::utils::get_num_threads() <= 1 {
        f(src, dst);
        return;
    }
    src.par_chunks(chunk)
        .zip(dst.par_chunks_mut(chunk))
        .for_each(|(s, d)| f(s, d));
}

/// Runs `f(first_row, src_rows, dst_rows)` over row blocks of an f32 source and a destination of
/// another element type, on candle's thread count.
pub(crate) fn par_zip_rows<T: Send>(
    src: &[f32],
    dst: &mut [T],
    cols: usize,
    f: impl Fn(usize, &[f32], &mut [T]) + Sync,
) {
    let rows = src.len() / cols.max(1);
    let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
    if threads == 1 || src.len() < 1 << 16 {
        f(0, src, dst);
        return;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = src
            .chunks(per * cols)
            .zip(dst.chunks_mut(per * cols))
            .enumerate();
        let first = chunks.next();
        let f = &f;
        for (i, (s, d)) in chunks {
            scope.spawn(move || f(i * per, s, d));
        }
        if let Some((_, (s, d))) = first {
            f(0, s, d);
        }
    });
}

#[inline(always)]
fn centred_square_sum_generic(xs: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + rest
}

dispatch!(centred_square_sum, centred_square_sum_generic, (xs: &[f32], mean: f32) -> f32);

#[inline(always)]
fn normalise_affine_generic(
    src: &[f32],
    dst: &mut [f32],
    mean: f32,
    inv: f32,
    w: f32,
    b: f32,
    silu: bool,
) {
    if silu {
        for (d, &s) in dst.iter_mut().zip(src) {
            let y = (s - mean) * inv * w + b;
            *d = y / (1.0 + exp(-y));
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s - mean) * inv * w + b;
        }
    }
}

dispatch!(normalise_affine, normalise_affine_generic, (src: &[f32], dst: &mut [f32], mean: f32, inv: f32, w: f32, b: f32, silu: bool) -> ());
