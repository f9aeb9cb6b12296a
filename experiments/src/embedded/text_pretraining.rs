//! Stage 2½: pre-training the text encoder on what captions say, before the joint training.
//!
//! Why: trained only jointly, the text encoder learned colour (a caption-wide fact that shifts
//! every image token the same way) but never position. At the start of joint training the
//! denoiser's cross-attention is near uniform over the 77 text states (mostly padding), so what
//! reaches an image location is the *mean* state; placing an object by position needs the
//! product of the location and a position code in that mean, and neither side gets a gradient
//! until the other is informative. This stage makes the mean informative first: a linear probe
//! on the mean of the L2-normalised states (exactly what uniform attention passes on) is trained
//! with the encoder to classify, from the caption alone, each object's colour, shape, size, row
//! and column (or "not said") and the relation. The probe is thrown away; the encoder's weights
//! start the joint training.
//!
//! The stage is short (about a minute) and is not checkpointed mid-way: it writes its result
//! atomically, and a resumed run that finds the file skips it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use clip_text::{ClipTextModel, ClipTokenizer, l2_normalise_tokens};
use rand::Rng;
use shape_world::{Colour, ObjectSpec, Relation, Scene, SceneSpec, Shape, Size};

use super::config::{EmbeddedConfig, TextPretraining};
use super::denoiser_training::{repository_tokenizer_dir, step_rng};
use super::joint_model::{JointModel, TEXT_PREFIX, new_joint_model};
use super::progress::{say, stage_bar};
use super::seeded_init::{InitRule, seeded_init};
use super::training_captions::training_spec;
use crate::variant_study::json_hash;
use vq_train::save_tensors_atomic;

/// Class counts of the probe's heads, each with a last "not said" class: per object colour,
/// shape, size, row, column; then the relation.
fn head_sizes() -> Vec<usize> {
    let object = [
        Colour::ALL.len() + 1,
        Shape::ALL.len() + 1,
        Size::ALL.len() + 1,
        4,
        4,
    ];
    let mut sizes = Vec::new();
    for _ in 0..2 {
        sizes.extend(object);
    }
    sizes.push(Relation::ALL.len() + 1);
    sizes
}

fn index_of<T: PartialEq>(all: &[T], value: Option<T>) -> u32 {
    value
        .and_then(|v| all.iter().position(|a| *a == v))
        .unwrap_or(all.len()) as u32
}

/// The probe's targets for what `spec`'s caption says (cells of a pair are not said).
pub fn caption_targets(spec: &SceneSpec) -> Vec<u32> {
    let mut out = Vec::new();
    for k in 0..2 {
        let o = spec
            .objects
            .get(k)
            .copied()
            .unwrap_or(ObjectSpec::default());
        let cell = if spec.objects.len() == 1 {
            o.cell
        } else {
            None
        };
        out.push(index_of(&Colour::ALL, o.colour));
        out.push(index_of(&Shape::ALL, o.shape));
        out.push(index_of(&Size::ALL, o.size));
        out.push(cell.map_or(3, |c| u32::from(c.row)));
        out.push(cell.map_or(3, |c| u32::from(c.col)));
    }
    out.push(index_of(&Relation::ALL, spec.relation));
    out
}

/// The mean over tokens of the L2-normalised states `(B, C)`.
fn mean_state(text: &ClipTextModel, ids: &Tensor) -> anyhow::Result<Tensor> {
    Ok(l2_normalise_tokens(&text.forward(ids)?)?.mean(1)?)
}

/// Trains `text` (whose variables are `text_vars`) with a fresh probe on captions of `scenes`;
/// returns the probe's accuracy over the last 10 % of steps on the attributes the captions say.
pub fn pretrain_text_encoder(
    text: &ClipTextModel,
    text_vars: Vec<Var>,
    width: usize,
    scenes: &[Scene],
    settings: &TextPretraining,
    partial_rate: f64,
    seed: u64,
) -> anyhow::Result<f64> {
    let tokenizer = ClipTokenizer::from_pretrained(&repository_tokenizer_dir())?;
    let probe_map = VarMap::new();
    let vb = VarBuilder::from_varmap(&probe_map, DType::F32, &Device::Cpu);
    let sizes = head_sizes();
    let total: usize = sizes.iter().sum();
    let probe = candle_nn::linear(width, total, vb.pp("probe"))?;
    // Seeded like every other variable of the recipe (candle's own initialisation draws from a
    // generator that cannot be seeded, which made this stage differ from run to run).
    let bound = 1.0 / (width as f32).sqrt();
    seeded_init(&probe_map, seed ^ 0x9E0B_E5EE, |_, _| {
        InitRule::Uniform(bound)
    })?;
    let mut vars = text_vars;
    vars.extend(probe_map.all_vars());
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: settings.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let bar = stage_bar("text", settings.steps, 0);
    let tail_start = settings.steps - settings.steps.div_ceil(10);
    let (mut right, mut seen) = (0usize, 0usize);
    for step in 0..settings.steps {
        let mut rng = step_rng(seed, step, 0x7E_C7);
        let mut captions = Vec::new();
        let mut targets = Vec::new();
        for _ in 0..settings.batch_size {
            let scene = &scenes[rng.random_range(0..scenes.len())];
            let spec = training_spec(scene, partial_rate, &mut rng);
            captions.push(spec.random_caption(&mut rng));
            targets.extend(caption_targets(&spec));
        }
        let b = settings.batch_size;
        let ids = tokenizer.encode_batch(&captions)?.to_tensor(&Device::Cpu)?;
        let logits = candle_nn::Module::forward(&probe, &mean_state(text, &ids)?)?;
        let targets = Tensor::from_vec(targets, (b, sizes.len()), &Device::Cpu)?;
        let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        let mut offset = 0;
        for (h, &n) in sizes.iter().enumerate() {
            let head = logits.narrow(1, offset, n)?.contiguous()?;
            let target = targets.narrow(1, h, 1)?.squeeze(1)?.contiguous()?;
            loss = (loss + candle_nn::loss::cross_entropy(&head, &target)?)?;
            if step >= tail_start {
                let guess = head.argmax(D::Minus1)?.to_vec1::<u32>()?;
                let truth = target.to_vec1::<u32>()?;
                // Only what the caption says counts ("not said" is trivially right).
                for (g, t) in guess.iter().zip(&truth) {
                    if (*t as usize) + 1 < n {
                        right += usize::from(g == t);
                        seen += 1;
                    }
                }
            }
            offset += n;
        }
        opt.backward_step(&loss)?;
        bar.set_position(step + 1);
        if (step + 1) % 50 == 0 {
            let value = loss.to_scalar::<f32>()?;
            bar.set_message(format!("loss {value:.3}"));
            if (step + 1) % 200 == 0 {
                say(
                    &bar,
                    &format!("[text] step {} probe loss {value:.3}", step + 1),
                );
            }
        }
    }
    bar.finish_and_clear();
    Ok(right as f64 / seen.max(1) as f64)
}

/// Runs the stage on `model`'s text encoder unless `path` already holds its result; returns
/// the pre-trained text-encoder tensors (names under [`TEXT_PREFIX`]).
pub fn load_or_pretrain(
    path: &Path,
    model: &JointModel,
    config: &EmbeddedConfig,
    settings: &TextPretraining,
    scenes: &[Scene],
) -> anyhow::Result<HashMap<String, Tensor>> {
    let lead = format!("{TEXT_PREFIX}.");
    let named: Vec<(String, Var)> = model
        .named_vars()
        .into_iter()
        .filter(|(n, _)| n.starts_with(&lead))
        .collect();
    if !path.is_file() {
        let accuracy = pretrain_text_encoder(
            &model.text,
            named.iter().map(|(_, v)| v.clone()).collect(),
            config.text.hidden_size,
            scenes,
            settings,
            config.denoiser.partial_caption_rate,
            config.seed,
        )?;
        eprintln!(
            "[text] pre-trained {} steps; probe reads {:.1} % of the stated attributes (last 10 % of steps)",
            settings.steps,
            100.0 * accuracy
        );
        let tensors: HashMap<String, Tensor> = named
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect::<candle_core::Result<_>>()?;
        save_tensors_atomic(path, &tensors)?;
    }
    Ok(candle_core::safetensors::load(path, &Device::Cpu)?)
}

/// The text-encoder tensors a fresh joint training of `config` starts from: `None` when the
/// recipe has no pre-training or when `checkpoint` exists (a resume); else the result of
/// [`load_or_pretrain`] on a freshly initialised model, kept in
/// `dir/text_pretraining-<hash>.safetensors`. The hash covers everything the result depends on
/// (seed, text-encoder config, stage settings, caption settings, number of scenes), so the
/// variants of a study, which differ only in the denoiser, share one pre-training.
pub fn initial_text_encoder(
    config: &EmbeddedConfig,
    dir: &Path,
    scenes: &[Scene],
    checkpoint: &Path,
) -> anyhow::Result<Option<HashMap<String, Tensor>>> {
    match &config.text_pretraining {
        Some(settings) if settings.steps > 0 && !checkpoint.exists() => {
            let fresh = new_joint_model(config)?;
            let key = json_hash(&(
                config.seed,
                &config.text,
                settings,
                config.denoiser.partial_caption_rate,
                scenes.len(),
            ))?;
            Ok(Some(load_or_pretrain(
                &dir.join(format!("text_pretraining-{key:016x}.safetensors")),
                &fresh,
                config,
                settings,
                scenes,
            )?))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shape_world::{Split, World};

    #[test]
    fn targets_say_what_the_caption_says() {
        let world = World::default();
        let single = (0..)
            .map(|i| world.example(Split::Train, i))
            .find(|e| e.scene.objects.len() == 1)
            .unwrap();
        let spec = SceneSpec::from(&single.scene);
        let t = caption_targets(&spec);
        assert_eq!(t.len(), head_sizes().len());
        let o = single.scene.objects[0];
        assert_eq!(t[3], u32::from(o.cell.row));
        // The second object and the relation are "not said".
        assert_eq!(t[5], Colour::ALL.len() as u32);
        assert_eq!(t[10], Relation::ALL.len() as u32);
        let pair = (0..)
            .map(|i| world.example(Split::Train, i))
            .find(|e| e.scene.objects.len() == 2)
            .unwrap();
        let t = caption_targets(&SceneSpec::from(&pair.scene));
        assert_eq!(
            (t[3], t[4], t[8], t[9]),
            (3, 3, 3, 3),
            "pair cells are not said"
        );
        assert!(t[10] < Relation::ALL.len() as u32);
        for (v, n) in t.iter().zip(head_sizes()) {
            assert!((*v as usize) < n);
        }
    }

    #[test]
    fn the_stage_is_the_same_every_run() {
        // Two fresh runs of a few steps give the same text encoder, bit for bit.
        let config = EmbeddedConfig::quick();
        let world = World::default();
        let scenes: Vec<Scene> = (0..16)
            .map(|i| world.example(Split::Train, i).scene)
            .collect();
        let settings = TextPretraining {
            steps: 3,
            batch_size: 4,
            learning_rate: 1e-3,
        };
        let run = || {
            let model = new_joint_model(&config).unwrap();
            let lead = format!("{TEXT_PREFIX}.");
            let vars: Vec<Var> = model
                .named_vars()
                .into_iter()
                .filter(|(n, _)| n.starts_with(&lead))
                .map(|(_, v)| v)
                .collect();
            pretrain_text_encoder(
                &model.text,
                vars.clone(),
                config.text.hidden_size,
                &scenes,
                &settings,
                0.0,
                config.seed,
            )
            .unwrap();
            vars.iter()
                .flat_map(|v| {
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                })
                .collect::<Vec<f32>>()
        };
        assert_eq!(run(), run());
    }
}
