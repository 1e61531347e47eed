//! The layers, checked from the `use` lines: no module of the backend or
//! the frontend imports one that imports it back (through any chain), and
//! no lower layer of the backend reaches up (docs/architecture.md). A
//! reader of a file never has to know what is above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules by path (`hub::rooms`), with their source less test modules.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let code = source
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap()
                .to_owned();
            found.insert(parts.join("::"), code);
        }
    }
    found
}

/// The modules each module names with `crate::…` or `super::…`.
fn imports(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let is_ident = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut graph = BTreeMap::new();
    for (name, code) in modules {
        let mut targets = BTreeSet::new();
        for (prefix, base) in [
            ("crate::", String::new()),
            (
                "super::",
                name.rsplit_once("::")
                    .map(|(p, _)| p.to_owned())
                    .unwrap_or_default(),
            ),
        ] {
            for (at, _) in code.match_indices(prefix) {
                if code[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                    continue;
                }
                let rest = &code[at + prefix.len()..];
                let mut path: Vec<&str> = Vec::new();
                for segment in rest.split("::") {
                    let ident: &str = &segment[..segment
                        .find(|c: char| !is_ident(c))
                        .unwrap_or(segment.len())];
                    if ident.is_empty() {
                        break;
                    }
                    path.push(ident);
                    if ident.len() < segment.len() {
                        break;
                    }
                }
                // The longest prefix that is a module.
                for take in (1..=path.len()).rev() {
                    let mut candidate = path[..take].join("::");
                    if !base.is_empty() {
                        candidate = format!("{base}::{candidate}");
                    }
                    if modules.contains_key(&candidate) {
                        if candidate != *name && !name.starts_with(&format!("{candidate}::")) {
                            targets.insert(candidate);
                        }
                        break;
                    }
                }
            }
        }
        graph.insert(name.clone(), targets);
    }
    graph
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut found = stack[start..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Some(_) => {}
                None => {
                    if let Some(found) = visit(next, graph, state, stack) {
                        return Some(found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            let mut stack = Vec::new();
            if let Some(found) = visit(node, graph, &mut state, &mut stack) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let backend = Path::new(env!("CARGO_MANIFEST_DIR"));
    for root in [backend.join("src"), backend.join("../frontend/src")] {
        let graph = imports(&modules(&root));
        assert!(
            graph.len() > 20,
            "{}: {} modules",
            root.display(),
            graph.len()
        );
        assert_eq!(
            cycle(&graph),
            None,
            "an import circle in {}",
            root.display()
        );
    }
}

/// Lower layers never name higher ones: the transport knows nothing of
/// sessions, rooms or HTTP; the store and the broker nothing of rooms,
/// sessions or HTTP; the rooms nothing of HTTP or of the session that
/// drives them.
#[test]
fn lower_layers_never_reach_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&modules(&root));
    let rules: [(&str, &[&str]); 7] = [
        (
            "transport",
            &[
                "conn", "hub", "http", "ops", "store", "broker", "tasks", "webhooks",
            ],
        ),
        (
            "limits",
            &[
                "conn", "hub", "http", "ops", "store", "broker", "tasks", "webhooks",
            ],
        ),
        (
            "store",
            &[
                "conn",
                "hub",
                "http",
                "ops",
                "broker",
                "tasks",
                "transport",
                "webhooks",
            ],
        ),
        (
            "broker",
            &["conn", "hub", "http", "ops", "store", "tasks", "webhooks"],
        ),
        (
            "hub",
            &["http", "ops", "conn::session", "tasks", "webhooks"],
        ),
        ("conn", &["http", "ops", "tasks", "webhooks"]),
        // Webhooks read the store's log; they know nothing of rooms in
        // memory, connections or HTTP routes.
        (
            "webhooks",
            &["conn", "hub", "http", "ops", "broker", "tasks", "transport"],
        ),
    ];
    let mut broken = Vec::new();
    for (from, targets) in &graph {
        for (layer, forbidden) in rules {
            if from != layer && !from.starts_with(&format!("{layer}::")) {
                continue;
            }
            for target in targets {
                if forbidden
                    .iter()
                    .any(|f| target == f || target.starts_with(&format!("{f}::")))
                {
                    broken.push(format!("{from} -> {target}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "upward imports: {broken:?}");
}
