//! The embedded recipe's initialisation rules ([`embedded_init_rule`]) for `vq-train`'s
//! [`seeded_init`] (which overwrites every variable from one seeded generator, candle's own
//! being unseedable).

use clip_text::ClipTextConfig;
pub use vq_train::{InitRule, seeded_init};

/// Whether `name` is a weight that projects the text states inside cross-attention.
pub fn is_context_projection(name: &str) -> bool {
    name.ends_with("attn2.to_k.weight") || name.ends_with("attn2.to_v.weight")
}

/// The initialisation of the embedded model's variables, by prefix:
///
/// * `text_encoder.*` — transformers' `CLIPPreTrainedModel._init_weights`: embeddings
///   `N(0, 0.02²)`; `q/k/v_proj` and `fc2` `N(0, (d^-½ (2L)^-½)²)`; `out_proj` `N(0, d^-1)`;
///   `fc1` `N(0, 1/(2d))`; LayerNorms 1/0; biases 0.
/// * `transformer.*` — diffusers/PyTorch defaults: the token, row, column and AdaLN timestep
///   tables `N(0, 1)`; linear weights `U(±1/√fan_in)`; norm weights 1; biases 0.
/// * `null.embeddings` — `N(0, 1/C)`, so each row has about unit norm like the L2-normalised
///   text states it stands in for.
/// * the cross-attention projections of the text states (`attn2.to_k`, `attn2.to_v` weights) —
///   the PyTorch default times `context_scale` (see `DenoiserStage::context_projection_scale`).
pub fn embedded_init_rule(
    text: &ClipTextConfig,
    context_scale: f64,
) -> impl Fn(&str, &[usize]) -> InitRule + '_ {
    move |name: &str, dims: &[usize]| {
        let d = text.hidden_size as f32;
        let layers = text.num_hidden_layers.max(1) as f32;
        if name.ends_with(".bias") {
            return InitRule::Const(0.0);
        }
        if dims.len() == 1 {
            return InitRule::Const(1.0);
        }
        if name.starts_with("null.") {
            return InitRule::Normal(1.0 / (dims[1] as f32).sqrt());
        }
        if name.starts_with("text_encoder.") {
            let in_std = d.powf(-0.5) * (2.0 * layers).powf(-0.5);
            return if name.contains("embedding") {
                InitRule::Normal(0.02)
            } else if name.contains("out_proj") {
                InitRule::Normal(d.powf(-0.5))
            } else if name.contains("fc1") {
                InitRule::Normal((2.0 * d).powf(-0.5))
            } else {
                InitRule::Normal(in_std)
            };
        }
        if name.contains("emb.weight") {
            return InitRule::Normal(1.0);
        }
        let bound = 1.0 / (dims[1].max(1) as f32).sqrt();
        if is_context_projection(name) {
            return InitRule::Uniform(bound * context_scale as f32);
        }
        InitRule::Uniform(bound)
    }
}
