//! The autoregressive baseline of VQ-Diffusion's speed comparison (paper §4.3, Table 3 "VQ-AR"):
//! a decoder-only transformer over the same VQ-VAE tokens, in raster order, conditioned on the
//! same kind of text states by cross-attention — the denoiser's blocks (vq-transformer's
//! `Attention`, `FeedForward`, `LayerNorm`) with a causal self-attention mask instead of the
//! timestep-modulated norms, and a `[BOS]` token instead of `[MASK]`.
//!
//! `log p(x) = Σ_i log p(x_i | x_<i, y)`; sampling takes one network call per token.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use vq_nn::{LayerNorm, Linear};
use vq_transformer::{Activation, Attention, FeedForward, KeyValue};

/// Architecture of the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArConfig {
    /// Codebook size `K` (the model also embeds `[BOS]` = `K`).
    pub num_classes: usize,
    /// Tokens per image `N`.
    pub num_tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Blocks.
    pub layers: usize,
    /// Width of the text states.
    pub context_dim: usize,
}

impl ArConfig {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

struct ArBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl ArBlock {
    fn new(c: &ArConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = c.width();
        let map = |e: vq_transformer::Error| candle_core::Error::Msg(e.to_string());
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), w, 1e-5, true)
                .map_err(vq_nn::Error::into_candle)?,
            attn1: Attention::new(
                vb.pp("attn1"),
                w,
                w,
                c.heads,
                c.head_dim,
                true,
                true,
                0.0,
                false,
            )
            .map_err(map)?,
            norm2: LayerNorm::new(vb.pp("norm2"), w, 1e-5, true)
                .map_err(vq_nn::Error::into_candle)?,
            attn2: Attention::new(
                vb.pp("attn2"),
                w,
                c.context_dim,
                c.heads,
                c.head_dim,
                true,
                true,
                0.0,
                false,
            )
            .map_err(map)?,
            norm3: LayerNorm::new(vb.pp("norm3"), w, 1e-5, true)
                .map_err(vq_nn::Error::into_candle)?,
            ff: FeedForward::new(vb.pp("ff"), w, 4 * w, Activation::Geglu, 0.0).map_err(map)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        text: &KeyValue,
        mask: &Tensor,
        train: bool,
    ) -> vq_transformer::Result<Tensor> {
        let h = self.norm1.forward_t(x, train)?;
        let kv = self.attn1.key_value(&h)?;
        let x = (x + self.attn1.forward_kv_masked(&h, &kv, Some(mask), train)?)?;
        let h = self.norm2.forward_t(&x, train)?;
        let x = (&x + self.attn2.forward_kv(&h, text, train)?)?;
        let h = self.norm3.forward_t(&x, train)?;
        Ok((&x + self.ff.forward(&h, train)?)?)
    }
}

/// The autoregressive transformer (keys: `token_emb`, `pos_emb`, `blocks.{i}.*`, `norm_out`,
/// `head`).
pub struct ArTransformer {
    config: ArConfig,
    token_emb: Tensor,
    pos_emb: Tensor,
    blocks: Vec<ArBlock>,
    norm_out: LayerNorm,
    head: Linear,
}

impl ArTransformer {
    /// Builds (or loads) the model under `vb`.
    pub fn new(config: &ArConfig, vb: VarBuilder) -> anyhow::Result<Self> {
        let w = config.width();
        let normal = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let blocks = (0..config.layers)
            .map(|i| ArBlock::new(config, vb.pp("blocks").pp(i.to_string())))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            token_emb: vb.get_with_hints((config.num_classes + 1, w), "token_emb", normal)?,
            pos_emb: vb.get_with_hints((config.num_tokens, w), "pos_emb", normal)?,
            blocks,
            norm_out: LayerNorm::new(vb.pp("norm_out"), w, 1e-5, true)?,
            head: Linear::new(vb.pp("head"), w, config.num_classes, true)?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ArConfig {
        &self.config
    }

    /// Log-probabilities `(B, L, K)` of the next token after each prefix position, for inputs
    /// `(B, L)` (`[BOS]`, x_0, …, x_{L-2}) and text states `(B, 77, C)`.
    pub fn forward(&self, inputs: &Tensor, text: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        let (b, l) = inputs.dims2()?;
        anyhow::ensure!(
            l <= self.config.num_tokens,
            "{l} input positions, the model has {}",
            self.config.num_tokens
        );
        let emb = self
            .token_emb
            .index_select(&inputs.flatten_all()?.to_dtype(DType::U32)?, 0)?
            .reshape((b, l, ()))?;
        let mut x = emb.broadcast_add(&self.pos_emb.narrow(0, 0, l)?.unsqueeze(0)?)?;
        let mask = causal_mask(l, inputs.device())?;
        for block in &self.blocks {
            let kv = block.attn2.key_value(text)?;
            x = block.forward(&x, &kv, &mask, train)?;
        }
        let h = self.norm_out.forward_t(&x, train)?;
        let logits = h.apply(&self.head)?;
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
    }

    /// `(B, N)` tokens → `(B, N)` inputs: `[BOS]` followed by all but the last token.
    pub fn shift_right(&self, tokens: &Tensor) -> anyhow::Result<Tensor> {
        let (b, n) = tokens.dims2()?;
        let bos = Tensor::full(self.config.num_classes as u32, (b, 1), tokens.device())?;
        Ok(Tensor::cat(
            &[&bos, &tokens.to_dtype(DType::U32)?.narrow(1, 0, n - 1)?],
            1,
        )?)
    }

    /// `−log p(x | y)` per sequence `(B,)` in nats.
    pub fn nll(&self, tokens: &Tensor, text: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        let log_p = self.forward(&self.shift_right(tokens)?, text, train)?;
        let picked = log_p.gather(
            &tokens.to_dtype(DType::U32)?.unsqueeze(D::Minus1)?,
            D::Minus1,
        )?;
        Ok(picked.squeeze(D::Minus1)?.sum(1)?.neg()?)
    }
}

/// `(L, L)` additive mask: 0 on and below the diagonal, `-inf` above.
pub fn causal_mask(l: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..l * l)
        .map(|i| {
            if i % l > i / l {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(values, (l, l), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    #[test]
    fn predictions_depend_only_on_earlier_tokens() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config = ArConfig {
            num_classes: 7,
            num_tokens: 5,
            heads: 2,
            head_dim: 4,
            layers: 2,
            context_dim: 6,
        };
        let model = ArTransformer::new(&config, vb).unwrap();
        let text = Tensor::randn(0f32, 1.0, (1, 3, 6), &Device::Cpu).unwrap();
        let a = Tensor::new(&[[7u32, 1, 2, 3, 4]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[7u32, 1, 2, 6, 0]], &Device::Cpu).unwrap();
        let pa = model.forward(&a, &text, false).unwrap();
        let pb = model.forward(&b, &text, false).unwrap();
        // Positions 0..=2 see only [BOS, 1, 2]: identical; position 3 sees the changed token.
        let diff = (pa - pb).unwrap().abs().unwrap().max(2).unwrap();
        let diff: Vec<f32> = diff.squeeze(0).unwrap().to_vec1().unwrap();
        assert!(diff[..3].iter().all(|&d| d < 1e-5), "{diff:?}");
        assert!(diff[3] > 1e-4, "{diff:?}");
        // Rows are distributions.
        let total = pa_sum(&model, &a, &text);
        assert!(total.iter().all(|&t| (t - 1.0).abs() < 1e-4), "{total:?}");
    }

    fn pa_sum(model: &ArTransformer, x: &Tensor, text: &Tensor) -> Vec<f32> {
        let p = model.forward(x, text, false).unwrap().exp().unwrap();
        p.sum(2).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }
}
