//! The shape of the code, checked. The layers are crates (model -> data ->
//! score -> goodhart), so cargo refuses an import up the stack; inside this
//! crate the modules keep their order (optimize and measure side by side, then
//! experiment, then report), and no source file grows past a screenful of
//! screenfuls without saying why at its top.

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
        ("optimize", &["measure", "experiment", "report"]),
        ("measure", &["optimize", "experiment", "report"]),
        ("experiment", &["report"]),
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
