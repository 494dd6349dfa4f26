//! Invariants of the code map (ARCHITECTURE.md), checked on the source itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo;

/// A crate's source files by module path (`["harness", "fleet"]` for `harness/fleet.rs`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = (rel.iter())
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if ["mod", "lib", "main"].contains(&parts.last().unwrap().as_str()) {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
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
