//! # vq-nn
//!
//! What the VQ-Diffusion model crates (`clip-text`, `vq-codebook`, `vq-transformer`) share:
//!
//! * **One weight-file reader**, [`WeightFile`]: safetensors and PyTorch checkpoints
//!   (`torch.save`'s zip format, read by the crate's own bounds-checked zip and pickle readers —
//!   no code in a checkpoint is ever executed), memory-mapped, indexed up front, tensors copied
//!   out one at a time.
//! * **Strict loading**, [`WeightSource`]: a candle `VarBuilder` that names the file and key of
//!   every missing, mis-shaped or non-float weight, and reports the tensors a model did not use.
//! * **Weight discovery** in diffusers/transformers folders ([`WeightNames`], [`Variant`]).
//! * **Devices by name** ([`parse_device`]: `cpu`, `cuda:N`, `metal`), with the cargo feature
//!   to enable when a device is not compiled in.
//! * **Fast CPU layers** with device dispatch (TEI-style thin layers): [`Linear`] (bias,
//!   residual and activation fused into the GEMM's output), [`LayerNorm`] and the grouped
//!   [`layer_norm`] of AdaLN, [`multi_head_attention`] (a tiled kernel, no transposes, no score
//!   tensor), fused softmax, activation and log-softmax kernels — each used only when no
//!   gradient can flow, the composite candle formula otherwise. The GEMMs are the pure-Rust
//!   `gemm` crate or, with the `mkl` feature, Intel MKL (including its bf16 GEMM) on Intel CPUs
//!   ([`gemm_backend`] says which this process uses).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use vq_nn::{WeightFile, WeightSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("w.safetensors");
//! let w = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
//! candle_core::safetensors::save(&[("layer.weight", w)].into_iter().collect(), &path)?;
//!
//! let source = WeightSource::open(&path)?;
//! let vb = source.var_builder(DType::F32, &Device::Cpu);
//! let weight = vb.pp("layer").get((2, 3), "weight")?;
//! assert_eq!(weight.dims(), &[2, 3]);
//! // A wrong shape names the file, the key and both shapes:
//! let err = vb.pp("layer").get((3, 3), "weight").unwrap_err();
//! assert!(matches!(vq_nn::Error::from_candle(err), Ok(vq_nn::Error::WeightShape { .. })));
//! source.ensure_all_used(|_| false)?; // every tensor of the file was read
//! # Ok(())
//! # }
//! ```

mod adamw;
mod allocator;
mod amx;
mod attention;
mod avx512_bf16;
mod avx512_vnni;
mod block_tasks;
mod compute_dtype;
mod conv2d;
mod device;
mod diffusers_layout;
mod error;
mod functional;
mod gemm;
mod group_norm;
mod host;
mod int8_weight;
mod layer_norm;
mod linear;
mod ops;
mod pickle;
mod shared_out;
mod simd;
mod stored_tensor;
mod torch_file;
mod weight_file;
mod weight_finder;
mod weight_source;
mod winograd;
mod zip_archive;

pub use adamw::{AdamW, ParamsAdamW};
pub use allocator::tune_allocator;
pub use attention::{AttentionPrecision, multi_head_attention};
pub use compute_dtype::compute_dtype;
pub use conv2d::{Conv2d, ConvInput};
pub use device::{device_name, parse_device};
pub use diffusers_layout::{
    CLASS_NAMES_FILE, CLASS_PIPELINE, DIFFUSERS_VERSION, class_pipeline_model_index,
    pipeline_model_index, with_diffusers_class,
};
pub use error::{Error, Result};
pub use functional::{
    approx_gelu, cast, dropout, layer_norm, layer_norm_as, log_softmax_f64, softmax_last_dim,
};
pub use gemm::{GemmBackend, gemm_backend, native_bf16};
pub use group_norm::GroupNorm;
pub use host::no_grad;
pub use int8_weight::Int8Weight;
pub use int8_weight::int8_native;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use weight_file::{TensorInfo, WeightFile, WeightFormat};
pub use weight_finder::{Variant, WeightNames, component_folder};
pub use weight_source::WeightSource;

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// This crate's version (recorded with generated images).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
