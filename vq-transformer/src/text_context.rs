//! `TextContext`: the text conditioning of a generation — the encoder states and, when
//! cached, the cross-attention keys/values of every block (they depend only on the prompt,
//! so they are computed once and reused at every denoising step).

use candle_core::Tensor;

use crate::Result;
use crate::attention::KeyValue;

/// Encoder states `(B, L, C)` plus optional per-block cached keys/values.
#[derive(Debug, Clone)]
pub struct TextContext {
    states: Tensor,
    kv: Option<Vec<Option<KeyValue>>>,
}

impl TextContext {
    pub(crate) fn new(states: Tensor, kv: Option<Vec<Option<KeyValue>>>) -> Self {
        Self { states, kv }
    }

    /// Batch size of the states.
    pub fn batch(&self) -> usize {
        self.states.dim(0).unwrap_or(0)
    }

    /// The encoder states (in the model's compute dtype).
    pub fn states(&self) -> &Tensor {
        &self.states
    }

    /// Whether keys/values are cached.
    pub fn is_cached(&self) -> bool {
        self.kv.is_some()
    }

    /// Cached keys/values of block `i`.
    pub fn cached(&self, i: usize) -> Option<&KeyValue> {
        self.kv
            .as_ref()
            .and_then(|kv| kv.get(i))
            .and_then(|kv| kv.as_ref())
    }

    /// Samples `start..start + len` of the batch (cache included).
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        let kv = match &self.kv {
            None => None,
            Some(kv) => Some(
                kv.iter()
                    .map(|kv| kv.as_ref().map(|kv| kv.narrow(start, len)).transpose())
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        Ok(Self {
            states: self.states.narrow(0, start, len)?,
            kv,
        })
    }
}
