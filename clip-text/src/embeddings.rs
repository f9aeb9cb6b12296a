//! Token plus learned absolute position embeddings: transformers' `CLIPTextEmbeddings`
//! (`inputs_embeds = token_embedding(input_ids); embeddings = inputs_embeds +
//! position_embedding(position_ids)` with `position_ids = 0..seq_len`). A `position_ids` buffer in
//! old checkpoints is not read.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::config::ClipTextConfig;

/// `text_model.embeddings`.
#[derive(Debug, Clone)]
pub struct ClipTextEmbeddings {
    token_embedding: Tensor,
    position_embedding: Tensor,
}

impl ClipTextEmbeddings {
    /// Loads `token_embedding.weight` `(vocab, d)` and `position_embedding.weight` `(77, d)`;
    /// fresh tables are `N(0, (0.02·factor)²)` as in transformers.
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02 * config.initializer_factor,
        };
        let token_embedding = vb.pp("token_embedding").get_with_hints(
            (config.vocab_size, config.hidden_size),
            "weight",
            init,
        )?;
        let position_embedding = vb.pp("position_embedding").get_with_hints(
            (config.max_position_embeddings, config.hidden_size),
            "weight",
            init,
        )?;
        Ok(Self {
            token_embedding,
            position_embedding,
        })
    }

    /// `(batch, seq)` integer ids (validated by the caller) → `(batch, seq, d)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let hidden = self.token_embedding.dim(1)?;
        let tokens = self
            .token_embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, seq, hidden))?;
        let positions = self.position_embedding.narrow(0, 0, seq)?;
        tokens.broadcast_add(&positions)
    }
}
