//! Where one tensor lies in a memory-mapped weight file: dtype, shape, element strides, and the
//! byte range of its storage — checked at indexing time so that reading it later can neither
//! leave the storage nor overflow.

use candle_core::{DType, Device, Tensor};

/// A tensor's location in a weight file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredTensor {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    strides: Vec<usize>,
    /// Byte offset of element 0.
    start: usize,
    /// Bytes spanned from `start` (last element's end).
    span: usize,
}

impl StoredTensor {
    /// A tensor at element `offset` of the storage `[storage_start, storage_end)` of a file of
    /// `file_len` bytes; errors when any element would fall outside the storage.
    pub fn new(
        dtype: DType,
        shape: Vec<usize>,
        strides: Vec<usize>,
        storage_start: usize,
        offset: usize,
        storage_end: usize,
        file_len: usize,
    ) -> Result<Self, String> {
        let size = dtype.size_in_bytes();
        let overflow = || format!("shape {shape:?} with strides {strides:?} overflows");
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(overflow)?;
        // Offset (in elements) of the last element, plus one.
        let extent = if numel == 0 {
            0
        } else {
            shape
                .iter()
                .zip(&strides)
                .try_fold(1usize, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
                .ok_or_else(overflow)?
        };
        let start = offset
            .checked_mul(size)
            .and_then(|o| o.checked_add(storage_start))
            .ok_or_else(overflow)?;
        let span = extent.checked_mul(size).ok_or_else(overflow)?;
        let end = start.checked_add(span).ok_or_else(overflow)?;
        if end > storage_end || storage_end > file_len {
            return Err(format!(
                "{numel} {dtype:?} elements at byte {start} need {span} bytes, past the end of their storage (byte {storage_end})"
            ));
        }
        Ok(Self {
            dtype,
            shape,
            strides,
            start,
            span,
        })
    }

    /// A C-contiguous tensor of `len` bytes at `start` (safetensors).
    pub fn contiguous(
        dtype: DType,
        shape: Vec<usize>,
        start: usize,
        len: usize,
        file_len: usize,
    ) -> Result<Self, String> {
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1]
                .checked_mul(shape[i + 1])
                .ok_or("shape overflows")?;
        }
        let numel: usize = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("shape overflows")?;
        if numel.checked_mul(dtype.size_in_bytes()) != Some(len) {
            return Err(format!(
                "{len} bytes of data for shape {shape:?} of {dtype:?} ({numel} elements)"
            ));
        }
        Self::new(dtype, shape, strides, start, 0, start + len, file_len)
    }

    /// Whether the elements are stored in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Byte range of the tensor in the file.
    pub fn byte_range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.span
    }

    /// The tensor's bytes in C order (a copy; strided tensors are gathered).
    pub fn bytes(&self, file: &[u8]) -> Vec<u8> {
        let data = &file[self.byte_range()];
        if self.is_contiguous() {
            return data.to_vec();
        }
        let size = self.dtype.size_in_bytes();
        let numel: usize = self.shape.iter().product();
        let mut out = Vec::with_capacity(numel * size);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..numel {
            let at: usize = index.iter().zip(&self.strides).map(|(i, s)| i * s).sum();
            out.extend_from_slice(&data[at * size..(at + 1) * size]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out
    }

    /// The tensor on `device`, in its stored dtype (one copy out of the file for contiguous
    /// tensors).
    pub fn load(&self, file: &[u8], device: &Device) -> candle_core::Result<Tensor> {
        if self.is_contiguous() {
            return Tensor::from_raw_buffer(
                &file[self.byte_range()],
                self.dtype,
                &self.shape,
                device,
            );
        }
        Tensor::from_raw_buffer(&self.bytes(file), self.dtype, &self.shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_tensors_are_gathered_in_c_order() {
        // A 2x3 f32 matrix stored transposed (column-major): strides (1, 2).
        let values: Vec<f32> = vec![0., 3., 1., 4., 2., 5.];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = StoredTensor::new(DType::F32, vec![2, 3], vec![1, 2], 0, 0, 24, 24).unwrap();
        let loaded = t.load(&bytes, &Device::Cpu).unwrap();
        assert_eq!(
            loaded.to_vec2::<f32>().unwrap(),
            vec![vec![0., 1., 2.], vec![3., 4., 5.]]
        );
    }

    #[test]
    fn out_of_range_and_overflowing_layouts_are_refused() {
        assert!(StoredTensor::new(DType::F32, vec![2, 3], vec![3, 1], 0, 1, 24, 24).is_err());
        assert!(
            StoredTensor::new(DType::F32, vec![usize::MAX, 2], vec![2, 1], 0, 0, 8, 8).is_err()
        );
        assert!(StoredTensor::new(DType::F32, vec![4], vec![1], 0, 0, 16, 8).is_err());
        assert!(StoredTensor::contiguous(DType::F32, vec![3], 0, 8, 8).is_err());
        // Empty tensors need no bytes.
        assert!(StoredTensor::new(DType::F32, vec![0, 5], vec![5, 1], 0, 0, 0, 0).is_ok());
    }
}
