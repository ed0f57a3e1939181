//! Running the `goodhart` binary from integration tests.

#![allow(dead_code)] // each test binary uses some of these

use std::process::{Command, Output};

/// `goodhart --quiet --threads THREADS ARGS...`.
pub fn goodhart(threads: usize, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args(["--quiet", "--threads", &threads.to_string()])
        .args(args)
        .output()
        .expect("the goodhart binary runs")
}

/// Its standard output; the test fails (with its standard error) if it fails.
pub fn ok(threads: usize, args: &[&str]) -> String {
    let out = goodhart(threads, args);
    assert!(
        out.status.success(),
        "goodhart {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Its standard error; the test fails if it succeeds.
pub fn fail(threads: usize, args: &[&str]) -> String {
    let out = goodhart(threads, args);
    assert!(
        !out.status.success(),
        "goodhart {args:?} should have failed"
    );
    String::from_utf8(out.stderr).unwrap()
}
