//! Writes examples of a split as PNG files plus `captions.jsonl` (file, caption, scene), e.g. to
//! train a VQ-VAE on the world with `vq-codebook`'s `train_vqvae --images DIR`, and
//! `metadata.jsonl` (Hugging Face ImageFolder's `file_name` / `text`), the layout `vqd train
//! --data DIR` reads.
//!
//! `cargo run --release -p shape-world --example export_images -- train 2000 /tmp/shape-world/train`

use std::io::Write;

use shape_world::{Split, World};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: export_images <train|validation|test|held_out> <count> <dir>";
    let split = match args.get(1).map(String::as_str) {
        Some("train") => Split::Train,
        Some("validation") => Split::Validation,
        Some("test") => Split::Test,
        Some("held_out") => Split::HeldOut,
        _ => anyhow::bail!(usage),
    };
    let count: u64 = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let dir = std::path::PathBuf::from(args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?);
    std::fs::create_dir_all(&dir)?;
    let world = World::default();
    let mut captions = std::fs::File::create(dir.join("captions.jsonl"))?;
    let mut metadata = std::fs::File::create(dir.join("metadata.jsonl"))?;
    for i in 0..count {
        let example = world.example(split, i);
        let file = format!("{i:06}.png");
        example.image.save(dir.join(&file))?;
        let line =
            serde_json::json!({ "file": file, "caption": example.caption, "scene": example.scene });
        writeln!(captions, "{line}")?;
        let line = serde_json::json!({ "file_name": file, "text": example.caption });
        writeln!(metadata, "{line}")?;
    }
    println!("wrote {count} images to {}", dir.display());
    Ok(())
}
