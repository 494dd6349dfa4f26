//! Invariants of the code map (ARCHITECTURE.md), checked on the source itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo;

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// A crate's source files by module path (`["harness", "fleet"]` for `harness/fleet.rs`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = (rel.iter())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        // A binary beside its library only calls it: the crate is the library.
        if parts == ["main"] && src.join("lib.rs").is_file() {
            continue;
        }
        if ["mod", "lib", "main"].contains(&parts.last().unwrap().as_str()) {
            parts.pop();
        }
        out.insert(parts, path);
    }
    out
}

/// The module paths a file's code (not its comments, not its tests) names through `crate::` or
/// `super::`, each cut to the file that defines it.
fn imports(
    module: &[String],
    path: &Path,
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeSet<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line
            .match_indices("crate::")
            .chain(line.match_indices("super::"))
        {
            let before = line[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            // `super` is the parent module, whether this file is `x.rs` or `x/mod.rs`.
            let mut base: Vec<String> = if line[i..].starts_with("crate") {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let rest = &line[i..];
            let path_text: String = (rest.chars())
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            base.extend(
                path_text
                    .split("::")
                    .skip(1)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
            let target = (0..=base.len())
                .rev()
                .map(|k| base[..k].to_vec())
                .find(|m| files.contains_key(m));
            if let Some(target) = target.filter(|t| t.as_slice() != module) {
                found.insert(target);
            }
        }
    }
    found
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut cycles = Vec::new();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        let src = entry.path().join("src");
        let files = modules(&src);
        let edges: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = (files.iter())
            .map(|(m, p)| (m, imports(m, p, &files)))
            .collect();
        for (a, targets) in &edges {
            for b in targets.iter().filter(|b| *b > *a) {
                if edges.get(b).is_some_and(|back| back.contains(*a)) {
                    cycles.push(format!(
                        "{}: {} <-> {}",
                        src.display(),
                        a.join("/"),
                        b.join("/")
                    ));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other:\n{}",
        cycles.join("\n")
    );
}

/// The cycles between top-level modules that a crate still has (none now): each entry would be
/// one strongly connected set of modules (every member reaches every other through imports),
/// sorted. The list may only shrink: a cycle not listed fails, and so does a listed one that is
/// gone (remove it here).
const KNOWN_MODULE_CYCLES: &[&str] = &[];

/// Every crate's top-level modules (`harness`, `steps`, ...) and which of them each imports.
fn top_level_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = modules(src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &files {
        let Some(top) = module.first() else { continue };
        let targets = imports(module, path, &files);
        let node = graph.entry(top.clone()).or_default();
        node.extend(
            (targets.iter())
                .filter_map(|t| t.first())
                .filter(|t| *t != top)
                .cloned(),
        );
    }
    graph
}

/// The strongly connected parts of more than one module (Tarjan's algorithm, recursive: a
/// crate has a few dozen modules), each written as one cycle through all of its members.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        parts: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        for next in w.graph.get(v).into_iter().flatten() {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let at = w.stack.iter().position(|m| *m == v).unwrap();
            let part: Vec<String> = w.stack.drain(at..).map(str::to_owned).collect();
            if part.len() > 1 {
                w.parts.push(part);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        parts: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.parts
}

#[test]
fn no_crate_has_a_cycle_between_its_top_level_modules_but_the_known_ones() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        let graph = top_level_graph(&entry.path().join("src"));
        let name = entry.file_name().to_string_lossy().into_owned();
        for mut part in cycles(&graph) {
            part.sort();
            found.insert(format!("crates/{name}: {}", part.join(" ")));
        }
    }
    let known: BTreeSet<String> = KNOWN_MODULE_CYCLES.iter().map(|c| c.to_string()).collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "modules that import each other round a cycle (members): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "cycles that are gone: take them out of KNOWN_MODULE_CYCLES: {gone:#?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_ring_and_ignores_a_chain() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
    let ring = cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(ring.len(), 1);
    assert_eq!(ring[0].len(), 3);
}

/// Named fields of each braced struct in `text`: `(line, name, fields)`.
fn struct_fields(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let decl = ["pub struct ", "pub(crate) struct ", "struct "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        let Some(decl) = decl.filter(|d| d.trim_end().ends_with('{')) else {
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        let name: String = decl
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let field_indent = format!("{indent}    ");
        let fields = (lines[i + 1..].iter())
            .take_while(|l| **l != format!("{indent}}}"))
            .filter(|l| {
                l.strip_prefix(&field_indent).is_some_and(|f| {
                    let f = f
                        .trim_start_matches("pub(crate) ")
                        .trim_start_matches("pub ");
                    f.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                        && f.split_once(':').is_some_and(|(n, _)| !n.contains(' '))
                })
            })
            .count();
        out.push((i + 1, name, fields));
    }
    out
}

#[test]
fn no_struct_of_the_engine_has_more_than_12_fields() {
    let src = repo().join("crates/engine/src");
    let mut big = Vec::new();
    for path in modules(&src).values() {
        let text = std::fs::read_to_string(path).unwrap();
        for (line, name, n) in struct_fields(&text) {
            if n > 12 {
                big.push(format!("{}:{line} {name}: {n} fields", path.display()));
            }
        }
    }
    assert!(
        big.is_empty(),
        "engine structs over 12 fields (split them by job):\n{}",
        big.join("\n")
    );
}

#[test]
fn the_field_counter_counts_named_fields_of_a_braced_struct() {
    let text = "/// x\npub struct Driver<'a> {\n    /// doc\n    pub fleet: Fleet<'a>,\n    rx: Rx,\n    pub(crate) state: S,\n}\nstruct Unit;\n";
    assert_eq!(struct_fields(text), vec![(2, "Driver".to_owned(), 3)]);
}

/// The longest a function outside tests may be, in lines from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;

/// The name of the function a line declares (`pub(crate) async fn name(`), if it does: any
/// visibility, `const`, `async`, `unsafe` or `extern "C"` before `fn`.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("pub(") {
            rest = r.split_once(')')?.1.trim_start();
        } else if let Some(r) = rest.strip_prefix("extern \"") {
            rest = r.split_once('"')?.1.trim_start();
        } else if let Some(r) = ["pub ", "const ", "async ", "unsafe ", "default "]
            .iter()
            .find_map(|q| rest.strip_prefix(q))
        {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    let name = rest.strip_prefix("fn ")?.trim_start();
    let end = (name.find(|c: char| !(c.is_alphanumeric() || c == '_'))).unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

/// Every function with a body in `code` (free, in an impl or a trait, nested too): its name, the
/// number of its `fn` line (from 1) and its length in lines, from that line to the line with its
/// closing brace at the `fn` line's indentation. Relies on rustfmt's layout, which the project
/// keeps.
fn fn_lengths(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        // The signature ends where the body opens: `{` ends a line, or the whole body is on that
        // line. A `;` first is a declaration (in a trait, or extern), without a body.
        let Some(open) = (at..lines.len()).find(|&i| {
            let l = lines[i].trim_end();
            l.ends_with('{') || l.ends_with(';') || (l.ends_with('}') && l.contains('{'))
        }) else {
            continue;
        };
        let l = lines[open].trim_end();
        if l.ends_with(';') {
            continue;
        }
        let close = if l.ends_with('{') {
            (open + 1..lines.len())
                .find(|&i| {
                    indent(lines[i]) == indent(line) && lines[i].trim_start().starts_with('}')
                })
                .unwrap_or(lines.len() - 1)
        } else {
            open
        };
        out.push((name.to_owned(), at + 1, close - at + 1));
    }
    out
}

#[test]
fn the_line_counter_counts_from_the_fn_line_to_its_closing_brace() {
    let code = r#"
pub fn free() {
    let x = 1;
}

impl Thing {
    pub(crate) async fn method<T>(&self, t: T) -> u8
    where
        T: Copy,
    {
        if true {
            fn nested() -> u8 { 2 }
        }
        nested()
    }

    const fn one_line() -> u8 { 1 }
}

trait Shape {
    fn declared(&self) -> u8;
    unsafe extern "C" fn provided(
        &self,
    ) {
    }
}
"#;
    let found = fn_lengths(code);
    let found: Vec<(&str, usize, usize)> = (found.iter())
        .map(|(name, line, len)| (name.as_str(), *line, *len))
        .collect();
    assert_eq!(
        found,
        [
            ("free", 2, 3),
            ("method", 7, 9),
            ("nested", 12, 1),
            ("one_line", 17, 1),
            ("provided", 22, 4),
        ]
    );
    assert_eq!(fn_name("    let f = |fn_x| fn_x;"), None);
    assert_eq!(fn_name("// fn commented() {"), None);
}

#[test]
fn no_function_outside_tests_is_longer_than_80_lines() {
    let repo = repo();
    let mut long = Vec::new();
    for entry in std::fs::read_dir(repo.join("crates")).unwrap().flatten() {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        for path in rust_files(&src) {
            let rel = path.strip_prefix(&src).unwrap();
            if path.file_name().is_some_and(|n| n == "tests.rs")
                || rel.iter().any(|p| p == "tests" || p == "benches")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code: Vec<&str> = (text.lines())
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .collect();
            for (name, line, len) in fn_lengths(&code.join("\n")) {
                if len > MAX_FN_LINES {
                    let shown = path.strip_prefix(&repo).unwrap_or(&path).display();
                    long.push(format!("{shown}:{line} {name} ({len} lines)"));
                }
            }
        }
    }
    long.sort();
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them into functions that each do one \
         thing):\n{}",
        long.join("\n")
    );
}
