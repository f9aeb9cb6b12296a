//! AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2) over
//! named variables, with its moments exposed so that a checkpoint holds them and a resumed run
//! continues exactly where it stopped (candle's own `AdamW` keeps them private, so a resume
//! there restarts with zero moments). Shared by every trainer of the workspace (`vq-codebook`'s
//! VQ-VAE trainer, `vq-train`'s denoiser trainer, which also saves it to a file).
//!
//! The update is candle-nn's, operation for operation (so the two give bit-identical weights,
//! tested): with step `t`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ(1 − lr·λ) − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
pub use candle_nn::ParamsAdamW;
use candle_nn::VarMap;

use crate::{Error, Result};

/// One variable and its moments.
struct Slot {
    var: Var,
    m: Var,
    v: Var,
}

/// AdamW over the named variables of a [`VarMap`] (or any name → [`Var`] map).
pub struct AdamW {
    slots: BTreeMap<String, Slot>,
    params: ParamsAdamW,
    step: u64,
}

impl AdamW {
    /// The optimiser over `vars` (floating-point ones; others are ignored), moments at zero.
    pub fn new(vars: impl IntoIterator<Item = (String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let mut slots = BTreeMap::new();
        for (name, var) in vars {
            if !var.dtype().is_float() {
                continue;
            }
            let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
            let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
            slots.insert(name, Slot { var, m, v });
        }
        Ok(Self {
            slots,
            params,
            step: 0,
        })
    }

    /// The optimiser over every variable of `varmap`.
    pub fn from_varmap(varmap: &VarMap, params: ParamsAdamW) -> Result<Self> {
        let vars: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::new(vars, params)
    }

    /// The device of the variables (the CPU when there are none).
    pub fn device(&self) -> candle_core::Device {
        self.slots
            .values()
            .next()
            .map_or(candle_core::Device::Cpu, |s| s.var.device().clone())
    }

    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &ParamsAdamW {
        &self.params
    }

    /// Sets the learning rate (for a schedule).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// One update from `grads` (variables without a gradient are left alone).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let lr_lambda = p.lr * p.weight_decay;
        let scale_m = 1f64 / (1f64 - p.beta1.powi(self.step as i32));
        let scale_v = 1f64 / (1f64 - p.beta2.powi(self.step as i32));
        for slot in self.slots.values() {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let next_m = ((slot.m.as_tensor() * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let next_v = ((slot.v.as_tensor() * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (slot.var.as_tensor() * (1f64 - lr_lambda))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let next_theta = (next_theta - (adjusted * p.lr)?)?;
            slot.m.set(&next_m)?;
            slot.v.set(&next_v)?;
            slot.var.set(&next_theta)?;
        }
        Ok(())
    }

    /// The moments and the step count as named tensors (`<name>.m`, `<name>.v`, `step`), for
    /// a checkpoint.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (name, slot) in &self.slots {
            out.insert(format!("{name}.m"), slot.m.as_tensor().clone());
            out.insert(format!("{name}.v"), slot.v.as_tensor().clone());
        }
        let device = self.device();
        // Two u32 halves: safetensors has no u64 in every reader.
        let step = Tensor::from_vec(vec![(self.step >> 32) as u32, self.step as u32], 2, &device)?;
        out.insert("step".into(), step);
        Ok(out)
    }

    /// Restores [`AdamW::state`]: every variable's moments must be present with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (name, slot) in &self.slots {
            for (key, moment) in [
                (format!("{name}.m"), &slot.m),
                (format!("{name}.v"), &slot.v),
            ] {
                let t = state
                    .get(&key)
                    .ok_or_else(|| Error::OptimiserState(format!("no {key} in the saved state")))?;
                if t.dims() != slot.var.dims() {
                    return Err(Error::OptimiserState(format!(
                        "{key} has shape {:?}, the variable {:?}",
                        t.dims(),
                        slot.var.dims()
                    )));
                }
                moment.set(&t.to_dtype(slot.var.dtype())?.to_device(slot.var.device())?)?;
            }
        }
        let expected = 2 * self.slots.len() + 1;
        if state.len() != expected {
            let unknown: Vec<&String> = state
                .keys()
                .filter(|k| {
                    *k != "step"
                        && !k
                            .strip_suffix(".m")
                            .or_else(|| k.strip_suffix(".v"))
                            .is_some_and(|n| self.slots.contains_key(n))
                })
                .collect();
            return Err(Error::OptimiserState(format!(
                "the saved state holds moments of variables this model does not have: {unknown:?}"
            )));
        }
        let step = state
            .get("step")
            .ok_or_else(|| Error::OptimiserState("no step in the saved state".into()))?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        let [hi, lo] = step[..] else {
            return Err(Error::OptimiserState(format!(
                "step has {} values, expected 2",
                step.len()
            )));
        };
        self.step = (u64::from(hi) << 32) | u64::from(lo);
        Ok(())
    }
}
