//! The architecture check (tests, run by CI with the rest), reading the code as the
//! compiler does: each crate's files are found from its root through its `mod` items
//! and parsed with `syn`, so comments, strings and `#[cfg(test)]` items never count.
//!
//! A file depends on another when a path it writes — in a `use`, or in its code —
//! names an item defined in the other, resolved as the compiler resolves names
//! ([`names`]: `crate::`, `self::`, `super::`, child modules, and imports followed to
//! where the item is defined, so a `pub use` re-export is no dependency of its users on
//! the re-exporting file). The checks:
//! - no cycle among the files of any crate (keyway's and every adapter crate's): a
//!   module's parts point one way, as its top-level modules do;
//! - the top-level modules of `src/` depend only downwards in the layers [`LAYERS`]
//!   declares (DESIGN.md's api → services → OEM calls → store, leaves below), and every
//!   module has its layer;
//! - an adapter crate depends on the adapter contract (`keyway-adapter`) and on no other
//!   keyway crate, and the contract on none;
//! - no source file grows past 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

use names::{Files, ModPath, Named, Resolver, Scopes, is_test_only, parse};

mod names;

/// A crate's file graph: file → the files it depends on.
type Graph = BTreeMap<PathBuf, BTreeSet<PathBuf>>;

/// The modules of the crate whose root file is `root`, found through its `mod` items
/// (a module in a block of its parent's file maps to that file).
fn files(root: &Path) -> Files {
    fn walk(file: &Path, dir: &Path, path: &ModPath, items: &[syn::Item], out: &mut Files) {
        for item in items {
            let syn::Item::Mod(m) = item else { continue };
            if is_test_only(&m.attrs) {
                continue;
            }
            let name = m.ident.to_string();
            let mut child = path.clone();
            child.push(name.clone());
            match &m.content {
                Some((_, inner)) => {
                    out.insert(child.clone(), file.to_path_buf());
                    walk(file, &dir.join(&name), &child, inner, out);
                }
                None => {
                    let flat = dir.join(format!("{name}.rs"));
                    let f = if flat.exists() {
                        flat
                    } else {
                        dir.join(&name).join("mod.rs")
                    };
                    out.insert(child.clone(), f.clone());
                    walk(&f, &dir.join(&name), &child, &parse(&f).items, out);
                }
            }
        }
    }
    let mut out = Files::new();
    out.insert(Vec::new(), root.to_path_buf());
    let dir = root.parent().unwrap_or(Path::new("."));
    walk(root, dir, &Vec::new(), &parse(root).items, &mut out);
    out
}

/// Each file of a crate with the (outermost) module it holds.
fn outermost(files: &Files) -> BTreeMap<&PathBuf, &ModPath> {
    files.iter().fold(BTreeMap::new(), |mut acc, (m, f)| {
        acc.entry(f)
            .and_modify(|old: &mut &ModPath| {
                if m.len() < old.len() {
                    *old = m;
                }
            })
            .or_insert(m);
        acc
    })
}

/// The scopes of every module of a crate.
fn scopes(files: &Files) -> Scopes {
    let mut all = Scopes::new();
    for (file, at) in outermost(files) {
        names::collect(at, &parse(file).items, &mut all);
    }
    all
}

/// The modules one file's paths land in.
fn named(files: &Files, scopes: &Scopes, file: &Path, at: &ModPath) -> BTreeSet<ModPath> {
    let mut named = Named {
        resolver: Resolver { files, scopes },
        at: at.clone(),
        found: BTreeSet::new(),
    };
    named.visit_file(&parse(file));
    named.found
}

/// The crate's file graph.
fn graph(files: &Files) -> Graph {
    let scopes = scopes(files);
    let mut g = Graph::new();
    for (file, at) in outermost(files) {
        let deps = g.entry(file.clone()).or_default();
        for m in named(files, &scopes, file, at) {
            if let Some(dep) = files.get(&m).filter(|d| *d != file) {
                deps.insert(dep.clone());
            }
        }
    }
    g
}

/// The strongly connected groups of more than one node (Tarjan's algorithm).
fn cycles<N: Ord + Clone>(g: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on: BTreeSet<N>,
        out: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(g: &BTreeMap<N, BTreeSet<N>>, n: &N, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(n.clone(), i);
        s.low.insert(n.clone(), i);
        s.stack.push(n.clone());
        s.on.insert(n.clone());
        for d in g.get(n).into_iter().flatten() {
            if !s.index.contains_key(d) {
                visit(g, d, s);
                let low = s.low[n].min(s.low[d]);
                s.low.insert(n.clone(), low);
            } else if s.on.contains(d) {
                let low = s.low[n].min(s.index[d]);
                s.low.insert(n.clone(), low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut group = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on.remove(&m);
                let last = m == *n;
                group.push(m);
                if last {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in g.keys() {
        if !s.index.contains_key(n) {
            visit(g, n, &mut s);
        }
    }
    s.out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate's root file: keyway's library and binary, and each adapter crate's.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = vec![root().join("src/lib.rs"), root().join("src/main.rs")];
    let adapters = std::fs::read_dir(root().join("adapters")).expect("adapters/ is readable");
    let mut dirs: Vec<PathBuf> = adapters.flatten().map(|a| a.path()).collect();
    dirs.sort();
    roots.extend(
        dirs.into_iter()
            .map(|d| d.join("src/lib.rs"))
            .filter(|f| f.exists()),
    );
    roots
}

/// The layers of `src/`'s top-level modules, from the edge down: a module may depend
/// on modules of its own layer (no cycle: the file check) and of the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    ("the binary", &["main"]),
    ("the edge", &["server", "demo", "replay"]),
    ("the HTTP API", &["api"]),
    ("the builder", &["gateway"]),
    (
        "services",
        &["grants", "commands", "watch", "accounts", "vehicles"],
    ),
    ("OEM calls", &["tokens", "registry", "mocks"]),
    ("the event log", &["events", "audit"]),
    ("outbound HTTP", &["upstream"]),
    ("shared state", &["cluster"]),
    ("the store", &["store"]),
    (
        "leaves",
        &[
            "auth", "config", "metrics", "crypto", "error", "geo", "ids", "logs", "clock", "sync",
            "text", "lib",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The top-level module of a file of `src/` (`lib` for the root, `main` for the
/// binary's).
fn top_module(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("src")).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy());
    first
        .unwrap_or_default()
        .trim_end_matches(".rs")
        .to_string()
}

#[cfg(test)]
mod tests;
