//! Evaluation of an exported embedded model through the real pipeline (default sampler and
//! guidance), scored by shape-world's oracle: faithfulness on held-out-seed prompts (single- and
//! two-object), on the compositional held-out split, diversity for the under-specified prompt
//! "a circle", and our FID (shape-world's `FeatureNet`) of generated images and of VQ-VAE
//! reconstructions against the real images of the same prompts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use shape_world::{
    Attribute, FaithfulnessReport, FeatureNet, Histogram, SceneSpec, Shape, Split, World, analyse,
    judge,
};
use vq_codebook::VqModel;
use vq_pipeline::{LoadOptions, VqDiffusionPipeline};

use super::vq_stage::reconstruct;
use crate::sampler_study::generate_set;
use vq_train::{write_atomic, write_json_atomic};

/// How much to evaluate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Single-object prompts (test split).
    pub single: usize,
    /// Two-object prompts (test split).
    pub pair: usize,
    /// Prompts from the compositional held-out split.
    pub held_out: usize,
    /// Images for "a circle".
    pub diversity: usize,
    /// Prompts per generation batch.
    pub batch: usize,
    /// Noise seed of the first batch (batch `i` uses `seed + i`).
    pub seed: u64,
    /// Evaluate the model with its transformer's projections in 8 bits
    /// (`LoadOptions::int8_transformer`).
    #[serde(default)]
    pub int8: bool,
}

/// Faithfulness rates of one prompt set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Faithfulness {
    /// Images scored.
    pub images: usize,
    /// All scored attributes correct.
    pub all_correct: f64,
    /// attribute → rate.
    pub per_attribute: BTreeMap<String, f64>,
}

impl From<&FaithfulnessReport> for Faithfulness {
    fn from(r: &FaithfulnessReport) -> Self {
        Self {
            images: r.images,
            all_correct: r.all_correct_rate(),
            per_attribute: r
                .per_attribute
                .keys()
                .map(|k| (k.clone(), r.rate(k).unwrap_or(0.0)))
                .collect(),
        }
    }
}

/// Diversity of one attribute for "a circle".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diversity {
    /// Histogram of the generated images.
    pub generated: Histogram,
    /// Histogram of real single-circle training images.
    pub data: Histogram,
    /// Total-variation distance between them.
    pub total_variation: f64,
    /// Normalised entropy of the generated histogram.
    pub entropy: f64,
    /// Normalised entropy of the data histogram.
    pub data_entropy: f64,
}

/// Every metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// The settings.
    pub settings: EvalSettings,
    /// Single-object test prompts.
    pub single: Faithfulness,
    /// Two-object test prompts.
    pub pair: Faithfulness,
    /// Compositional held-out prompts (one- and two-object).
    pub held_out: Faithfulness,
    /// "a circle": colour and position.
    pub diversity: BTreeMap<String, Diversity>,
    /// Our FID, generated (single + pair test prompts) vs the real images of those prompts.
    pub fid_generated: f64,
    /// Our FID, VQ-VAE reconstructions of those real images vs the real images.
    pub fid_reconstructed: f64,
    /// Wall time per generated image (s), batched.
    pub seconds_per_image: f64,
    /// The guidance scale used (the model's recommendation, else diffusers' 5).
    #[serde(default)]
    pub guidance_scale: f64,
}

/// Generates one image per prompt with the pipeline's defaults, in batches.
pub fn generate_all(
    pipeline: &VqDiffusionPipeline,
    prompts: &[String],
    batch: usize,
    seed: u64,
) -> anyhow::Result<Vec<RgbImage>> {
    let defaults = pipeline.default_options(Vec::<String>::new());
    Ok(generate_set(pipeline, &defaults, prompts, batch, seed)?.0)
}

fn score(specs: &[SceneSpec], images: &[RgbImage]) -> Faithfulness {
    let mut report = FaithfulnessReport::default();
    for (spec, image) in specs.iter().zip(images) {
        report.add(&judge(spec, &analyse(image)));
    }
    Faithfulness::from(&report)
}

/// The first `n` examples of `split` with `objects` objects (any count if `None`).
fn scenes(
    world: &World,
    split: Split,
    objects: Option<usize>,
    n: usize,
) -> Vec<shape_world::Example> {
    (0..)
        .map(|i| world.example(split, i))
        .filter(|e| objects.is_none_or(|k| e.scene.objects.len() == k))
        .take(n)
        .collect()
}

fn prompts_of(examples: &[shape_world::Example]) -> (Vec<SceneSpec>, Vec<String>) {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let spec = SceneSpec::captioned(&e.scene);
            let caption = spec.caption(i);
            (spec, caption)
        })
        .unzip()
}

/// Writes the first 16 `images` as a contact sheet `<name>.png` (4× nearest upscaling, 8
/// columns) and their prompts, row-major, as `<name>.txt` into `dir`.
pub fn write_samples(
    dir: &Path,
    name: &str,
    prompts: &[String],
    images: &[RgbImage],
) -> anyhow::Result<()> {
    let n = images.len().min(16);
    if n == 0 {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let big: Vec<RgbImage> = images[..n]
        .iter()
        .map(|i| {
            image::imageops::resize(
                i,
                4 * i.width(),
                4 * i.height(),
                image::imageops::FilterType::Nearest,
            )
        })
        .collect();
    vq_pipeline::contact_sheet(&big, 8).save(dir.join(format!("{name}.png")))?;
    Ok(write_atomic(
        &dir.join(format!("{name}.txt")),
        (prompts[..n].join("\n") + "\n").as_bytes(),
    )?)
}

/// Runs every evaluation on the pipeline folder `model_dir`; with `samples` set, contact sheets
/// of the first generations of each prompt set are written there ([`write_samples`]).
pub fn evaluate_model(
    model_dir: &Path,
    settings: &EvalSettings,
    samples: Option<&Path>,
) -> anyhow::Result<EvalReport> {
    let load = LoadOptions {
        int8_transformer: settings.int8,
        ..LoadOptions::default()
    };
    let pipeline = VqDiffusionPipeline::from_pretrained(model_dir, load)?;
    let world = World::default();
    let mut generated = 0usize;
    let start = Instant::now();
    let mut run = |examples: &[shape_world::Example], seed: u64, name: &str| -> anyhow::Result<_> {
        let (specs, prompts) = prompts_of(examples);
        let images = generate_all(&pipeline, &prompts, settings.batch, seed)?;
        generated += images.len();
        if let Some(dir) = samples {
            write_samples(dir, name, &prompts, &images)?;
        }
        Ok((score(&specs, &images), images))
    };
    let single_ex = scenes(&world, Split::Test, Some(1), settings.single);
    let pair_ex = scenes(&world, Split::Test, Some(2), settings.pair);
    let held_ex = scenes(&world, Split::HeldOut, None, settings.held_out);
    let (single, single_images) = run(&single_ex, settings.seed, "single")?;
    let (pair, pair_images) = run(&pair_ex, settings.seed + 1000, "pair")?;
    let (held_out, _) = run(&held_ex, settings.seed + 2000, "held_out")?;

    let circle_prompts = vec!["a circle".to_string(); settings.diversity];
    let circles = generate_all(
        &pipeline,
        &circle_prompts,
        settings.batch,
        settings.seed + 3000,
    )?;
    generated += circles.len();
    if let Some(dir) = samples {
        write_samples(dir, "a_circle", &circle_prompts, &circles)?;
    }
    let seconds_per_image = start.elapsed().as_secs_f64() / generated.max(1) as f64;
    let real_circles: Vec<Vec<_>> = scenes(&world, Split::Train, Some(1), 20 * settings.diversity)
        .into_iter()
        .filter(|e| e.scene.objects[0].shape == Shape::Circle)
        .take(settings.diversity.max(1))
        .map(|e| analyse(&e.image))
        .collect();
    let gen_circles: Vec<Vec<_>> = circles.iter().map(analyse).collect();
    let mut diversity = BTreeMap::new();
    for (name, attribute, values) in [
        ("colour", Attribute::Colour, 6),
        ("position", Attribute::Position, 9),
        ("shape", Attribute::Shape, 3),
    ] {
        let g = Histogram::of(attribute, &gen_circles);
        let d = Histogram::of(attribute, &real_circles);
        diversity.insert(
            name.to_string(),
            Diversity {
                total_variation: g.total_variation(&d),
                entropy: g.normalised_entropy(values),
                data_entropy: d.normalised_entropy(values),
                generated: g,
                data: d,
            },
        );
    }

    let real: Vec<RgbImage> = single_ex
        .iter()
        .chain(&pair_ex)
        .map(|e| e.image.clone())
        .collect();
    let fake: Vec<RgbImage> = single_images.into_iter().chain(pair_images).collect();
    let vq = VqModel::from_pretrained(
        model_dir.join("vqvae"),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let recon = reconstruct(&vq, &real)?;
    let net = FeatureNet::shipped()?;
    Ok(EvalReport {
        settings: settings.clone(),
        single,
        pair,
        held_out,
        diversity,
        fid_generated: net.frechet_distance(&fake, &real)?,
        fid_reconstructed: net.frechet_distance(&recon, &real)?,
        seconds_per_image,
        guidance_scale: pipeline
            .default_options(Vec::<String>::new())
            .guidance_scale,
    })
}

/// The report as `(metric, value)` rows.
pub fn report_rows(r: &EvalReport) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    for (set, f) in [
        ("single", &r.single),
        ("pair", &r.pair),
        ("held_out", &r.held_out),
    ] {
        rows.push((format!("{set}/all_correct"), f.all_correct));
        for (k, v) in &f.per_attribute {
            rows.push((format!("{set}/{k}"), *v));
        }
    }
    for (k, d) in &r.diversity {
        rows.push((format!("a_circle/{k}/total_variation"), d.total_variation));
        rows.push((format!("a_circle/{k}/entropy"), d.entropy));
        rows.push((format!("a_circle/{k}/data_entropy"), d.data_entropy));
    }
    rows.push(("fid/generated".into(), r.fid_generated));
    rows.push(("fid/vq_reconstructions".into(), r.fid_reconstructed));
    rows.push((
        "fid/ratio".into(),
        r.fid_generated / r.fid_reconstructed.max(1e-9),
    ));
    rows.push(("seconds_per_image".into(), r.seconds_per_image));
    rows.push(("guidance_scale".into(), r.guidance_scale));
    rows
}

/// Writes `eval.json` and `eval.csv` into `dir` and returns the printable table.
pub fn write_report(r: &EvalReport, dir: &Path) -> anyhow::Result<String> {
    write_json_atomic(&dir.join("eval.json"), r)?;
    let rows = report_rows(r);
    let csv: String = std::iter::once("metric,value\n".to_string())
        .chain(rows.iter().map(|(k, v)| format!("{k},{v}\n")))
        .collect();
    write_atomic(&dir.join("eval.csv"), csv.as_bytes())?;
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(10);
    Ok(rows
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v:>8.4}\n"))
        .collect())
}

/// Prompts of the docs gallery: six each of one-object test scenes, two-object test scenes,
/// held-out (never trained) shape–colour combinations, and free phrasings of our own, including
/// under-specified ones.
pub fn gallery_prompts() -> Vec<String> {
    let world = World::default();
    let mut prompts = Vec::new();
    for (split, objects) in [
        (Split::Test, Some(1)),
        (Split::Test, Some(2)),
        (Split::HeldOut, None),
    ] {
        let (_, p) = prompts_of(&scenes(&world, split, objects, 6));
        prompts.extend(p);
    }
    prompts.extend(
        [
            "a circle",
            "a large blue square",
            "there is a small yellow triangle at the bottom right",
            "something magenta",
            "a green circle above a red square",
            "top right: a cyan triangle",
        ]
        .map(String::from),
    );
    prompts
}

/// Generates the gallery prompts with the pipeline's defaults and saves a labelled grid at `path`.
pub fn write_gallery(model_dir: &Path, path: &Path, seed: u64) -> anyhow::Result<()> {
    let pipeline = VqDiffusionPipeline::from_pretrained(model_dir, LoadOptions::default())?;
    let prompts = gallery_prompts();
    let images = generate_all(&pipeline, &prompts, prompts.len(), seed)?;
    let items: Vec<_> = prompts.into_iter().zip(images).collect();
    crate::gallery::save_gallery(&items, crate::gallery::GalleryLayout::default(), path)
}
