//! Embeds the shipped shape-world model (`../models/shape-world`) into the crate when the
//! `embedded-model` feature is on: generates `$OUT_DIR/embedded_model.rs` with every file's
//! relative path and bytes (`include_bytes!`) and a content hash that names the folder the
//! files are unpacked to at run time.

use std::path::{Path, PathBuf};

fn files(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, root, out);
        } else {
            out.push(path.strip_prefix(root).expect("inside root").to_path_buf());
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_model.rs");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_MODEL").is_none() {
        std::fs::write(&out, "pub(crate) const EMBEDDED_FILES: &[(&str, &[u8])] = &[];\npub(crate) const EMBEDDED_HASH: &str = \"\";\n")
            .expect("write embedded_model.rs");
        return;
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("../models/shape-world");
    let root = root.canonicalize().unwrap_or_else(|e| {
        panic!(
            "the `embedded-model` feature needs the shipped model at {}: {e}",
            root.display()
        )
    });
    println!("cargo:rerun-if-changed={}", root.display());
    let mut list = Vec::new();
    files(&root, &root, &mut list);
    // FNV-1a over names and contents: the unpack folder changes whenever the model does.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut code = String::from("pub(crate) const EMBEDDED_FILES: &[(&str, &[u8])] = &[\n");
    for rel in &list {
        let path = root.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let name = rel.to_string_lossy().replace('\\', "/");
        for b in name
            .bytes()
            .chain(std::fs::read(&path).expect("read model file"))
        {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!(
        "pub(crate) const EMBEDDED_HASH: &str = \"{hash:016x}\";\n"
    ));
    std::fs::write(&out, code).expect("write embedded_model.rs");
}
