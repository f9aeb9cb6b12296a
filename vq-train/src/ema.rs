//! An exponential moving average of a model's weights, `ē ← d·ē + (1 − d)·θ` after every
//! optimiser step (Polyak & Juditsky 1992), with the decay warmed up as
//! `min(d, (1 + n)/(10 + n))` over the first updates `n` so the average is not dominated by the
//! initialisation. The original VQ-Diffusion code evaluates and releases such EMA weights.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;
use candle_nn::VarMap;

use crate::{Error, Result};

/// The EMA of every variable of a [`VarMap`].
pub struct Ema {
    decay: f64,
    updates: u64,
    shadow: BTreeMap<String, Tensor>,
}

impl Ema {
    /// An average starting at the current weights of `varmap`; `decay` in `[0, 1)`.
    pub fn new(varmap: &VarMap, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::InvalidSetting(format!(
                "EMA decay {decay} must be in [0, 1)"
            )));
        }
        let shadow = varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            decay,
            updates: 0,
            shadow,
        })
    }

    /// The decay used at the next update (warmed up over the first updates).
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Moves the average towards the current weights of `varmap`.
    pub fn update(&mut self, varmap: &VarMap) -> Result<()> {
        let d = self.current_decay();
        let vars = varmap.data().lock().expect("varmap lock");
        for (name, shadow) in self.shadow.iter_mut() {
            let var = vars
                .get(name)
                .ok_or_else(|| Error::State(format!("the model lost the variable {name}")))?;
            *shadow = ((&*shadow * d)? + (var.as_tensor() * (1.0 - d))?)?;
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged weights by name (e.g. to export or evaluate).
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.shadow
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Updates applied so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Restores a saved average (its names must be the model's).
    pub fn load_weights(&mut self, weights: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        for (name, shadow) in self.shadow.iter_mut() {
            let w = weights
                .get(name)
                .ok_or_else(|| Error::State(format!("no EMA weight {name} in the saved state")))?;
            if w.dims() != shadow.dims() {
                return Err(Error::State(format!(
                    "EMA weight {name} has shape {:?}, the variable {:?}",
                    w.dims(),
                    shadow.dims()
                )));
            }
            *shadow = w.to_dtype(shadow.dtype())?.to_device(shadow.device())?;
        }
        self.updates = updates;
        Ok(())
    }
}
