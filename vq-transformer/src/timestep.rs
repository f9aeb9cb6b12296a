//! `Timestep`: the diffusion step a forward pass is conditioned on — one shared by the batch
//! (diffusers' only supported form) or one per sample.

/// Timestep(s) of a forward pass, 0-based (`0..num_embeds_ada_norm`).
///
/// `PerSample(ts)` needs `ts.len() == B`; sample `b` is then conditioned on `ts[b]` exactly as
/// if it had been run alone with `Shared(ts[b])` (the original VQ-Diffusion semantics;
/// diffusers' `AdaLayerNorm` mis-chunks a `(B,)` timestep, reference §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestep {
    /// One timestep for every sample.
    Shared(usize),
    /// One timestep per sample.
    PerSample(Vec<usize>),
}

impl Timestep {
    /// The timesteps as a slice (length 1 when shared).
    pub fn as_slice(&self) -> &[usize] {
        match self {
            Timestep::Shared(t) => std::slice::from_ref(t),
            Timestep::PerSample(ts) => ts,
        }
    }

    /// Repeats per-sample timesteps `times` times along the batch (the guided batch
    /// `[uncond; cond]`); a shared timestep is returned unchanged.
    pub fn repeat_batch(&self, times: usize) -> Self {
        match self {
            Timestep::Shared(t) => Timestep::Shared(*t),
            Timestep::PerSample(ts) => Timestep::PerSample(ts.repeat(times)),
        }
    }
}

impl From<usize> for Timestep {
    fn from(t: usize) -> Self {
        Timestep::Shared(t)
    }
}

impl From<Vec<usize>> for Timestep {
    fn from(ts: Vec<usize>) -> Self {
        Timestep::PerSample(ts)
    }
}

impl From<&[usize]> for Timestep {
    fn from(ts: &[usize]) -> Self {
        Timestep::PerSample(ts.to_vec())
    }
}

impl From<&Timestep> for Timestep {
    fn from(t: &Timestep) -> Self {
        t.clone()
    }
}
