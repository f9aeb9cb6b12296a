//! A bf16 GEMM on AVX-512-BF16 vector registers: `C ← [C +] A·B` with bf16 operands, f32
//! accumulation and f32 output, by `VDPBF16PS` (Intel 64 and IA-32 Architectures Software
//! Developer's Manual, vol. 2, `VDPBF16PS`: each f32 lane gains the dot product of one pair of
//! bf16 from each source).
//!
//! It gives the default (pure-Rust) build native bf16 products on CPUs that have AVX-512-BF16 but
//! no AMX: AMD Zen 4 and Zen 5, Intel Cooper Lake. (On AMX CPUs the tile kernel of `amx.rs` is
//! faster and is used instead.)
//!
//! Layout (the classic register-blocked GEMM of Goto and van de Geijn, "Anatomy of
//! high-performance matrix multiplication", 2008, with `k` counted in pairs). A micro-kernel
//! holds a `MR × NR` = 12 × 32 block of `C` in 24 registers. For each pair `p` of `k` it loads
//! `B`'s 32 columns as two registers in the pair-interleaved ("VNNI") layout `VDPBF16PS` reads
//! (lane `j` holds `B[2p][j], B[2p + 1][j]`), broadcasts each row's pair `A[r][2p], A[r][2p + 1]`
//! as one 32-bit value, and issues 24 `VDPBF16PS`. Each call packs `A` into row panels of 12
//! and `B` into column panels of 32, zero-padded (zeros add nothing to the dot products), then
//! walks blocks of `C` in parallel: `k` in slices whose `B` panel fills the L1 cache, the
//! block's `A` rows in the L2 cache. Partial blocks at the edges of `C` go through a scratch
//! buffer.

use half::bf16;

use crate::block_tasks::{BlockOut, for_each_task, pack_panels};
use crate::gemm::{MatMut, MatRef, Threads};

/// Whether this CPU runs [`gemm_bf16`]: x86-64 with AVX-512F and AVX-512-BF16. Checked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Rows of the `C` block one micro-kernel call computes.
const MR: usize = 12;
/// Columns of the `C` block one micro-kernel call computes (two 16-lane registers).
const NR: usize = 32;
/// Pairs of `k` per slice: a `B` panel's slice is `KC · NR · 4` bytes = 32 KiB. On the
/// transformer's `(2048, 1408) × (1408, 5632)` product (2-core Zen 4 EPYC, one run, medians of
/// 10): 128 pairs 340-341 GFLOP/s, **256 369-378**, 512 357-378, 1024 376; 64 331.
const KC: usize = 256;
/// Row panels of `A` per task: 32 × 12 rows × `KC` pairs × 4 bytes = 384 KiB of the L2 (16
/// and 64 were no faster, 315-357 and 325 GFLOP/s in the same sweep).
const M_TASK: usize = 32;
/// Column panels of `B` per task (256 columns; 4 and 16 gave 350-351 and 331 GFLOP/s).
const N_TASK: usize = 8;

/// `c ← [c +] a·b`; `a` and `b` any strided views. Callers check [`available`] first.
pub(crate) fn gemm_bf16(
    c: MatMut,
    a: MatRef<bf16>,
    b: MatRef<bf16>,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let pairs = k.div_ceil(2);
    let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
    let (a_panel, b_panel) = (pairs * MR * 2, pairs * NR * 2);
    if pairs == 0 {
        // `k = 0`: the product is zero.
        if !accumulate {
            for i in 0..m {
                // SAFETY: row `i` is inside the view the caller checked.
                unsafe { std::slice::from_raw_parts_mut(c.ptr_mut().add(i * c.rs), n) }.fill(0.0);
            }
        }
        return;
    }
    let parallel = threads == Threads::All && candle_core::utils::get_num_threads() > 1;
    let mut ap = vec![0u16; mp * a_panel];
    let mut bp = vec![0u16; np * b_panel];
    pack_panels(&mut ap, a_panel, parallel, |i, out| pack_a(&a, i, out));
    pack_panels(&mut bp, b_panel, parallel, |j, out| pack_b(&b, j, out));
    let out = BlockOut {
        ptr: c.ptr_mut(),
        rows: m,
        cols: n,
        rs: c.rs,
    };
    for_each_task(mp, np, M_TASK, N_TASK, parallel, |is, js| {
        let mut scratch = [0f32; MR * NR];
        for p0 in (0..pairs).step_by(KC) {
            let p1 = (p0 + KC).min(pairs);
            for j in js.clone() {
                let bj = &bp[j * b_panel..(j + 1) * b_panel];
                for i in is.clone() {
                    let ai = &ap[i * a_panel..(i + 1) * a_panel];
                    let load = accumulate || p0 > 0;
                    // SAFETY: block (i, j) of `C` belongs to this task alone; `out` is inside
                    // the view the caller checked; the panels hold `pairs` pairs.
                    unsafe { block(&out, i, j, ai, bj, p0..p1, load, &mut scratch) };
                }
            }
        }
    });
}

/// Pairs `pairs` of one `MR × NR` block `(i, j)` of `C`, added to the block's current value when
/// `load`, else written over it. Edge blocks go through `scratch`.
///
/// # Safety
/// The block must be inside `out` and owned by the caller; the panels must hold `pairs.end`
/// pairs; the CPU must have AVX-512-BF16.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    out: &BlockOut,
    i: usize,
    j: usize,
    a: &[u16],
    b: &[u16],
    pairs: std::ops::Range<usize>,
    load: bool,
    scratch: &mut [f32; MR * NR],
) {
    let (r0, c0) = (i * MR, j * NR);
    let rows = MR.min(out.rows - r0);
    let cols = NR.min(out.cols - c0);
    // SAFETY: `(r0, c0)` is inside the view.
    let corner = unsafe { out.ptr.add(r0 * out.rs + c0) };
    let a = a[pairs.start * MR * 2..].as_ptr().cast::<u32>();
    let b = b[pairs.start * NR * 2..].as_ptr();
    let count = pairs.len();
    if rows == MR && cols == NR {
        // SAFETY: `corner` addresses `MR` rows of `NR` f32 at stride `out.rs`; the panels hold
        // `count` pairs from here.
        unsafe { imp::kernel(a, b, count, corner, out.rs, load) };
        return;
    }
    scratch.fill(0.0);
    if load {
        for r in 0..rows {
            // SAFETY: rows `r0 + r` and columns `c0 .. c0 + cols` are inside the view.
            let src = unsafe { std::slice::from_raw_parts(corner.add(r * out.rs), cols) };
            scratch[r * NR..r * NR + cols].copy_from_slice(src);
        }
    }
    // SAFETY: the scratch holds `MR` rows of `NR` f32.
    unsafe { imp::kernel(a, b, count, scratch.as_mut_ptr(), NR, load) };
    for r in 0..rows {
        // SAFETY: as above, for writes; this task owns the block.
        let dst = unsafe { std::slice::from_raw_parts_mut(corner.add(r * out.rs), cols) };
        dst.copy_from_slice(&scratch[r * NR..r * NR + cols]);
    }
}

/// Packs rows `MR·i ..` of `a`: for each pair `p` of `k`, the `MR` rows' `(a[r][2p], a[r][2p+1])`
/// consecutively, zero-padded.
fn pack_a(a: &MatRef<bf16>, i: usize, out: &mut [u16]) {
    let r0 = i * MR;
    for r in 0..MR.min(a.rows - r0) {
        let base = (r0 + r) * a.rs;
        for kk in 0..a.cols {
            out[(kk / 2) * MR * 2 + r * 2 + kk % 2] = a.data[base + kk * a.cs].to_bits();
        }
    }
}

/// Packs columns `NR·j ..` of `b`: for each pair `p` of `k`, the `NR` columns'
/// `(b[2p][col], b[2p+1][col])` consecutively (the VNNI layout), zero-padded.
fn pack_b(b: &MatRef<bf16>, j: usize, out: &mut [u16]) {
    let c0 = j * NR;
    let cols = NR.min(b.cols - c0);
    for kk in 0..b.rows {
        let dst = &mut out[(kk / 2) * NR * 2..(kk / 2 + 1) * NR * 2];
        let base = kk * b.rs + c0 * b.cs;
        if b.cs == 1 {
            for (col, s) in b.data[base..base + cols].iter().enumerate() {
                dst[col * 2 + kk % 2] = s.to_bits();
            }
        } else {
            for col in 0..cols {
                dst[col * 2 + kk % 2] = b.data[base + col * b.cs].to_bits();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    //! The micro-kernel, in AVX-512 intrinsics.

    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// `c[MR × NR] ← [c +] a·b` over `pairs` pairs of `k`: `a` holds `MR` 32-bit pairs per
    /// step, `b` `NR` pairs (two registers) per step.
    ///
    /// # Safety
    /// `a` and `b` must hold `pairs` steps; `c` must address `MR` rows of `NR` f32 at row stride
    /// `rs`; the CPU must have AVX-512F and AVX-512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn kernel(
        a: *const u32,
        b: *const u16,
        pairs: usize,
        c: *mut f32,
        rs: usize,
        load: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        // SAFETY (whole body): per the contract, every address below is inside `a`, `b` or `c`.
        unsafe {
            if load {
                for (r, row) in acc.iter_mut().enumerate() {
                    row[0] = _mm512_loadu_ps(c.add(r * rs));
                    row[1] = _mm512_loadu_ps(c.add(r * rs + 16));
                }
            }
            for p in 0..pairs {
                let bp = b.add(p * NR * 2);
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(32).cast()));
                let ap = a.add(p * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], b0, av);
                    row[1] = _mm512_dpbf16_ps(row[1], b1, av);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * rs), row[0]);
                _mm512_storeu_ps(c.add(r * rs + 16), row[1]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    //! No AVX-512 outside x86-64: [`super::available`] is false and nothing below runs.

    pub unsafe fn kernel(_: *const u32, _: *const u16, _: usize, _: *mut f32, _: usize, _: bool) {
        unreachable!("AVX-512-BF16 is not available on this target")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::check_bf16_kernel;

    #[test]
    fn registers_multiply_like_the_definition_at_every_edge() {
        if !available() {
            eprintln!("no AVX-512-BF16 on this machine: its bf16 kernel is not tested here");
            return;
        }
        // Full blocks, partial blocks in every dimension, odd k, k across several slices, and
        // transposed operands.
        check_bf16_kernel(
            gemm_bf16,
            &[
                (24, 64, 64),
                (37, 53, 29),
                (1, 1, 1),
                (13, 301, 70),
                (400, 88, 300),
            ],
        );
        // `k = 0` writes zeros.
        let mut c = vec![7f32; 6];
        let empty: [bf16; 0] = [];
        gemm_bf16(
            MatMut::new(&mut c, 2, 3, 3),
            MatRef::row_major(&empty, 2, 0, 0),
            MatRef::row_major(&empty, 0, 3, 3),
            false,
            Threads::One,
        );
        assert_eq!(c, [0.0; 6]);
    }
}
