//! The shape of the code, checked. The layers are crates (model -> data ->
//! score -> goodhart), so cargo refuses an import up the stack; inside this
//! crate the modules keep their order (optimize and measure side by side, then
//! experiment, then analysis, then report); no two files of a crate import each
//! other, directly or round a circle; and no source file grows past a
//! screenful of screenfuls without saying why at its top.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;
/// What a long file states at its top.
const LONG_FILE_NOTE: &str = "//! Long file:";

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

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

fn sources_of(module: &str) -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let dir = src.join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no sources for module {module}");
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn no_module_imports_a_later_stage() {
    // (module, the modules it must never name)
    let rules: &[(&str, &[&str])] = &[
        ("optimize", &["measure", "experiment", "analysis", "report"]),
        ("measure", &["optimize", "experiment", "analysis", "report"]),
        // The runner never reads its own results back: that is the analysis layer's.
        ("experiment", &["analysis", "report"]),
        ("analysis", &["report"]),
    ];
    let mut violations = vec![];
    for (module, forbidden) in rules {
        for (path, text) in sources_of(module) {
            for (i, line) in text.lines().enumerate() {
                for f in *forbidden {
                    if line.contains(&format!("crate::{f}")) {
                        violations.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports up the pipeline:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_source_file_is_long_without_a_reason_at_its_top() {
    let mut files = vec![];
    for krate in std::fs::read_dir(crates_dir()).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let n = text.lines().count();
            let explained = text.lines().take(20).any(|l| l.starts_with(LONG_FILE_NOTE));
            (n > MAX_LINES && !explained).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines with no `{LONG_FILE_NOTE}` line at the top:\n{}",
        long.join("\n")
    );
}

/// The module a file is (`a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; "" for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> (String, bool) {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let is_mod = matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    );
    let parts = if is_mod {
        &parts[..parts.len() - 1]
    } else {
        &parts[..]
    };
    (parts.join("::"), is_mod)
}

/// Each file's imports of other files of its crate: every `crate::`, `super::`
/// and `self::` path in its text before its tests (doc links count: a link is
/// a dependency too), resolved to the longest module that is a file.
fn import_graph(src: &Path) -> Vec<(String, Vec<String>)> {
    let mut files = vec![];
    rust_files(src, &mut files);
    let modules: Vec<(String, bool, PathBuf)> = files
        .iter()
        .filter(|f| !f.to_string_lossy().contains("/tests") && !f.ends_with("tests.rs"))
        .map(|f| {
            let (m, is_mod) = module_of(src, f);
            (m, is_mod, f.clone())
        })
        .collect();
    let known = |parts: &[&str]| -> Option<String> {
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|cand| modules.iter().any(|(m, _, _)| m == cand))
    };
    let path_re = |text: &str| -> Vec<(String, String)> {
        // (head, rest): `crate::a::b`, `super::super::a`, `self::a`, and `{x, y}` groups split.
        let mut out = vec![];
        let bytes: Vec<char> = text.chars().collect();
        let text: String = bytes.iter().collect();
        for head in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(i) = text[from..].find(head) {
                let at = from + i;
                from = at + head.len();
                let before = text[..at].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest: String = text[at + head.len()..]
                    .chars()
                    .take_while(|c| {
                        c.is_alphanumeric() || matches!(c, '_' | ':' | '{' | '}' | ',' | ' ')
                    })
                    .collect();
                out.push((head.trim_end_matches("::").to_string(), rest));
            }
        }
        out
    };
    modules
        .iter()
        .map(|(m, _, f)| {
            let text = std::fs::read_to_string(f).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let here: Vec<&str> = if m.is_empty() {
                vec![]
            } else {
                m.split("::").collect()
            };
            let mut deps = vec![];
            for (head, rest) in path_re(text) {
                // `self` is this file's module, `super` its parent, whether or not the file is a mod.rs.
                let mut base: Vec<&str> = match head.as_str() {
                    "crate" => vec![],
                    "self" => here.clone(),
                    _ => here[..here.len().saturating_sub(1)].to_vec(),
                };
                let mut rest = rest.as_str();
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
                let (prefix, group) = match rest.find('{') {
                    Some(i) => (
                        &rest[..i],
                        rest[i + 1..].split('}').next().unwrap_or_default(),
                    ),
                    None => (rest.split([' ', ',', '}']).next().unwrap_or_default(), ""),
                };
                let items: Vec<String> = if rest.contains('{') {
                    group
                        .split(',')
                        .map(|x| format!("{prefix}{}", x.trim()))
                        .collect()
                } else {
                    vec![prefix.to_string()]
                };
                for item in items {
                    let item = item.split(" as ").next().unwrap_or_default();
                    let mut parts = base.clone();
                    parts.extend(item.split("::").filter(|p| !p.is_empty() && *p != "self"));
                    if let Some(dep) = known(&parts) {
                        if !dep.is_empty()
                            && dep != *m
                            && !m.starts_with(&format!("{dep}::"))
                            && !deps.contains(&dep)
                        {
                            deps.push(dep);
                        }
                    }
                }
            }
            (m.clone(), deps)
        })
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(graph: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a [(String, Vec<String>)],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        let deps: Vec<usize> = s.graph[v]
            .1
            .iter()
            .filter_map(|d| s.graph.iter().position(|(m, _)| m == d))
            .collect();
        for w in deps {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = vec![];
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                comp.push(s.graph[w].0.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let n = graph.len();
    let mut s = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        stack: vec![],
        on: vec![false; n],
        next: 0,
        out: vec![],
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_two_files_of_a_crate_import_each_other_round_a_circle() {
    // Circles that are known and argued for: none.
    let allowed: &[&[&str]] = &[];
    let mut found = vec![];
    for krate in std::fs::read_dir(crates_dir()).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for c in circles(&import_graph(&src)) {
            if !allowed
                .iter()
                .any(|a| a.iter().copied().eq(c.iter().map(String::as_str)))
            {
                found.push(format!("{}: {}", src.display(), c.join(", ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "file-level import circles:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph = vec![
        ("a".to_string(), vec!["b".to_string()]),
        ("b".to_string(), vec!["c".to_string()]),
        ("c".to_string(), vec!["a".to_string()]),
        ("d".to_string(), vec!["a".to_string()]),
    ];
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
    // This crate's own graph has its layers in it.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = import_graph(&src);
    let deps = |m: &str| {
        g.iter()
            .find(|(x, _)| x == m)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    assert!(deps("analysis::seeds").contains(&"experiment::record".to_string()));
    assert!(deps("experiment::run").contains(&"experiment::table".to_string()));
}
