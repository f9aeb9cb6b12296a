//! Unit tests: configuration rules, per-sample timesteps, guidance batching, training
//! (gradients reach every parameter, dropout only in training mode), the `Denoiser` trait.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use discrete_diffusion::Denoiser;

use crate::*;

fn tiny_config(dropout: f64) -> Transformer2DConfig {
    Transformer2DConfig::from_json_str(&format!(
        r#"{{"_class_name": "Transformer2DModel", "activation_fn": "geglu-approximate",
        "attention_bias": true, "attention_head_dim": 4, "cross_attention_dim": 6,
        "dropout": {dropout}, "num_attention_heads": 2, "num_embeds_ada_norm": 5,
        "num_layers": 2, "num_vector_embeds": 9, "sample_size": 3}}"#
    ))
    .unwrap()
}

fn tiny_model(dropout: f64) -> (VarMap, Transformer2DModel) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Transformer2DModel::new(vb, &tiny_config(dropout)).unwrap();
    (varmap, model)
}

fn inputs(batch: usize) -> (Tensor, Tensor) {
    let ids: Vec<u32> = (0..batch * 9).map(|i| (i * 5 % 9) as u32).collect();
    let x = Tensor::from_vec(ids, (batch, 9), &Device::Cpu).unwrap();
    let states = Tensor::randn(0f32, 1.0, (batch, 7, 6), &Device::Cpu).unwrap();
    (x, states)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn ithq_config_switches_to_ada_norm() {
    // The hub config (docs/reference-behaviour.md §5.3): no norm_type, num_embeds_ada_norm set.
    let cfg = Transformer2DConfig::from_json_str(
        r#"{"_class_name": "Transformer2DModel", "_diffusers_version": "0.8.0",
        "activation_fn": "geglu-approximate", "attention_bias": true, "attention_head_dim": 88,
        "cross_attention_dim": 512, "dropout": 0.0, "in_channels": null, "norm_num_groups": 32,
        "num_attention_heads": 16, "num_embeds_ada_norm": 100, "num_layers": 36,
        "num_vector_embeds": 4097, "sample_size": 32}"#,
    )
    .unwrap();
    assert_eq!(cfg.effective_norm_type().unwrap(), NormType::AdaNorm);
    assert_eq!(cfg.activation().unwrap(), Activation::ApproximateGelu);
    assert_eq!(
        (cfg.inner_dim(), cfg.num_classes(), cfg.num_latent_pixels()),
        (1408, 4096, 1024)
    );
    assert_eq!(cfg, Transformer2DConfig::ithq(36));
    let plain = Transformer2DConfig {
        num_embeds_ada_norm: None,
        ..cfg
    };
    assert_eq!(plain.effective_norm_type().unwrap(), NormType::LayerNorm);
}

#[test]
fn continuous_and_patched_configs_are_refused() {
    for (json, needle) in [
        (
            r#"{"in_channels": 4, "sample_size": 32, "num_layers": 1}"#,
            "continuous",
        ),
        (
            r#"{"in_channels": 4, "patch_size": 2, "sample_size": 32}"#,
            "patched",
        ),
        (r#"{"sample_size": 32}"#, "num_vector_embeds"),
        (
            r#"{"num_vector_embeds": 9, "sample_size": 3, "norm_type": "ada_norm_zero", "num_embeds_ada_norm": 5}"#,
            "norm_type",
        ),
        (
            r#"{"num_vector_embeds": 9, "sample_size": 3, "activation_fn": "swiglu"}"#,
            "activation_fn",
        ),
    ] {
        let err = Transformer2DConfig::from_json_str(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{json}: {err}");
    }
}

#[test]
fn parameter_names_match_diffusers() {
    let (varmap, _) = tiny_model(0.0);
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for want in [
        "latent_image_embedding.emb.weight",
        "latent_image_embedding.height_emb.weight",
        "latent_image_embedding.width_emb.weight",
        "transformer_blocks.1.norm1.emb.weight",
        "transformer_blocks.1.norm1.linear.weight",
        "transformer_blocks.0.attn1.to_q.weight",
        "transformer_blocks.0.attn1.to_out.0.bias",
        "transformer_blocks.0.norm2.linear.bias",
        "transformer_blocks.0.attn2.to_k.weight",
        "transformer_blocks.0.norm3.weight",
        "transformer_blocks.0.ff.net.0.proj.weight",
        "transformer_blocks.0.ff.net.2.bias",
        "norm_out.weight",
        "out.bias",
    ] {
        assert!(data.contains_key(want), "{want} missing from {names:?}");
    }
    // 3 embeddings + 2 blocks × (2 AdaLN × 3 + 2 attn × 8 + norm3 2 + ff 4) + head 4.
    assert_eq!(data.len(), 3 + 2 * (6 + 16 + 2 + 4) + 4);
    assert_eq!(data["out.weight"].dims(), &[8, 8]);
    assert_eq!(
        data["transformer_blocks.0.attn2.to_v.weight"].dims(),
        &[8, 6]
    );
}

#[test]
fn per_sample_timesteps_equal_separate_runs() {
    let (_vm, model) = tiny_model(0.0);
    let (x, states) = inputs(2);
    let joint = model.forward(&x, vec![1, 4], &states).unwrap();
    for (b, t) in [(0, 1), (1, 4)] {
        let alone = model
            .forward(
                &x.narrow(0, b, 1).unwrap(),
                t,
                &states.narrow(0, b, 1).unwrap(),
            )
            .unwrap();
        let d = max_diff(&joint.narrow(0, b, 1).unwrap(), &alone);
        assert!(d < 1e-5, "sample {b}: {d}");
    }
    // A shared timestep equals the same timestep repeated per sample.
    let shared = model.forward(&x, 3, &states).unwrap();
    let repeated = model.forward(&x, vec![3, 3], &states).unwrap();
    assert!(max_diff(&shared, &repeated) < 1e-5);
}

#[test]
fn output_is_normalised_log_probs_without_mask_row() {
    let (_vm, model) = tiny_model(0.0);
    let (x, states) = inputs(2);
    let out = model.forward(&x, 0, &states).unwrap();
    assert_eq!(out.dims(), &[2, 8, 9]);
    assert_eq!(out.dtype(), DType::F32);
    let total = out.exp().unwrap().sum(1).unwrap();
    let ones = Tensor::ones((2, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(max_diff(&total, &ones) < 1e-5);
}

#[test]
fn bad_inputs_are_reported() {
    let (_vm, model) = tiny_model(0.0);
    let (x, states) = inputs(2);
    let err = model.forward(&x, 5, &states).unwrap_err();
    assert!(
        matches!(err, Error::TimestepOutOfRange { t: 5, rows: 5 }),
        "{err}"
    );
    let err = model.forward(&x, vec![1, 2, 3], &states).unwrap_err();
    assert!(matches!(err, Error::TimestepCount { .. }), "{err}");
    let bad = Tensor::new(&[[9u32; 9]], &Device::Cpu).unwrap();
    let err = model
        .forward(&bad, 0, &states.narrow(0, 0, 1).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenOutOfRange { id: 9, limit: 9 }),
        "{err}"
    );
    let err = model
        .forward(
            &x,
            0,
            &Tensor::zeros((2, 7, 5), DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn guidance_runs_both_halves_in_one_batch() {
    let (_vm, model) = tiny_model(0.0);
    let (x, cond) = inputs(2);
    let uncond = Tensor::randn(0f32, 1.0, (2, 7, 6), &Device::Cpu).unwrap();
    let both = Tensor::cat(&[&uncond, &cond], 0).unwrap();
    let context = model.prepare_context(&both).unwrap();
    let guided = model.guided_log_p_x0(&x, 2, &context, 4.0).unwrap();
    let u = model.forward(&x, 2, &uncond).unwrap();
    let c = model.forward(&x, 2, &cond).unwrap();
    let want = discrete_diffusion::classifier_free_guidance(&u, &c, 4.0).unwrap();
    // Random (unseeded) weights give log-probs down to ~-100: compare relative to that.
    let tol = 1e-6
        * (1.0
            + want
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap());
    let d = max_diff(&guided, &want);
    assert!(d < 10.0 * tol, "guided vs separate passes: {d}");
    // Scale 1 = the conditional prediction.
    let plain = model.guided_log_p_x0(&x, 2, &context, 1.0).unwrap();
    assert!(max_diff(&plain, &c) < 1e-6);
    // Through the Denoiser trait.
    let g = Guided {
        context: context.clone(),
        scale: 4.0,
    };
    let via_trait = model.log_p_x0(&x, 2, &g).unwrap();
    assert!(max_diff(&via_trait, &want) < 10.0 * tol);
    let via_states = Denoiser::<Tensor>::log_p_x0(&model, &x, 2, &cond).unwrap();
    assert!(max_diff(&via_states, &c) < 1e-6);
    // Batch mismatch is an error.
    assert!(
        model
            .guided_log_p_x0(&x, 2, &model.prepare_context(&cond).unwrap(), 4.0)
            .is_err()
    );
}

/// Every variable of `varmap` gets a finite, non-zero gradient from `loss`.
fn assert_every_variable_has_a_gradient(varmap: &VarMap, loss: &Tensor) {
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
        let var: &Var = var;
        let norm = grads
            .get(var.as_tensor())
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0);
        if !(norm > 0.0 && norm.is_finite()) {
            missing.push(name.clone());
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

/// Negative log-likelihood of fixed targets under `logp` `(B, 8, 9)`.
fn nll(logp: &Tensor) -> Tensor {
    let b = logp.dim(0).unwrap();
    let targets: Vec<u32> = (0..b * 9).map(|i| (i * 3 % 8) as u32).collect();
    let targets = Tensor::from_vec(targets, (b, 1, 9), &Device::Cpu).unwrap();
    logp.gather(&targets, 1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap()
}

/// A tiny class-conditional (`labels > 0`) or unconditional (`labels = 0`) model: 8 codes
/// (+ mask), a 3×3 grid, 5 timesteps.
fn tiny_class_model(labels: usize, learned_null: bool) -> (VarMap, Condition2ImageTransformer) {
    let config = Condition2ImageConfig {
        num_layers: 2,
        width: 8,
        num_attention_heads: 2,
        num_vector_embeds: 9,
        num_embeds_ada_norm: 5,
        num_labels: labels,
        class_table_rows: labels + usize::from(learned_null && labels > 0),
        position_table: [3, 3],
        sample_size: 3,
        mlp_hidden_times: 2,
        norm_eps: 1e-5,
        unknown: Default::default(),
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Condition2ImageTransformer::new(vb, &config).unwrap();
    (varmap, model)
}

#[test]
fn class_and_unconditional_models_train_every_parameter() {
    let (x, _) = inputs(3);
    for (labels, learned, batch_labels) in [
        (4, true, vec![0, 3, 4]),
        (4, false, vec![1, 4, 2]),
        (0, false, vec![0, 0, 0]),
    ] {
        let (varmap, model) = tiny_class_model(labels, learned);
        let t = discrete_diffusion::Timesteps::PerSample(vec![0, 2, 4]);
        let train = model.forward_t(&x, t.clone(), &batch_labels, true).unwrap();
        let infer = model.forward_t(&x, t, &batch_labels, false).unwrap();
        assert!(max_diff(&train, &infer) < 1e-5, "labels {labels}");
        if learned || labels == 0 {
            assert_every_variable_has_a_gradient(&varmap, &nll(&train));
        }
    }
}

#[test]
fn an_unconditional_model_has_a_plain_second_norm_and_no_guidance() {
    let (varmap, model) = tiny_class_model(0, false);
    let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    assert!(
        names.iter().any(|n| n == "blocks.0.ln2.weight"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("blocks.0.ln2.emb")));
    let (x, _) = inputs(2);
    let e = model.forward(&x, 1, &[0, 1]).unwrap_err().to_string();
    assert!(e.contains("unconditional model"), "{e}");
    let guided = ClassCondition {
        labels: vec![0, 0],
        scale: 2.0,
    };
    let e = model.log_p_x0(&x, 1, &guided).unwrap_err().to_string();
    assert!(e.contains("no condition to guide by"), "{e}");
    let plain = ClassCondition {
        labels: vec![0, 0],
        scale: 1.0,
    };
    assert_eq!(model.log_p_x0(&x, 1, &plain).unwrap().dims(), [2, 8, 9]);
}

#[test]
fn every_parameter_receives_a_gradient() {
    let (varmap, model) = tiny_model(0.1);
    let (x, states) = inputs(2);
    let ctx = model.uncached_context(&states).unwrap();
    let logp = model.forward_t(&x, vec![0, 3], Some(&ctx), true).unwrap();
    let loss = nll(&logp);
    assert_every_variable_has_a_gradient(&varmap, &loss);
}

#[test]
fn dropout_only_in_training_mode() {
    let (_vm, model) = tiny_model(0.5);
    let (x, states) = inputs(2);
    let ctx = model.prepare_context(&states).unwrap();
    let a = model.forward_t(&x, 1, Some(&ctx), false).unwrap();
    let b = model.forward_t(&x, 1, Some(&ctx), false).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    let c = model.forward_t(&x, 1, Some(&ctx), true).unwrap();
    assert!(
        max_diff(&a, &c) > 1e-4,
        "training mode should drop activations"
    );
}

#[test]
fn inference_kernels_match_training_path() {
    // Same weights, dropout 0: the fused (inference) and composite (training) paths agree.
    let (_vm, model) = tiny_model(0.0);
    let (x, states) = inputs(2);
    let ctx = model.uncached_context(&states).unwrap();
    let a = model.forward_t(&x, 2, Some(&ctx), false).unwrap();
    let b = model.forward_t(&x, 2, Some(&ctx), true).unwrap();
    assert!(max_diff(&a, &b) < 1e-5);
}
