//! An 8-bit GEMM on AVX-512-VNNI vector registers: `C ← [C +] diag(s_a) · (A·B − o) · diag(s_b)`
//! with unsigned 8-bit `A`, signed 8-bit `B`, exact 32-bit integer accumulation and an f32
//! output, by `VPDPBUSD` (Intel 64 and IA-32 Architectures Software Developer's Manual, vol. 2,
//! `VPDPBUSD`: each 32-bit lane gains the dot product of four unsigned bytes of one source with
//! four signed bytes of the other, without saturation).
//!
//! It is the kernel of [`crate::Int8Weight`] (per-channel 8-bit weights, per-token 8-bit
//! activations shifted by 128 to make them unsigned; `o` removes the shift). CPUs: Intel from
//! Cascade Lake on (Ice Lake, Sapphire Rapids), AMD Zen 4 and Zen 5.
//!
//! Layout: the register blocking of `avx512_bf16.rs` with `k` counted in quads. A micro-kernel
//! holds a 12 × 32 block of 32-bit sums in 24 registers; for each quad `q` of `k` it loads `B`'s
//! 32 columns as two registers (lane `j` holds `B[4q..4q+4][j]`), broadcasts each row's quad of
//! `A` as one 32-bit value, and issues 24 `VPDPBUSD`. `B` is packed once, when the weight is
//! quantised ([`pack_b`]); `A` is packed by each call. Each task of `C` blocks keeps its integer
//! sums in a buffer of its own across the slices of `k`, then scales them into `C` once.
//! Overflow cannot happen: |sum| ≤ 255 · 127 · k < 2³¹ for k ≤ 4 · [`MAX_QUADS`] = 66 000
//! (larger `k` is refused when a weight is quantised).

use crate::block_tasks::{BlockOut, for_each_task};

/// Whether this CPU runs [`gemm_u8i8`]: x86-64 with AVX-512F and AVX-512-VNNI. Checked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The most quads of `k` whose sums fit 32 bits: `4 · MAX_QUADS · 255 · 127 < 2³¹`.
pub(crate) const MAX_QUADS: usize = 16_500;

/// Rows of the `C` block one micro-kernel call computes.
pub(crate) const MR: usize = 12;
/// Columns of the `C` block one micro-kernel call computes (two 16-lane registers).
pub(crate) const NR: usize = 32;
/// Quads of `k` per slice: a `B` panel's slice is `KC · NR · 4` bytes = 32 KiB, the L1 data
/// cache of the CPUs above.
const KC: usize = 256;
/// Row panels of `A` per task.
const M_TASK: usize = 32;
/// Column panels of `B` per task.
const N_TASK: usize = 8;

/// The right operand, packed: `panels` column panels of [`NR`] columns, each `quads × NR` words
/// of four signed bytes (`B[4q..4q+4][col]`), zero-padded.
pub(crate) struct PackedB<'a> {
    pub words: &'a [u32],
    pub quads: usize,
    pub cols: usize,
    /// Per column, the scale of its values.
    pub scales: &'a [f32],
    /// Per column, the integer subtracted from its sums.
    pub offsets: &'a [i32],
}

/// The left operand, packed: `rows.div_ceil(MR)` row panels, each `quads × MR` words of four
/// unsigned bytes (`A[row][4q..4q+4]`), zero-padded, and a scale per row.
pub(crate) struct PackedA<'a> {
    pub words: &'a [u32],
    pub rows: usize,
    pub scales: &'a [f32],
}

/// Packs the `(cols, k)` row-major signed bytes `w` (one row per column of `B`) as [`PackedB`]'s
/// words.
pub(crate) fn pack_b(w: &[i8], cols: usize, k: usize) -> Vec<u32> {
    let quads = k.div_ceil(4);
    let mut words = vec![0u32; cols.div_ceil(NR) * quads * NR];
    for col in 0..cols {
        let (panel, c) = (col / NR, col % NR);
        let row = &w[col * k..(col + 1) * k];
        for (q, chunk) in row.chunks(4).enumerate() {
            let mut bytes = [0u8; 4];
            for (b, &v) in bytes.iter_mut().zip(chunk) {
                *b = v as u8;
            }
            words[(panel * quads + q) * NR + c] = u32::from_le_bytes(bytes);
        }
    }
    words
}

/// `c ← [c +] diag(a.scales) · (A·B − offsets) · diag(b.scales)`. Callers check [`available`].
pub(crate) fn gemm_u8i8(c: &BlockOut, a: &PackedA, b: &PackedB, accumulate: bool, parallel: bool) {
    let (m, n, quads) = (a.rows, b.cols, b.quads);
    let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
    // The kernels read these bounds unchecked; `quads > 0` makes the first slice write every
    // integer sum the scaling reads.
    assert!(c.rows == m && c.cols == n, "int8 GEMM: output shape");
    assert!(
        quads > 0 && quads <= MAX_QUADS,
        "int8 GEMM: {quads} quads of k"
    );
    assert!(a.words.len() >= mp * quads * MR && a.scales.len() >= m);
    assert!(b.words.len() >= np * quads * NR && b.scales.len() >= n && b.offsets.len() >= n);
    for_each_task(mp, np, M_TASK, N_TASK, parallel, |is, js| {
        let block = MR * NR;
        // SAFETY: the first slice of `k` writes every block without reading it.
        let mut sums: Vec<i32> = unsafe { crate::host::uninit_vec(is.len() * js.len() * block) };
        for q0 in (0..quads).step_by(KC) {
            let q1 = (q0 + KC).min(quads);
            for (jj, j) in js.clone().enumerate() {
                let bj = &b.words[(j * quads + q0) * NR..];
                for (ii, i) in is.clone().enumerate() {
                    let ai = &a.words[(i * quads + q0) * MR..];
                    let s = &mut sums[(ii * js.len() + jj) * block..][..block];
                    // SAFETY: the panels hold `quads` quads from their starts; `s` holds a
                    // block; the CPU has AVX-512-VNNI (checked by the caller).
                    unsafe { imp::kernel(ai.as_ptr(), bj.as_ptr(), q1 - q0, s, q0 > 0) };
                }
            }
        }
        for (ii, i) in is.clone().enumerate() {
            for (jj, j) in js.clone().enumerate() {
                let s = &sums[(ii * js.len() + jj) * block..][..block];
                let (r0, c0) = (i * MR, j * NR);
                let cols = NR.min(n - c0);
                for r in 0..MR.min(m - r0) {
                    let sa = a.scales[r0 + r];
                    // SAFETY: row `r0 + r`, columns `c0 .. c0 + cols` are inside the view and
                    // belong to this task's blocks alone.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(c.ptr.add((r0 + r) * c.rs + c0), cols)
                    };
                    let row = &s[r * NR..r * NR + cols];
                    let (sb, ob) = (&b.scales[c0..c0 + cols], &b.offsets[c0..c0 + cols]);
                    for (((o, &v), &sb), &ob) in out.iter_mut().zip(row).zip(sb).zip(ob) {
                        let y = sa * sb * (v - ob) as f32;
                        *o = if accumulate { *o + y } else { y };
                    }
                }
            }
        }
    });
}

/// Quantises and packs row panel `i` of the row-major `(rows, k)` activations `x` as
/// [`PackedA`]'s words (`words`, one panel) and scales (`scales`, [`MR`] of them): per row
/// `s = max|x_r| / 127` (NaN when the row holds NaN or ±∞), bytes `round(x / s) + 128`, rounded
/// to nearest even and clamped to `[1, 255]`. Callers check [`available`].
pub(crate) fn pack_a(
    x: &[f32],
    k: usize,
    rows: usize,
    i: usize,
    words: &mut [u32],
    scales: &mut [f32],
) {
    let r0 = i * MR;
    let quads = k.div_ceil(4);
    assert!(words.len() >= quads * MR && scales.len() >= MR);
    for r in 0..MR.min(rows - r0) {
        let row = &x[(r0 + r) * k..(r0 + r + 1) * k];
        // SAFETY: `row` holds `k` values; `words[r..]` holds `quads` words at stride `MR`; the
        // CPU has AVX-512F (checked by the caller).
        scales[r] = unsafe { imp::quantise_row(row.as_ptr(), k, words[r..].as_mut_ptr(), MR) };
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    //! The micro-kernel and the activations' quantisation, in AVX-512 intrinsics.

    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Quantises the `k` values at `row` (see [`super::pack_a`]) into `k.div_ceil(4)` words at
    /// `out`, `out + stride`, …; returns the row's scale.
    ///
    /// # Safety
    /// `row` must hold `k` values and `out` `k.div_ceil(4)` words at `stride`; the CPU must have
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quantise_row(row: *const f32, k: usize, out: *mut u32, stride: usize) -> f32 {
        let mask = |j: usize| -> __mmask16 {
            let left = k - j;
            if left >= 16 {
                0xffff
            } else {
                (1u32 << left) as u16 - 1
            }
        };
        // SAFETY (whole body): the masked loads read inside `row`; the stores write the
        // `k.div_ceil(4)` words of `out`.
        unsafe {
            let mut max = _mm512_setzero_ps();
            let mut finite: __mmask16 = 0xffff;
            let limit = _mm512_set1_ps(f32::INFINITY);
            for j in (0..k).step_by(16) {
                let m = mask(j);
                let a = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, row.add(j)));
                // Lanes past the end read 0, which is finite.
                finite &= _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, limit);
                max = _mm512_max_ps(max, a);
            }
            let max = _mm512_reduce_max_ps(max);
            if finite != 0xffff {
                // NaN outputs through the scale; the bytes are not read for anything else.
                for q in 0..k.div_ceil(4) {
                    *out.add(q * stride) = 0x8080_8080;
                }
                return f32::NAN;
            }
            let scale = max / 127.0;
            let inv = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
            let offset = _mm512_set1_epi32(128);
            for j in (0..k).step_by(16) {
                let v = _mm512_maskz_loadu_ps(mask(j), row.add(j));
                let y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
                // The default rounding mode: to nearest, ties to even.
                let q = _mm512_add_epi32(_mm512_cvtps_epi32(y), offset);
                let bytes: [u32; 4] = std::mem::transmute(_mm512_cvtepi32_epi8(q));
                let first = j / 4;
                for (w, &b) in bytes.iter().enumerate().take(k.div_ceil(4) - first) {
                    *out.add((first + w) * stride) = b;
                }
            }
            scale
        }
    }

    /// `s[MR × NR] ← [s +] a·b` over `quads` quads of `k`: `a` holds `MR` words per step, `b`
    /// `NR` words (two registers) per step.
    ///
    /// # Safety
    /// `a` and `b` must hold `quads` steps; the CPU must have AVX-512F and AVX-512-VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn kernel(a: *const u32, b: *const u32, quads: usize, s: &mut [i32], load: bool) {
        assert!(s.len() >= MR * NR);
        let c = s.as_mut_ptr();
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        // SAFETY (whole body): per the contract, every address below is inside `a`, `b` or `s`.
        unsafe {
            if load {
                for (r, row) in acc.iter_mut().enumerate() {
                    row[0] = _mm512_loadu_si512(c.add(r * NR).cast());
                    row[1] = _mm512_loadu_si512(c.add(r * NR + 16).cast());
                }
            }
            for q in 0..quads {
                let bq = b.add(q * NR);
                let b0 = _mm512_loadu_si512(bq.cast());
                let b1 = _mm512_loadu_si512(bq.add(16).cast());
                let aq = a.add(q * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32(*aq.add(r) as i32);
                    row[0] = _mm512_dpbusd_epi32(row[0], av, b0);
                    row[1] = _mm512_dpbusd_epi32(row[1], av, b1);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                _mm512_storeu_si512(c.add(r * NR).cast(), row[0]);
                _mm512_storeu_si512(c.add(r * NR + 16).cast(), row[1]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    //! No AVX-512 outside x86-64: [`super::available`] is false and nothing below runs.

    pub unsafe fn kernel(_: *const u32, _: *const u32, _: usize, _: &mut [i32], _: bool) {
        unreachable!("AVX-512-VNNI is not available on this target")
    }

    pub unsafe fn quantise_row(_: *const f32, _: usize, _: *mut u32, _: usize) -> f32 {
        unreachable!("AVX-512 is not available on this target")
    }
}
