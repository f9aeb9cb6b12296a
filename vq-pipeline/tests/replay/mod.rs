//! Replays a diffusers reference run (recorded Gumbel uniforms, tokens after every step, final
//! tokens, image) through this crate's pipeline: shared by the golden test on the fixture
//! pipelines and the interoperability test on a folder exported by `vqd train`.

use std::path::Path;

use candle_core::DType;
use discrete_diffusion::{ReplayNoise, Truncation};
use reference_fixtures::{FixtureFile, assert_close, json, test_device};
use vq_pipeline::{GenerationOptions, LoadOptions, VqDiffusionPipeline};

/// Loads the pipeline at `root` and replays run `run` of `reference/reference_outputs.*`
/// (`reference` relative to the fixtures folder): every step's tokens must equal diffusers'.
pub fn replay_reference(root: &Path, reference: &str, run: &str) {
    let options = LoadOptions {
        device: test_device(),
        ..LoadOptions::default()
    };
    let pipeline = VqDiffusionPipeline::from_pretrained(root, options).unwrap();
    let index = json(format!("{reference}/reference_outputs.json")).unwrap();
    let fixture = FixtureFile::open(format!("{reference}/reference_outputs.safetensors")).unwrap();
    let settings = &index["runs"][run];
    let prompts: Vec<String> = settings["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let steps = settings["num_inference_steps"].as_u64().unwrap() as usize;
    let options = GenerationOptions::new(prompts)
        .guidance_scale(settings["guidance_scale"].as_f64().unwrap())
        .truncation(Truncation::TopR(
            settings["truncation_rate"].as_f64().unwrap() as f32,
        ))
        .steps(steps);
    let mut noise = ReplayNoise::new(Vec::new());
    for i in 0..steps {
        noise.extend(&fixture.f32s(&format!("{run}.step{i}.uniforms")).unwrap());
    }
    let mut per_step = Vec::new();
    let result = pipeline
        .generate(&options, &mut noise, |event| {
            per_step.push(event.tokens.to_vec2::<u32>().unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        noise.remaining(),
        0,
        "{reference}/{run}: a different number of uniforms was drawn"
    );
    assert_eq!(per_step.len(), steps);
    for (i, tokens) in per_step.iter().enumerate() {
        let want = fixture
            .tensor(&format!("{run}.step{i}.tokens"))
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec2::<u32>()
            .unwrap();
        assert_eq!(
            tokens, &want,
            "{reference}/{run}: tokens differ after step {i}"
        );
    }
    let want_final = fixture
        .tensor(&format!("{run}.final_tokens"))
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    assert_eq!(result.tokens.to_vec2::<u32>().unwrap(), want_final);
    // diffusers' `output_type="np"`: clamp(x / 2 + 0.5, 0, 1) in NHWC.
    let ours = ((result.decoded / 2.0).unwrap() + 0.5)
        .unwrap()
        .clamp(0f32, 1f32)
        .unwrap()
        .permute((0, 2, 3, 1))
        .unwrap();
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(
        &format!("{reference}/{run} image"),
        &ours,
        &fixture.f32s(&format!("{run}.image")).unwrap(),
        1e-4,
    );
}
