//! The fixture pipelines generated from diffusers load completely in Rust: every component of
//! both folders is found, its config parsed and every tensor the Rust model structs expect is
//! present with the expected shape (the loaders check names and shapes). A key-name mismatch
//! between diffusers and the Rust structs fails here.

use reference_fixtures::materialise_pipeline;
use vq_pipeline::{LoadOptions, VqDiffusionPipeline};

#[test]
fn both_fixture_pipelines_load_completely() {
    for (name, learned) in [("pipeline_learnable", true), ("pipeline_empty", false)] {
        let root = materialise_pipeline(name).unwrap();
        let pipeline = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pipeline.has_learned_null(), learned, "{name}");
        assert_eq!(pipeline.num_tokens(), 16);
        let _ = std::fs::remove_dir_all(root);
    }
    // The hub spelling of model_index.json (["vq_diffusion", "LearnedClassifierFreeSamplingEmbeddings"]).
    let root = materialise_pipeline("pipeline_learnable").unwrap();
    std::fs::copy(
        root.join("model_index.hub.json"),
        root.join("model_index.json"),
    )
    .unwrap();
    let pipeline = VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default()).unwrap();
    assert!(pipeline.has_learned_null());
    let _ = std::fs::remove_dir_all(root);
}
