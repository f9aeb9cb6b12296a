//! Where a model comes from: a local folder in the diffusers layout, or a Hugging Face Hub
//! repository (default revision `main`) resolved through `hf-hub` into its usual cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`). The cache comes first: when the cached
//! snapshot of the revision already holds every file the pipeline needs, no request is made at
//! all; otherwise only the files it lacks are downloaded, and nothing when offline (`--offline`
//! or `HF_HUB_OFFLINE=1`). Weight files are fetched in order of preference (safetensors, then
//! `.bin`), stopping at the first one that exists. Every request has a deadline
//! ([`HubOptions::timeout`]): a server that accepts and never answers, or a download that stalls,
//! is an error naming the endpoint and the file.
//!
//! `--model` is a local folder when one exists at that path; `owner/name` otherwise names a hub
//! repository (force the hub with `hub:owner/name`). A path whose parent folder exists but which
//! does not is reported as a missing local folder, not looked up on the hub.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "hub")]
use hf_hub::{Cache, Repo, RepoType};
use vq_nn::Variant;

#[cfg(feature = "hub")]
use crate::model_files::hub_candidates;
use crate::{Error, Result};

/// How hub repositories are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Never download; use only the local cache.
    pub offline: bool,
    /// The hub cache folder (the `hub/` folder of `$HF_HOME`); `None` uses `$HF_HOME/hub` or
    /// `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// The longest wait for the server: to answer a request, and between two chunks of a
    /// download (a large file may take longer in all, as long as it keeps arriving).
    pub timeout: Duration,
    /// The hub endpoint; `None` uses `HF_ENDPOINT` or `https://huggingface.co`.
    pub endpoint: Option<String>,
}

/// The default [`HubOptions::timeout`] (huggingface_hub's default download timeout).
pub const DEFAULT_HUB_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            offline: false,
            cache_dir: None,
            timeout: DEFAULT_HUB_TIMEOUT,
            endpoint: None,
        }
    }
}

impl HubOptions {
    /// Options from the environment: offline when `HF_HUB_OFFLINE` is set to a true value,
    /// the cache of `HF_HOME`, the timeout of `HF_HUB_DOWNLOAD_TIMEOUT` (seconds; huggingface_hub's
    /// variable) or [`DEFAULT_HUB_TIMEOUT`].
    pub fn from_env() -> Self {
        let timeout = std::env::var("HF_HUB_DOWNLOAD_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_HUB_TIMEOUT, Duration::from_secs_f64);
        Self {
            offline: offline_from_env(),
            cache_dir: None,
            timeout,
            endpoint: None,
        }
    }
}

impl HubOptions {
    /// The endpoint requests go to: [`HubOptions::endpoint`], else `HF_ENDPOINT`, else
    /// `https://huggingface.co`.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok())
            .unwrap_or_else(|| "https://huggingface.co".into())
    }
}

/// The commit of a hub snapshot folder (`…/snapshots/<commit>`), if `root` is one.
pub fn snapshot_commit(root: &Path) -> Option<String> {
    let parent = root.parent()?;
    (parent.file_name()? == "snapshots")
        .then(|| root.file_name()?.to_str().map(String::from))
        .flatten()
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
    /// Interprets a `--model` argument: an existing folder, else `owner/name` (or
    /// `hub:owner/name`, never a folder). A path whose parent folder exists is a mistyped
    /// local folder, reported as such.
    pub fn parse(model: &str, revision: &str) -> Result<Self> {
        let forced_hub = model.strip_prefix("hub:");
        let path = Path::new(model);
        if forced_hub.is_none() {
            if path.is_dir() {
                return Ok(ModelSource::Local(path.to_path_buf()));
            }
            if path.exists() {
                return Err(Error::ModelNotFound {
                    model: model.to_string(),
                    reason:
                        "is a file; pass the diffusers-layout folder that holds model_index.json"
                            .into(),
                });
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && parent.is_dir()
            {
                let hint = if looks_like_repo_id(model) {
                    format!("; to load the Hugging Face repository of that name, pass hub:{model}")
                } else {
                    String::new()
                };
                return Err(Error::ModelNotFound {
                    model: model.to_string(),
                    reason: format!(
                        "no such folder (the folder {} exists){hint}",
                        parent.display()
                    ),
                });
            }
        }
        let model = forced_hub.unwrap_or(model);
        if looks_like_repo_id(model) {
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

/// Whether `model` has the form of a hub repository id, `owner/name`.
fn looks_like_repo_id(model: &str) -> bool {
    let parts: Vec<&str> = model.split('/').collect();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    parts.len() == 2 && parts.iter().all(|p| valid(p)) && !model.starts_with('.')
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
    // Cache first: a complete cached snapshot needs no request at all.
    if let Some(index) = cached.get("model_index.json")
        && let Some(root) = index.parent()
        && crate::ModelFiles::locate(root, variant).is_ok()
    {
        return Ok(root.to_path_buf());
    }
    let api = if offline {
        None
    } else {
        let builder = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(false)
            .with_endpoint(hub.endpoint());
        let builder = match &hub.cache_dir {
            Some(dir) => builder.with_cache_dir(dir.clone()),
            None => builder,
        };
        builder.build().ok()
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
                Some(api) => match download_with_deadline(api, repo(), &file, hub) {
                    Ok(p) => Some(p),
                    Err(Stalled(e)) => {
                        return Err(Error::ModelNotFound {
                            model: format!("{repo_id}@{revision}"),
                            reason: e,
                        });
                    }
                    Err(Failed(e)) => {
                        download_error.get_or_insert(e);
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
             then copy the cache folder {} here (or set HF_HOME), or pass --model DIR (a folder in the diffusers layout)",
            cache
                .path()
                .join(format!("models--{}", repo_id.replace('/', "--")))
                .display()
        );
        let reason = match (offline, download_error) {
            (true, _) => format!("not in the local Hugging Face cache (offline mode); {how}"),
            (false, Some(e)) => {
                format!(
                    "not in the local Hugging Face cache and the download from {} failed ({e}); {how}",
                    hub.endpoint()
                )
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

/// Why a download did not produce a file.
#[cfg(feature = "hub")]
enum DownloadError {
    /// The server answered with an error (e.g. the file does not exist): try the next candidate.
    Failed(String),
    /// The server did not answer in time: give up.
    Stalled(String),
}
#[cfg(feature = "hub")]
use DownloadError::{Failed, Stalled};

/// Download progress as a heartbeat: the time of the last sign of life.
#[cfg(feature = "hub")]
#[derive(Clone)]
struct Heartbeat(std::sync::Arc<std::sync::Mutex<std::time::Instant>>);

#[cfg(feature = "hub")]
impl Heartbeat {
    fn beat(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = std::time::Instant::now();
        }
    }
    fn silent_for(&self) -> Duration {
        self.0.lock().map_or(Duration::ZERO, |t| t.elapsed())
    }
}

#[cfg(feature = "hub")]
impl hf_hub::api::Progress for Heartbeat {
    fn init(&mut self, _size: usize, _filename: &str) {
        self.beat();
    }
    fn update(&mut self, _size: usize) {
        self.beat();
    }
    fn finish(&mut self) {
        self.beat();
    }
}

/// Downloads `file` of `repo` on a worker thread, giving up when the server stays silent for
/// `timeout` (hf-hub's HTTP client has no timeouts of its own; an abandoned worker ends with
/// the process).
#[cfg(feature = "hub")]
fn download_with_deadline(
    api: &hf_hub::api::sync::Api,
    repo: Repo,
    file: &str,
    hub: &HubOptions,
) -> std::result::Result<PathBuf, DownloadError> {
    let timeout = hub.timeout;
    let heartbeat = Heartbeat(std::sync::Arc::new(std::sync::Mutex::new(
        std::time::Instant::now(),
    )));
    let (send, receive) = std::sync::mpsc::channel();
    let (api, name, beat) = (api.clone(), file.to_string(), heartbeat.clone());
    std::thread::spawn(move || {
        let result = api.repo(repo).download_with_progress(&name, beat);
        let _ = send.send(result.map_err(|e| e.to_string()));
    });
    loop {
        match receive.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => return result.map_err(Failed),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Failed(format!("the download of {file} stopped")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if heartbeat.silent_for() > timeout {
                    return Err(Stalled(format!(
                        "the Hugging Face endpoint {} did not answer for {:.1} s while fetching \
                         {file} (HF_HUB_DOWNLOAD_TIMEOUT or --hub-timeout sets the limit; \
                         --offline uses only the cache)",
                        hub.endpoint(),
                        timeout.as_secs_f64()
                    )));
                }
            }
        }
    }
}
