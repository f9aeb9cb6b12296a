//! [`TokenDataset`]: the examples [`crate::DenoiserTrainer`] draws its batches from — token
//! grids (images encoded by a VQ-VAE), each with a condition of the model's kind — and the
//! three kinds of data VQ-Diffusion trains on: [`TokenData`] (captions: text-to-image, Gu et
//! al. 2022 §4.1), [`ClassTokenData`] (class labels: ImageNet, §4.3) and
//! [`UnconditionalTokenData`] (nothing: FFHQ-style). A dataset of your own implements the
//! trait; its [`TokenDataset::condition`] gets the step's generator, so it may vary an
//! example's condition each time it is drawn (a different phrasing of the same scene).

use candle_core::Tensor;
use rand_chacha::ChaCha12Rng;

/// Token grids with one condition each.
pub trait TokenDataset {
    /// One example's condition (the model's [`crate::TrainableDenoiser::Condition`]).
    type Condition;

    /// The `(M, N)` u32 token grids.
    fn tokens(&self) -> &Tensor;

    /// The number of examples `M` (the conditions this dataset has).
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The condition of example `index` (`< len()`), drawn when the example is drawn into a
    /// batch, with that step's generator (a fixed dataset ignores it).
    fn condition(&self, index: usize, rng: &mut ChaCha12Rng) -> Self::Condition;
}

/// Token grids and their captions.
pub struct TokenData {
    /// `(M, N)` u32 token grids.
    pub tokens: Tensor,
    /// One caption per grid.
    pub captions: Vec<String>,
}

impl TokenDataset for TokenData {
    type Condition = String;

    fn tokens(&self) -> &Tensor {
        &self.tokens
    }

    fn len(&self) -> usize {
        self.captions.len()
    }

    fn condition(&self, index: usize, _: &mut ChaCha12Rng) -> String {
        self.captions[index].clone()
    }
}

/// Token grids and their class labels.
pub struct ClassTokenData {
    /// `(M, N)` u32 token grids.
    pub tokens: Tensor,
    /// One label per grid (`0..num_labels` of the model).
    pub labels: Vec<usize>,
}

impl TokenDataset for ClassTokenData {
    type Condition = Option<usize>;

    fn tokens(&self) -> &Tensor {
        &self.tokens
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn condition(&self, index: usize, _: &mut ChaCha12Rng) -> Option<usize> {
        Some(self.labels[index])
    }
}

/// Token grids without conditions (an unconditional model's data).
pub struct UnconditionalTokenData {
    /// `(M, N)` u32 token grids.
    pub tokens: Tensor,
}

impl TokenDataset for UnconditionalTokenData {
    type Condition = Option<usize>;

    fn tokens(&self) -> &Tensor {
        &self.tokens
    }

    fn len(&self) -> usize {
        self.tokens.dim(0).unwrap_or(0)
    }

    fn condition(&self, _: usize, _: &mut ChaCha12Rng) -> Option<usize> {
        None
    }
}
