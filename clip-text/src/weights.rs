//! Checkpoint files of a `text_encoder/` folder, read with the workspace's shared reader
//! ([`vq_nn::WeightSource`]): transformers writes `model.safetensors`, older snapshots (the ITHQ
//! hub repo) `pytorch_model.bin`. Keys are transformers' (`text_model.embeddings.token_embedding.weight`,
//! ...); transformers 5's `save_pretrained` writes the same keys without the `text_model.` prefix,
//! and such files are read through a key map. Loading is strict: every `text_model.*` tensor of
//! the file must be used by the model the config describes; the `position_ids` buffer of old
//! files and the parts of a full CLIP checkpoint outside the text tower (vision tower,
//! projections, `logit_scale`) are ignored.

use std::path::Path;

use vq_nn::{WeightFile, WeightSource};

use crate::Result;

/// Opens a text-encoder checkpoint, mapping bare (unprefixed) keys to `text_model.*`.
pub(crate) fn weight_source(path: &Path) -> Result<WeightSource> {
    let file = WeightFile::open(path)?;
    let prefixed = file.keys().any(|k| k.starts_with("text_model."));
    let bare = file.contains("embeddings.token_embedding.weight");
    Ok(if bare && !prefixed {
        WeightSource::with_key_map(file, |k| {
            k.strip_prefix("text_model.").unwrap_or(k).to_string()
        })
    } else {
        WeightSource::new(file)
    })
}

/// Keys of a checkpoint the text tower never reads.
pub(crate) fn ignorable(key: &str) -> bool {
    key.ends_with("position_ids")
        || !(key.starts_with("text_model.")
            || key.starts_with("embeddings.")
            || key.starts_with("encoder.")
            || key.starts_with("final_layer_norm."))
}
