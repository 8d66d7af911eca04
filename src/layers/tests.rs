use super::*;

/// Each crate's file graph, by crate root.
fn all() -> Vec<(PathBuf, Files, Graph)> {
    crate_roots()
        .into_iter()
        .map(|r| {
            let f = files(&r);
            let g = graph(&f);
            (r, f, g)
        })
        .collect()
}

fn short(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn no_file_of_any_crate_depends_on_itself_through_others() {
    let crates = all();
    assert!(crates.len() >= 10, "the crates: {:?}", crates.len());
    let (_, lib, g) = &crates[0];
    assert!(
        lib.len() > 100,
        "the check found keyway's modules: {}",
        lib.len()
    );
    let run = root().join("src/commands/run.rs");
    assert!(
        g[&run].contains(&root().join("src/store/records.rs")),
        "the check sees imports: {:?}",
        g[&run]
    );
    let mut found = Vec::new();
    for (_, _, g) in &crates {
        for c in cycles(g) {
            found.push(c.iter().map(|p| short(p)).collect::<Vec<_>>().join(" ↔ "));
        }
    }
    assert!(
        found.is_empty(),
        "files that depend on each other in a circle (a module's parts must point one way; \
         the modules each file's paths land in: KEYWAY_LAYERS_WHY=1 cargo test --lib \
         layers::tests::why -- --nocapture):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_modules_of_src_depend_downwards_in_the_declared_layers() {
    let lib = files(&root().join("src/lib.rs"));
    let g = graph(&lib);
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, deps) in &g {
        let m = top_module(file);
        let out = modules.entry(m.clone()).or_default();
        out.extend(deps.iter().map(|d| top_module(d)).filter(|d| *d != m));
    }
    assert!(
        modules["api"].contains("commands") && modules["commands"].contains("store"),
        "the check sees imports: {modules:?}"
    );
    let unplaced: Vec<&String> = modules.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer in LAYERS: {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (m, deps) in &modules {
        for d in deps {
            if layer_of(d) < layer_of(m) {
                let name = |x: &str| LAYERS[layer_of(x).unwrap_or(0)].0;
                upward.push(format!("{m} ({}) → {d} ({})", name(m), name(d)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies against the layers: {upward:#?}"
    );
    let circles = cycles(&modules);
    assert!(circles.is_empty(), "modules in a circle: {circles:?}");
}

/// The `[dependencies]` of a crate's manifest whose names start with `keyway`.
fn keyway_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[dependencies]" && line.starts_with("keyway") {
            out.push(
                line.split(['=', '.', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    out
}

#[test]
fn an_adapter_crate_depends_on_the_contract_and_no_other_keyway_crate() {
    let dirs = std::fs::read_dir(root().join("adapters")).unwrap();
    let mut checked = 0;
    for d in dirs.flatten().map(|d| d.path()) {
        let manifest = d.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        checked += 1;
        let deps = keyway_dependencies(&manifest);
        let allowed: &[&str] = if d.ends_with("core") {
            &[]
        } else {
            &["keyway-adapter"]
        };
        let wrong: Vec<&String> = deps
            .iter()
            .filter(|n| !allowed.contains(&n.as_str()))
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: depends on {wrong:?}",
            short(&manifest)
        );
    }
    assert!(checked >= 9, "adapter crates checked: {checked}");
}

/// The longest a source file of `src/` or `adapters/*/src/` may be; tests live beside
/// their module (`<module>/tests.rs`) once a file would pass it.
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let mut long = Vec::new();
    let mut seen = 0;
    let mut walk = vec![root().join("src"), root().join("adapters")];
    while let Some(dir) = walk.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("target") {
                walk.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                seen += 1;
                let n = std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .lines()
                    .count();
                if n > MAX_LINES {
                    long.push(format!("{} ({n} lines)", short(&p)));
                }
            }
        }
    }
    assert!(seen > 100, "the check found the files: {seen}");
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_check_follows_imports_and_re_exports_skips_tests_and_finds_circles() {
    let parsed = |code: &str| syn::parse_str::<syn::File>(code).unwrap();
    // lib.rs re-exports `Thing` from a/b.rs; a/mod.rs defines `Shared`; c.rs `g`.
    let modules: Vec<(ModPath, &str, &str)> = vec![
        (
            vec![],
            "lib.rs",
            "pub mod a; pub mod c; pub use a::b::Thing;",
        ),
        (
            vec!["a".into()],
            "a/mod.rs",
            "pub mod b; pub struct Shared;",
        ),
        (vec!["a".into(), "b".into()], "a/b.rs", "pub struct Thing;"),
        (vec!["c".into()], "c.rs", "pub fn g() {}"),
    ];
    let fake: Files = modules
        .iter()
        .map(|(m, f, _)| (m.clone(), PathBuf::from(f)))
        .collect();
    let mut all = Scopes::new();
    for (m, _, code) in &modules {
        names::collect(m, &parsed(code).items, &mut all);
    }
    let code = parsed(
        "use super::Shared;
         use crate::Thing;
         use crate::c;
         fn f() { c::g(); std::mem::drop(1); }
         // crate::nothing
         #[cfg(test)] mod tests { use crate::a::Shared; }",
    );
    let here: ModPath = vec!["a".into(), "b".into()];
    names::collect(&here, &code.items, &mut all);
    let mut named = Named {
        resolver: Resolver {
            files: &fake,
            scopes: &all,
        },
        at: here.clone(),
        found: BTreeSet::new(),
    };
    named.visit_file(&code);
    let landed: BTreeSet<&PathBuf> = named.found.iter().filter_map(|m| fake.get(m)).collect();
    // `Thing` lands where it is defined (a/b.rs, through lib.rs's re-export), `c::g` in
    // c.rs, `Shared` in a/mod.rs; lib.rs is never a dependency of its own re-export.
    let want: BTreeSet<PathBuf> = ["a/mod.rs", "a/b.rs", "c.rs"].map(PathBuf::from).into();
    assert_eq!(landed, want.iter().collect());
    let g: BTreeMap<u8, BTreeSet<u8>> = [(1, [2].into()), (2, [3].into()), (3, [].into())].into();
    assert!(cycles(&g).is_empty());
    let mut g = g;
    g.get_mut(&3).unwrap().insert(1);
    assert_eq!(cycles(&g), vec![vec![1, 2, 3]]);
}

/// `KEYWAY_LAYERS_WHY=1`: prints, for each circle, the modules each of its files'
/// paths land in (a help for untangling one).
#[test]
fn why() {
    if std::env::var_os("KEYWAY_LAYERS_WHY").is_none() {
        return;
    }
    for (_, f, g) in all() {
        let scopes = scopes(&f);
        let at = outermost(&f);
        for c in cycles(&g) {
            println!(
                "== {}",
                c.iter().map(|p| short(p)).collect::<Vec<_>>().join(" ↔ ")
            );
            for file in &c {
                for m in named(&f, &scopes, file, at[file]) {
                    if let Some(d) = f.get(&m).filter(|d| *d != file && c.contains(d)) {
                        println!("  {} → {}  ({})", short(file), short(d), m.join("::"));
                    }
                }
            }
        }
    }
}
