//! The import graph of each library crate has no circle: read from the sources' own `crate::` and
//! `super::` paths (a `use` line or a path in code), file by file, as `farm-studio look` draws it.
//! Lower layers never import the methods built on them (see crates/nmt/src/lib.rs), so a change
//! to training never needs distillation or pruning read first.
//!
//! Run alone with `cargo test --test architecture -- --nocapture` to see each crate's graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's files and, for each, the files it imports.
type Graph = BTreeMap<PathBuf, BTreeSet<PathBuf>>;

/// The module path of a file under `src`: `train/mod.rs` → [train], `train/step.rs` → [train, step].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// The file that defines the module `path`, if any.
fn file_of(src: &Path, root: &Path, path: &[String]) -> Option<PathBuf> {
    if path.is_empty() {
        return Some(root.to_path_buf());
    }
    let dir: PathBuf = path.iter().collect();
    [src.join(&dir).with_extension("rs"), src.join(&dir).join("mod.rs")].into_iter().find(|p| p.is_file())
}

/// The deepest module file named by a path's leading segments.
fn resolve(src: &Path, root: &Path, path: &[String]) -> PathBuf {
    (0..=path.len()).rev().find_map(|n| file_of(src, root, &path[..n])).expect("the crate root exists")
}

/// The source of a file without its test module(s) (`#[cfg(test)]` blocks close the files here).
fn code_of(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// The child modules a file declares (`mod step;`, `pub mod step;`, `pub(crate) mod step;`).
fn children_of(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_suffix(';'))
        .filter_map(|l| {
            l.rsplit_once("mod ").filter(|(vis, _)| vis.trim().is_empty() || vis.trim().starts_with("pub"))
        })
        .map(|(_, name)| name.trim().to_string())
        .collect()
}

/// Every path a file names that starts with `crate::`, `super::` or one of its child modules
/// (`step::Update` in a file that declares `mod step;`), as (head, segments), including each
/// entry of a `use crate::{a, b::c}` group. Doc comments count: a doc link to a module is a
/// dependency of the docs, and a lower layer's docs should not need a higher one either.
fn paths_in(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let heads: Vec<String> =
        ["crate", "super"].map(String::from).into_iter().chain(children_of(code)).collect();
    for line in code.lines() {
        if line.trim_start().starts_with("pub mod ") || line.trim_start().starts_with("mod ") {
            continue;
        }
        for head in &heads {
            let start = format!("{head}::");
            let start = start.as_str();
            let mut rest = line;
            while let Some(at) = rest.find(start) {
                let before = rest[..at].chars().next_back();
                rest = &rest[at + start.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let chain = |s: &str| -> Vec<String> {
                    s.split("::")
                        .map(|seg| seg.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
                        .take_while(|seg: &String| !seg.is_empty())
                        .collect()
                };
                let segments = chain(rest);
                let group = rest.get(segments.iter().map(|s| s.len() + 2).sum::<usize>()..);
                match group.filter(|g| g.starts_with('{')) {
                    Some(g) => {
                        let inner = &g[1..g.find('}').unwrap_or(g.len())];
                        for entry in inner.split(',') {
                            let mut path = segments.clone();
                            path.extend(chain(entry.trim()));
                            out.push((head.clone(), path));
                        }
                    }
                    None => out.push((head.clone(), segments)),
                }
            }
        }
    }
    out
}

/// The names a module file hands on from its children (`pub use bleu::{corpus_bleu, Bleu};`):
/// name → the child's module path. Such a line is a re-export, not an import.
fn reexports(code: &str, module: &[String]) -> BTreeMap<String, Vec<String>> {
    let children = children_of(code);
    let mut out = BTreeMap::new();
    for line in code.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub use ") else { continue };
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let Some((child, names)) = rest.split_once("::") else { continue };
        if !children.iter().any(|c| c == child) {
            continue;
        }
        let target: Vec<String> = module.iter().cloned().chain([child.to_string()]).collect();
        for name in names.trim_end_matches(';').trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").to_string();
            out.insert(name, target.clone());
        }
    }
    out
}

fn graph(src: &Path, root: &Path) -> Graph {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let sources: BTreeMap<PathBuf, String> =
        files.iter().map(|f| (f.clone(), std::fs::read_to_string(f).unwrap())).collect();
    let handed_on: BTreeMap<&PathBuf, BTreeMap<String, Vec<String>>> =
        sources.iter().map(|(f, text)| (f, reexports(code_of(text), &module_of(src, f)))).collect();
    let mut graph = Graph::new();
    for (file, text) in &sources {
        let module = module_of(src, file);
        let mut imports = BTreeSet::new();
        // Re-exports only hand names on: they are not the file's imports.
        let code: String = code_of(text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("pub use "))
            .collect::<Vec<_>>()
            .join("\n");
        for (head, mut path) in paths_in(&code) {
            // `super` is the parent of the file's module (`super::super::` its grandparent); a
            // child's path starts from the file's module.
            let mut full = Vec::new();
            if head != "crate" && head != "super" {
                full = module.clone();
                path.insert(0, head.clone());
            } else if head == "super" {
                full = module.clone();
                full.pop();
                while path.first().is_some_and(|s| s == "super") {
                    path.remove(0);
                    full.pop();
                }
            }
            full.extend(path);
            let mut target = resolve(src, root, &full);
            // A name the target hands on from one of its children comes from that child.
            let depth = module_of(src, &target).len();
            if let Some(child) = full.get(depth).and_then(|name| handed_on[&target].get(name)) {
                target = resolve(src, root, child);
            }
            if target != *file {
                imports.insert(target);
            }
        }
        graph.insert(file.clone(), imports);
    }
    graph
}

/// The strongly connected components of more than one file (Tarjan).
fn circles(graph: &Graph) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a PathBuf) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[w].min(self.low[v]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.index[w].min(self.low[v]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.out
}

fn crate_graph(dir: &str, root: &str) -> (PathBuf, Graph) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = base.join(dir);
    let g = graph(&src, &src.join(root));
    (src, g)
}

fn show(src: &Path, graph: &Graph) -> String {
    let name = |p: &Path| p.strip_prefix(src).unwrap().display().to_string();
    let mut out = String::new();
    for (file, imports) in graph {
        let list: Vec<String> = imports.iter().map(|p| name(p)).collect();
        out.push_str(&format!("{} -> {}\n", name(file), list.join(", ")));
    }
    out
}

#[test]
fn no_library_crate_has_an_import_circle() {
    let crates = [
        ("crates/text/src", "lib.rs"),
        ("crates/runtime/src", "lib.rs"),
        ("crates/serve/src", "lib.rs"),
        ("crates/nmt/src", "lib.rs"),
        ("src", "main.rs"),
    ];
    for (dir, root) in crates {
        let (src, graph) = crate_graph(dir, root);
        println!("{dir}:\n{}", show(&src, &graph));
        let found = circles(&graph);
        assert!(found.is_empty(), "{dir} has import circles: {found:#?}\n{}", show(&src, &graph));
    }
}

#[test]
fn the_check_sees_the_imports_it_is_about() {
    let (src, graph) = crate_graph("crates/nmt/src", "lib.rs");
    let edge = |a: &str, b: &str| graph[&src.join(a)].contains(&src.join(b));
    // A grouped `use crate::{..}`, a child module's path, `super::` from a mod.rs's child, a
    // nested module.
    assert!(edge("train/mod.rs", "model_dir/mod.rs"));
    assert!(edge("train/mod.rs", "train/step.rs"));
    assert!(edge("pipeline/mod.rs", "pipeline/train.rs"));
    assert!(edge("pipeline/train.rs", "pipeline/reuse.rs"));
    assert!(edge("pipeline/train.rs", "pipeline/context.rs"));
    assert!(edge("student.rs", "distill/word_kd.rs"));
    assert!(edge("model_dir/mod.rs", "config.rs"));
    // ... and the seams point one way.
    assert!(!edge("train/mod.rs", "distill/word_kd.rs") && !edge("train/mod.rs", "prune.rs"));
    // A made-up circle is found.
    let mut with_circle = graph.clone();
    with_circle.get_mut(&src.join("config.rs")).unwrap().insert(src.join("pipeline/mod.rs"));
    assert_eq!(circles(&with_circle).len(), 1);
}
