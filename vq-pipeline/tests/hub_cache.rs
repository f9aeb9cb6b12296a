//! Hub resolution without network: a model present in a Hugging Face cache folder
//! (`$HF_HOME/hub/models--owner--name/{refs/main, snapshots/<hash>/...}`) loads offline; a model
//! absent from it fails with a message saying how to get it; a complete cached snapshot makes
//! no request even online; a hub that accepts connections and never answers is an error naming
//! the endpoint after the timeout, not a hang. The cache folder and the endpoint are passed in
//! (`HubOptions`), so the tests never touch the process environment.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use reference_fixtures::materialise_pipeline;
use vq_pipeline::{
    Error, HubOptions, LoadOptions, ModelSource, Variant, VqDiffusionPipeline, snapshot_commit,
};

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// A hub cache folder holding the fixture pipeline as `tiny/vq-diffusion` at `main`.
fn cache_with_tiny_model(name: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("vqd-hf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let repo = home.join("hub/models--tiny--vq-diffusion");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), HASH).unwrap();
    std::fs::create_dir_all(repo.join("snapshots")).unwrap();
    let pipeline = materialise_pipeline("pipeline_learnable").unwrap();
    std::fs::rename(&pipeline, repo.join("snapshots").join(HASH)).unwrap();
    home
}

/// A local "hub" that accepts connections and never answers.
fn silent_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    (listener, url)
}

fn online(home: &std::path::Path, endpoint: &str) -> HubOptions {
    HubOptions {
        offline: false,
        cache_dir: Some(home.join("hub")),
        timeout: Duration::from_millis(500),
        endpoint: Some(endpoint.to_string()),
    }
}

#[test]
fn a_complete_cached_snapshot_makes_no_request() {
    let home = cache_with_tiny_model("cached");
    let (listener, url) = silent_server();
    let root = ModelSource::parse("tiny/vq-diffusion", "main")
        .unwrap()
        .resolve(Variant::Default, &online(&home, &url))
        .unwrap();
    assert_eq!(snapshot_commit(&root).as_deref(), Some(HASH));
    assert!(listener.accept().is_err(), "a request reached the hub");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn a_silent_hub_is_an_error_naming_the_endpoint() {
    let home = cache_with_tiny_model("silent");
    let (_listener, url) = silent_server();
    let err = ModelSource::parse("someone/absent-model", "main")
        .unwrap()
        .resolve(Variant::Default, &online(&home, &url))
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err:?}");
    assert!(
        message.contains(&url)
            && message.contains("did not answer")
            && message.contains("--offline"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn mistyped_local_folders_are_not_taken_for_repo_ids() {
    let dir = std::env::temp_dir().join(format!("vqd-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let typo = dir.join("shape-wrld");
    let err = ModelSource::parse(typo.to_str().unwrap(), "main").unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ModelNotFound { .. }));
    assert!(message.contains("no such folder"), "{message}");
    // A typo that also reads as a repo id says how to mean the hub (tests run in the crate
    // folder, where `src` exists).
    let message = ModelSource::parse("src/shape-wrld", "main")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("no such folder") && message.contains("hub:src/shape-wrld"),
        "{message}"
    );
    // `hub:` forces the hub reading.
    assert_eq!(
        ModelSource::parse("hub:owner/name", "v1").unwrap(),
        ModelSource::Hub {
            repo: "owner/name".into(),
            revision: "v1".into()
        }
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cached_snapshots_resolve_offline() {
    let home = cache_with_tiny_model("offline");
    let repo = home.join("hub/models--tiny--vq-diffusion");
    let hash = HASH;
    let hub = HubOptions {
        offline: true,
        cache_dir: Some(home.join("hub")),
        ..HubOptions::default()
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
