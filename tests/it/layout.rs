//! The code's layout, checked from the source: no import cycle between the modules that
//! make up the pipeline's spine, and no file too long to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules between which no import cycle may form.
const SPINE: [&str; 5] = ["config", "providers", "schedule", "forward", "store"];

/// The longest a file under src/ may be.
const MAX_LINES: usize = 900;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The top-level module a file belongs to: `src/providers/daraja/stk.rs` → `providers`.
fn top_module(rel: &str) -> &str {
    let rest = rel.strip_prefix("src/").unwrap();
    let first = rest.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The modules of [`SPINE`] that `text` names as `crate::X`, leaving out comments and
/// the unit tests at the end of the file (`#[cfg(test)] mod tests`), which may reach
/// anywhere.
fn spine_references(text: &str) -> BTreeSet<&'static str> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let after = &line[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(m) = SPINE.iter().find(|m| **m == name) {
                found.insert(*m);
            }
        }
    }
    found
}

/// A path from a module back to itself, if the graph has one.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    for start in edges.keys().copied() {
        let mut stack = vec![(start, vec![start])];
        let mut visited = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten().copied() {
                let mut longer = path.clone();
                longer.push(next);
                if next == start {
                    return Some(longer);
                }
                if visited.insert(next) {
                    stack.push((next, longer));
                }
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_config_providers_schedule_forward_and_store() {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut seen_in: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let files = src_files();
    for (rel, text) in &files {
        let top = top_module(rel);
        let Some(from) = SPINE.iter().find(|m| **m == top) else {
            continue;
        };
        for to in spine_references(text) {
            if to != *from {
                edges.entry(from).or_default().insert(to);
                seen_in.entry((from, to)).or_insert_with(|| rel.clone());
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} → {} ({})", w[0], w[1], seen_in[&(w[0], w[1])]))
            .collect();
        panic!("import cycle: {}", steps.join(", "));
    }
    // The test reads real files: it must have seen the edges that exist.
    assert!(edges.get("config").is_some_and(|e| e.contains("providers")));
}

#[test]
fn no_file_under_src_is_longer_than_900_lines() {
    let mut too_long = Vec::new();
    for (rel, text) in src_files() {
        let lines = text.lines().count();
        if lines > MAX_LINES {
            too_long.push(format!("{rel}: {lines} lines"));
        }
    }
    assert!(too_long.is_empty(), "{}", too_long.join("\n"));
}

#[test]
fn the_checks_see_a_cycle_and_a_long_file() {
    // A file that names another spine module is an edge...
    let refs = spine_references("use crate::store::Store;\n// crate::config\nfn f() {}\n");
    assert_eq!(refs, BTreeSet::from(["store"]));
    // ...but not from its unit tests.
    let refs =
        spine_references("fn f() {}\n#[cfg(test)]\nmod tests {\n use crate::config::Config;\n}\n");
    assert!(refs.is_empty());
    assert_eq!(top_module("src/providers/daraja/stk.rs"), "providers");
    // A cycle through three modules is found; a chain is not a cycle.
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    edges.insert("config", BTreeSet::from(["providers"]));
    edges.insert("providers", BTreeSet::from(["schedule"]));
    assert_eq!(find_cycle(&edges), None);
    edges.insert("schedule", BTreeSet::from(["config"]));
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["config", "providers", "schedule", "config"])
    );
    assert_eq!(top_module("src/config.rs"), "config");
}
