//! [`GroupedAdamW`]: AdamW with parameter groups, as PyTorch's `param_groups` — each group its own
//! weight decay and learning-rate multiplier (e.g. no decay on embeddings, norms and biases, as
//! GPT-style recipes do; a slower or faster rate for some projections). Each variable goes to the
//! first [`ParamGroup`] that selects it. One group of everything is the plain optimiser.

use std::path::{Path, PathBuf};

use candle_core::Var;
use candle_core::backprop::GradStore;

use crate::{AdamW, AdamWFile, Error, ParamsAdamW, Result};

/// Chooses the variables of a group by name and variable.
pub type Selector = std::sync::Arc<dyn Fn(&str, &Var) -> bool + Send + Sync>;

/// One parameter group.
#[derive(Clone)]
pub struct ParamGroup {
    /// Its name (the optimiser-state file of a checkpoint is named by it).
    pub name: String,
    /// AdamW's decoupled weight decay for the group.
    pub weight_decay: f64,
    /// The group's learning rate as a multiple of the schedule's.
    pub lr_scale: f64,
    /// Which variables belong to it.
    pub select: Selector,
}

impl std::fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamGroup")
            .field("name", &self.name)
            .field("weight_decay", &self.weight_decay)
            .field("lr_scale", &self.lr_scale)
            .finish_non_exhaustive()
    }
}

impl ParamGroup {
    /// A group of the variables `select` picks.
    pub fn new(
        name: impl Into<String>,
        weight_decay: f64,
        lr_scale: f64,
        select: impl Fn(&str, &Var) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            weight_decay,
            lr_scale,
            select: std::sync::Arc::new(select),
        }
    }

    /// One group of every variable.
    pub fn all(weight_decay: f64) -> Self {
        Self::new("all", weight_decay, 1.0, |_, _| true)
    }
}

/// AdamW over parameter groups.
pub struct GroupedAdamW {
    groups: Vec<(ParamGroup, AdamW)>,
}

impl GroupedAdamW {
    /// Splits `named` (in its order) into `groups`; a variable no group selects is an error
    /// naming it, and an empty group is dropped.
    pub fn new(named: &[(String, Var)], groups: &[ParamGroup], base: &ParamsAdamW) -> Result<Self> {
        let mut members: Vec<Vec<(String, Var)>> = vec![Vec::new(); groups.len()];
        for (name, var) in named {
            let g = groups
                .iter()
                .position(|g| (g.select)(name, var))
                .ok_or_else(|| {
                    Error::InvalidSetting(format!("no parameter group selects the variable {name}"))
                })?;
            members[g].push((name.clone(), var.clone()));
        }
        let mut out = Vec::new();
        for (group, vars) in groups.iter().zip(members) {
            if vars.is_empty() {
                continue;
            }
            let params = ParamsAdamW {
                lr: base.lr * group.lr_scale,
                weight_decay: group.weight_decay,
                ..base.clone()
            };
            out.push((group.clone(), AdamW::new(vars, params)?));
        }
        Ok(Self { groups: out })
    }

    /// One update of every group at the schedule's rate `lr` (times each group's scale).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for (group, opt) in &mut self.groups {
            opt.set_learning_rate(lr * group.lr_scale);
            opt.step(grads)?;
        }
        Ok(())
    }

    /// The groups kept (non-empty), in order.
    pub fn groups(&self) -> impl Iterator<Item = &ParamGroup> {
        self.groups.iter().map(|(g, _)| g)
    }

    fn file(&self, dir: &Path, group: &ParamGroup) -> PathBuf {
        if self.groups.len() == 1 {
            dir.join("optimiser.safetensors")
        } else {
            dir.join(format!("optimiser.{}.safetensors", group.name))
        }
    }

    /// Saves every group's moments into the folder `dir` (`optimiser.safetensors` for one
    /// group, `optimiser.<group>.safetensors` for several).
    pub fn save(&self, dir: &Path) -> Result<()> {
        for (group, opt) in &self.groups {
            AdamWFile::save(opt, &self.file(dir, group))?;
        }
        Ok(())
    }

    /// Loads what [`GroupedAdamW::save`] wrote.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let files: Vec<PathBuf> = self.groups.iter().map(|(g, _)| self.file(dir, g)).collect();
        for ((_, opt), path) in self.groups.iter_mut().zip(files) {
            AdamWFile::load(opt, &path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn each_group_moves_at_its_rate_and_unselected_variables_are_refused() -> Result<()> {
        let var = |v: f32| Var::from_tensor(&Tensor::new(&[[v, v]], &Device::Cpu)?);
        let named = vec![
            ("a.attn2.to_k.weight".to_string(), var(1.0)?),
            ("a.attn1.to_k.weight".to_string(), var(1.0)?),
            ("a.norm.bias".to_string(), var(1.0)?),
        ];
        let groups = [
            ParamGroup::new("context", 0.0, 4.0, |n, _| n.contains("attn2")),
            ParamGroup::new("rest", 0.0, 1.0, |_, _| true),
        ];
        let mut opt = GroupedAdamW::new(&named, &groups, &ParamsAdamW::default())?;
        let total = named
            .iter()
            .map(|(_, v)| v.as_tensor().sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        opt.step(&Tensor::stack(&total, 0)?.sum_all()?.backward()?, 0.01)?;
        let moved: Vec<f32> = named
            .iter()
            .map(|(_, v)| {
                Ok(1.0
                    - v.as_tensor()
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1::<f32>()?[0])
            })
            .collect::<candle_core::Result<_>>()?;
        // Adam's first step moves every parameter by its rate.
        assert!((moved[0] - 0.04).abs() < 1e-4, "{moved:?}");
        assert!(
            (moved[1] - 0.01).abs() < 1e-4 && (moved[2] - 0.01).abs() < 1e-4,
            "{moved:?}"
        );
        let e = GroupedAdamW::new(&named, &groups[..1], &ParamsAdamW::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.attn1.to_k.weight"), "{e}");
        Ok(())
    }
}
