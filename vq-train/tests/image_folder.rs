//! Captioned image folders: both caption conventions, any image size, every kind of bad data
//! named (or skipped and counted), and a validation split that is stable.

use std::path::Path;

use image::RgbImage;
use vq_train::{BadData, Error, ImageFolder, fit_image};

fn png(path: &Path, w: u32, h: u32) {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(path)
        .unwrap();
}

fn data_error(r: vq_train::Result<ImageFolder>) -> (String, String) {
    match r {
        Err(Error::Data { path, reason }) => (path.display().to_string(), reason),
        other => panic!("expected a data error, got {:?}", other.map(|f| f.items)),
    }
}

#[test]
fn metadata_jsonl_and_txt_captions_are_read() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("a.png"), 40, 30);
    png(&dir.path().join("b.png"), 16, 64);
    std::fs::write(
        dir.path().join("metadata.jsonl"),
        "{\"file_name\": \"a.png\", \"text\": \"a red circle\", \"extra\": 1}\n\n\
         {\"file_name\": \"b.png\", \"text\": \" a blue square \"}\n",
    )
    .unwrap();
    let folder = ImageFolder::open(dir.path(), BadData::Error).unwrap();
    let captions: Vec<&str> = folder.items.iter().map(|i| i.caption.as_str()).collect();
    assert_eq!(captions, ["a red circle", "a blue square"]);

    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("x.png"), 20, 20);
    std::fs::write(dir.path().join("x.txt"), "a green triangle\n").unwrap();
    let folder = ImageFolder::open(dir.path(), BadData::Error).unwrap();
    assert_eq!(folder.items[0].caption, "a green triangle");

    // Any size: fitted to the square by cover + centre crop.
    let fitted = fit_image(&dir.path().join("x.png"), 8).unwrap();
    assert_eq!(fitted.dimensions(), (8, 8));
    let tall = fit_image(&folder.root.join("x.png"), 32).unwrap();
    assert_eq!(tall.dimensions(), (32, 32));
}

#[test]
fn bad_data_is_named_or_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("ok.png"), 8, 8);
    std::fs::write(dir.path().join("ok.txt"), "fine").unwrap();
    png(&dir.path().join("uncaptioned.png"), 8, 8);
    std::fs::write(dir.path().join("orphan.txt"), "no image").unwrap();
    std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
    std::fs::write(dir.path().join("broken.txt"), "broken").unwrap();
    std::fs::write(dir.path().join("empty.txt"), "  ").unwrap();
    png(&dir.path().join("empty.png"), 8, 8);

    // The first problem found stops the run, naming its file.
    let (path, reason) = data_error(ImageFolder::open(dir.path(), BadData::Error));
    assert!(
        path.ends_with("orphan.txt") && reason.contains("without an image"),
        "{path}: {reason}"
    );

    let folder = ImageFolder::open(dir.path(), BadData::Skip).unwrap();
    assert_eq!(folder.items.len(), 1);
    let reasons: Vec<String> = folder
        .skipped
        .iter()
        .map(|(p, r)| format!("{}: {r}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    for needle in [
        "uncaptioned.png: no caption",
        "orphan.txt: a caption file without an image",
        "broken.png: not a readable image",
        "empty.png: the caption is empty",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(needle)),
            "{needle} not in {reasons:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("metadata.jsonl"),
        "{\"file_name\": \"gone.png\", \"text\": \"x\"}\n{\"text\": \"no file\"}\n",
    )
    .unwrap();
    let (path, reason) = data_error(ImageFolder::open(dir.path(), BadData::Error));
    assert!(
        path.ends_with("metadata.jsonl") && reason.contains("line 2"),
        "{path}: {reason}"
    );
    let (path, reason) = data_error(ImageFolder::open(dir.path(), BadData::Skip));
    assert!(
        reason.contains("no usable captioned images (2 skipped)"),
        "{path}: {reason}"
    );
    let (path, reason) = data_error(ImageFolder::open(
        dir.path().join("nothing"),
        BadData::Error,
    ));
    assert!(path.ends_with("nothing") && reason.contains("not a folder"));
}

#[test]
fn the_validation_split_is_stable_and_does_not_move_when_images_are_added() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..60 {
        png(&dir.path().join(format!("{i:02}.png")), 4, 4);
        std::fs::write(
            dir.path().join(format!("{i:02}.txt")),
            format!("caption {i}"),
        )
        .unwrap();
    }
    let folder = ImageFolder::open(dir.path(), BadData::Error).unwrap();
    let (train, val) = folder.split(0.2, 1);
    assert_eq!(train.len() + val.len(), 60);
    assert!((5..=20).contains(&val.len()), "{} held out", val.len());
    let held: Vec<_> = val.iter().map(|i| i.path.clone()).collect();
    for i in 60..80 {
        png(&dir.path().join(format!("{i:02}.png")), 4, 4);
        std::fs::write(dir.path().join(format!("{i:02}.txt")), "more").unwrap();
    }
    let bigger = ImageFolder::open(dir.path(), BadData::Error).unwrap();
    let (_, val2) = bigger.split(0.2, 1);
    let held2: Vec<_> = val2.iter().map(|i| i.path.clone()).collect();
    assert!(
        held.iter().all(|p| held2.contains(p)),
        "held-out images moved"
    );
}

#[test]
fn images_without_captions_are_read_for_the_vq_vae() {
    // No captions at all: every image of the folder.
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("b.png"), 8, 8);
    png(&dir.path().join("a.png"), 12, 9);
    std::fs::write(dir.path().join("notes.txt"), "not a caption").unwrap();
    let folder = ImageFolder::open_images(dir.path(), BadData::Error).unwrap();
    let names: Vec<_> = folder
        .items
        .iter()
        .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.png", "b.png"]);
    assert!(folder.items.iter().all(|i| i.caption.is_empty()));
    // The captioned reader refuses the same folder, naming an image.
    let (path, reason) = data_error(ImageFolder::open(dir.path(), BadData::Error));
    assert!(
        path.ends_with("a.png") && reason.contains("no caption"),
        "{path}: {reason}"
    );
    // metadata.jsonl without "text" lists the images; a broken image is still named.
    std::fs::write(
        dir.path().join("metadata.jsonl"),
        "{\"file_name\": \"a.png\"}\n{\"file_name\": \"c.png\"}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
    let (path, reason) = data_error(ImageFolder::open_images(dir.path(), BadData::Error));
    assert!(
        path.ends_with("c.png") && reason.contains("not a readable image"),
        "{path}: {reason}"
    );
    let folder = ImageFolder::open_images(dir.path(), BadData::Skip).unwrap();
    assert_eq!((folder.items.len(), folder.skipped.len()), (1, 1));
    let (path, reason) = data_error(ImageFolder::open(dir.path(), BadData::Error));
    assert!(
        path.ends_with("metadata.jsonl") && reason.contains("no \"text\""),
        "{path}: {reason}"
    );
}

#[test]
fn class_folders_give_sorted_labels_and_name_bad_data() {
    use vq_train::ClassFolder;
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("zebra", 2), ("cat", 3)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..n {
            png(&dir.path().join(class).join(format!("{i}.png")), 12, 9);
        }
    }
    std::fs::write(dir.path().join("cat/notes.txt"), "not an image").unwrap();
    let folder = ClassFolder::open(dir.path(), BadData::Error).unwrap();
    assert_eq!(folder.class_names, ["cat", "zebra"]);
    let labels: Vec<usize> = folder.items.iter().map(|i| i.label).collect();
    assert_eq!(labels, [0, 0, 0, 1, 1]);
    let (train, val) = folder.split(0.4, 3);
    assert_eq!(train.len() + val.len(), 5);
    assert_eq!(folder.split(0.4, 3).1, val);

    std::fs::write(dir.path().join("cat/broken.png"), "not a png").unwrap();
    let e = ClassFolder::open(dir.path(), BadData::Error).unwrap_err();
    assert!(e.to_string().contains("broken.png"), "{e}");
    png(&dir.path().join("loose.png"), 4, 4);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let folder = ClassFolder::open(dir.path(), BadData::Skip).unwrap();
    assert_eq!(folder.class_names, ["cat", "zebra"]);
    let reasons: Vec<String> = folder
        .skipped
        .iter()
        .map(|(p, r)| format!("{}: {r}", p.display()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("loose.png") && r.contains("outside any class folder"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("empty") && r.contains("without usable images"))
    );
    let e = ClassFolder::open(dir.path().join("cat/0.png"), BadData::Error).unwrap_err();
    assert!(
        e.to_string().contains("not a folder of class folders"),
        "{e}"
    );
}
