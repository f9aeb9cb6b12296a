//! End-to-end golden test against diffusers' `VQDiffusionPipeline` on the two tiny fixture
//! pipelines (learned null embedding, and empty-prompt guidance): the recorded Gumbel uniforms
//! are replayed through `ReplayNoise`, so every step must produce exactly diffusers' tokens, and
//! the decoded image must agree within 1e-4.

mod replay;

use reference_fixtures::materialise_pipeline;

fn replay(pipeline_name: &str, run: &str) {
    let root = materialise_pipeline(pipeline_name).unwrap();
    replay::replay_reference(&root, pipeline_name, run);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn learned_null_embedding_pipeline_replays_diffusers() {
    replay("pipeline_learnable", "pipeline");
}

#[test]
fn unguided_pipeline_replays_diffusers() {
    replay("pipeline_learnable", "pipeline_nocfg");
}

#[test]
fn empty_prompt_guidance_pipeline_replays_diffusers() {
    replay("pipeline_empty", "pipeline");
}
