//! Where a model comes from: a local folder in the diffusers layout, or a Hugging Face Hub
//! repository (default revision `main`) resolved through `hf-hub` into its usual cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`). The cache is consulted first, without
//! network; only files it lacks are downloaded, and not at all when offline (`--offline` or
//! `HF_HUB_OFFLINE=1`). Weight files are fetched in order of preference (safetensors, then
//! `.bin`), stopping at the first one that exists.

use std::path::{Path, PathBuf};

#[cfg(feature = "hub")]
use hf_hub::{Cache, Repo, RepoType};
use vq_nn::Variant;

#[cfg(feature = "hub")]
use crate::model_files::hub_candidates;
use crate::{Error, Result};

/// How hub repositories are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HubOptions {
    /// Never download; use only the local cache.
    pub offline: bool,
    /// The hub cache folder (the `hub/` folder of `$HF_HOME`); `None` uses `$HF_HOME/hub` or
    /// `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
}

impl HubOptions {
    /// Options from the environment: offline when `HF_HUB_OFFLINE` is set to a true value,
    /// the cache of `HF_HOME`.
    pub fn from_env() -> Self {
        Self {
            offline: offline_from_env(),
            cache_dir: None,
        }
    }
}

/// A model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local diffusers-layout folder.
    Local(PathBuf),
    /// A hub repository id and revision.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
    },
}

impl ModelSource {
    /// Interprets a `--model` argument: an existing folder, else `owner/name`.
    pub fn parse(model: &str, revision: &str) -> Result<Self> {
        let path = Path::new(model);
        if path.is_dir() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        let parts: Vec<&str> = model.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() == 2 && parts.iter().all(|p| valid(p)) && !model.starts_with('.') {
            return Ok(ModelSource::Hub {
                repo: model.to_string(),
                revision: revision.to_string(),
            });
        }
        Err(Error::ModelNotFound {
            model: model.to_string(),
            reason: "not an existing folder, nor a Hugging Face repo id of the form owner/name"
                .into(),
        })
    }

    /// Resolves to a local folder, downloading missing hub files unless `hub.offline`.
    pub fn resolve(&self, variant: Variant, hub: &HubOptions) -> Result<PathBuf> {
        match self {
            ModelSource::Local(p) => Ok(p.clone()),
            ModelSource::Hub { repo, revision } => resolve_hub(repo, revision, variant, hub),
        }
    }
}

/// Whether `HF_HUB_OFFLINE` asks for offline mode.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}

#[cfg(not(feature = "hub"))]
fn resolve_hub(repo_id: &str, revision: &str, _: Variant, _: &HubOptions) -> Result<PathBuf> {
    Err(Error::ModelNotFound {
        model: format!("{repo_id}@{revision}"),
        reason: "this build has no Hugging Face Hub support (cargo feature `hub`); pass a local \
                 folder in the diffusers layout"
            .into(),
    })
}

#[cfg(feature = "hub")]
fn resolve_hub(
    repo_id: &str,
    revision: &str,
    variant: Variant,
    hub: &HubOptions,
) -> Result<PathBuf> {
    let offline = hub.offline;
    let repo = || Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let cache = match &hub.cache_dir {
        Some(dir) => Cache::new(dir.clone()),
        None => Cache::from_env(),
    };
    let cached = cache.repo(repo());
    let api = if offline {
        None
    } else {
        let builder = hf_hub::api::sync::ApiBuilder::from_env().with_progress(false);
        let builder = match &hub.cache_dir {
            Some(dir) => builder.with_cache_dir(dir.clone()),
            None => builder,
        };
        builder.build().ok().map(|api| api.repo(repo()))
    };
    let mut index = None;
    let mut download_error = None;
    let mut previous_weight_group: Option<String> = None;
    for file in hub_candidates(variant) {
        // Stop at the first weight file of a component that exists.
        let group = file.rsplit_once('/').map(|(d, _)| d.to_string());
        let is_weight = file.ends_with(".safetensors") || file.ends_with(".bin");
        if is_weight && previous_weight_group.is_some() && previous_weight_group == group {
            continue;
        }
        let found = match cached.get(&file) {
            Some(p) => Some(p),
            None => match &api {
                Some(api) => match api.get(&file) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        download_error.get_or_insert_with(|| e.to_string());
                        None
                    }
                },
                None => None,
            },
        };
        if is_weight && found.is_some() {
            previous_weight_group = group;
        }
        if file == "model_index.json" {
            index = found;
        }
    }
    let Some(index) = index else {
        let how = format!(
            "download it where the Hub is reachable (e.g. `huggingface-cli download {repo_id} --revision {revision}`), \
             then copy the cache folder {} here (or set HF_HOME), or pass --model /path/to/a/diffusers/folder",
            cache
                .path()
                .join(format!("models--{}", repo_id.replace('/', "--")))
                .display()
        );
        let reason = match (offline, download_error) {
            (true, _) => format!("not in the local Hugging Face cache (offline mode); {how}"),
            (false, Some(e)) => {
                format!("not in the local Hugging Face cache and the download failed ({e}); {how}")
            }
            (false, None) => format!("not in the local Hugging Face cache; {how}"),
        };
        return Err(Error::ModelNotFound {
            model: format!("{repo_id}@{revision}"),
            reason,
        });
    };
    Ok(index.parent().map(Path::to_path_buf).unwrap_or_default())
}
