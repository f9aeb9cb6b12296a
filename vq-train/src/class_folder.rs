//! [`ClassFolder`]: labelled images in the layout class-conditional datasets already have — one
//! sub-folder per class (`DIR/<class name>/*.png|jpg`, the layout of ImageNet's training set,
//! torchvision's `ImageFolder` and Hugging Face ImageFolder's `label` column). Classes are the
//! sub-folder names in sorted order (label `i` = the `i`-th name). Bad data — an image outside
//! any class folder, an unreadable image, an empty class folder — is an error naming the file,
//! or, with [`BadData::Skip`], left out and counted. The validation split is by a hash of each
//! file's path, as [`crate::ImageFolder::split`].

use std::path::{Path, PathBuf};

use crate::error::io;
use crate::image_folder::{check_image, held_out, is_image};
use crate::{BadData, Error, Result};

/// One image and its class label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImage {
    /// The image file.
    pub path: PathBuf,
    /// Its label (an index into [`ClassFolder::class_names`]).
    pub label: usize,
}

/// A folder of class sub-folders of images.
#[derive(Debug, Clone, Default)]
pub struct ClassFolder {
    /// The folder.
    pub root: PathBuf,
    /// The class names (sub-folder names), sorted: label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
    /// The usable items, sorted by path.
    pub items: Vec<LabelledImage>,
    /// Items left out under [`BadData::Skip`], with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

impl ClassFolder {
    /// Reads the class sub-folders of `root` and checks every image header.
    pub fn open(root: impl AsRef<Path>, bad: BadData) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::Data {
                path: root,
                reason: "not a folder of class folders".into(),
            });
        }
        let mut folder = ClassFolder {
            root: root.clone(),
            ..Self::default()
        };
        let problem = |path: PathBuf, reason: String, skipped: &mut Vec<_>| match bad {
            BadData::Error => Err(Error::Data { path, reason }),
            BadData::Skip => {
                skipped.push((path, reason));
                Ok(())
            }
        };
        for entry in sorted_entries(&root)? {
            let name = entry
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with('.') {
                continue;
            }
            if entry.is_file() {
                if is_image(&entry) {
                    problem(
                        entry,
                        "an image outside any class folder (expected DIR/<class>/<image>)".into(),
                        &mut folder.skipped,
                    )?;
                }
                continue;
            }
            let label = folder.class_names.len();
            let mut found = 0;
            for path in sorted_entries(&entry)? {
                if !is_image(&path) {
                    continue;
                }
                match check_image(&path) {
                    Ok(()) => {
                        folder.items.push(LabelledImage { path, label });
                        found += 1;
                    }
                    Err(reason) => problem(path, reason, &mut folder.skipped)?,
                }
            }
            if found == 0 {
                problem(
                    entry,
                    "a class folder without usable images".into(),
                    &mut folder.skipped,
                )?;
                continue;
            }
            folder.class_names.push(name);
        }
        if folder.items.is_empty() {
            return Err(Error::Data {
                path: root,
                reason: format!(
                    "no class folders with images (expected DIR/<class>/<image>; {} skipped)",
                    folder.skipped.len()
                ),
            });
        }
        Ok(folder)
    }

    /// The items split into (training, validation) by a stable hash of each path.
    pub fn split(&self, fraction: f64, seed: u64) -> (Vec<&LabelledImage>, Vec<&LabelledImage>) {
        self.items.iter().partition(|item| {
            let name = item.path.strip_prefix(&self.root).unwrap_or(&item.path);
            !held_out(name, fraction, seed)
        })
    }
}
