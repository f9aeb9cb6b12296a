//! The loop shared by the samplers that resolve masked positions directly ([`crate::MaskGit`],
//! [`crate::ThresholdCommit`], [`crate::EntropyBounded`]): which timestep the model sees, what
//! happens to the replace mass and to known tokens is documented on [`crate::SamplingMethod`].

use candle_core::{DType, Tensor};

use crate::known_tokens::KnownTokens;
use crate::sampler::StepEvent;
use crate::{Error, NoiseSource, Result, Transition, gumbel_argmax};

/// One model call's prediction, on the host.
pub(crate) struct CallView {
    /// `log p̂(x_0)` `(B, K, N)` row-major.
    log_p: Vec<f32>,
    /// One draw per position from `p̂` at the policy's temperature, `(B, N)`.
    pub candidates: Vec<u32>,
    k: usize,
    n: usize,
}

impl CallView {
    fn new(log_p: &Tensor, temperature: f64, noise: &mut dyn NoiseSource) -> Result<Self> {
        let (b, k, n) = log_p.dims3()?;
        let host = log_p
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let candidates = if temperature == 0.0 {
            let mut out = vec![0u32; b * n];
            for i in 0..b {
                for p in 0..n {
                    out[i * n + p] = argmax(&host, k, n, i, p).0;
                }
            }
            out
        } else {
            let scaled = if temperature == 1.0 {
                log_p.clone()
            } else {
                (log_p / temperature)?
            };
            gumbel_argmax(&scaled, noise)?
                .flatten_all()?
                .to_vec1::<u32>()?
        };
        Ok(Self {
            log_p: host,
            candidates,
            k,
            n,
        })
    }

    /// `log p̂(x_0 = c)` at position `p` of image `i`.
    pub fn log_p(&self, i: usize, c: u32, p: usize) -> f32 {
        self.log_p[(i * self.k + c as usize) * self.n + p]
    }

    /// The candidate drawn for position `p` of image `i`.
    pub fn candidate(&self, i: usize, p: usize) -> u32 {
        self.candidates[i * self.n + p]
    }

    /// The most probable class at `p` and its log-probability.
    pub fn best(&self, i: usize, p: usize) -> (u32, f32) {
        argmax(&self.log_p, self.k, self.n, i, p)
    }

    /// Entropy of `p̂` at `p`, in nats.
    pub fn entropy(&self, i: usize, p: usize) -> f64 {
        (0..self.k)
            .map(|c| {
                let l = self.log_p[(i * self.k + c) * self.n + p] as f64;
                -l.exp() * l
            })
            .sum()
    }
}

fn argmax(log_p: &[f32], k: usize, n: usize, i: usize, p: usize) -> (u32, f32) {
    let mut best = (0u32, f32::NEG_INFINITY);
    for c in 0..k {
        let l = log_p[(i * k + c) * n + p];
        if l > best.1 {
            best = (c as u32, l);
        }
    }
    best
}

/// What a policy sees of one image at one call.
pub(crate) struct RowContext<'a> {
    /// 0-based model call.
    pub call: usize,
    /// Batch index.
    pub image: usize,
    /// The call's prediction.
    pub view: &'a CallView,
    /// Whether the sampler may change each position (known tokens may not).
    pub editable: &'a [bool],
    /// Masked positions of this image when the run started.
    pub masked_at_start: usize,
    /// The mask's token id.
    pub mask: u32,
}

impl RowContext<'_> {
    /// Positions of `row` still masked.
    pub fn masked(&self, row: &[u32]) -> Vec<usize> {
        (0..row.len()).filter(|&p| row[p] == self.mask).collect()
    }

    /// Positions the sampler committed before this call (unmasked and editable).
    pub fn committed(&self, row: &[u32]) -> Vec<usize> {
        (0..row.len())
            .filter(|&p| row[p] != self.mask && self.editable[p])
            .collect()
    }
}

/// A rule for which masked positions to commit at each call.
pub(crate) trait UnmaskPolicy {
    /// The sampler's temperature for the candidates.
    fn temperature(&self) -> f64;
    /// Model calls promised to resolve `masked` positions (an upper bound where the number
    /// depends on the predictions).
    fn planned_calls(&self, masked: usize) -> usize;
    /// Updates one image's tokens `row` (`N`) in place. Must commit at least one masked
    /// position whenever one is left.
    fn update(
        &mut self,
        ctx: &RowContext,
        row: &mut [u32],
        noise: &mut dyn NoiseSource,
    ) -> Result<()>;
}

/// The timestep whose mask probability matches a masked `fraction` of a chain started at
/// `start` (see the module docs).
pub(crate) fn timestep_for_masked_fraction<T: Transition + ?Sized>(
    transition: &T,
    start: usize,
    fraction: f64,
) -> usize {
    let top = transition.cumulative(start).mask.max(f64::MIN_POSITIVE);
    (0..=start)
        .min_by(|&a, &b| {
            let da = (transition.cumulative(a).mask / top - fraction).abs();
            let db = (transition.cumulative(b).mask / top - fraction).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(start)
}

/// Runs `policy` from `x` `(B, N)` until no position is masked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_unmasking<T: Transition + ?Sized>(
    transition: &T,
    predict: &dyn Fn(&Tensor, usize) -> Result<Tensor>,
    x: &Tensor,
    start: usize,
    known: Option<&KnownTokens>,
    policy: &mut dyn UnmaskPolicy,
    noise: &mut dyn NoiseSource,
    on_step: &mut dyn FnMut(&StepEvent) -> Result<()>,
    name: &str,
) -> Result<Tensor> {
    let mask = transition.mask_index().ok_or_else(|| {
        Error::InvalidSetting(format!(
            "the {name} sampler needs a chain with a mask state"
        ))
    })? as u32;
    let (b, n) = x.dims2()?;
    let device = x.device().clone();
    let mut tokens = x.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    let editable: Vec<bool> = (0..b * n)
        .map(|i| !known.is_some_and(|k| k.is_known(i)))
        .collect();
    impose_known(&mut tokens, known);
    let masked_at_start: Vec<usize> = (0..b)
        .map(|i| {
            tokens[i * n..(i + 1) * n]
                .iter()
                .filter(|&&v| v == mask)
                .count()
        })
        .collect();
    let most = masked_at_start.iter().copied().max().unwrap_or(0);
    let planned = policy.planned_calls(most);
    let mut call = 0;
    loop {
        let masked_now = (0..b)
            .map(|i| {
                tokens[i * n..(i + 1) * n]
                    .iter()
                    .filter(|&&v| v == mask)
                    .count()
            })
            .max()
            .unwrap_or(0);
        if masked_now == 0 {
            break;
        }
        if call >= planned.max(1) {
            return Err(Error::InvalidSetting(format!(
                "the {name} sampler left {masked_now} positions masked after the {planned} calls it plans"
            )));
        }
        let t = timestep_for_masked_fraction(transition, start, masked_now as f64 / n as f64);
        let x_now = Tensor::from_vec(tokens.clone(), (b, n), &device)?;
        let log_p = predict(&x_now, t)?;
        let view = CallView::new(&log_p, policy.temperature(), noise)?;
        for i in 0..b {
            let ctx = RowContext {
                call,
                image: i,
                view: &view,
                editable: &editable[i * n..(i + 1) * n],
                masked_at_start: masked_at_start[i],
                mask,
            };
            policy.update(&ctx, &mut tokens[i * n..(i + 1) * n], noise)?;
        }
        let x_next = Tensor::from_vec(tokens.clone(), (b, n), &device)?;
        on_step(&StepEvent {
            call,
            planned_calls: planned,
            t,
            tokens: &x_next,
        })?;
        call += 1;
    }
    Ok(Tensor::from_vec(tokens, (b, n), &device)?)
}

/// The mask's token id, or an error naming the sampler that needs one.
pub(crate) fn mask_of<T: Transition + ?Sized>(transition: &T, name: &str) -> Result<u32> {
    transition.mask_index().map(|m| m as u32).ok_or_else(|| {
        Error::InvalidSetting(format!(
            "the {name} sampler needs a chain with a mask state"
        ))
    })
}

/// The known tokens' data values written into `tokens` (flattened `(B, N)`).
pub(crate) fn impose_known(tokens: &mut [u32], known: Option<&KnownTokens>) {
    if let Some(known) = known {
        for (i, slot) in tokens.iter_mut().enumerate() {
            if known.is_known(i) {
                *slot = known.value(i);
            }
        }
    }
}

/// A standard Gumbel draw from one uniform.
pub(crate) fn gumbel_from_uniform(u: f64) -> f64 {
    -(-(u.clamp(1e-300, 1.0 - 1e-16)).ln()).ln()
}

/// Checks a temperature setting.
pub(crate) fn check_temperature(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidSetting(format!(
            "{name} must be a finite number ≥ 0, got {value}"
        )))
    }
}
