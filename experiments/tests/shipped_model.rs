//! CI check of the shipped embedded model (`models/shape-world/`): it loads through the real
//! pipeline, generates a handful of single-object prompts with the model's recommended settings
//! (its `generation_config.json`), and the oracle finds the asked-for colour and position in most
//! of them. The thresholds sit well below what the full evaluation measures (`evaluate_embedded`,
//! docs/results.md §2) so that float differences between machines cannot flip them; the
//! per-attribute rates are printed for the log.

use discrete_diffusion::SeededNoise;
use shape_world::{FaithfulnessReport, SceneSpec, Split, World, analyse, judge};
use vq_pipeline::{LoadOptions, VqDiffusionPipeline, default_model_dir};

#[test]
fn shipped_model_draws_the_asked_for_colours_and_positions() -> anyhow::Result<()> {
    let pipeline =
        VqDiffusionPipeline::from_pretrained(&default_model_dir()?, LoadOptions::default())?;
    assert!(pipeline.has_learned_null());
    let world = World::default();
    let (specs, prompts): (Vec<SceneSpec>, Vec<String>) = (0..)
        .map(|i| world.example(Split::Test, i))
        .filter(|e| e.scene.objects.len() == 1)
        .take(8)
        .enumerate()
        .map(|(i, e)| {
            let spec = SceneSpec::from(&e.scene);
            let caption = spec.caption(i);
            (spec, caption)
        })
        .unzip();
    let options = pipeline.default_options(prompts.clone());
    let out = pipeline.generate(&options, &mut SeededNoise::new(0), |_| Ok(()))?;
    let mut report = FaithfulnessReport::default();
    for ((spec, image), prompt) in specs.iter().zip(&out.images).zip(&prompts) {
        let verdict = judge(spec, &analyse(image));
        println!("{prompt:?}: {:?}", verdict.attributes);
        report.add(&verdict);
    }
    let colour = report.rate("colour").unwrap_or(0.0);
    println!("per attribute: {:?}", report.per_attribute);
    let position = report.rate("position").unwrap_or(0.0);
    assert!(
        colour >= 0.6,
        "colour right in only {colour:.2} of 8 images"
    );
    assert!(
        position >= 0.5,
        "position right in only {position:.2} of 8 images"
    );
    Ok(())
}
