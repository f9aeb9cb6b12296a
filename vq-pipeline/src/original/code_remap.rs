//! Codebook shrinking of the original release (`quantize_number` in the configs of the taming
//! VQ-GANs; docs/original-checkpoints.md §"Code remap"). The CC / COCO / CUB / LAION-human models
//! predict only 2,887 of the f8 OpenImages VQ-GAN's 8,192 codes, the ImageNet models 974 of the
//! f16 model's 16,384. A table `full_to_quantize` (a bare int64 tensor saved with `torch.save`,
//! one entry per full code) gives each code's class; decoding takes, for class `q`, the **first**
//! full code whose entry is `q` (`quantize_to_full`). Gathering those codebook rows once gives a
//! codebook indexed by the transformer's classes, so the converted VQ-VAE is a plain diffusers
//! `VQModel` with `num_vq_embeddings = K`.
//!
//! The two released tables ship with this crate (`data/original/`, MIT, from
//! microsoft/VQ-Diffusion) and are chosen by their size; other tables are read from a file.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vq_nn::WeightFile;

use crate::error::io;
use crate::{Error, Result};

/// A released table: `(full codes, classes, file name, bytes)`.
const RELEASED: [(usize, usize, &str, &[u8]); 2] = [
    (
        8192,
        2887,
        "taming_vqvae_2887.pt",
        include_bytes!("../../data/original/taming_vqvae_2887.pt"),
    ),
    (
        16384,
        974,
        "taming_vqvae_974.pt",
        include_bytes!("../../data/original/taming_vqvae_974.pt"),
    ),
];

/// A code remap: for each of the transformer's classes, the full VQ-GAN code it decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRemap {
    /// Where the table came from (a path, or the name of a shipped table).
    pub source: String,
    /// Number of full codes the table covers.
    pub full_codes: usize,
    /// `quantize_to_full[q]`: the first full code mapped to class `q`.
    pub quantize_to_full: Vec<usize>,
}

impl CodeRemap {
    /// The shipped table for a VQ-GAN of `full_codes` codes and a transformer of `classes`
    /// classes, if the release has one.
    pub fn released(full_codes: usize, classes: usize, scratch: &Path) -> Result<Option<Self>> {
        let Some((_, _, name, bytes)) = RELEASED
            .iter()
            .find(|(f, c, _, _)| *f == full_codes && *c == classes)
        else {
            return Ok(None);
        };
        std::fs::create_dir_all(scratch).map_err(io(scratch))?;
        let path = scratch.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
        let mut remap = Self::from_file(&path, classes)?;
        let _ = std::fs::remove_file(&path);
        remap.source = format!("shipped table {name}");
        Ok(Some(remap))
    }

    /// Reads a `full_to_quantize` table (a `torch.save`d int64 tensor) for `classes` classes.
    pub fn from_file(path: &Path, classes: usize) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidFile {
            path: path.to_path_buf(),
            reason,
        };
        let file = WeightFile::open(path)?;
        let keys: Vec<&str> = file.keys().collect();
        let [key] = keys.as_slice() else {
            return Err(invalid(format!(
                "a code-remap table is one bare int64 tensor; this file holds {} tensors",
                keys.len()
            )));
        };
        let table = file.tensor(key, &Device::Cpu)?;
        if table.rank() != 1 || !matches!(table.dtype(), DType::I64 | DType::U32 | DType::U8) {
            return Err(invalid(format!(
                "a code-remap table is a 1-D integer tensor, not {:?} {:?}",
                table.dtype(),
                table.dims()
            )));
        }
        let full: Vec<i64> = table.to_dtype(DType::I64)?.to_vec1()?;
        let mut first = vec![usize::MAX; classes];
        for (code, &q) in full.iter().enumerate() {
            let q = usize::try_from(q)
                .ok()
                .filter(|&q| q < classes)
                .ok_or_else(|| {
                    invalid(format!(
                        "entry {code} is {q}, outside the transformer's {classes} classes"
                    ))
                })?;
            if first[q] == usize::MAX {
                first[q] = code;
            }
        }
        if let Some(q) = first.iter().position(|&c| c == usize::MAX) {
            return Err(invalid(format!(
                "class {q} has no code: the table maps {} codes onto fewer than the \
                 transformer's {classes} classes",
                full.len()
            )));
        }
        Ok(Self {
            source: path.display().to_string(),
            full_codes: full.len(),
            quantize_to_full: first,
        })
    }

    /// The codebook rows of the transformer's classes, from the full `codebook` (codes, width).
    pub fn gather(&self, codebook: &Tensor) -> Result<Tensor> {
        let rows = codebook.dim(0)?;
        if rows != self.full_codes {
            return Err(Error::InvalidOption(format!(
                "the code remap {} covers {} codes, the VQ-GAN codebook has {rows}",
                self.source, self.full_codes
            )));
        }
        let index: Vec<u32> = self.quantize_to_full.iter().map(|&c| c as u32).collect();
        let index = Tensor::from_vec(index, self.quantize_to_full.len(), codebook.device())?;
        Ok(codebook.index_select(&index, 0)?.contiguous()?)
    }
}

/// Where a caller's remap table comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RemapChoice {
    /// The shipped table matching the codebook and the transformer, if any (else an error
    /// when the sizes differ).
    #[default]
    Released,
    /// A `full_to_quantize` file.
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tables_have_the_facts_of_the_release() {
        let scratch = tempfile::tempdir().unwrap();
        let f8 = CodeRemap::released(8192, 2887, scratch.path())
            .unwrap()
            .unwrap();
        assert_eq!(f8.full_codes, 8192);
        assert_eq!(&f8.quantize_to_full[..6], &[0, 3, 9, 10, 11, 12]);
        assert_eq!(&f8.quantize_to_full[2884..], &[8188, 8190, 8191]);
        assert_eq!(f8.quantize_to_full.iter().sum::<usize>(), 11_765_535);
        let f16 = CodeRemap::released(16384, 974, scratch.path())
            .unwrap()
            .unwrap();
        assert_eq!(&f16.quantize_to_full[..6], &[0, 23, 66, 81, 91, 112]);
        assert_eq!(&f16.quantize_to_full[971..], &[16314, 16338, 16374]);
        assert_eq!(f16.quantize_to_full.iter().sum::<usize>(), 7_777_706);
        assert!(
            CodeRemap::released(4096, 4096, scratch.path())
                .unwrap()
                .is_none()
        );
        // used codes keep their order
        assert!(f8.quantize_to_full.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_table_with_too_few_classes_or_a_class_out_of_range_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let too_many = CodeRemap::released(8192, 2887, scratch.path())
            .unwrap()
            .unwrap();
        assert_eq!(too_many.quantize_to_full.len(), 2887);
        std::fs::write(scratch.path().join("t.pt"), RELEASED[0].3).unwrap();
        let e = CodeRemap::from_file(&scratch.path().join("t.pt"), 2888).unwrap_err();
        assert!(e.to_string().contains("class 2887 has no code"), "{e}");
        let e = CodeRemap::from_file(&scratch.path().join("t.pt"), 100).unwrap_err();
        assert!(
            e.to_string()
                .contains("outside the transformer's 100 classes"),
            "{e}"
        );
    }
}
