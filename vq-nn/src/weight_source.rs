//! [`WeightSource`]: a [`WeightFile`] behind a candle `VarBuilder` that checks every request —
//! the key exists, the stored dtype is floating point, the shape is the one the configuration
//! implies, every value is finite (a NaN or infinite weight is an error naming the tensor, not
//! an image of garbage) — and remembers which keys the model read, so that a loader can insist, as
//! PyTorch's `load_state_dict(strict=True)` does, that every tensor of the file was used.
//!
//! Errors raised inside the `VarBuilder` carry this crate's [`Error`] (see
//! [`Error::from_candle`]), so a model crate reports `MissingWeight { file, key, expected }`
//! instead of a generic "cannot find tensor".

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use crate::{Error, Result, WeightFile};

type KeyMap = dyn Fn(&str) -> String + Send + Sync;

struct Inner {
    file: WeightFile,
    key_map: Option<Box<KeyMap>>,
    used: Mutex<BTreeSet<String>>,
}

/// A weight file read through checked, tracked `VarBuilder`s.
#[derive(Clone)]
pub struct WeightSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSource")
            .field("file", &self.inner.file)
            .finish()
    }
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

impl WeightSource {
    /// Opens `path` (see [`WeightFile::open`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(WeightFile::open(path)?))
    }

    /// Wraps an opened file.
    pub fn new(file: WeightFile) -> Self {
        Self::build(file, None)
    }

    /// Wraps an opened file whose keys differ from the model's: `map(model_key)` is the key in
    /// the file (e.g. adding a prefix an older writer used).
    pub fn with_key_map(
        file: WeightFile,
        map: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        Self::build(file, Some(Box::new(map)))
    }

    fn build(file: WeightFile, key_map: Option<Box<KeyMap>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                file,
                key_map,
                used: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// The underlying file.
    pub fn file(&self) -> &WeightFile {
        &self.inner.file
    }

    /// A `VarBuilder` converting to `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.inner.clone())), dtype, device.clone())
    }

    /// Keys of the file no `VarBuilder` has read yet, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.inner.used.lock().expect("weight tracker poisoned");
        self.inner
            .file
            .keys()
            .filter(|k| !used.contains(*k))
            .map(String::from)
            .collect()
    }

    /// Errors with [`Error::UnusedWeights`] when the file holds tensors the model did not read,
    /// other than those `ignorable` accepts (buffers such as `position_ids`).
    pub fn ensure_all_used(&self, ignorable: impl Fn(&str) -> bool) -> Result<()> {
        let keys: Vec<String> = self
            .unused()
            .into_iter()
            .filter(|k| !ignorable(k))
            .collect();
        if keys.is_empty() {
            Ok(())
        } else {
            Err(Error::UnusedWeights {
                file: self.inner.file.path().to_path_buf(),
                keys,
            })
        }
    }
}

struct Backend(Arc<Inner>);

impl Backend {
    fn key(&self, name: &str) -> String {
        match &self.0.key_map {
            Some(map) => map(name),
            None => name.to_string(),
        }
    }

    fn fetch(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let key = self.key(name);
        let file = &self.0.file;
        let info = file.info(&key).ok_or_else(|| Error::MissingWeight {
            file: file.path().to_path_buf(),
            key: key.clone(),
            expected: shape.map(|s| s.dims().to_vec()),
        })?;
        if !is_float(info.dtype) {
            return Err(Error::WeightDtype {
                file: file.path().to_path_buf(),
                key,
                found: format!("{:?}", info.dtype),
            });
        }
        if let Some(shape) = shape
            && info.shape != shape.dims()
        {
            return Err(Error::WeightShape {
                file: file.path().to_path_buf(),
                key,
                expected: shape.dims().to_vec(),
                found: info.shape,
            });
        }
        let stored = file.tensor(&key, dev)?;
        // The scan runs on the loaded copy where it is in host memory (the file's pages were
        // faulted in once for the copy and dropped after it); on an accelerator, on the file.
        if !stored_is_finite(&stored)? {
            file.check_finite(&key)?;
        }
        let t = stored.to_dtype(dtype)?;
        self.0
            .used
            .lock()
            .expect("weight tracker poisoned")
            .insert(key);
        Ok(t)
    }
}

/// Whether every value of a floating-point CPU tensor is finite (`false` also when the tensor is
/// elsewhere: the caller then checks the file, which names the first bad value). A value is
/// non-finite when its exponent bits are all ones; counting those is one vectorised pass.
fn stored_is_finite(t: &Tensor) -> Result<bool> {
    fn clean<T>(v: &[T], bits: impl Fn(&T) -> u32, exponent: u32) -> bool {
        v.iter()
            .map(|x| usize::from(bits(x) & exponent == exponent))
            .sum::<usize>()
            == 0
    }
    if !t.device().is_cpu() {
        return Ok(false);
    }
    Ok(match t.dtype() {
        DType::F32 => {
            crate::host::with_slice::<f32, _>(t, |v| clean(v, |x| x.to_bits(), 0x7f80_0000))?
        }
        DType::F16 => crate::host::with_slice::<half::f16, _>(t, |v| {
            clean(v, |x| u32::from(x.to_bits()), 0x7c00)
        })?,
        DType::BF16 => crate::host::with_slice::<half::bf16, _>(t, |v| {
            clean(v, |x| u32::from(x.to_bits()), 0x7f80)
        })?,
        DType::F64 => crate::host::with_slice::<f64, _>(t, |v| v.iter().all(|x| x.is_finite()))?,
        _ => true,
    })
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.fetch(name, Some(&s), dtype, dev)
            .map_err(Error::into_candle)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.fetch(name, None, dtype, dev)
            .map_err(Error::into_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.file.contains(&self.key(name))
    }
}
