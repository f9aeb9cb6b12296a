//! Writes single-object scenes of a split into one folder per shape (`DIR/circle/`,
//! `DIR/square/`, `DIR/triangle/`: the class-folder layout `vqd train` reads for a
//! class-conditional model), `count` images per class; and, with `judge`, reads generated
//! images back with the oracle and reports how many show exactly one object of the expected
//! shape (the class faithfulness of a class-conditional model trained on those folders).
//!
//! `cargo run --release -p shape-world --example export_class_folders -- train 300 /tmp/shapes`
//! `cargo run --release -p shape-world --example export_class_folders -- judge circle a.png b.png`

use shape_world::{Shape, Split, World, analyse};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: export_class_folders <train|validation|test> <count per class> <dir> \
                 | judge <circle|square|triangle|any> <png>...";
    if args.get(1).map(String::as_str) == Some("judge") {
        return judge(
            args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?,
            &args[3..],
        );
    }
    let split = match args.get(1).map(String::as_str) {
        Some("train") => Split::Train,
        Some("validation") => Split::Validation,
        Some("test") => Split::Test,
        _ => anyhow::bail!(usage),
    };
    let count: usize = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let dir = std::path::PathBuf::from(args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?);
    let world = World::default();
    let mut written = [0usize; 3];
    let mut i = 0;
    while written.iter().any(|&n| n < count) {
        let example = world.example(split, i);
        i += 1;
        let [object] = example.scene.objects.as_slice() else {
            continue;
        };
        let class = Shape::ALL
            .iter()
            .position(|&s| s == object.shape)
            .expect("a shape");
        if written[class] == count {
            continue;
        }
        let folder = dir.join(object.shape.word());
        std::fs::create_dir_all(&folder)?;
        example
            .image
            .save(folder.join(format!("{:06}.png", written[class])))?;
        written[class] += 1;
    }
    println!(
        "wrote {count} single-object scenes per shape to {} (from {i} examples)",
        dir.display()
    );
    Ok(())
}

fn judge(expected: &str, files: &[String]) -> anyhow::Result<()> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for file in files {
        let image = image::open(file)?.to_rgb8();
        let found = analyse(&image);
        let verdict = match found.as_slice() {
            [one] if expected == "any" || one.shape.word() == expected => "one object, right shape",
            [_] => "one object, another shape",
            [] => "no object",
            _ => "several objects",
        };
        *counts.entry(verdict.into()).or_default() += 1;
    }
    println!(
        "{}",
        serde_json::json!({"expected": expected, "images": files.len(), "verdicts": counts})
    );
    Ok(())
}
