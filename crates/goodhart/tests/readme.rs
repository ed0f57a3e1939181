//! The README states what the code does: its experiment-format reference is
//! the code's defaults, generated.

use goodhart::experiment::reference::{reference_markdown, BEGIN, END};

#[test]
fn the_readme_states_the_defaults_the_code_has() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = readme
        .find(BEGIN)
        .expect("the README has a generated config reference");
    let end = readme[begin..].find(END).expect("...and its end marker") + begin + END.len() + 1;
    assert_eq!(
        &readme[begin..end],
        reference_markdown(),
        "the README's config reference differs from the code's defaults: replace it with `goodhart config --reference`"
    );
}
