//! 3×3 convolutions (stride 1, padding 1) by Winograd's minimal filtering algorithm F(2×2, 3×3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4): each 2×2
//! block of outputs of one channel pair is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4×4 input patch
//! `d` and the 3×3 filter `g`, with
//!
//! ```text
//! Bᵀ = [1  0 −1  0]     G = [ 1    0    0 ]     Aᵀ = [1 1  1  0]
//!      [0  1  1  0]         [1/2  1/2  1/2]          [0 1 −1 −1]
//!      [0 −1  1  0]         [1/2 −1/2  1/2]
//!      [0  1  0 −1]         [ 0    0    1 ]
//! ```
//!
//! (as written these compute PyTorch's cross-correlation). Summed over input channels, the
//! element-wise products become 16 independent matrix products `M_ξ = U_ξ V_ξ`, `U_ξ` the
//! `(C_out, C_in)` matrix of transformed filters and `V_ξ` the `(C_in, tiles)` matrix of
//! transformed patches: 16 multiplies per 2×2 outputs instead of 36, so the convolution needs
//! 2.25× fewer floating-point operations than the direct method. The transforms use only
//! additions and halvings (exact in binary), which keeps the rounding error at the level of the
//! direct method's (measured in the tests).
//!
//! Layout: the (normalised, activated, upsampled) input of each channel is stored zero-padded
//! with its even columns first and its odd columns after, so that the four columns of every
//! tile's patch are contiguous streams over the tiles and both transforms vectorise across
//! tiles. Tiles are processed in blocks of whole tile rows sized to stay in cache: transform
//! the block's patches, 16 GEMMs, transform back into the output (which already holds the bias
//! or the residual).

use rayon::prelude::*;

use crate::gemm::{MatMut, MatRef, Threads, sgemm};
use crate::shared_out::SharedOut;
use crate::simd::dispatch;

/// Floats of transformed input and output (`16·(C_in + C_out)·tiles`) a block aims at: about
/// a quarter of a Sapphire Rapids core's 2 MiB L2 (tuned with `benches/convolutions.rs`).
const BLOCK_FLOATS: usize = 1 << 17;

/// Tiles a block has at least, so that each filter matrix `U_ξ` is reused enough.
const MIN_TILES: usize = 64;

/// The 16 transformed filters `U_ξ = (G g Gᵀ)_ξ`, `ξ = 4i + j`, each a row-major
/// `(C_out, C_in)` matrix, from a `(C_out, C_in, 3, 3)` weight.
pub(crate) fn transform_weights(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * co * ci];
    for o in 0..co {
        for c in 0..ci {
            let g = &w[(o * ci + c) * 9..(o * ci + c + 1) * 9];
            // G g: 4 × 3 (rows of the filter combined).
            let mut gg = [[0f32; 3]; 4];
            for kx in 0..3 {
                let (g0, g1, g2) = (g[kx], g[3 + kx], g[6 + kx]);
                gg[0][kx] = g0;
                gg[1][kx] = 0.5 * (g0 + g1 + g2);
                gg[2][kx] = 0.5 * (g0 - g1 + g2);
                gg[3][kx] = g2;
            }
            // (G g) Gᵀ: 4 × 4.
            for (i, r) in gg.iter().enumerate() {
                let row = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (j, &v) in row.iter().enumerate() {
                    u[((4 * i + j) * co + o) * ci + c] = v;
                }
            }
        }
    }
    u
}

/// Tile geometry of an `oh × ow` output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Output rows.
    pub oh: usize,
    /// Output columns.
    pub ow: usize,
    /// Tile rows, `⌈oh/2⌉`.
    pub th: usize,
    /// Tiles per row, `⌈ow/2⌉`.
    pub tw: usize,
}

impl Geometry {
    pub fn new(oh: usize, ow: usize) -> Self {
        Self {
            oh,
            ow,
            th: oh.div_ceil(2),
            tw: ow.div_ceil(2),
        }
    }

    /// Even (and odd) columns per padded row: `tw + 1`.
    pub fn half(&self) -> usize {
        self.tw + 1
    }

    /// Floats per padded row (even part, then odd part).
    pub fn row_len(&self) -> usize {
        2 * self.half()
    }

    /// Padded rows per channel: `2·th + 2`.
    pub fn rows(&self) -> usize {
        2 * self.th + 2
    }

    /// Floats per padded channel.
    pub fn plane(&self) -> usize {
        self.rows() * self.row_len()
    }
}

/// Writes one padded row from the `w` values of a processed input row: padded column `pc`
/// holds output column `pc − 1` (zero outside), output column `ox` reads input `ox / up`;
/// even padded columns go to `dst[..half]`, odd ones to `dst[half..]`.
pub(crate) fn fill_padded_row(dst: &mut [f32], row: &[f32], g: &Geometry, up: usize) {
    let half = g.half();
    let (even, odd) = dst.split_at_mut(half);
    if up == 2 {
        // Output columns 2m − 1 and 2m both read input m − 1 / m: plain shifted copies.
        let w = row.len();
        even[0] = 0.0;
        even[1..=w].copy_from_slice(row);
        even[w + 1..].fill(0.0);
        odd[..w].copy_from_slice(row);
        odd[w..].fill(0.0);
        return;
    }
    let ow = g.ow;
    even[0] = 0.0;
    for m in 1..half {
        even[m] = if 2 * m - 1 < ow { row[2 * m - 1] } else { 0.0 };
    }
    for (m, o) in odd.iter_mut().enumerate() {
        *o = if 2 * m < ow { row[2 * m] } else { 0.0 };
    }
}

/// Lanes of the transforms: one AVX-512 register of tiles.
const LANES: usize = 16;

/// `Bᵀ d B` for `N` consecutive tiles from `t`: `rows` the four padded rows, `out[ξ]` the 16
/// destinations (written at `t .. t + N`).
#[inline(always)]
fn input_lanes<const N: usize>(
    rows: [&[f32]; 4],
    half: usize,
    t: usize,
    out: &mut [&mut [f32]; 16],
) {
    // Even padded columns t .. t + N + 1 and odd ones of each row: patch columns 0 and 2 of
    // tile t + l are even[l], even[l + 1], columns 1 and 3 odd[l], odd[l + 1].
    let even: [&[f32]; 4] = std::array::from_fn(|k| &rows[k][t..t + N + 1]);
    let odd: [&[f32]; 4] = std::array::from_fn(|k| &rows[k][half + t..half + t + N + 1]);
    let mut v = [[0f32; N]; 16];
    for l in 0..N {
        let d = |k: usize| [even[k][l], odd[k][l], even[k][l + 1], odd[k][l + 1]];
        let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
        // Bᵀ d (rows combined), then (Bᵀ d) B (columns combined).
        let mut e = [[0f32; 4]; 4];
        for q in 0..4 {
            e[0][q] = d0[q] - d2[q];
            e[1][q] = d1[q] + d2[q];
            e[2][q] = d2[q] - d1[q];
            e[3][q] = d1[q] - d3[q];
        }
        for (i, e) in e.iter().enumerate() {
            v[4 * i][l] = e[0] - e[2];
            v[4 * i + 1][l] = e[1] + e[2];
            v[4 * i + 2][l] = e[2] - e[1];
            v[4 * i + 3][l] = e[1] - e[3];
        }
    }
    for (o, v) in out.iter_mut().zip(&v) {
        o[t..t + N].copy_from_slice(v);
    }
}

/// `Bᵀ d B` for the `tw` tiles of one tile row of one channel: `rows` are the four padded
/// rows `2·ty .. 2·ty + 3`; output `ξ` of tile `t` goes to `dst[ξ·stride + t]`.
#[inline(always)]
fn input_transform_generic(rows: &[f32], row_len: usize, tw: usize, dst: SharedOut, stride: usize) {
    let half = row_len / 2;
    let r: [&[f32]; 4] = std::array::from_fn(|k| &rows[k * row_len..(k + 1) * row_len]);
    // SAFETY: the caller owns dst[ξ·stride .. ξ·stride + tw] for ξ < 16.
    let mut out: [&mut [f32]; 16] =
        std::array::from_fn(|x| unsafe { std::slice::from_raw_parts_mut(dst.at(x * stride), tw) });
    let full = tw / LANES * LANES;
    for t in (0..full).step_by(LANES) {
        input_lanes::<LANES>(r, half, t, &mut out);
    }
    for t in full..tw {
        input_lanes::<1>(r, half, t, &mut out);
    }
}

dispatch!(input_transform, input_transform_generic, (rows: &[f32], row_len: usize, tw: usize, dst: SharedOut, stride: usize));

/// `Aᵀ M A` for `N` consecutive tiles from `t`: the four output values per tile, as rows
/// `[y00, y01, y10, y11]` (`y_{dy,dx}`).
#[inline(always)]
fn output_lanes<const N: usize>(mm: &[&[f32]; 16], t: usize) -> [[f32; N]; 4] {
    let load = |x: usize| -> [f32; N] {
        let mut v = [0f32; N];
        v.copy_from_slice(&mm[x][t..t + N]);
        v
    };
    let mut y = [[0f32; N]; 4];
    let mut s = [[[0f32; N]; 2]; 4];
    for (i, si) in s.iter_mut().enumerate() {
        let (a, b, c, d) = (
            load(4 * i),
            load(4 * i + 1),
            load(4 * i + 2),
            load(4 * i + 3),
        );
        for l in 0..N {
            si[0][l] = a[l] + b[l] + c[l];
            si[1][l] = b[l] - c[l] - d[l];
        }
    }
    for l in 0..N {
        y[0][l] = s[0][0][l] + s[1][0][l] + s[2][0][l];
        y[1][l] = s[0][1][l] + s[1][1][l] + s[2][1][l];
        y[2][l] = s[1][0][l] - s[2][0][l] - s[3][0][l];
        y[3][l] = s[1][1][l] - s[2][1][l] - s[3][1][l];
    }
    y
}

/// Adds the `N` tiles' outputs `a` (even columns) and `b` (odd columns) into `row` from
/// column `2·t`, dropping columns past the row's end.
#[inline(always)]
fn add_interleaved<const N: usize>(row: &mut [f32], t: usize, a: &[f32; N], b: &[f32; N]) {
    if 2 * (t + N) <= row.len() {
        let dst = &mut row[2 * t..2 * (t + N)];
        for l in 0..N {
            dst[2 * l] += a[l];
            dst[2 * l + 1] += b[l];
        }
    } else {
        for l in 0..N {
            if 2 * (t + l) < row.len() {
                row[2 * (t + l)] += a[l];
            }
            if 2 * (t + l) + 1 < row.len() {
                row[2 * (t + l) + 1] += b[l];
            }
        }
    }
}

/// `Aᵀ M A` for the `tw` tiles of one tile row of one output channel, added to the output
/// rows `out0` (row 2·ty) and `out1` (row 2·ty + 1, absent past the last row): `m` holds
/// `M_ξ[t]` at `m[ξ·stride + t]`.
#[inline(always)]
fn output_transform_generic(
    m: &[f32],
    stride: usize,
    tw: usize,
    out0: &mut [f32],
    out1: Option<&mut [f32]>,
) {
    let mm: [&[f32]; 16] = std::array::from_fn(|x| &m[x * stride..x * stride + tw]);
    let mut out1 = out1;
    let full = tw / LANES * LANES;
    for t in (0..full).step_by(LANES) {
        let y = output_lanes::<LANES>(&mm, t);
        add_interleaved(out0, t, &y[0], &y[1]);
        if let Some(o1) = out1.as_deref_mut() {
            add_interleaved(o1, t, &y[2], &y[3]);
        }
    }
    for t in full..tw {
        let y = output_lanes::<1>(&mm, t);
        add_interleaved(out0, t, &y[0], &y[1]);
        if let Some(o1) = out1.as_deref_mut() {
            add_interleaved(o1, t, &y[2], &y[3]);
        }
    }
}

dispatch!(output_transform, output_transform_generic, (m: &[f32], stride: usize, tw: usize, out0: &mut [f32], out1: Option<&mut [f32]>));

/// Runs `f(i)` for `i < n`, in parallel with [`Threads::All`].
fn for_each(n: usize, threads: Threads, f: impl Fn(usize) + Sync + Send) {
    match threads {
        Threads::All => (0..n).into_par_iter().for_each(f),
        Threads::One => (0..n).for_each(f),
    }
}

/// Scratch of one block: transformed inputs and products.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

/// `out += conv3x3(input)` for one sample: `padded` holds the `ci` padded channels of
/// [`fill_padded_row`]'s layout, `u` the [`transform_weights`], `out` the `co` output planes
/// (`oh × ow`, already holding the bias or residual).
pub(crate) fn convolve(
    padded: &[f32],
    u: &[f32],
    ci: usize,
    co: usize,
    g: Geometry,
    out: &mut [f32],
) {
    let (tw, th) = (g.tw, g.th);
    let target_tiles = (BLOCK_FLOATS / (16 * (ci + co))).max(MIN_TILES);
    let rows_per_block = (target_tiles / tw.max(1)).clamp(1, th.max(1));
    let blocks = th.div_ceil(rows_per_block);
    let threads = candle_core::utils::get_num_threads();
    let out_ptr = SharedOut::new(out);
    let plane = g.oh * g.ow;
    let run = |b: usize, scratch: &mut Scratch, threads: Threads| {
        let ty0 = b * rows_per_block;
        let rows = rows_per_block.min(th - ty0);
        let tiles = rows * tw;
        scratch.v.resize(16 * ci * tiles, 0.0);
        scratch.m.resize(16 * co * tiles, 0.0);
        let v = SharedOut::new(&mut scratch.v);
        // 1. Bᵀ d B for every (channel, tile row) of the block; V_ξ is (ci, tiles).
        for_each(ci, threads, |c| {
            let plane = &padded[c * g.plane()..(c + 1) * g.plane()];
            for r in 0..rows {
                let ty = ty0 + r;
                let src = &plane[2 * ty * g.row_len()..(2 * ty + 4) * g.row_len()];
                // SAFETY: channel c, tile row r writes V_ξ[c][r·tw .. r·tw + tw] only.
                let dst = v.offset(c * tiles + r * tw);
                input_transform(src, g.row_len(), tw, dst, ci * tiles);
            }
        });
        // 2. M_ξ = U_ξ V_ξ.
        let m = SharedOut::new(&mut scratch.m);
        let vs = &scratch.v;
        for_each(16, threads, |x| {
            // SAFETY: product ξ writes M_ξ only.
            let c = unsafe { MatMut::from_raw(m.at(x * co * tiles), co, tiles, tiles) };
            sgemm(
                c,
                MatRef::row_major(&u[x * co * ci..(x + 1) * co * ci], co, ci, ci),
                MatRef::row_major(&vs[x * ci * tiles..(x + 1) * ci * tiles], ci, tiles, tiles),
                false,
                Threads::One,
            );
        });
        // 3. Aᵀ M A added into the output rows of the block.
        let ms = &scratch.m;
        for_each(co, threads, |o| {
            for r in 0..rows {
                let oy = 2 * (ty0 + r);
                // SAFETY: (channel o, output rows oy, oy + 1) belong to this block and task.
                let row = |y: usize| unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.at(o * plane + y * g.ow), g.ow)
                };
                let second = (oy + 1 < g.oh).then(|| row(oy + 1));
                output_transform(&ms[o * tiles + r * tw..], co * tiles, tw, row(oy), second);
            }
        });
    };
    if blocks >= 2 * threads {
        (0..blocks)
            .into_par_iter()
            .for_each_init(Scratch::default, |s, b| run(b, s, Threads::One));
    } else {
        let mut scratch = Scratch::default();
        for b in 0..blocks {
            run(b, &mut scratch, Threads::All);
        }
    }
}
