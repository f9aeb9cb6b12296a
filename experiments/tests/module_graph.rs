//! The embedded recipe's modules (`src/embedded/`) import each other without a cycle: settings
//! and reports sit in their own modules and every stage depends only on earlier ones, so each
//! file can be read (and replaced by a `vq-train` building block) on its own.

use std::collections::{BTreeMap, BTreeSet};

#[test]
fn the_embedded_modules_form_no_cycle() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/embedded");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Imports of sibling modules, outside the file's own tests.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = code
            .match_indices("super::")
            .filter_map(|(i, _)| {
                let rest = &code[i + "super::".len()..];
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
                let module = &rest[..end];
                (!module.is_empty() && module != "*").then(|| module.to_string())
            })
            .filter(|m| *m != name)
            .collect();
        graph.insert(name, deps);
    }
    assert!(graph.len() > 10, "{graph:?}");
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == node) {
            panic!("import cycle: {} -> {node}", path[i..].join(" -> "));
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            visit(dep, graph, path, done);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}
