//! Name resolution for the architecture check: which module's file defines the item a
//! path names, following `use` imports and re-exports as the compiler does (`crate::`,
//! `self::`, `super::`, child modules, imported names, globs). An approximation that
//! errs towards finding a dependency: a name it cannot place counts against the module
//! it was looked up in. Macro bodies and method calls are not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path in its crate (`["commands", "run"]`; the root is empty).
pub type ModPath = Vec<String>;

/// Each module of a crate, by its path: the file it is in.
pub type Files = BTreeMap<ModPath, PathBuf>;

/// Whether an item is compiled only for tests.
pub fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// A file, parsed.
pub fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// What one module declares: its items' names, its imports (the name, and the path as
/// written with the module it is written in), its glob imports.
#[derive(Debug, Default)]
pub struct Scope {
    defined: BTreeSet<String>,
    imports: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

/// Every module's scope.
pub type Scopes = BTreeMap<ModPath, Scope>;

/// Each leaf of a `use` tree: the name it brings in (`*` for a glob) and its path.
fn leaves(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            let name = prefix.last().cloned().unwrap_or_default();
            out.push((name, prefix.clone()));
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((n.ident.to_string(), path));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((r.rename.to_string(), path));
        }
        syn::UseTree::Glob(_) => out.push(("*".into(), prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                leaves(t, prefix, out);
            }
        }
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Adds the scopes of module `at`'s `items` (and of the modules in blocks among them).
pub fn collect(at: &ModPath, items: &[syn::Item], scopes: &mut Scopes) {
    for item in items.iter().filter(|i| !is_test_only(item_attrs(i))) {
        let name = match item {
            syn::Item::Const(i) => Some(&i.ident),
            syn::Item::Enum(i) => Some(&i.ident),
            syn::Item::Fn(i) => Some(&i.sig.ident),
            syn::Item::Macro(i) => i.ident.as_ref(),
            syn::Item::Static(i) => Some(&i.ident),
            syn::Item::Struct(i) => Some(&i.ident),
            syn::Item::Trait(i) => Some(&i.ident),
            syn::Item::Type(i) => Some(&i.ident),
            syn::Item::Union(i) => Some(&i.ident),
            _ => None,
        };
        let scope = scopes.entry(at.clone()).or_default();
        if let Some(n) = name {
            scope.defined.insert(n.to_string());
        }
        match item {
            syn::Item::Use(u) => {
                let mut found = Vec::new();
                leaves(&u.tree, &mut Vec::new(), &mut found);
                for (name, path) in found {
                    match name.as_str() {
                        "*" => scope.globs.push(path),
                        _ => {
                            scope.imports.insert(name, path);
                        }
                    }
                }
            }
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    let mut child = at.clone();
                    child.push(m.ident.to_string());
                    collect(&child, inner, scopes);
                }
            }
            _ => {}
        }
    }
}

/// Resolves names against a crate's modules and scopes.
pub struct Resolver<'a> {
    /// The crate's modules.
    pub files: &'a Files,
    /// Their scopes.
    pub scopes: &'a Scopes,
}

/// How deep imports may lead to each other before a lookup gives up.
const DEPTH: usize = 24;

impl Resolver<'_> {
    fn is_module(&self, m: &[String]) -> bool {
        self.files.contains_key(m)
    }

    /// `segments` written in module `at`, as a path from the crate root: `None` for
    /// another crate's name or one local to `at`.
    fn absolute(&self, at: &[String], segments: &[String], depth: usize) -> Option<ModPath> {
        if depth > DEPTH {
            return None;
        }
        let first = segments.first()?;
        let (mut base, mut rest): (ModPath, &[String]) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (at.to_vec(), &segments[1..]),
            "super" => (at.to_vec(), segments),
            "Self" => return None,
            _ => {
                let child = [at, &segments[..1]].concat();
                if self.is_module(&child) {
                    (at.to_vec(), segments)
                } else if let Some(path) = self.scopes.get(at)?.imports.get(first) {
                    let target = self.absolute(at, path, depth + 1)?;
                    (target, &segments[1..])
                } else {
                    return None;
                }
            }
        };
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module whose file defines the item `path` (from the crate root) names;
    /// `None` when it names a module, another crate's item, or (`strict`) a name the
    /// modules on its way do not have.
    pub fn home(&self, path: &[String], strict: bool, depth: usize) -> Option<ModPath> {
        if depth > DEPTH {
            return None;
        }
        let mut m: ModPath = Vec::new();
        for (i, s) in path.iter().enumerate() {
            let child = [&m[..], std::slice::from_ref(s)].concat();
            if self.is_module(&child) {
                m = child;
                continue;
            }
            let Some(scope) = self.scopes.get(&m) else {
                return (!strict).then_some(m);
            };
            if scope.defined.contains(s) {
                return Some(m);
            }
            if let Some(written) = scope.imports.get(s) {
                let target = self.absolute(&m, written, depth + 1)?;
                let whole = [&target[..], &path[i + 1..]].concat();
                return self.home(&whole, strict, depth + 1);
            }
            for g in &scope.globs {
                let Some(source) = self.absolute(&m, g, depth + 1) else {
                    continue;
                };
                let whole = [&source[..], &path[i..]].concat();
                if let Some(h) = self.home(&whole, true, depth + 1) {
                    return Some(h);
                }
            }
            return (!strict).then_some(m);
        }
        None
    }

    /// Where a path written in module `at` lands (see [`Resolver::home`]).
    pub fn land(&self, at: &[String], segments: &[String]) -> Option<ModPath> {
        if let Some(path) = self.absolute(at, segments, 0) {
            return self.home(&path, false, 0);
        }
        // A name a glob import of `at` brings in.
        let scope = self.scopes.get(at)?;
        scope.globs.iter().find_map(|g| {
            let source = self.absolute(at, g, 0)?;
            self.home(&[&source[..], segments].concat(), true, 0)
        })
    }
}

/// Collects where the paths one file writes land.
pub struct Named<'a> {
    /// The resolver.
    pub resolver: Resolver<'a>,
    /// The module being read.
    pub at: ModPath,
    /// The modules the file's paths land in.
    pub found: BTreeSet<ModPath>,
}

impl<'ast> Visit<'ast> for Named<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        match item {
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    self.at.push(m.ident.to_string());
                    for i in items {
                        self.visit_item(i);
                    }
                    self.at.pop();
                }
            }
            syn::Item::Use(u) => {
                let mut found = Vec::new();
                leaves(&u.tree, &mut Vec::new(), &mut found);
                for (_, path) in found.into_iter().filter(|(n, _)| n != "*") {
                    if let Some(home) = self.resolver.land(&self.at, &path) {
                        self.found.insert(home);
                    }
                }
            }
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() > 1 {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            if let Some(home) = self.resolver.land(&self.at, &segments) {
                self.found.insert(home);
            }
        }
        syn::visit::visit_path(self, p);
    }
}
