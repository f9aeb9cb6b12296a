//! The prediction a sampling step consumes, `max(truncate(guide(u, c)), −70)`, in one fused CPU
//! pass over the `(B, K, N)` log-probabilities — guidance in log space with renormalisation
//! (Improved VQ-Diffusion §3.1, [`crate::classifier_free_guidance`]), truncation
//! ([`crate::truncate`]) and the −70 floor of the pipelines — instead of a chain of tensor
//! operations and a full sort of every column.
//!
//! Top-r truncation needs no full sort: a column's kept set is a prefix of its classes sorted
//! by probability, and every class above a threshold `max − δ` comes before every class below
//! it. So the classes above the threshold are collected and sorted alone, and when their
//! cumulative probability (accumulated in f64 and rounded to f32 at every prefix, as PyTorch's
//! CPU `cumsum` does) reaches `r`, the kept set lies among them; otherwise `δ` doubles (down to
//! a full sort). Ties are ordered by class index, as in [`crate::truncate`], so the kept sets
//! are identical. Columns are processed in blocks of 16 positions (one 64-byte cache line of
//! each class row) on every core.

use std::cmp::Ordering;

use crate::Truncation;
use crate::fast_math;
use crate::shared_out::SharedOut;

/// Positions per column block.
const WIDTH: usize = 16;

/// The guidance inputs of one step, `(B, K, N)` row-major: `cond` alone, or `uncond` and
/// `cond` combined with scale `s`.
pub(crate) struct StepPrediction<'a> {
    pub uncond: Option<&'a [f32]>,
    pub cond: &'a [f32],
    pub scale: f32,
}

/// `max(truncate(guide(u, c)), floor)` as a `(B, K, N)` buffer.
pub(crate) fn guided_truncated(
    p: &StepPrediction,
    (b, k, n): (usize, usize, usize),
    rule: Truncation,
    floor: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; b * k * n];
    let blocks: Vec<(usize, usize)> = (0..b)
        .flat_map(|bi| (0..n.div_ceil(WIDTH)).map(move |j| (bi, j * WIDTH)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(blocks.len().max(1));
    let out_ptr = SharedOut::new(&mut out);
    let run = |part: &[(usize, usize)]| {
        let mut buf = vec![0f32; k * WIDTH];
        for &(bi, n0) in part {
            let w = WIDTH.min(n - n0);
            process_block(p, bi, n0, w, k, n, rule, floor, &mut buf);
            // SAFETY: each block owns columns n0..n0 + w of batch row bi.
            for i in 0..k {
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.at(bi * k * n + i * n + n0), w)
                };
                dst.copy_from_slice(&buf[i * WIDTH..i * WIDTH + w]);
            }
        }
    };
    if threads <= 1 {
        run(&blocks);
    } else {
        let per = blocks.len().div_ceil(threads);
        std::thread::scope(|scope| {
            for part in blocks.chunks(per) {
                let run = &run;
                scope.spawn(move || run(part));
            }
        });
    }
    out
}

#[inline(always)]
fn guide_block_generic(u: Option<&[f32]>, c: &[f32], scale: f32, dst: &mut [f32], max: &mut [f32]) {
    match u {
        Some(u) => {
            for ((d, m), (&u, &c)) in dst.iter_mut().zip(max.iter_mut()).zip(u.iter().zip(c)) {
                // (c − u)·s + u in f32, the order of the tensor formula.
                let g = u + (c - u) * scale;
                *d = g;
                *m = m.max(g);
            }
        }
        None => {
            for ((d, m), &c) in dst.iter_mut().zip(max.iter_mut()).zip(c) {
                *d = c;
                *m = m.max(c);
            }
        }
    }
}

fast_math::vectorised!(guide_row, guide_block_generic, (u: Option<&[f32]>, c: &[f32], scale: f32, dst: &mut [f32], max: &mut [f32]) -> ());

#[inline(always)]
fn exp_sum_generic(row: &[f32], max: &[f32], sum: &mut [f32]) {
    for ((s, &v), &m) in sum.iter_mut().zip(row).zip(max) {
        *s += fast_math::exp(v - m);
    }
}

fast_math::vectorised!(exp_sum_row, exp_sum_generic, (row: &[f32], max: &[f32], sum: &mut [f32]) -> ());

#[allow(clippy::too_many_arguments)]
fn process_block(
    p: &StepPrediction,
    bi: usize,
    n0: usize,
    w: usize,
    k: usize,
    n: usize,
    rule: Truncation,
    floor: f32,
    buf: &mut [f32],
) {
    let base = bi * k * n;
    let guided = p.uncond.is_some();
    let mut max = [f32::NEG_INFINITY; WIDTH];
    for i in 0..k {
        let at = base + i * n + n0;
        guide_row(
            p.uncond.map(|u| &u[at..at + w]),
            &p.cond[at..at + w],
            p.scale,
            &mut buf[i * WIDTH..i * WIDTH + w],
            &mut max[..w],
        );
    }
    if guided {
        // Renormalise: g − lse(g) over the classes.
        let m: Vec<f32> = max[..w].iter().map(|&m| m.max(f32::MIN)).collect();
        let mut sum = [0f32; WIDTH];
        for i in 0..k {
            exp_sum_row(&buf[i * WIDTH..i * WIDTH + w], &m, &mut sum[..w]);
        }
        for j in 0..w {
            let lse = fast_math::ln(sum[j]) + m[j];
            for i in 0..k {
                buf[i * WIDTH + j] -= lse;
            }
            max[j] -= lse;
        }
    }
    let mut column = Vec::with_capacity(k);
    let mut keys = Vec::new();
    for (j, &m) in max.iter().enumerate().take(w) {
        match rule {
            Truncation::None => {}
            Truncation::TopK(top) => keep_top_k(buf, j, k, top, &mut column),
            Truncation::TopR(r) => keep_top_r(buf, j, k, r, m, &mut keys),
        }
    }
    for v in buf[..k * WIDTH].iter_mut() {
        *v = v.max(floor);
    }
}

/// Descending probability, then ascending class (the order of [`crate::truncate`]).
fn order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

fn keep_top_k(buf: &mut [f32], j: usize, k: usize, top: usize, column: &mut Vec<(f32, u32)>) {
    if top >= k {
        return;
    }
    column.clear();
    column.extend((0..k).map(|i| (buf[i * WIDTH + j], i as u32)));
    column.select_nth_unstable_by(top, order);
    for &(_, i) in &column[top..] {
        buf[i as usize * WIDTH + j] = f32::NEG_INFINITY;
    }
}

/// A sort key whose ascending order is descending probability, then ascending class: the
/// order of [`order`], as one integer (the f32's bits mapped to a monotone u32 as `total_cmp`
/// does, inverted, above the class index), so the candidates sort as plain `u64`s.
fn descending_key(v: f32, class: u32) -> u64 {
    let bits = v.to_bits();
    let monotone = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    (u64::from(!monotone) << 32) | u64::from(class)
}

fn keep_top_r(buf: &mut [f32], j: usize, k: usize, r: f32, max: f32, keys: &mut Vec<u64>) {
    // The classes below `max − δ` hold at most `K·e^(−δ)` of the mass, so the candidates can
    // reach `r` only once that is under `1 − r` (plus the f32 rounding of the cumulative): start
    // there rather than at 8 and doubling. Near r = 1 (the embedded model's default, where the
    // cut falls in the far tail) this is one sort instead of three; the loop below is what makes
    // the kept set exact, whatever δ it starts from.
    let slack = (1.0 - f64::from(r)).max(0.0) + f64::from(f32::EPSILON) / 4.0;
    let mut delta = ((k as f64).ln() - slack.ln()).max(8.0) as f32;
    loop {
        let threshold = if delta.is_finite() {
            max - delta
        } else {
            f32::NEG_INFINITY
        };
        keys.clear();
        keys.extend(
            (0..k)
                .map(|i| (buf[i * WIDTH + j], i as u32))
                .filter(|&(v, _)| v >= threshold || !delta.is_finite())
                .map(|(v, i)| descending_key(v, i)),
        );
        keys.sort_unstable();
        let mut acc = 0.0f64;
        let mut kept = None;
        for (rank, &key) in keys.iter().enumerate() {
            let class = (key & 0xffff_ffff) as usize;
            acc += buf[class * WIDTH + j].exp() as f64;
            if (acc as f32) >= r {
                kept = Some(rank + 1);
                break;
            }
        }
        match kept {
            Some(kept) => {
                // Everything outside the kept prefix (candidates after it, and every class
                // below the threshold) is dropped.
                let mut keep = vec![false; k];
                for &key in keys[..kept].iter() {
                    keep[(key & 0xffff_ffff) as usize] = true;
                }
                for (i, &kept) in keep.iter().enumerate() {
                    if !kept {
                        buf[i * WIDTH + j] = f32::NEG_INFINITY;
                    }
                }
                return;
            }
            // Every class is a candidate and the sum never reached r: keep all (as the
            // sorted reference does when the rounded cumulative stays below r).
            None if !delta.is_finite() => return,
            None if keys.len() == k => return,
            None => {
                delta = if delta >= 64.0 {
                    f32::INFINITY
                } else {
                    delta * 2.0
                }
            }
        }
    }
}
