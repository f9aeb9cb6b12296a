//! Hub resolution without network: a model present in a Hugging Face cache folder
//! (`$HF_HOME/hub/models--owner--name/{refs/main, snapshots/<hash>/...}`) loads offline; a model
//! absent from it fails with a message saying how to get it. The cache folder is passed in
//! (`HubOptions::cache_dir`), so the test never touches the process environment.

use reference_fixtures::materialise_pipeline;
use vq_pipeline::{Error, HubOptions, LoadOptions, ModelSource, Variant, VqDiffusionPipeline};

#[test]
fn cached_snapshots_resolve_offline() {
    let home = std::env::temp_dir().join(format!("vqd-hf-home-{}", std::process::id()));
    let repo = home.join("hub/models--tiny--vq-diffusion");
    let hash = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), hash).unwrap();
    std::fs::create_dir_all(repo.join("snapshots")).unwrap();
    let pipeline = materialise_pipeline("pipeline_learnable").unwrap();
    std::fs::rename(&pipeline, repo.join("snapshots").join(hash)).unwrap();
    let hub = HubOptions {
        offline: true,
        cache_dir: Some(home.join("hub")),
    };

    let root = ModelSource::parse("tiny/vq-diffusion", "main")
        .unwrap()
        .resolve(Variant::Default, &hub)
        .unwrap();
    assert_eq!(root, repo.join("snapshots").join(hash));
    VqDiffusionPipeline::from_pretrained(&root, LoadOptions::default()).unwrap();

    let err = ModelSource::parse("microsoft/vq-diffusion-ithq", "main")
        .unwrap()
        .resolve(Variant::Default, &hub)
        .unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }));
    let message = err.to_string();
    assert!(
        message.contains("not in the local Hugging Face cache")
            && message.contains("huggingface-cli download"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(home);
}
