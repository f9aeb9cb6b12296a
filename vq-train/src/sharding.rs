//! Data-parallel ranks: which share of a dataset a process trains on, and its seed. The rank
//! and world size come from `RANK` and `WORLD_SIZE` (the variables `torchrun` and most
//! launchers set), default a single process. Item `i` belongs to rank `i mod world`, so the
//! shards are disjoint, cover the dataset, and differ in size by at most one; each rank's seed
//! is the run's seed mixed with its rank (SplitMix64), so ranks draw different noise and a
//! rerun draws the same.

use crate::{Error, Result};

/// This process's place among the data-parallel processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// 0-based rank.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
}

impl Default for Rank {
    fn default() -> Self {
        Self { rank: 0, world: 1 }
    }
}

impl Rank {
    /// A rank, checked (`rank < world`).
    pub fn new(rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(Error::InvalidSetting(format!(
                "rank {rank} of a world of {world}: need 0 ≤ rank < world"
            )));
        }
        Ok(Self { rank, world })
    }

    /// From `RANK` / `WORLD_SIZE`; a single process when neither is set.
    pub fn from_env() -> Result<Self> {
        let read = |name: &str| -> Result<Option<usize>> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::InvalidSetting(format!("{name}={v:?} is not a whole number"))
                }),
            }
        };
        match (read("RANK")?, read("WORLD_SIZE")?) {
            (None, None) => Ok(Self::default()),
            (Some(r), Some(w)) => Self::new(r, w),
            _ => Err(Error::InvalidSetting(
                "set both RANK and WORLD_SIZE, or neither".into(),
            )),
        }
    }

    /// The indices of `0..len` this rank trains on.
    pub fn shard(&self, len: usize) -> impl Iterator<Item = usize> + use<> {
        (self.rank..len).step_by(self.world)
    }

    /// This rank's seed for a run seeded with `seed`.
    pub fn seed(&self, seed: u64) -> u64 {
        let mut z = seed ^ (self.rank as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shards_are_disjoint_cover_everything_and_balance(len in 0usize..500, world in 1usize..9) {
            let mut seen = vec![0u8; len];
            let mut sizes = Vec::new();
            for r in 0..world {
                let shard: Vec<usize> = Rank::new(r, world).unwrap().shard(len).collect();
                sizes.push(shard.len());
                for i in shard {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn ranks_get_distinct_reproducible_seeds_and_bad_ranks_are_refused() {
        let seeds: Vec<u64> = (0..4).map(|r| Rank::new(r, 4).unwrap().seed(7)).collect();
        let mut unique = seeds.clone();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        assert_eq!(Rank::new(2, 4).unwrap().seed(7), seeds[2]);
        assert!(matches!(Rank::new(4, 4), Err(Error::InvalidSetting(_))));
        assert!(matches!(Rank::new(0, 0), Err(Error::InvalidSetting(_))));
    }
}
