//! [`Conv2d`]: `torch.nn.Conv2d` over `(B, C, H, W)` tensors, weights `(C_out, C_in, k, k)`.
//!
//! Inference on the CPU (f32, no gradient, stride 1, "same" padding `(k − 1)/2`) runs a fused
//! kernel: the input is copied once into a zero-padded buffer — applying, on the way, a
//! [`crate::GroupNorm`], SiLU and nearest ×2 upsampling when they precede the convolution (the
//! VQ-GAN decoder's `GroupNorm → SiLU → conv` and `upsample → conv`). The output is
//! initialised with the bias, or with `residual + bias` ([`Conv2d::forward_with`]), so neither
//! costs a pass. Then:
//!
//! * 3×3 convolutions with at least 8 input and output channels run by Winograd's F(2×2, 3×3)
//!   (`winograd.rs`: 2.25× fewer multiplications, the direct method's accuracy);
//! * other kernel sizes are computed in tiles of whole output rows: each tile gathers its
//!   `k²·C_in × rows·W` patch matrix with contiguous row copies from the padded buffer and
//!   multiplies it by the weight, repacked once to `(C_out, k²·C_in)`, in one GEMM whose output
//!   rows are the tile's part of the output planes. Tiles run in parallel.
//!
//! Every other case (training, accelerators, strides) is candle's `conv2d`.

use std::sync::OnceLock;

use candle_core::{DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use crate::functional::cast;
use crate::gemm::{MatMut, MatRef, Threads, sgemm};
use crate::group_norm::{GroupNorm, NormStats};
use crate::host::{no_grad, on_cpu, tensor, uninit_vec, with_slice};
use crate::shared_out::SharedOut;
use crate::{Result, simd, winograd};

/// A 2-D convolution.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    packed: std::sync::Arc<OnceLock<Vec<f32>>>,
    winograd: std::sync::Arc<OnceLock<Vec<f32>>>,
}

/// What is applied to the input before the convolution on the fused path.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvInput<'a> {
    /// A group normalisation of the input.
    pub norm: Option<&'a GroupNorm>,
    /// SiLU after the normalisation (or on the raw input).
    pub silu: bool,
    /// Nearest-neighbour ×2 upsampling (after normalisation and activation).
    pub upsample: bool,
}

/// Output pixels per tile (rounded to whole rows).
const TILE: usize = 1024;

/// Input and output channels from which a 3×3 convolution runs by Winograd's F(2×2, 3×3)
/// (fewer, and the 16 small products cost more than they save).
const WINOGRAD_MIN_CHANNELS: usize = 8;

impl Conv2d {
    /// Loads `weight` `(c_out, c_in, k, k)` and `bias` `(c_out)`; fresh parameters get PyTorch's
    /// default `U(±1/√(c_in·k²))`.
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let bound = 1.0 / ((c_in * kernel * kernel).max(1) as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", init)?;
        Ok(Self::from_tensors(weight, Some(bias), stride, padding))
    }

    /// A convolution from its tensors.
    pub fn from_tensors(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            weight,
            bias,
            stride,
            padding,
            packed: std::sync::Arc::new(OnceLock::new()),
            winograd: std::sync::Arc::new(OnceLock::new()),
        }
    }

    /// The `(C_out, C_in, k, k)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    fn fused_applies(&self, x: &Tensor) -> bool {
        let k = self.kernel();
        on_cpu(x)
            && x.dtype() == DType::F32
            && x.rank() == 4
            && self.stride == 1
            && k % 2 == 1
            && self.weight.dims()[3] == k
            && self.padding == (k - 1) / 2
            && no_grad(&[x, &self.weight])
            && self.bias.as_ref().is_none_or(|b| no_grad(&[b]))
    }

    /// `conv(pre(x)) + residual`: `pre` applies a group norm, SiLU and ×2 upsampling to the
    /// input (in that order), `residual` has the output's shape.
    pub fn forward_with(
        &self,
        x: &Tensor,
        pre: ConvInput,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let fused = self.fused_applies(x)
            && pre.norm.is_none_or(|n| n.fused_applies(x, false))
            && residual.is_none_or(|r| on_cpu(r) && r.dtype() == DType::F32 && no_grad(&[r]));
        if fused {
            return self.fused(x, pre, residual);
        }
        let mut h = x.clone();
        if let Some(norm) = pre.norm {
            h = norm.forward_t(&h, true)?;
        }
        if pre.silu {
            h = candle_nn::ops::silu(&h)?;
        }
        if pre.upsample {
            let (b, c, hh, w) = h.dims4()?;
            h = h
                .reshape((b, c, hh, 1, w, 1))?
                .broadcast_as((b, c, hh, 2, w, 2))?
                .reshape((b, c, 2 * hh, 2 * w))?;
        }
        let y = self.candle_forward(&h)?;
        Ok(match residual {
            Some(r) => (y + r)?,
            None => y,
        })
    }

    fn candle_forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = cast(&self.weight, x.dtype())?;
        let y = x.conv2d(&w, self.padding, self.stride, 1, 1)?;
        Ok(match &self.bias {
            Some(b) => {
                let b = cast(b, x.dtype())?;
                y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?
            }
            None => y,
        })
    }

    /// The weight as `(C_out, k²·C_in)` with columns ordered `(ky, kx, c_in)`.
    fn packed(&self) -> Result<&[f32]> {
        if let Some(p) = self.packed.get() {
            return Ok(p);
        }
        let dims = self.weight.dims().to_vec();
        let (co, ci, kk) = (dims[0], dims[1], dims[2] * dims[3]);
        let w = cast(&self.weight, DType::F32)?;
        let packed = with_slice::<f32, _>(&w, |w| {
            let mut p = vec![0f32; co * kk * ci];
            for o in 0..co {
                for i in 0..ci {
                    for s in 0..kk {
                        p[o * kk * ci + s * ci + i] = w[o * ci * kk + i * kk + s];
                    }
                }
            }
            p
        })?;
        Ok(self.packed.get_or_init(|| packed))
    }

    /// The 16 Winograd-transformed filters (see [`crate::winograd`]).
    fn winograd_weights(&self) -> Result<&[f32]> {
        if let Some(u) = self.winograd.get() {
            return Ok(u);
        }
        let dims = self.weight.dims().to_vec();
        let w = cast(&self.weight, DType::F32)?;
        let u = with_slice::<f32, _>(&w, |w| winograd::transform_weights(w, dims[0], dims[1]))?;
        Ok(self.winograd.get_or_init(|| u))
    }

    fn fused(&self, x: &Tensor, pre: ConvInput, residual: Option<&Tensor>) -> Result<Tensor> {
        let (b, ci, h, w) = x.dims4()?;
        let dims = self.weight.dims().to_vec();
        let (co, k) = (dims[0], dims[2]);
        if dims[1] != ci {
            return Err(candle_core::Error::Msg(format!(
                "conv2d: input has {ci} channels, the weight {:?} expects {}",
                dims, dims[1]
            ))
            .into());
        }
        let up = if pre.upsample { 2 } else { 1 };
        let (oh, ow) = (h * up, w * up);
        let winograd = k == 3 && ci >= WINOGRAD_MIN_CHANNELS && co >= WINOGRAD_MIN_CHANNELS;
        let stats: Option<NormStats> = match pre.norm {
            Some(n) => Some(n.stats(x)?),
            None => None,
        };
        let bias = match &self.bias {
            Some(bb) => Some(with_slice::<f32, _>(&cast(bb, DType::F32)?, |v| {
                v.to_vec()
            })?),
            None => None,
        };
        let plane = oh * ow;
        let accumulate = bias.is_some() || residual.is_some();
        let mut out: Vec<f32> = if accumulate || !winograd {
            // SAFETY: every element is written by the initialisation below (bias / residual)
            // or, without either, by the im2col GEMM (which overwrites when it does not
            // accumulate).
            unsafe { uninit_vec(b * co * plane) }
        } else {
            vec![0f32; b * co * plane]
        };
        match (residual, &bias) {
            (Some(r), _) => with_slice::<f32, _>(r, |r| {
                out.par_chunks_mut(plane)
                    .zip(r.par_chunks(plane))
                    .enumerate()
                    .for_each(|(i, (o, r))| {
                        let add = bias.as_ref().map_or(0.0, |bv| bv[i % co]);
                        for (o, &r) in o.iter_mut().zip(r) {
                            *o = r + add;
                        }
                    })
            })?,
            (None, Some(bv)) => out
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(i, o)| o.fill(bv[i % co])),
            (None, None) => {}
        }
        with_slice::<f32, _>(x, |xs| -> Result<()> {
            for bi in 0..b {
                let sample = &xs[bi * ci * h * w..(bi + 1) * ci * h * w];
                // Input row y of channel c after the norm and the activation.
                let processed = |c: usize, y: usize, row: &mut [f32]| {
                    let s = &sample[(c * h + y) * w..(c * h + y + 1) * w];
                    match &stats {
                        Some(st) => {
                            let (mean, inv, wt, bs) = st.channel(bi, c);
                            simd::normalise_affine(s, row, mean, inv, wt, bs, pre.silu);
                        }
                        None if pre.silu => simd::silu(s, row),
                        None => row.copy_from_slice(s),
                    }
                };
                let out_b = &mut out[bi * co * plane..(bi + 1) * co * plane];
                if winograd {
                    let u = self.winograd_weights()?;
                    let g = winograd::Geometry::new(oh, ow);
                    let mut padded: Vec<f32> = unsafe_uninit(ci * g.plane());
                    padded
                        .par_chunks_mut(g.plane())
                        .enumerate()
                        .for_each(|(c, dst)| {
                            let mut row = vec![0f32; w];
                            let rl = g.row_len();
                            dst[..rl].fill(0.0);
                            for y in 0..h {
                                processed(c, y, &mut row);
                                for dy in 0..up {
                                    let pr = y * up + dy + 1;
                                    winograd::fill_padded_row(
                                        &mut dst[pr * rl..(pr + 1) * rl],
                                        &row,
                                        &g,
                                        up,
                                    );
                                }
                            }
                            dst[(oh + 1) * rl..].fill(0.0);
                        });
                    winograd::convolve(&padded, u, ci, co, g, out_b);
                } else {
                    self.im2col(&processed, ci, co, k, oh, ow, up, w, accumulate, out_b)?;
                }
            }
            Ok(())
        })??;
        tensor(out, &[b, co, oh, ow])
    }

    /// One sample by an explicit patch matrix: `out = W · patches (+ out)` in tiles of whole
    /// output rows.
    #[allow(clippy::too_many_arguments)]
    fn im2col(
        &self,
        processed: &(dyn Fn(usize, usize, &mut [f32]) + Sync),
        ci: usize,
        co: usize,
        k: usize,
        oh: usize,
        ow: usize,
        up: usize,
        w: usize,
        accumulate: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let weight = self.packed()?;
        let plane = oh * ow;
        let p = (k - 1) / 2;
        let (ph, pw) = (oh + 2 * p, ow + 2 * p);
        let h = oh / up;
        // 1. The padded (normalised, activated, upsampled) input of this sample.
        let mut padded = vec![0f32; ci * ph * pw];
        padded
            .par_chunks_mut(ph * pw)
            .enumerate()
            .for_each(|(c, dst)| {
                let mut row = vec![0f32; w];
                for y in 0..h {
                    processed(c, y, &mut row);
                    for dy in 0..up {
                        let d =
                            &mut dst[(y * up + dy + p) * pw + p..(y * up + dy + p) * pw + p + ow];
                        if up == 1 {
                            d.copy_from_slice(&row);
                        } else {
                            for (pair, &v) in d.chunks_exact_mut(2).zip(&row) {
                                pair[0] = v;
                                pair[1] = v;
                            }
                        }
                    }
                }
            });
        // 2. Tiles of output rows: patch matrix + one GEMM each.
        let rows_per_tile = (TILE / ow.max(1)).clamp(1, oh.max(1));
        let tiles = oh.div_ceil(rows_per_tile);
        let patch = k * k * ci;
        let out_b = SharedOut::new(out);
        let run_tile = |t: usize, cols: &mut Vec<f32>, threads: Threads| {
            let y0 = t * rows_per_tile;
            let rows = rows_per_tile.min(oh - y0);
            let n = rows * ow;
            cols.resize(patch * n, 0.0);
            for ky in 0..k {
                for kx in 0..k {
                    let s = ky * k + kx;
                    for c in 0..ci {
                        let dst = &mut cols[(s * ci + c) * n..(s * ci + c + 1) * n];
                        let src = &padded[c * ph * pw..(c + 1) * ph * pw];
                        for r in 0..rows {
                            let from = (y0 + r + ky) * pw + kx;
                            dst[r * ow..(r + 1) * ow].copy_from_slice(&src[from..from + ow]);
                        }
                    }
                }
            }
            // SAFETY: the tile owns output columns y0·ow .. y0·ow + n of every plane of this
            // sample.
            let c = unsafe { MatMut::from_raw(out_b.at(y0 * ow), co, n, plane) };
            sgemm(
                c,
                MatRef::row_major(weight, co, patch, patch),
                MatRef::row_major(&cols[..patch * n], patch, n, n),
                accumulate,
                threads,
            );
        };
        let threads = candle_core::utils::get_num_threads();
        if tiles >= 2 * threads {
            (0..tiles)
                .into_par_iter()
                .for_each_init(Vec::new, |cols, t| run_tile(t, cols, Threads::One));
        } else {
            let mut cols = Vec::new();
            for t in 0..tiles {
                run_tile(t, &mut cols, Threads::All);
            }
        }
        Ok(())
    }
}

/// An uninitialised buffer for the padded Winograd input, every element of which
/// [`winograd::fill_padded_row`] and the border fills write.
fn unsafe_uninit(n: usize) -> Vec<f32> {
    // SAFETY: see above; the callers write every element before reading.
    unsafe { uninit_vec(n) }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_with(x, ConvInput::default(), None)
            .map_err(crate::Error::into_candle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_convolutions_match_candle() {
        let dev = Device::Cpu;
        // Winograd (3×3, ≥ 8 channels; odd and even sizes, one pixel), im2col (1×1, few channels).
        for (k, ci, co, h, w) in [
            (3, 8, 12, 9, 70),
            (3, 16, 16, 7, 5),
            (3, 32, 24, 1, 1),
            (3, 64, 64, 64, 64),
            (1, 8, 5, 6, 7),
            (3, 3, 4, 40, 40),
        ] {
            let x = Tensor::randn(0f32, 1.0, (2, ci, h, w), &dev).unwrap();
            let conv = Conv2d::from_tensors(
                Tensor::randn(0f32, 0.3, (co, ci, k, k), &dev).unwrap(),
                Some(Tensor::randn(0f32, 0.3, co, &dev).unwrap()),
                1,
                (k - 1) / 2,
            );
            let gn = GroupNorm::from_tensors(
                Tensor::randn(1f32, 0.2, ci, &dev).unwrap(),
                Tensor::randn(0f32, 0.2, ci, &dev).unwrap(),
                if ci % 4 == 0 { 4 } else { 1 },
                1e-6,
            );
            for (norm, silu, upsample) in [
                (false, false, false),
                (true, true, false),
                (false, false, true),
                (true, true, true),
            ] {
                let pre = ConvInput {
                    norm: norm.then_some(&gn),
                    silu,
                    upsample,
                };
                let (oh, ow) = if upsample { (2 * h, 2 * w) } else { (h, w) };
                let r = Tensor::randn(0f32, 1.0, (2, co, oh, ow), &dev).unwrap();
                let fused = conv.forward_with(&x, pre, Some(&r)).unwrap();
                // The reference: the same chain with candle's ops.
                let mut hh = x.clone();
                if norm {
                    hh = gn.composite(&hh).unwrap();
                }
                if silu {
                    hh = candle_nn::ops::silu(&hh).unwrap();
                }
                if upsample {
                    hh = hh.upsample_nearest2d(oh, ow).unwrap();
                }
                let want = (conv.candle_forward(&hh).unwrap() + &r).unwrap();
                assert!(
                    max_diff(&fused, &want) < 1e-4,
                    "k {k}: {}",
                    max_diff(&fused, &want)
                );
            }
        }
    }

    /// Winograd's rounding error stays at the direct method's: against an f64 convolution, at
    /// the decoder's widest input (512 channels, 4608 products per output).
    #[test]
    fn winograd_is_as_accurate_as_the_direct_method() {
        let dev = Device::Cpu;
        let (ci, co, side) = (512, 16, 12);
        let x = Tensor::randn(0f32, 1.0, (1, ci, side, side), &dev).unwrap();
        let w =
            Tensor::randn(0f32, (1.0 / (9.0 * ci as f32)).sqrt(), (co, ci, 3, 3), &dev).unwrap();
        let conv = Conv2d::from_tensors(w.clone(), None, 1, 1);
        let exact = x
            .to_dtype(DType::F64)
            .unwrap()
            .conv2d(&w.to_dtype(DType::F64).unwrap(), 1, 1, 1, 1)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let winograd = conv.forward_with(&x, ConvInput::default(), None).unwrap();
        let direct = conv.candle_forward(&x).unwrap();
        let (ew, ed) = (max_diff(&winograd, &exact), max_diff(&direct, &exact));
        assert!(ew <= 4.0 * ed + 1e-6, "winograd {ew:e}, direct {ed:e}");
    }
}
