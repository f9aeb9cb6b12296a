//! A low-discrepancy order over the token grid, for Halton-MaskGIT (Besnier, Chen, Hays & Zheng
//! 2025, "Halton scheduler for masked generative image transformers", §3): tokens are unmasked
//! in the order the 2-D Halton sequence (bases 2 and 3) first visits their cells, so every step
//! commits tokens spread evenly over the image instead of clustered where the model happens to
//! be confident.
//!
//! The `i`-th Halton point is `(φ₂(i), φ₃(i))` with `φ_b` the radical inverse in base `b`
//! (the digits of `i` in base `b` mirrored about the radix point). Scaled to an `h × w` grid
//! and skipping cells already visited, the sequence covers every cell; the order depends only
//! on the grid, never on the values, which is what keeps an order-based sampler exact with a
//! perfect denoiser when it commits one token per call (the chain rule in any fixed order).
//!
//! Token positions are row-major (`p = row·w + col`), as VQ-Diffusion flattens its latent grid.
//! A sequence length that is not a square is treated as a `1 × N` strip and ordered by the
//! base-2 radical inverse alone (the van der Corput sequence).

/// The radical inverse of `i` in base `base`: `Σ_j d_j base^{−j−1}` for the base-`base` digits
/// `d_j` of `i`, least significant first.
pub fn radical_inverse(mut i: u64, base: u64) -> f64 {
    let mut inverse = 0.0;
    let mut scale = 1.0 / base as f64;
    while i > 0 {
        inverse += (i % base) as f64 * scale;
        i /= base;
        scale /= base as f64;
    }
    inverse
}

/// `rank[p]`: when position `p` of an `n`-token sequence comes in the Halton order (0 first).
/// A permutation of `0..n`.
pub fn halton_rank(n: usize) -> Vec<usize> {
    let side = (n as f64).sqrt().round() as usize;
    let (h, w) = if side * side == n {
        (side, side)
    } else {
        (1, n)
    };
    let mut rank = vec![usize::MAX; n];
    let mut next = 0;
    let mut i: u64 = 0;
    // Every cell is hit within a bounded number of points; the fallback below is a guard.
    while next < n && i < 64 * n as u64 + 64 {
        let (x, y) = if h == 1 {
            (radical_inverse(i, 2), 0.0)
        } else {
            (radical_inverse(i, 2), radical_inverse(i, 3))
        };
        let col = ((x * w as f64) as usize).min(w - 1);
        let row = ((y * h as f64) as usize).min(h - 1);
        let p = row * w + col;
        if rank[p] == usize::MAX {
            rank[p] = next;
            next += 1;
        }
        i += 1;
    }
    for r in rank.iter_mut().filter(|r| **r == usize::MAX) {
        *r = next;
        next += 1;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn radical_inverse_mirrors_the_digits() {
        assert_eq!(radical_inverse(0, 2), 0.0);
        assert_eq!(radical_inverse(1, 2), 0.5);
        assert_eq!(radical_inverse(2, 2), 0.25);
        assert_eq!(radical_inverse(3, 2), 0.75);
        assert!((radical_inverse(5, 3) - (2.0 / 3.0 + 1.0 / 9.0)).abs() < 1e-12);
    }

    #[test]
    fn the_first_points_of_a_square_grid_are_spread_out() {
        // 8 x 8: the first 16 cells visited are 16 different cells, 3 to 5 in each quadrant
        // (a random order puts 0 to 16 in one).
        let rank = halton_rank(64);
        let first: Vec<usize> = (0..16)
            .map(|r| rank.iter().position(|&x| x == r).unwrap())
            .collect();
        assert_eq!(&first[..4], &[0, 20, 42, 6]);
        let mut quadrants = [0usize; 4];
        for p in &first {
            quadrants[2 * ((p / 8) / 4) + (p % 8) / 4] += 1;
        }
        assert!(
            quadrants.iter().all(|&q| (3..=5).contains(&q)),
            "{quadrants:?}"
        );
    }

    proptest! {
        #[test]
        fn the_rank_is_a_permutation(n in 1usize..300) {
            let mut rank = halton_rank(n);
            rank.sort_unstable();
            prop_assert_eq!(rank, (0..n).collect::<Vec<_>>());
        }
    }
}
