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
use crate::{Coefficients, LOG_EPS, Result, Timesteps, Transition};

/// Per-row scalars of the kernel.
#[derive(Clone, Copy)]
struct Row {
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
    let lp = log_p_x0
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
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
    let run = |tasks: &[(usize, usize, usize)]| -> Vec<(usize, usize, usize, Vec<f32>)> {
        tasks
            .iter()
            .map(|&(bi, n0, n1)| {
                (
                    bi,
                    n0,
                    n1,
                    block(&lp, &obs, rows[bi], bi, k, n, n0, n1, states, mask),
                )
            })
            .collect()
    };
    let blocks: Vec<(usize, usize, usize, Vec<f32>)> = if threads == 1 {
        run(&tasks)
    } else {
        let per_thread = tasks.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = tasks
                .chunks(per_thread)
                .map(|part| scope.spawn(move || run(part)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("posterior worker panicked"))
                .collect()
        })
    };
    let mut out = vec![0f32; b * states * n];
    for (bi, n0, n1, buffer) in blocks {
        let width = n1 - n0;
        for i in 0..states {
            let dst = bi * states * n + i * n + n0;
            out[dst..dst + width].copy_from_slice(&buffer[i * width..(i + 1) * width]);
        }
    }
    Ok(Tensor::from_vec(out, (b, states, n), log_p_x0.device())?)
}

#[allow(clippy::too_many_arguments)]
fn block(
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
) -> Vec<f32> {
    let width = n1 - n0;
    let observed: Vec<usize> = (n0..n1).map(|p| obs[bi * n + p] as usize).collect();
    let masked: Vec<bool> = observed.iter().map(|&o| Some(o) == mask).collect();
    let lc = |i: usize, j: usize| {
        if masked[j] {
            row.c_mask
        } else if observed[j] == i {
            row.c_hot
        } else {
            row.c_cold
        }
    };
    let ls = |i: usize, j: usize| {
        if masked[j] {
            row.s_mask
        } else if observed[j] == i {
            row.s_hot
        } else {
            row.s_cold
        }
    };
    let base = bi * k * n;
    let mut max = vec![f32::NEG_INFINITY; width];
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        for (j, (&v, m)) in src.iter().zip(max.iter_mut()).enumerate() {
            *m = m.max(v - lc(i, j));
        }
    }
    let max: Vec<f32> = max.into_iter().map(|m| m.max(f32::MIN)).collect();
    let mut sum = vec![0f32; width];
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        for (j, (&v, s)) in src.iter().zip(sum.iter_mut()).enumerate() {
            *s += (v - lc(i, j) - max[j]).exp();
        }
    }
    let z: Vec<f32> = sum.iter().zip(&max).map(|(s, m)| s.ln() + m).collect();
    let mut out = vec![0f32; states * width];
    for i in 0..k {
        let src = &lp[base + i * n + n0..base + i * n + n1];
        let dst = &mut out[i * width..(i + 1) * width];
        for (j, (&v, o)) in src.iter().zip(dst.iter_mut()).enumerate() {
            let q = v - lc(i, j) - z[j];
            *o = log_add_exp_f32(q + row.r_stay, row.r_replace) + ls(i, j) + z[j];
        }
    }
    if states > k {
        let dst = &mut out[k * width..];
        for (j, o) in dst.iter_mut().enumerate() {
            let onehot_mask = if masked[j] { 0.0 } else { LOG_EPS };
            *o = onehot_mask + row.r_mask + z[j];
        }
    }
    if row.pinned {
        for j in (0..width).filter(|&j| !masked[j]) {
            for i in 0..states {
                out[i * width + j] = if observed[j] == i { 0.0 } else { LOG_EPS };
            }
        }
    }
    out
}
