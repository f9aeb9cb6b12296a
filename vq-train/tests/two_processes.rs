//! Rank-aware sharding across real processes: this test binary runs itself twice with
//! `RANK`/`WORLD_SIZE` set (as a launcher would), each child prints the dataset items of its
//! shard, and together they cover the dataset with no item twice.

use std::process::Command;

use vq_train::Rank;

const ITEMS: usize = 101;

#[test]
fn child_prints_its_shard() {
    // Only does something when run as a child by the test below.
    if std::env::var("VQ_TRAIN_SHARD_CHILD").is_err() {
        return;
    }
    let rank = Rank::from_env().unwrap();
    let shard: Vec<String> = rank.shard(ITEMS).map(|i| i.to_string()).collect();
    println!("SHARD {} {}", rank.seed(42), shard.join(","));
}

#[test]
fn two_processes_shard_one_dataset_disjointly_and_completely() {
    let me = std::env::current_exe().unwrap();
    let mut seen = vec![0; ITEMS];
    let mut seeds = Vec::new();
    for rank in 0..2 {
        let out = Command::new(&me)
            .args([
                "--exact",
                "child_prints_its_shard",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VQ_TRAIN_SHARD_CHILD", "1")
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", "2")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("SHARD ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("rank {rank} printed no shard: {stdout}"));
        let (seed, items) = line.split_once(' ').unwrap();
        seeds.push(seed.to_string());
        for i in items.split(',') {
            seen[i.parse::<usize>().unwrap()] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
    assert_ne!(seeds[0], seeds[1], "ranks share a seed");
}
