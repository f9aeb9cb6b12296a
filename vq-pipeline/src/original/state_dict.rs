//! [`StateDict`]: a view of some of a weight file's tensors under logical (state-dict) names.
//! The original release nests its state dicts (`model`, `ema`, `state_dict`, Lightning's
//! `first_stage_model.` prefix, the codec's `content_codec.enc.` / `.dec.` halves); every part of
//! the importer reads through a view whose names are those of the module it maps, and every
//! error names the file and the key as stored.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use vq_nn::WeightFile;

use crate::{Error, Result};

/// Logical names → stored names in one file.
#[derive(Clone)]
pub(crate) struct StateDict<'f> {
    file: &'f WeightFile,
    names: BTreeMap<String, String>,
}

impl<'f> StateDict<'f> {
    /// Every tensor of `file` whose stored name starts with `prefix`, named without it.
    pub(crate) fn under(file: &'f WeightFile, prefix: &str) -> Self {
        let names = file
            .keys()
            .filter_map(|k| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), k.to_string()))
            })
            .collect();
        Self { file, names }
    }

    /// The tensors of this view under `prefix`, named without it.
    pub(crate) fn sub(&self, prefix: &str) -> Self {
        let names = self
            .names
            .iter()
            .filter_map(|(k, stored)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), stored.clone()))
            })
            .collect();
        Self {
            file: self.file,
            names,
        }
    }

    /// Adds (or replaces) the tensors of `other`, named `prefix` + their name.
    pub(crate) fn overlay(&mut self, other: &StateDict<'f>, prefix: &str) {
        for (k, stored) in &other.names {
            self.names.insert(format!("{prefix}{k}"), stored.clone());
        }
    }

    /// Keeps only the tensors whose logical name satisfies `keep`.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.names.retain(|k, _| keep(k));
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.names.contains_key(key)
    }

    /// The name `key` has in the file (for messages).
    pub(crate) fn stored_name(&self, key: &str) -> String {
        self.names
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// An error about this file.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::InvalidFile {
            path: self.path().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The shape of `key`; an error naming the key when it is missing.
    pub(crate) fn shape(&self, key: &str) -> Result<Vec<usize>> {
        let stored = self
            .names
            .get(key)
            .ok_or_else(|| self.error(format!("missing key {key}")))?;
        self.file
            .info(stored)
            .map(|i| i.shape)
            .ok_or_else(|| self.error(format!("missing key {stored}")))
    }

    /// `shape(key)[dim]`, with an error naming the key when the rank is too small.
    pub(crate) fn dim(&self, key: &str, dim: usize) -> Result<usize> {
        let shape = self.shape(key)?;
        shape.get(dim).copied().ok_or_else(|| {
            self.error(format!(
                "{}: shape {shape:?} has no dimension {dim}",
                self.stored_name(key)
            ))
        })
    }

    /// The tensor `key`, as f32 on the CPU (every float dtype of the release is accepted:
    /// F16 CLIP Linears, F64 null embeddings, F32 elsewhere).
    pub(crate) fn tensor(&self, key: &str) -> Result<Tensor> {
        let stored = self
            .names
            .get(key)
            .ok_or_else(|| self.error(format!("missing key {key}")))?;
        let t = self.file.tensor(stored, &Device::Cpu)?;
        match t.dtype() {
            DType::F32 => Ok(t),
            DType::F16 | DType::BF16 | DType::F64 => Ok(t.to_dtype(DType::F32)?),
            other => Err(self.error(format!(
                "{stored}: dtype {other:?} where a float tensor is expected"
            ))),
        }
    }

    /// The largest `i` of keys `prefix{i}.…`, plus one (0 when there are none).
    pub(crate) fn count_indexed(&self, prefix: &str) -> usize {
        self.keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }
}
