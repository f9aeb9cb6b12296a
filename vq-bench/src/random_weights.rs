//! Seeded random weights for the benchmark models, written as diffusers/transformers folders
//! that both this project and the Python reference load: a SplitMix64 stream per tensor,
//! uniform values with the requested standard deviation (fast enough for the 1.36 billion
//! parameters of the full-size ITHQ transformer).

use std::io::Write;
use std::path::Path;

/// Uniform values in `(-√3 σ, √3 σ) + mean` (standard deviation σ), seeded by `seed`.
pub fn uniform(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let half = std * 3f32.sqrt();
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            mean + (2.0 * u - 1.0) * half
        })
        .collect()
}

/// FNV-1a of a key, to give each tensor its own stream.
pub fn key_seed(key: &str, seed: u64) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One random tensor: its key, shape and the distribution of its values.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// State-dict key.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Mean of the values.
    pub mean: f32,
    /// Standard deviation of the values.
    pub std: f32,
}

impl TensorSpec {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Writes the tensors as a safetensors file in `dtype` ("F32" or "BF16"), generating each
/// tensor's values from `(seed, key)` while writing (so memory holds one tensor at a time),
/// through a temporary file renamed into place.
pub fn write_safetensors(
    path: &Path,
    specs: &[TensorSpec],
    dtype: &str,
    seed: u64,
) -> anyhow::Result<()> {
    let size = match dtype {
        "F32" => 4,
        "BF16" => 2,
        other => anyhow::bail!("dtype {other}"),
    };
    let mut sorted: Vec<&TensorSpec> = specs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0usize;
    for spec in &sorted {
        let len = spec.numel() * size;
        header.insert(
            spec.name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": spec.shape, "data_offsets": [offset, offset + len] }),
        );
        offset += len;
    }
    let mut text = serde_json::to_string(&serde_json::Value::Object(header))?;
    while (text.len() + 8) % 8 != 0 {
        text.push(' ');
    }
    let tmp = path.with_extension("partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    file.write_all(&(text.len() as u64).to_le_bytes())?;
    file.write_all(text.as_bytes())?;
    for spec in sorted {
        let values = uniform(
            spec.numel(),
            spec.mean,
            spec.std,
            key_seed(&spec.name, seed),
        );
        let mut bytes = Vec::with_capacity(values.len() * size);
        for v in values {
            match size {
                4 => bytes.extend_from_slice(&v.to_le_bytes()),
                _ => bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            }
        }
        file.write_all(&bytes)?;
    }
    file.flush()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// Records the key and shape of every tensor a model asks for, answering with zeros.
struct ShapeRecorder(std::sync::Mutex<Vec<(String, Vec<usize>)>>);

impl candle_nn::var_builder::SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: candle_core::DType,
        dev: &candle_core::Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        self.0
            .lock()
            .expect("recorder")
            .push((name.to_string(), s.dims().to_vec()));
        candle_core::Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _: candle_core::DType,
        _: &candle_core::Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        candle_core::bail!("{name}: the shape recorder needs shapes")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// The specs of every parameter a model asks its `VarBuilder` for (keys and shapes, learnt by
/// building it once on zeros), with `init(key, shape)` choosing mean and standard deviation.
pub fn specs_of<M>(
    build: impl FnOnce(candle_nn::VarBuilder) -> anyhow::Result<M>,
    init: impl Fn(&str, &[usize]) -> (f32, f32),
) -> anyhow::Result<Vec<TensorSpec>> {
    let recorder = std::sync::Arc::new(ShapeRecorder(std::sync::Mutex::new(Vec::new())));
    struct Shared(std::sync::Arc<ShapeRecorder>);
    impl candle_nn::var_builder::SimpleBackend for Shared {
        fn get(
            &self,
            s: candle_core::Shape,
            name: &str,
            h: candle_nn::Init,
            dtype: candle_core::DType,
            dev: &candle_core::Device,
        ) -> candle_core::Result<candle_core::Tensor> {
            self.0.get(s, name, h, dtype, dev)
        }
        fn get_unchecked(
            &self,
            name: &str,
            dtype: candle_core::DType,
            dev: &candle_core::Device,
        ) -> candle_core::Result<candle_core::Tensor> {
            self.0.get_unchecked(name, dtype, dev)
        }
        fn contains_tensor(&self, name: &str) -> bool {
            self.0.contains_tensor(name)
        }
    }
    let vb = candle_nn::VarBuilder::from_backend(
        Box::new(Shared(recorder.clone())),
        candle_core::DType::F32,
        candle_core::Device::Cpu,
    );
    drop(build(vb)?);
    let seen = recorder.0.lock().expect("recorder");
    let mut out: Vec<TensorSpec> = Vec::new();
    for (name, shape) in seen.iter() {
        if out.iter().any(|s| &s.name == name) {
            continue;
        }
        let (mean, std) = init(name, shape);
        out.push(TensorSpec {
            name: name.clone(),
            shape: shape.clone(),
            mean,
            std,
        });
    }
    Ok(out)
}
