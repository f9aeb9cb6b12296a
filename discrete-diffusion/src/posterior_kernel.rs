//! A fused CPU kernel for the posterior of [`crate::posterior`] — the same formula, evaluated in
//! three passes over the `(B, K, N)` prediction instead of a chain of tensor operations, split
//! over `available_parallelism()` threads for large inputs. Used for inference (when no gradient flows through the
//! prediction); the composite path, which candle can differentiate, is used for training. Both
//! are tested to agree.
//!
//! Per column (batch b, position n), with `o = x_t[b, n]` and per-row log coefficients:
//!
//! ```text
//! Lc[i] = ln γ̄_t                if o is the mask,   hot_c if i = o,   cold_c otherwise
//! q[i]  = log p̂(i) − Lc[i];     Z = lse_i q[i]
//! out[i] = logaddexp(q[i] − Z + ln ᾱ_s, ln β̄_s) + Ls[i] + Z        (Ls like Lc with the span)
//! out[K] = log_onehot(o)[K] + ln γ̄_s + Z
//! ```

use candle_core::{DType, Tensor};

use crate::coefficients::log_add_exp_f32;
use crate::fast_math;
use crate::shared_out::SharedOut;
use crate::{Coefficients, LOG_EPS, Result, Timesteps, Transition};

/// Per-row scalars of the kernel.
#[derive(Clone, Copy)]
pub(crate) struct Row {
    c_hot: f32,
    c_cold: f32,
    c_mask: f32,
    s_hot: f32,
    s_cold: f32,
    s_mask: f32,
    r_stay: f32,
    r_replace: f32,
    r_mask: f32,
    pinned: bool,
}

fn row(c: Coefficients, s: Coefficients, r: Coefficients) -> Row {
    let (c, s, pinned, r) = (c.ln(), s.ln(), c.replace == 0.0, r.ln());
    Row {
        c_hot: log_add_exp_f32(c.stay, c.replace),
        c_cold: log_add_exp_f32(LOG_EPS + c.stay, c.replace),
        c_mask: c.mask,
        s_hot: log_add_exp_f32(s.stay, s.replace),
        s_cold: log_add_exp_f32(LOG_EPS + s.stay, s.replace),
        s_mask: s.mask,
        r_stay: r.stay,
        r_replace: r.replace,
        r_mask: r.mask,
        pinned,
    }
}

/// The fused posterior; inputs are already validated by the caller.
pub(crate) fn q_posterior_cpu<T: Transition + ?Sized>(
    transition: &T,
    log_p_x0: &Tensor,
    x_t: &Tensor,
    ts: &Timesteps,
    to: &dyn Fn(usize) -> Option<usize>,
) -> Result<Tensor> {
    let (b, k, n) = log_p_x0.dims3()?;
    let states = transition.num_states();
    let mask = transition.mask_index();
    let rows: Vec<Row> = (0..b)
        .map(|i| {
            let t = ts.get(if matches!(ts, Timesteps::Shared(_)) {
                0
            } else {
                i
            });
            let target = to(t).map_or(Coefficients::IDENTITY, |s| transition.cumulative(s));
            row(transition.cumulative(t), transition.span(to(t), t), target)
        })
        .collect();
    let obs = x_t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    // Blocks of columns: whole batch rows, split along N only when there are fewer rows than
    // threads. Small problems run inline (spawning costs more than it saves).
    let threads = if b * k * n < 1 << 16 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |p| p.get())
    };
    let splits = threads.div_ceil(b).min(n.max(1));
    let chunk = n.div_ceil(splits);
    let tasks: Vec<(usize, usize, usize)> = (0..b)
        .flat_map(|bi| (0..splits).map(move |c| (bi, c * chunk, ((c + 1) * chunk).min(n))))
        .filter(|(_, n0, n1)| n0 < n1)
        .collect();
    let mut out = vec![0f32; b * states * n];
    let dst = SharedOut::new(&mut out);
    crate::host::with_f32(&log_p_x0.to_dtype(DType::F32)?, |lp| {
        let run = |tasks: &[(usize, usize, usize)]| {
            for &(bi, n0, n1) in tasks {
                // SAFETY: task (bi, n0..n1) owns columns n0..n1 of batch row bi of `out`.
                let at = unsafe { OutRows::new(dst, bi * states * n + n0, n) };
                block(lp, &obs, rows[bi], bi, k, n, n0, n1, states, mask, at);
            }
        };
        if threads == 1 {
            run(&tasks);
        } else {
            let per_thread = tasks.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for part in tasks.chunks(per_thread) {
                    let run = &run;
                    scope.spawn(move || run(part));
                }
            });
        }
    })?;
    Ok(Tensor::from_vec(out, (b, states, n), log_p_x0.device())?)
}

/// Rows of one task's output block: row `i`, column `j` of the block is at `start + i·stride + j`.
#[derive(Clone, Copy)]
pub(crate) struct OutRows {
    ptr: SharedOut,
    stride: usize,
}

impl OutRows {
    /// # Safety
    /// The block's elements must be valid for writes and owned by the caller.
    unsafe fn new(ptr: SharedOut, start: usize, stride: usize) -> Self {
        // SAFETY: per the contract.
        Self {
            ptr: ptr.offset(start),
            stride,
        }
    }

    /// Row `i`, `width` elements.
    #[allow(clippy::mut_from_ref)]
    fn row(&self, i: usize, width: usize) -> &mut [f32] {
        // SAFETY: per the constructor's contract; each row is taken once at a time.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.at(i * self.stride), width) }
    }
}

/// Per-column inputs of a block: the observed class (or `u32::MAX` for the mask) and the
/// log coefficients of the observed ("hot") and of every other ("base") class.
struct Columns {
    observed: Vec<u32>,
    base_c: Vec<f32>,
    hot_c: Vec<f32>,
    base_s: Vec<f32>,
    hot_s: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block_generic(
    lp: &[f32],
    obs: &[u32],
    row: Row,
    bi: usize,
    k: usize,
    n: usize,
    n0: usize,
    n1: usize,
    states: usize,
    mask: Option<usize>,
    out: OutRows,
) {
    let width = n1 - n0;
    let is_mask = |o: u32| Some(o as usize) == mask;
    let cols = {
        let mut c = Columns {
            observed: Vec::with_capacity(width),
            base_c: Vec::with_capacity(width),
            hot_c: Vec::with_capacity(width),
            base_s: Vec::with_capacity(width),
            hot_s: Vec::with_capacity(width),
        };
        for p in n0..n1 {
            let o = obs[bi * n + p];
            let masked = is_mask(o);
            c.observed.push(if masked { u32::MAX } else { o });
            c.base_c.push(if masked { row.c_mask } else { row.c_cold });
            c.hot_c.push(if masked { row.c_mask } else { row.c_hot });
            c.base_s.push(if masked { row.s_mask } else { row.s_cold });
            c.hot_s.push(if masked { row.s_mask } else { row.s_hot });
        }
        c
    };
    let base = bi * k * n;
    // Column-wise loops written as zipped iterators (no bounds checks), so that they
    // vectorise: the observed class is a select, not a branch.
    let mut max = vec![f32::NEG_INFINITY; width];
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        let iu = i as u32;
        for ((((m, &v), &o), &hc), &bc) in max
            .iter_mut()
            .zip(src)
            .zip(&cols.observed)
            .zip(&cols.hot_c)
            .zip(&cols.base_c)
        {
            let lc = if o == iu { hc } else { bc };
            *m = m.max(v - lc);
        }
    }
    for m in max.iter_mut() {
        *m = m.max(f32::MIN);
    }
    let mut sum = vec![0f32; width];
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        let iu = i as u32;
        for (((((acc, &v), &o), &hc), &bc), &m) in sum
            .iter_mut()
            .zip(src)
            .zip(&cols.observed)
            .zip(&cols.hot_c)
            .zip(&cols.base_c)
            .zip(&max)
        {
            let lc = if o == iu { hc } else { bc };
            *acc += fast_math::exp(v - lc - m);
        }
    }
    let z: Vec<f32> = sum
        .iter()
        .zip(&max)
        .map(|(&s, &m)| fast_math::ln(s) + m)
        .collect();
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        let dst = out.row(i, width);
        let iu = i as u32;
        for (((((((d, &v), &o), &hc), &bc), &hs), &bs), &zj) in dst
            .iter_mut()
            .zip(src)
            .zip(&cols.observed)
            .zip(&cols.hot_c)
            .zip(&cols.base_c)
            .zip(&cols.hot_s)
            .zip(&cols.base_s)
            .zip(&z)
        {
            let hot = o == iu;
            let lc = if hot { hc } else { bc };
            let ls = if hot { hs } else { bs };
            let q = v - lc - zj;
            *d = fast_math::log_add_exp(q + row.r_stay, row.r_replace) + ls + zj;
        }
    }
    if states > k {
        let dst = out.row(k, width);
        for (j, o) in dst.iter_mut().enumerate() {
            let onehot_mask = if cols.observed[j] == u32::MAX {
                0.0
            } else {
                LOG_EPS
            };
            *o = onehot_mask + row.r_mask + z[j];
        }
    }
    if row.pinned {
        for j in (0..width).filter(|&j| cols.observed[j] != u32::MAX) {
            for i in 0..states {
                out.row(i, width)[j] = if cols.observed[j] == i as u32 {
                    0.0
                } else {
                    LOG_EPS
                };
            }
        }
    }
}

fast_math::vectorised!(block, block_generic, (lp: &[f32], obs: &[u32], row: Row, bi: usize, k: usize, n: usize, n0: usize, n1: usize, states: usize, mask: Option<usize>, out: OutRows) -> ());
