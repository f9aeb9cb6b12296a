//! [`WeightFile`]: one reader for every weight file of the workspace — safetensors and PyTorch
//! (`.bin`, `.pth`, `.pt`, `.ckpt`: the zip format of `torch.save`) — memory-mapped and indexed
//! when opened, read one tensor at a time. Nothing but the index is parsed up front, so a
//! multi-gigabyte training checkpoint costs only the tensors that are asked for, and the pages
//! of a tensor are released again once it is copied (peak memory ≈ the tensors kept).
//!
//! The format is recognised by content (safetensors' JSON header or the zip signature), not by
//! the extension.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;

use crate::stored_tensor::StoredTensor;
use crate::{Error, Result};

/// The container format of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Hugging Face safetensors.
    Safetensors,
    /// PyTorch's zip checkpoint (`torch.save`).
    PyTorch,
}

impl WeightFormat {
    fn name(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::PyTorch => "PyTorch",
        }
    }
}

/// Dtype and shape of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Stored element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

/// A memory-mapped, indexed weight file.
pub struct WeightFile {
    path: PathBuf,
    format: WeightFormat,
    map: Mmap,
    tensors: BTreeMap<String, StoredTensor>,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn safetensors_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::BOOL | S::U8 => DType::U8,
        S::U32 => DType::U32,
        S::I16 => DType::I16,
        S::I32 => DType::I32,
        S::I64 => DType::I64,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        _ => return None,
    })
}

fn index_safetensors(bytes: &[u8]) -> std::result::Result<BTreeMap<String, StoredTensor>, String> {
    let (header, metadata) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let base = 8 + header;
    let mut out = BTreeMap::new();
    for (name, info) in metadata.tensors() {
        let dtype = safetensors_dtype(info.dtype)
            .ok_or_else(|| format!("tensor {name}: dtype {:?} is not supported", info.dtype))?;
        let (a, b) = info.data_offsets;
        let t = StoredTensor::contiguous(
            dtype,
            info.shape.clone(),
            base + a,
            b.checked_sub(a).ok_or("negative data range")?,
            bytes.len(),
        )
        .map_err(|e| format!("tensor {name}: {e}"))?;
        out.insert(name, t);
    }
    Ok(out)
}

impl WeightFile {
    /// Opens and indexes `path` (safetensors or a PyTorch zip checkpoint).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(Error::io(&path))?;
        // SAFETY: the map is read-only; like every reader of memory-mapped checkpoints we
        // assume the file is not truncated while it is open (tensors are copied out of it).
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io(&path))?;
        let (format, index) = if map.starts_with(b"PK") {
            (WeightFormat::PyTorch, crate::torch_file::index(&map))
        } else {
            (WeightFormat::Safetensors, index_safetensors(&map))
        };
        let tensors = index.map_err(|reason| Error::InvalidWeightFile {
            path: path.clone(),
            format: format.name(),
            reason,
        })?;
        Ok(Self {
            path,
            format,
            map,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Every tensor name, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Dtype and shape of `key`.
    pub fn info(&self, key: &str) -> Option<TensorInfo> {
        self.tensors.get(key).map(|t| TensorInfo {
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
    }

    /// Whether the file holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    fn stored(&self, key: &str) -> Result<&StoredTensor> {
        self.tensors.get(key).ok_or_else(|| Error::MissingWeight {
            file: self.path.clone(),
            key: key.to_string(),
            expected: None,
        })
    }

    /// The tensor `key` on `device`, in its stored dtype. Its pages are released from this
    /// process's memory after the copy.
    pub fn tensor(&self, key: &str, device: &Device) -> Result<Tensor> {
        let stored = self.stored(key)?;
        let t = stored.load(&self.map, device)?;
        let range = stored.byte_range();
        // Page-granular advice: only whole pages inside the range are dropped.
        let page = 4096;
        let first = range.start.div_ceil(page) * page;
        if range.end > first + page {
            let len = (range.end - first) / page * page;
            // SAFETY: DONTNEED on a read-only file mapping only drops cached pages; later
            // reads fault them in again from the file.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, len)
            };
        }
        Ok(t)
    }

    /// Every tensor of the file on `device`, as stored.
    pub fn tensors(&self, device: &Device) -> Result<BTreeMap<String, Tensor>> {
        self.keys()
            .map(|k| Ok((k.to_string(), self.tensor(k, device)?)))
            .collect()
    }

    /// Scans `key` for NaN and infinite values (floating-point tensors; others are finite):
    /// a value is non-finite exactly when its exponent bits are all ones, tested on the raw
    /// little-endian words in one vectorisable pass.
    pub fn check_finite(&self, key: &str) -> Result<()> {
        let stored = self.stored(key)?;
        let copied;
        let bytes: &[u8] = if stored.is_contiguous() {
            &self.map[stored.byte_range()]
        } else {
            copied = stored.bytes(&self.map);
            &copied
        };
        fn non_finite<const W: usize>(bytes: &[u8], exponent: u64) -> (usize, Option<usize>) {
            let word = |c: &[u8]| {
                let mut v = [0u8; 8];
                v[..W].copy_from_slice(c);
                u64::from_le_bytes(v)
            };
            let bad = |c: &[u8]| word(c) & exponent == exponent;
            let count: usize = bytes.chunks_exact(W).map(|c| usize::from(bad(c))).sum();
            let first = (count > 0)
                .then(|| bytes.chunks_exact(W).position(bad))
                .flatten();
            (count, first)
        }
        let (count, first) = match stored.dtype {
            DType::F32 => non_finite::<4>(bytes, 0x7f80_0000),
            DType::F64 => non_finite::<8>(bytes, 0x7ff0_0000_0000_0000),
            DType::F16 => non_finite::<2>(bytes, 0x7c00),
            DType::BF16 => non_finite::<2>(bytes, 0x7f80),
            _ => return Ok(()),
        };
        match first {
            None => Ok(()),
            Some(first) => Err(Error::NonFinite {
                file: self.path.clone(),
                key: key.to_string(),
                count,
                first,
            }),
        }
    }
}
