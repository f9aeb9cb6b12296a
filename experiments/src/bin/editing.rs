//! Study — editing in token space on the embedded shape-world model, scored by the oracle.
//!
//! (a) **Inpainting that changes one object**: test scenes with one object and with two (the
//! real renderings), the first object's 3×3 grid cell (dilated by 3 pixels) masked, and the scene's
//! caption with that object's colour changed to another. Read by the oracle: the requested
//! object (the new colour in that cell; its shape kept, reported apart since the model's shapes
//! are weak), the other object unchanged (its colour and shape in its cell), and both — the
//! headline rate — plus the whole new caption right (every attribute and the relation). Both
//! re-imposition rules of the kept tokens (drawn from the forward process at each step, or held
//! at the data) and several start steps (strength 1: the region starts all-masked; below: from
//! the source partially noised). Reference rows: the same reading of the real sources and of
//! their VQ reconstructions against the *original* scene (the tokenizer's ceiling).
//!
//! (b) **Variations**: one- and two-object test scenes varied at strengths 0 … 1 under their own
//! captions; the oracle's agreement with the source scene (all attributes right), and the
//! fraction of tokens left as they were, per strength.
//!
//! Writes `inpainting.csv`, `variation.csv`, `variation.{png,svg}`, `gallery.png` (per scene:
//! source | mask | reconstruction | edits) and `settings.json` to `--out`.
//!
//! `cargo run --release -p experiments --bin editing -- [--quick] [--model DIR] [--out DIR]`

use std::path::PathBuf;

use clap::Parser;
use discrete_diffusion::{Reimpose, SeededNoise};
use experiments::gallery::{GalleryLayout, save_gallery};
use experiments::result_table::ResultTable;
use experiments::{LineChart, Series, record_settings};
use image::{GrayImage, RgbImage};
use shape_world::{
    Colour, Detection, FaithfulnessReport, IMAGE_SIZE, Object, SceneSpec, Split, World, analyse,
    judge,
};
use vq_pipeline::{EditInput, LoadOptions, VqDiffusionPipeline, box_mask};

#[derive(Parser)]
#[command(about = "Inpainting and variations on the embedded model, scored by the oracle")]
struct Args {
    /// A few scenes and settings (seconds; CI).
    #[arg(long)]
    quick: bool,
    /// Model folder (default: the embedded shape-world model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Scenes of each kind (one object, two objects) for the inpainting study.
    #[arg(long, default_value_t = 100)]
    scenes: usize,
    /// Scenes (half one-object, half two-object) for the variation curve.
    #[arg(long, default_value_t = 120)]
    variation_scenes: usize,
    /// Start strengths of the inpainting study.
    #[arg(long, value_delimiter = ',', default_value = "1,0.7,0.4")]
    strengths: Vec<f64>,
    /// Strengths of the variation curve.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"
    )]
    variation_strengths: Vec<f64>,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "results/editing")]
    out: PathBuf,
}

/// A colour other than `c` (the next one in the world's list).
fn other_colour(c: Colour) -> Colour {
    let all = Colour::ALL;
    let i = all.iter().position(|&x| x == c).expect("a world colour");
    all[(i + 1) % all.len()]
}

/// The mask of an object's grid cell, dilated by `margin` pixels.
fn cell_mask(row: u8, col: u8, margin: u32) -> anyhow::Result<GrayImage> {
    let side = IMAGE_SIZE as u32;
    let (x0, x1) = (col as u32 * side / 3, (col as u32 + 1) * side / 3);
    let (y0, y1) = (row as u32 * side / 3, (row as u32 + 1) * side / 3);
    Ok(box_mask(
        side,
        side,
        (
            x0.saturating_sub(margin),
            y0.saturating_sub(margin),
            (x1 + margin).min(side),
            (y1 + margin).min(side),
        ),
    )?)
}

fn rate(reports: &FaithfulnessReport) -> f64 {
    reports.all_correct_rate()
}

/// The oracle's reading of an edit.
#[derive(Debug, Default, Clone)]
struct EditScore {
    /// The new colour found in the edited object's cell.
    colour: usize,
    /// ... with the object's shape.
    shape: usize,
    /// The other object's colour and shape found in its cell.
    other: usize,
    /// `colour` and `other`.
    both: usize,
    /// The whole (new) caption right.
    caption: usize,
    /// Images scored.
    n: usize,
}

impl EditScore {
    fn add(
        &mut self,
        detections: &[Detection],
        edited: &Object,
        other: Option<&Object>,
        spec: &SceneSpec,
    ) {
        let at = |o: &Object, d: &Detection| d.cell == o.cell && d.colour == o.colour;
        let colour = detections.iter().any(|d| at(edited, d));
        let shape = detections
            .iter()
            .any(|d| at(edited, d) && d.shape == edited.shape);
        let other = other.is_none_or(|other| {
            detections
                .iter()
                .any(|d| at(other, d) && d.shape == other.shape)
        });
        self.colour += usize::from(colour);
        self.shape += usize::from(shape);
        self.other += usize::from(other);
        self.both += usize::from(colour && other);
        self.caption += usize::from(judge(spec, detections).all_correct());
        self.n += 1;
    }

    fn rates(&self) -> [f64; 5] {
        let n = self.n.max(1) as f64;
        [self.colour, self.shape, self.other, self.both, self.caption].map(|c| c as f64 / n)
    }
}

fn mask_picture(mask: &GrayImage) -> RgbImage {
    RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = mask.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = match &args.model {
        Some(m) => m.clone(),
        None => vq_pipeline::default_model_dir()?,
    };
    let pipeline = VqDiffusionPipeline::from_pretrained(&model, LoadOptions::default())?;
    anyhow::ensure!(
        pipeline.image_size() == (IMAGE_SIZE as u32, IMAGE_SIZE as u32),
        "the study needs a {IMAGE_SIZE}-pixel shape-world model"
    );
    let (scenes, variation_scenes, strengths, variation_strengths) = if args.quick {
        (4, 4, vec![1.0, 0.5], vec![0.0, 0.5, 1.0])
    } else {
        (
            args.scenes,
            args.variation_scenes,
            args.strengths.clone(),
            args.variation_strengths.clone(),
        )
    };
    record_settings(
        &args.out,
        "editing",
        &serde_json::json!({
            "model": model.display().to_string(),
            "scenes": scenes,
            "variation_scenes": variation_scenes,
            "strengths": strengths,
            "variation_strengths": variation_strengths,
            "seed": args.seed,
            "mask": "the edited object's 3x3 grid cell dilated by 3 px",
            "generation": pipeline.default_options(["x"]),
        }),
    )?;
    let world = World::default();

    // (a) Inpainting.
    let header = [
        "objects",
        "variant",
        "strength",
        "new_colour",
        "new_colour_and_shape",
        "other_unchanged",
        "new_colour_and_other_unchanged",
        "whole_caption",
        "seconds_per_image",
    ];
    let mut table = ResultTable::new(&header);
    let mut gallery: Vec<(String, RgbImage)> = Vec::new();
    let variants: Vec<(Reimpose, f64)> = [Reimpose::ForwardSample, Reimpose::KeepData]
        .into_iter()
        .flat_map(|r| strengths.iter().map(move |&s| (r, s)))
        .collect();
    for objects in [1usize, 2] {
        let examples: Vec<_> = (0..)
            .map(|i| world.example(Split::Test, i))
            .filter(|e| e.scene.objects.len() == objects)
            .take(scenes)
            .collect();
        let mut real = EditScore::default();
        let mut reconstructed = EditScore::default();
        let mut scores = vec![EditScore::default(); variants.len()];
        let mut seconds = vec![0f64; variants.len()];
        for (i, example) in examples.iter().enumerate() {
            let original = SceneSpec::captioned(&example.scene);
            let source_object = example.scene.objects[0];
            let other = example.scene.objects.get(1).copied();
            let mut target_object = source_object;
            target_object.colour = other_colour(source_object.colour);
            let mut edited = original.clone();
            edited.objects[0].colour = Some(target_object.colour);
            let caption = edited.caption(i);
            let mask = cell_mask(source_object.cell.row, source_object.cell.col, 3)?;
            real.add(
                &analyse(&example.image),
                &source_object,
                other.as_ref(),
                &original,
            );
            let reconstruction = pipeline.vary(
                &pipeline.default_options([original.caption(i)]),
                &example.image,
                0.0,
                &mut SeededNoise::new(args.seed),
                |_| Ok(()),
            )?;
            reconstructed.add(
                &analyse(&reconstruction.images[0]),
                &source_object,
                other.as_ref(),
                &original,
            );
            let show = i < 4;
            if show {
                gallery.push((
                    format!("source: {}", original.caption(i)),
                    example.image.clone(),
                ));
                gallery.push(("mask".into(), mask_picture(&mask)));
                gallery.push(("VQ reconstruction".into(), reconstruction.images[0].clone()));
            }
            for (v, &(rule, strength)) in variants.iter().enumerate() {
                let input = EditInput {
                    strength,
                    reimpose: rule,
                    ..EditInput::inpaint(example.image.clone(), mask.clone())
                };
                let start = std::time::Instant::now();
                let out = pipeline.edit(
                    &pipeline.default_options([caption.clone()]),
                    &input,
                    &mut SeededNoise::new(args.seed + i as u64),
                    |_| Ok(()),
                )?;
                seconds[v] += start.elapsed().as_secs_f64();
                scores[v].add(
                    &analyse(&out.images[0]),
                    &target_object,
                    other.as_ref(),
                    &edited,
                );
                if show && strength == 1.0 {
                    gallery.push((
                        format!("{caption} ({})", rule_name(rule)),
                        out.images[0].clone(),
                    ));
                }
            }
        }
        let n = examples.len().max(1) as f64;
        let mut row = |label: String, strength: String, score: &EditScore, secs: Option<f64>| {
            let r = score.rates();
            let mut shown = vec![objects.to_string(), label.clone(), strength.clone()];
            shown.extend(r.iter().map(|v| format!("{v:.3}")));
            shown.push(secs.map_or("—".into(), |s| format!("{s:.3}")));
            let mut exact = vec![objects.to_string(), label, strength];
            exact.extend(r.iter().map(|v| v.to_string()));
            exact.push(secs.map_or(String::new(), |s| s.to_string()));
            table.push(shown, exact);
        };
        row(
            "real source (its own objects)".into(),
            "—".into(),
            &real,
            None,
        );
        row(
            "VQ reconstruction (its own objects)".into(),
            "0".into(),
            &reconstructed,
            None,
        );
        for (v, &(rule, strength)) in variants.iter().enumerate() {
            row(
                format!("inpaint, {}", rule_name(rule)),
                format!("{strength}"),
                &scores[v],
                Some(seconds[v] / n),
            );
        }
    }
    println!(
        "(a) inpainting, {scenes} scenes of each kind, first object recoloured:\n{}",
        table.text()
    );
    std::fs::write(args.out.join("inpainting.csv"), table.csv())?;
    save_gallery(
        &gallery,
        GalleryLayout {
            columns: 3 + variants.iter().filter(|(_, s)| *s == 1.0).count(),
            scale: 4,
            caption_lines: 4,
        },
        &args.out.join("gallery.png"),
    )?;

    // (b) Variations.
    let half = variation_scenes.div_ceil(2);
    let mut var_examples: Vec<_> = (0..)
        .map(|i| world.example(Split::Test, 10_000 + i))
        .filter(|e| e.scene.objects.len() == 1)
        .take(half)
        .collect();
    var_examples.extend(
        (0..)
            .map(|i| world.example(Split::Test, 20_000 + i))
            .filter(|e| e.scene.objects.len() == 2)
            .take(variation_scenes - half),
    );
    let mut curve = ResultTable::new(&[
        "strength",
        "agreement_with_source",
        "tokens_kept",
        "model_calls",
    ]);
    let mut agreement = Vec::new();
    let mut kept_points = Vec::new();
    for &strength in &variation_strengths {
        let mut report = FaithfulnessReport::default();
        let mut kept = 0.0;
        let mut calls = 0;
        for (i, example) in var_examples.iter().enumerate() {
            let spec = SceneSpec::captioned(&example.scene);
            let options = pipeline.default_options([spec.caption(i)]);
            let source_tokens = pipeline.encode_image(&vq_pipeline::fit_image(
                &example.image,
                IMAGE_SIZE as u32,
                IMAGE_SIZE as u32,
            ))?;
            let out = pipeline.vary(
                &options,
                &example.image,
                strength,
                &mut SeededNoise::new(args.seed + 7 * i as u64),
                |_| Ok(()),
            )?;
            calls = out.model_calls;
            report.add(&judge(&spec, &analyse(&out.images[0])));
            let (a, b) = (
                source_tokens.to_vec2::<u32>()?[0].clone(),
                out.tokens.to_vec2::<u32>()?[0].clone(),
            );
            kept += a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
        }
        let kept = kept / var_examples.len().max(1) as f64;
        agreement.push((strength, rate(&report)));
        kept_points.push((strength, kept));
        curve.push(
            vec![
                format!("{strength}"),
                format!("{:.3}", rate(&report)),
                format!("{kept:.3}"),
                calls.to_string(),
            ],
            vec![
                strength.to_string(),
                rate(&report).to_string(),
                kept.to_string(),
                calls.to_string(),
            ],
        );
    }
    println!(
        "(b) variations, {} scenes under their own captions:\n{}",
        var_examples.len(),
        curve.text()
    );
    std::fs::write(args.out.join("variation.csv"), curve.csv())?;
    LineChart {
        title: "Variations: agreement with the source vs strength".into(),
        x_label: "strength (fraction of the chain run)".into(),
        y_label: "rate".into(),
        series: vec![
            Series {
                label: "oracle: all attributes of the source".into(),
                points: agreement,
            },
            Series {
                label: "tokens unchanged".into(),
                points: kept_points,
            },
        ],
        log_y: false,
    }
    .save(&args.out, "variation")?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn rule_name(rule: Reimpose) -> &'static str {
    match rule {
        Reimpose::ForwardSample => "forward-sample",
        Reimpose::KeepData => "keep-data",
    }
}
