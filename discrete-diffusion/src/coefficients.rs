//! The `(stay, replace, mask)` coefficients that describe every transition matrix of the three
//! families, and the timestep argument shared by the tensor APIs.
//!
//! All three families (D3PM uniform and absorbing, VQ-Diffusion mask-and-replace, paper §4.1)
//! have transition matrices of one shape over `K` real classes plus, optionally, a mask state:
//!
//! ```text
//! q(x' = j | x = i) = stay·[i = j] + replace      for real classes i, j < K
//! q(x' = mask | x = i) = mask                     (0 for the uniform family)
//! q(x' = mask | x = mask) = 1                     (the mask state is absorbing)
//! ```
//!
//! with `stay + K·replace + mask = 1`. One step, the closed-form cumulative `q(x_t | x_0)` and
//! any multi-step span `q(x_t | x_s)` are all of this form (the family is closed under
//! products), which is what makes the strided posterior exact.

use candle_core::{Device, Tensor};

use crate::Result;

/// Coefficients of one transition matrix (probabilities, f64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// Probability of keeping the current class (`α`).
    pub stay: f64,
    /// Probability of moving to each particular real class by uniform resampling (`β`);
    /// the total replace mass is `K·replace`.
    pub replace: f64,
    /// Probability of jumping to the mask state (`γ`); zero for the uniform family.
    pub mask: f64,
}

impl Coefficients {
    /// The identity transition (`stay = 1`).
    pub const IDENTITY: Coefficients = Coefficients {
        stay: 1.0,
        replace: 0.0,
        mask: 0.0,
    };

    /// Natural logs of the three coefficients, computed in f64 then rounded to f32 (the
    /// precision rule of diffusers' scheduler tables).
    pub fn ln(&self) -> LogCoefficients {
        LogCoefficients {
            stay: self.stay.ln() as f32,
            replace: self.replace.ln() as f32,
            mask: self.mask.ln() as f32,
        }
    }

    /// Row sum `stay + K·replace + mask` (1 up to rounding for a valid transition).
    pub fn row_sum(&self, num_classes: usize) -> f64 {
        self.stay + num_classes as f64 * self.replace + self.mask
    }
}

/// Natural logs of [`Coefficients`], f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogCoefficients {
    /// `ln stay`.
    pub stay: f32,
    /// `ln replace`.
    pub replace: f32,
    /// `ln mask`.
    pub mask: f32,
}

/// Which timestep(s) a batched operation is evaluated at.
///
/// Timesteps are 0-based code indices as in diffusers: `t ∈ 0..T`, and code index `t` is paper
/// step `t + 1` (the state after `t + 1` forward steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timesteps {
    /// One timestep shared by the whole batch (what samplers use).
    Shared(usize),
    /// One timestep per batch element (what training uses).
    PerSample(Vec<usize>),
}

impl Timesteps {
    /// The timestep of batch element `i`.
    pub fn get(&self, i: usize) -> usize {
        match self {
            Timesteps::Shared(t) => *t,
            Timesteps::PerSample(v) => v[i],
        }
    }

    /// The timesteps as a slice (length 1 when shared).
    pub fn as_slice(&self) -> &[usize] {
        match self {
            Timesteps::Shared(t) => std::slice::from_ref(t),
            Timesteps::PerSample(ts) => ts,
        }
    }

    /// Repeats per-sample timesteps `times` times along the batch (e.g. the guided batch
    /// `[uncond; cond]`); a shared timestep is returned unchanged.
    pub fn repeat_batch(&self, times: usize) -> Self {
        match self {
            Timesteps::Shared(t) => Timesteps::Shared(*t),
            Timesteps::PerSample(ts) => Timesteps::PerSample(ts.repeat(times)),
        }
    }

    /// All distinct values, for validation.
    pub fn values(&self) -> Vec<usize> {
        match self {
            Timesteps::Shared(t) => vec![*t],
            Timesteps::PerSample(v) => v.clone(),
        }
    }

    /// Number of coefficient rows to build: 1 when shared, `batch` otherwise.
    pub(crate) fn rows(&self, batch: usize) -> Result<usize> {
        match self {
            Timesteps::Shared(_) => Ok(1),
            Timesteps::PerSample(v) if v.len() == batch => Ok(batch),
            Timesteps::PerSample(v) => Err(crate::Error::Shape {
                what: "per-sample timesteps",
                expected: format!("{batch} entries (one per batch element)"),
                found: vec![v.len()],
            }),
        }
    }
}

impl From<usize> for Timesteps {
    fn from(t: usize) -> Self {
        Timesteps::Shared(t)
    }
}

impl From<Vec<usize>> for Timesteps {
    fn from(v: Vec<usize>) -> Self {
        Timesteps::PerSample(v)
    }
}

impl From<&[usize]> for Timesteps {
    fn from(v: &[usize]) -> Self {
        Timesteps::PerSample(v.to_vec())
    }
}

impl From<&Timesteps> for Timesteps {
    fn from(t: &Timesteps) -> Self {
        t.clone()
    }
}

/// Log coefficients laid out as three `(rows, 1, 1)` f32 tensors, ready to broadcast against
/// `(B, C, N)` log-probabilities.
pub(crate) struct CoefficientTensors {
    pub stay: Tensor,
    pub replace: Tensor,
    pub mask: Tensor,
    /// `logaddexp(0 + ln stay, ln replace)`: a column entry at the observed class.
    pub hot: Tensor,
    /// `logaddexp(ln(1e-30) + ln stay, ln replace)`: a column entry at any other class.
    pub cold: Tensor,
}

/// Scalar `ln(eᵃ + eᵇ)` in f32 (`torch.logaddexp`'s formula, `-inf`-safe).
pub(crate) fn log_add_exp_f32(a: f32, b: f32) -> f32 {
    let hi = a.max(b);
    if hi == f32::NEG_INFINITY {
        return hi;
    }
    hi + (-(a - b).abs()).exp().ln_1p()
}

impl CoefficientTensors {
    pub(crate) fn new(coefficients: &[Coefficients], device: &Device) -> Result<Self> {
        let logs: Vec<LogCoefficients> = coefficients.iter().map(Coefficients::ln).collect();
        let rows = logs.len();
        let make = |f: fn(&LogCoefficients) -> f32| -> Result<Tensor> {
            Ok(Tensor::from_vec(
                logs.iter().map(f).collect::<Vec<_>>(),
                (rows, 1, 1),
                device,
            )?)
        };
        Ok(Self {
            stay: make(|c| c.stay)?,
            replace: make(|c| c.replace)?,
            mask: make(|c| c.mask)?,
            hot: make(|c| log_add_exp_f32(c.stay, c.replace))?,
            cold: make(|c| log_add_exp_f32(crate::LOG_EPS + c.stay, c.replace))?,
        })
    }
}
