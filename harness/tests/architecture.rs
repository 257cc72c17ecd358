//! The module graph of the harness library has no cycles: each top-level module (`suite`,
//! `data`, `train`, ...) names others through `crate::<module>`, and those edges must form a DAG,
//! so a module can be read, tested and replaced with only what is below it in mind. Test code
//! (`#[cfg(test)] mod tests`, `tests.rs`) is left out: it may reach anywhere.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level modules named by `crate::` paths in Rust source, `use crate::{a, b::c}` groups included.
fn crate_refs(src: &str) -> BTreeSet<String> {
    // Comments and everything from the unit-test module on are not the module's dependencies.
    let src = match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => src,
    };
    let code: String = src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at depth 1 of the group: `{a, b::{c, d}, e}` -> a, b, e.
            let (mut depth, mut item) = (1, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        out.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            out.insert(ident(&item));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn graph(src_dir: &Path) -> Graph {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src_dir, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src_dir).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" || f.file_name().unwrap() == "tests.rs" {
            continue;
        }
        let refs = crate_refs(&std::fs::read_to_string(&f).unwrap());
        g.entry(top.clone()).or_default().extend(refs.into_iter().filter(|m| *m != top));
    }
    g
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        for w in t.g[v].iter().filter(|w| t.g.contains_key(w.as_str())) {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn render(g: &Graph) -> String {
    g.iter().map(|(m, deps)| format!("{m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_parser_finds_grouped_and_plain_references_and_the_check_finds_cycles() {
    let src = "use crate::suite::{Run, Suite};\nuse crate::{artifacts, data::{hub, Corpus}, report::model};\n\
               // crate::commented\nfn f() { crate::device::resolve(); }\n#[cfg(test)]\nmod tests { use crate::runner; }\n";
    assert!(crate_refs("#[cfg(test)]\nmod tests;\nuse crate::lock;").contains("lock"), "a test module in its own file cuts nothing");
    let refs: Vec<String> = crate_refs(src).into_iter().collect();
    assert_eq!(refs, ["artifacts", "data", "device", "report", "suite"]);
    let g: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
}

#[test]
fn the_harness_modules_form_a_dag() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.contains_key("suite") && g["runner"].contains("suite"), "the walk found the modules:\n{}", render(&g));
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles between modules: {found:?}\n(move what both sides need below them; the graph:)\n{}",
        render(&g)
    );
    eprintln!("{}", render(&g));
}
