//! Devices and the ops' two paths: a quick run through the composite ops (what
//! a GPU runs, forced on the CPU by `GOODHART_COMPOSITE_OPS=1`) gives the fused
//! kernels' curves within the op tests' tolerance, and a device this build
//! cannot use (or bf16 on the CPU) is refused by name before any work.

use std::path::Path;
use std::process::{Command, Output};

/// The op tests' bar for gradients (forward passes agree within 1e-5): no
/// figure of a quick run moves by more through the composite ops.
const TOLERANCE: f64 = 1e-4;

fn goodhart(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args(["--quiet", "--threads", "2"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the goodhart binary runs")
}

fn failed(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = goodhart(env, args);
    assert!(!out.status.success(), "goodhart {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// `curves.csv` as its header and rows of cells.
fn curves(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join("curves.csv")).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    (lines.next().unwrap(), lines.collect())
}

#[test]
fn a_quick_run_through_the_composite_ops_gives_the_fused_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let (fused, composite) = (tmp.path().join("fused"), tmp.path().join("composite"));
    for (dir, switch) in [(&fused, "0"), (&composite, "1")] {
        let out = goodhart(
            &[("GOODHART_COMPOSITE_OPS", switch)],
            &["run", "--quick", "--out", dir.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "GOODHART_COMPOSITE_OPS={switch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (header, a) = curves(&fused);
    let (header_b, b) = curves(&composite);
    assert_eq!(header, header_b);
    assert_eq!(a.len(), b.len(), "the same curve points");
    assert!(a.len() > 100, "{} curve points", a.len());
    let (mut compared, mut moved) = (0, 0);
    for (ra, rb) in a.iter().zip(&b) {
        for ((x, y), column) in ra.iter().zip(rb).zip(&header) {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    assert!(
                        (x - y).abs() <= TOLERANCE,
                        "{column} of {:?}: {x} fused, {y} composite",
                        &ra[..5]
                    );
                    compared += 1;
                    moved += usize::from(x != y);
                }
                _ => assert_eq!(x, y, "{column} of {:?}", &ra[..5]),
            }
        }
    }
    // The two paths round differently: equal bits throughout would mean one path ran twice.
    assert!(
        moved > 0 && compared > 1000,
        "{moved} of {compared} figures differ"
    );
}

#[test]
fn a_device_this_build_cannot_use_is_refused_by_name() {
    let err = failed(&[], &["--device", "tpu", "config"]);
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
    if !cfg!(feature = "cuda") {
        let err = failed(&[], &["--device", "cuda:0", "config"]);
        assert!(
            err.contains("no CUDA support") && err.contains("--features cuda"),
            "{err}"
        );
    }
    let err = failed(&[("GOODHART_COMPOSITE_OPS", "yes")], &["config"]);
    assert!(
        err.contains("GOODHART_COMPOSITE_OPS") && err.contains("expected 1 or 0"),
        "{err}"
    );
    // bf16 is for GPUs: a CPU run says so before it starts.
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("bf16.toml");
    std::fs::write(&exp, "name = \"bf16\"\nbf16 = true\n").unwrap();
    let out = tmp.path().join("run");
    let args = [
        "run",
        exp.to_str().unwrap(),
        "--quick",
        "--out",
        out.to_str().unwrap(),
    ];
    let err = failed(
        &[],
        &["--device", "cpu"]
            .iter()
            .chain(&args)
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(err.contains("bf16 = true is for a GPU"), "{err}");
    let out = goodhart(&[], &["--device", "cpu", "config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
