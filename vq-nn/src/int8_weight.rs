//! [`Int8Weight`]: a linear layer's weight in 8 bits, and its product with f32 activations
//! quantised on the fly.
//!
//! The scheme is dynamic quantisation (as PyTorch's `quantize_dynamic`): weights are quantised
//! once, symmetrically per output channel (`w ≈ s_c · q`, `s_c = max|w_c| / 127`, `q ∈ [−127,
//! 127]`); each call quantises its activations symmetrically per row (per token, as in
//! ZeroQuant, Yao et al. 2022, §3: `x ≈ s_r · p`, `s_r = max|x_r| / 127`), multiplies the
//! integers exactly in 32 bits and scales the sums: `y[r][c] = s_r · s_c · Σ_k p[r][k]·q[c][k]`.
//! The only errors are the two roundings to 8 bits; docs/performance.md measures what they cost
//! the transformer.
//!
//! On CPUs with AVX-512-VNNI the integer product runs on `VPDPBUSD` (`avx512_vnni.rs`), which
//! multiplies unsigned by signed bytes: activations are stored as `p + 128`, and the extra
//! `128 · Σ_k q[c][k]` is subtracted per column. Elsewhere the same integers are multiplied as
//! f32 (exact products; the sums round as any f32 GEMM does), so results agree across CPUs to
//! f32 rounding. A row holding NaN or ±∞ gives NaN outputs, as an f32 product would.

use rayon::prelude::*;

use crate::avx512_vnni::{self, MR, NR, PackedA, PackedB};
use crate::block_tasks::BlockOut;
use crate::gemm::{MatMut, MatRef, Threads, sgemm};
use crate::{Error, Result};

/// Whether [`Int8Weight`]'s products run as integers on this CPU (AVX-512-VNNI); elsewhere
/// they are computed in f32 (same results to f32 rounding, at f32 speed).
pub fn int8_native() -> bool {
    avx512_vnni::available()
}

/// A `(out, in)` weight quantised to 8 bits per output channel, packed for the integer GEMM.
#[derive(Debug, Clone)]
pub struct Int8Weight {
    out_dim: usize,
    in_dim: usize,
    /// `q` in the packed layout of `avx512_vnni::PackedB` (column panels of `B = Wᵀ`).
    words: Vec<u32>,
    /// `s_c` per output channel.
    scales: Vec<f32>,
    /// `128 · Σ_k q[c][k]` per output channel.
    offsets: Vec<i32>,
}

impl Int8Weight {
    /// Quantises the row-major `(out_dim, in_dim)` weight `w`. Errors when `w` has another
    /// length or holds NaN or ±∞.
    pub fn quantize(w: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        let fail = |reason: String| Error::Quantisation {
            rows: out_dim,
            cols: in_dim,
            reason,
        };
        if w.len() != out_dim * in_dim {
            return Err(fail(format!("{} values given", w.len())));
        }
        if in_dim > 4 * avx512_vnni::MAX_QUADS {
            return Err(fail(format!(
                "at most {} input features fit the 32-bit integer sums",
                4 * avx512_vnni::MAX_QUADS
            )));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(fail(format!(
                "value {} at row {}, column {} is not finite",
                w[i],
                i / in_dim,
                i % in_dim
            )));
        }
        // Each output channel is a row of `w`: the same per-row scheme as the activations'.
        let mut scales = row_scales(w, in_dim, false);
        scales.resize(out_dim, 0.0); // `in_dim = 0`: no rows above, every scale 0.
        let mut q = vec![0i8; w.len()];
        let mut offsets = vec![0i32; out_dim];
        for (c, row) in w.chunks(in_dim.max(1)).take(out_dim).enumerate() {
            let inv = inverse(scales[c]);
            let qr = &mut q[c * in_dim..(c + 1) * in_dim];
            for (o, &v) in qr.iter_mut().zip(row) {
                *o = quantise(v, inv) as i8;
            }
            offsets[c] = 128 * qr.iter().map(|&v| v as i32).sum::<i32>();
        }
        Ok(Self {
            out_dim,
            in_dim,
            words: avx512_vnni::pack_b(&q, out_dim, in_dim),
            scales,
            offsets,
        })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_dim, self.in_dim)
    }

    /// Bytes held (packed weights, scales and offsets).
    pub fn bytes(&self) -> usize {
        4 * (self.words.len() + self.scales.len() + self.offsets.len())
    }

    /// The quantised integers `q`, row-major `(out, in)`.
    fn integers(&self) -> Vec<i8> {
        let quads = self.in_dim.div_ceil(4);
        let mut q = vec![0i8; self.out_dim * self.in_dim];
        for (c, row) in q
            .chunks_mut(self.in_dim.max(1))
            .take(self.out_dim)
            .enumerate()
        {
            let panel = &self.words[(c / NR) * quads * NR..];
            for (k, v) in row.iter_mut().enumerate() {
                *v = panel[(k / 4) * NR + c % NR].to_le_bytes()[k % 4] as i8;
            }
        }
        q
    }

    /// The weight the integers stand for, `s_c · q`, row-major `(out, in)`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w: Vec<f32> = self.integers().iter().map(|&v| v as f32).collect();
        for (row, &s) in w.chunks_mut(self.in_dim.max(1)).zip(&self.scales) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        w
    }

    /// `c ← [c +] x·Wᵀ` for the row-major `(rows, in)` activations `x`, quantised per row.
    pub(crate) fn matmul(
        &self,
        c: MatMut,
        x: &[f32],
        rows: usize,
        accumulate: bool,
        threads: Threads,
    ) {
        self.matmul_by(avx512_vnni::available(), c, x, rows, accumulate, threads)
    }

    /// [`Int8Weight::matmul`] on the VNNI kernel when `vnni` (the CPU must have it), else in f32.
    fn matmul_by(
        &self,
        vnni: bool,
        c: MatMut,
        x: &[f32],
        rows: usize,
        accumulate: bool,
        threads: Threads,
    ) {
        let k = self.in_dim;
        assert!(x.len() == rows * k && c.rows == rows && c.cols == self.out_dim);
        let parallel = threads == Threads::All && candle_core::utils::get_num_threads() > 1;
        let out = BlockOut {
            ptr: c.ptr_mut(),
            rows,
            cols: self.out_dim,
            rs: c.rs,
        };
        if rows == 0 || self.out_dim == 0 {
            return;
        }
        if k == 0 {
            // The product is zero.
            if !accumulate {
                for r in 0..rows {
                    // SAFETY: row `r` of the view holds `out_dim` elements.
                    unsafe {
                        std::slice::from_raw_parts_mut(out.ptr.add(r * out.rs), self.out_dim)
                    }
                    .fill(0.0);
                }
            }
            return;
        }
        if vnni {
            let quads = k.div_ceil(4);
            let panel = quads * MR;
            let panels = rows.div_ceil(MR);
            let mut words = vec![0u32; panels * panel];
            let mut scales = vec![0f32; panels * MR];
            let pack = |(i, (w, s)): (usize, (&mut [u32], &mut [f32]))| {
                avx512_vnni::pack_a(x, k, rows, i, w, s)
            };
            if parallel {
                let it = words.par_chunks_mut(panel).zip(scales.par_chunks_mut(MR));
                it.enumerate().for_each(pack);
            } else {
                let it = words.chunks_mut(panel).zip(scales.chunks_mut(MR));
                it.enumerate().for_each(pack);
            }
            let a = PackedA {
                words: &words,
                rows,
                scales: &scales,
            };
            let b = PackedB {
                words: &self.words,
                quads,
                cols: self.out_dim,
                scales: &self.scales,
                offsets: &self.offsets,
            };
            avx512_vnni::gemm_u8i8(&out, &a, &b, accumulate, parallel);
            return;
        }
        // The same integers, multiplied in f32.
        let scales = row_scales(x, k, parallel);
        let p: Vec<f32> = x
            .chunks(k.max(1))
            .zip(&scales)
            .flat_map(|(row, &s)| row.iter().map(move |&v| quantise(v, inverse(s)) as f32))
            .collect();
        let q: Vec<f32> = self.integers().iter().map(|&v| v as f32).collect();
        let n = self.out_dim;
        let mut sums = vec![0f32; rows * n];
        sgemm(
            MatMut::new(&mut sums, rows, n, n),
            MatRef::row_major(&p, rows, k, k),
            MatRef::row_major(&q, n, k, k).t(),
            false,
            threads,
        );
        for (r, row) in sums.chunks(n).enumerate() {
            // SAFETY: row `r` of the view holds `n` elements (checked by `MatMut`'s constructor).
            let o = unsafe { std::slice::from_raw_parts_mut(out.ptr.add(r * out.rs), n) };
            for ((o, &v), &sc) in o.iter_mut().zip(row).zip(&self.scales) {
                let y = scales[r] * sc * v;
                *o = if accumulate { *o + y } else { y };
            }
        }
    }
}

/// Per row of the `(rows, k)` matrix `x`, `max|x_r| / 127` (NaN when the row is not finite).
fn row_scales(x: &[f32], k: usize, parallel: bool) -> Vec<f32> {
    let scale = |row: &[f32]| {
        let mut max = 0f32;
        let mut finite = true;
        for &v in row {
            finite &= v.is_finite();
            max = max.max(v.abs());
        }
        if finite { max / 127.0 } else { f32::NAN }
    };
    if parallel {
        x.par_chunks(k.max(1)).map(scale).collect()
    } else {
        x.chunks(k.max(1)).map(scale).collect()
    }
}

/// `1 / s`, or 0 when the scale `s` is 0 or NaN (the row's outputs are then 0 or NaN through
/// its scale).
fn inverse(s: f32) -> f32 {
    if s > 0.0 { 1.0 / s } else { 0.0 }
}

/// `v · inv` rounded to the nearest integer (ties to even) in `[−127, 127]`; 0 for NaN. The
/// rounding adds and subtracts 1.5 · 2²³, which leaves an f32 below 2²² in magnitude on the
/// integer grid: unlike `round_ties_even` (a libm call), it vectorises.
fn quantise(v: f32, inv: f32) -> i32 {
    const SHIFT: f32 = 12_582_912.0;
    let y = (v * inv).clamp(-127.0, 127.0);
    ((y + SHIFT) - SHIFT) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 + seed * 11) % 29) as f32 / 7.0 - 2.0)
            .collect()
    }

    /// `x·Wᵀ` by the scheme's definition: both operands rounded to 8 bits, summed in f64.
    fn definition(x: &[f32], rows: usize, w: &[f32], out: usize, k: usize) -> Vec<f32> {
        let wq = Int8Weight::quantize(w, out, k).unwrap();
        let (q, sc) = (wq.integers(), wq.scales.clone());
        let sr = row_scales(x, k, false);
        let mut y = vec![0f32; rows * out];
        for r in 0..rows {
            for c in 0..out {
                let s: i64 = (0..k)
                    .map(|j| quantise(x[r * k + j], inverse(sr[r])) as i64 * q[c * k + j] as i64)
                    .sum();
                y[r * out + c] = (sr[r] as f64 * sc[c] as f64 * s as f64) as f32;
            }
        }
        y
    }

    #[test]
    fn products_match_the_definition_at_every_edge() {
        // Full and partial register blocks, k not a multiple of 4, k over several slices.
        for &(rows, k, out) in &[
            (24, 64, 64),
            (37, 53, 29),
            (1, 1, 1),
            (13, 1301, 70),
            (400, 88, 300),
        ] {
            let x = values(rows * k, 1);
            let w = values(out * k, 2);
            let want = definition(&x, rows, &w, out, k);
            let wq = Int8Weight::quantize(&w, out, k).unwrap();
            let kernels = [true, false]
                .into_iter()
                .filter(|&v| !v || avx512_vnni::available());
            for (vnni, threads) in kernels.flat_map(|v| [(v, Threads::One), (v, Threads::All)]) {
                for accumulate in [false, true] {
                    let mut c = vec![1f32; rows * (out + 2)];
                    let view = MatMut::new(&mut c, rows, out, out + 2);
                    wq.matmul_by(vnni, view, &x, rows, accumulate, threads);
                    let extra = if accumulate { 1.0 } else { 0.0 };
                    for r in 0..rows {
                        for j in 0..out {
                            let (got, y) = (c[r * (out + 2) + j], want[r * out + j]);
                            assert!(
                                (got - (y + extra)).abs() <= 1e-4 * y.abs().max(1.0),
                                "{rows}x{k}x{out}: {got} vs {y}"
                            );
                        }
                        assert_eq!(&c[r * (out + 2) + out..(r + 1) * (out + 2)], &[1.0; 2]);
                    }
                }
            }
        }
        if !avx512_vnni::available() {
            eprintln!("no AVX-512-VNNI on this machine: only the f32 path of int8 is tested here");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Every path (VNNI where the CPU has it, f32) computes the scheme's definition, for any
        /// shape and any activation scale.
        #[test]
        fn every_path_computes_the_definition(
            rows in 1usize..30,
            k in 1usize..200,
            out in 1usize..70,
            seed in 0usize..1000,
            scale in 0.001f32..1000.0,
        ) {
            let x: Vec<f32> = values(rows * k, seed).iter().map(|v| v * scale).collect();
            let w = values(out * k, seed + 1);
            let want = definition(&x, rows, &w, out, k);
            let wq = Int8Weight::quantize(&w, out, k).unwrap();
            for vnni in [true, false] {
                if vnni && !avx512_vnni::available() {
                    continue;
                }
                let mut c = vec![0f32; rows * out];
                wq.matmul_by(vnni, MatMut::new(&mut c, rows, out, out), &x, rows, false, Threads::All);
                for (got, y) in c.iter().zip(&want) {
                    proptest::prop_assert!((got - y).abs() <= 1e-4 * y.abs().max(scale));
                }
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even_and_clamped() {
        for i in -600..=600 {
            let v = i as f32 * 0.25 + 0.001 * (i % 3) as f32;
            let want = v.round_ties_even().clamp(-127.0, 127.0) as i32;
            assert_eq!(quantise(v, 1.0), want, "{v}");
        }
        assert_eq!(quantise(f32::NAN, 1.0), 0);
        assert_eq!(quantise(f32::INFINITY, 0.0), 0);
    }

    #[test]
    fn quantisation_is_within_half_a_step() {
        let w = values(7 * 45, 3);
        let wq = Int8Weight::quantize(&w, 7, 45).unwrap();
        for (row, (d, s)) in w.chunks(45).zip(wq.dequantize().chunks(45).zip(&wq.scales)) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!((s - max / 127.0).abs() < 1e-7);
            for (a, b) in row.iter().zip(d) {
                assert!((a - b).abs() <= 0.5 * s + 1e-6);
            }
        }
    }

    #[test]
    fn zero_rows_give_zeros_and_non_finite_rows_nan() {
        let w = values(3 * 8, 4);
        let wq = Int8Weight::quantize(&w, 3, 8).unwrap();
        let mut x = values(2 * 8, 5);
        x[..8].fill(0.0);
        x[11] = f32::INFINITY;
        let mut c = vec![0f32; 6];
        wq.matmul(MatMut::new(&mut c, 2, 3, 3), &x, 2, false, Threads::One);
        assert_eq!(&c[..3], &[0.0; 3]);
        assert!(c[3..].iter().all(|v| v.is_nan()));
        // k = 0: the product is zero.
        let empty = Int8Weight::quantize(&[], 3, 0).unwrap();
        let mut c = vec![5f32; 6];
        empty.matmul(MatMut::new(&mut c, 2, 3, 3), &[], 2, false, Threads::All);
        assert_eq!(c, [0.0; 6]);
    }

    #[test]
    fn bad_weights_are_refused_with_their_place() {
        let mut w = values(2 * 3, 6);
        w[4] = f32::NAN;
        let err = Int8Weight::quantize(&w, 2, 3).unwrap_err().to_string();
        assert!(
            err.contains("2x3") && err.contains("row 1, column 1"),
            "{err}"
        );
        let err = Int8Weight::quantize(&w[..5], 2, 3).unwrap_err().to_string();
        assert!(err.contains("5 values"), "{err}");
        let wide = vec![0f32; 66_001];
        let err = Int8Weight::quantize(&wide, 1, 66_001)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 66000 input features"), "{err}");
    }
}
