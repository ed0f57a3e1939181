//! Each fused kernel against candle's composite ops, forward and backward.

use super::gelu::tanh;
use super::*;
use candle_core::{Device, Var, D};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn input() -> Tensor {
    let x = Tensor::arange(0f32, 3. * 5. * 8., &Device::Cpu)
        .unwrap()
        .reshape((3, 5, 8))
        .unwrap();
    ((x * 0.37).unwrap().sin().unwrap() * 2.5).unwrap()
}

/// Gradient of sum(f(x) * r) for a fixed random-ish r, through the fused op and the composite one.
fn grads(
    f: impl Fn(&Tensor) -> Tensor,
    composite: impl Fn(&Tensor) -> Tensor,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let x = Var::from_tensor(&input()).unwrap();
    let r = (input().cos().unwrap() + 0.1).unwrap();
    let y1 = f(x.as_tensor());
    let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let y2 = composite(x.as_tensor());
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y1,
        y2,
        g1.get(x.as_tensor()).unwrap().clone(),
        g2.get(x.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn fused_gelu_matches_candle_forward_and_backward() {
    let (y1, y2, g1, g2) = grads(|x| gelu(x).unwrap(), |x| x.gelu().unwrap());
    assert!(max_diff(&y1, &y2) < 1e-5);
    assert!(max_diff(&g1, &g2) < 1e-4, "{}", max_diff(&g1, &g2));
}

#[test]
fn fused_softmax_matches_composite_forward_and_backward() {
    let (y1, y2, g1, g2) = grads(
        |x| softmax_last_dim(x).unwrap(),
        |x| candle_nn::ops::softmax(x, D::Minus1).unwrap(),
    );
    assert!(max_diff(&y1, &y2) < 1e-6);
    assert!(max_diff(&g1, &g2) < 1e-5);
}

#[test]
fn fused_layer_norm_matches_composite_for_all_three_gradients() {
    let dev = Device::Cpu;
    let w = Var::new(&[1.0f32, 0.5, 2.0, -1.0, 0.3, 1.2, 0.9, -0.4], &dev).unwrap();
    let b = Var::new(&[0.1f32, 0.0, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0], &dev).unwrap();
    let x = Var::from_tensor(&input()).unwrap();
    let r = (input().cos().unwrap() + 0.1).unwrap();
    let composite = |x: &Tensor, w: &Tensor, b: &Tensor| {
        let mean = (x.sum_keepdim(D::Minus1).unwrap() / 8.0).unwrap();
        let c = x.broadcast_sub(&mean).unwrap();
        let var = (c.sqr().unwrap().sum_keepdim(D::Minus1).unwrap() / 8.0).unwrap();
        let n = c
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap();
        n.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
    };
    let y1 = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    let y2 = composite(x.as_tensor(), w.as_tensor(), b.as_tensor());
    assert!(max_diff(&y1, &y2) < 1e-5);
    let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&x, &w, &b] {
        let d = max_diff(
            g1.get(v.as_tensor()).unwrap(),
            g2.get(v.as_tensor()).unwrap(),
        );
        assert!(d < 1e-4, "gradient differs by {d}");
    }
}

#[test]
fn fused_bias_add_and_target_logprobs_match_candle() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&input().reshape((15, 8)).unwrap()).unwrap();
    let b = Var::new(&[0.1f32, 0.0, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0], &dev).unwrap();
    let r = (input().reshape((15, 8)).unwrap().cos().unwrap() + 0.1).unwrap();
    let y1 = add_bias(x.as_tensor(), b.as_tensor()).unwrap();
    let y2 = x.as_tensor().broadcast_add(b.as_tensor()).unwrap();
    assert!(max_diff(&y1, &y2) < 1e-7);
    let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&x, &b] {
        assert!(
            max_diff(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap()
            ) < 1e-5
        );
    }

    let targets = Tensor::new(&[3u32, 0, 7, 7, 1, 2, 5, 4, 6, 0, 1, 2, 3, 4, 5], &dev).unwrap();
    let w = Tensor::arange(0f32, 15., &dev).unwrap();
    let l1 = target_logprobs(x.as_tensor(), &targets).unwrap();
    let picked = x
        .as_tensor()
        .gather(&targets.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let l2 = (picked - x.as_tensor().log_sum_exp(D::Minus1).unwrap()).unwrap();
    assert!(max_diff(&l1, &l2) < 1e-5);
    let g1 = (&l1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&l2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(
        max_diff(
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap()
        ) < 1e-4
    );
}

#[test]
fn head_split_merge_and_causal_softmax_match_candle() {
    let x = Var::from_tensor(&input().reshape((6, 20)).unwrap()).unwrap(); // b=2, t=3, h=4, dh=5
    let split = split_heads(x.as_tensor(), 2, 4).unwrap();
    let reference = x
        .as_tensor()
        .reshape((2, 3, 4, 5))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    assert!(max_diff(&split, &reference) < 1e-9);
    assert!(max_diff(&merge_heads(&split).unwrap(), x.as_tensor()) < 1e-9);
    let r = (input().reshape((2, 4, 3, 5)).unwrap().cos().unwrap() + 0.1).unwrap();
    let g = (&split * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let expect = r.transpose(1, 2).unwrap().reshape((6, 20)).unwrap();
    assert!(max_diff(g.get(x.as_tensor()).unwrap(), &expect) < 1e-9);

    let scores = Var::from_tensor(
        &input()
            .narrow(2, 0, 5)
            .unwrap()
            .narrow(1, 0, 5)
            .unwrap()
            .contiguous()
            .unwrap(),
    )
    .unwrap(); // [3, 5, 5]
    let t = 5;
    let mask: Vec<f32> = (0..t)
        .flat_map(|q| (0..t).map(move |k| if k <= q { 0.0 } else { -1e9 }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
    let y1 = causal_softmax(scores.as_tensor()).unwrap();
    let y2 = candle_nn::ops::softmax(&scores.as_tensor().broadcast_add(&mask).unwrap(), D::Minus1)
        .unwrap();
    assert!(max_diff(&y1, &y2) < 1e-6);
    let w = (input()
        .narrow(2, 0, 5)
        .unwrap()
        .narrow(1, 0, 5)
        .unwrap()
        .sin()
        .unwrap()
        + 0.3)
        .unwrap();
    let g1 = (&y1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&y2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(
        max_diff(
            g1.get(scores.as_tensor()).unwrap(),
            g2.get(scores.as_tensor()).unwrap()
        ) < 1e-5
    );
}

#[test]
fn fast_tanh_and_exp_are_accurate() {
    let mut worst = (0f32, 0f32);
    for i in -20_000..=20_000 {
        let x = i as f32 * 1e-3;
        worst.0 = worst.0.max((tanh(x) - x.tanh()).abs());
        if x <= 0.0 {
            let e = x * 4.0;
            worst.1 = worst
                .1
                .max(((exp_nonpositive(e) - e.exp()) / e.exp()).abs());
        }
    }
    assert!(worst.0 < 1e-6, "tanh error {}", worst.0);
    assert!(worst.1 < 1e-6, "exp relative error {}", worst.1);
    assert_eq!(exp_nonpositive(-200.0), 0.0f32.max(exp_nonpositive(-200.0)));
}

#[test]
fn inference_path_needs_no_gradient_tracking() {
    // A plain tensor goes through the same fused kernels with no graph recorded.
    let y = softmax_last_dim(&input()).unwrap();
    assert!(!y.track_op());
    let sums: Vec<f32> = y
        .sum(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
}

#[test]
fn fused_rms_norm_matches_composite_forward_and_backward() {
    let w = Var::from_tensor(
        &Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .affine(0.1, 0.7)
            .unwrap(),
    )
    .unwrap();
    let x = Var::from_tensor(&input()).unwrap();
    let r = (input().cos().unwrap() + 0.1).unwrap();
    let composite = |x: &Tensor| {
        let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?;
        x.broadcast_div(&rms)?.broadcast_mul(w.as_tensor())
    };
    let y1 = rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
    let y2 = composite(x.as_tensor()).unwrap();
    assert!(max_diff(&y1, &y2) < 1e-5);
    let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [x.as_tensor(), w.as_tensor()] {
        let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
        assert!(d < 1e-4, "{d}");
    }
}

#[test]
fn fused_rotary_matches_composite_forward_and_backward() {
    // [b 3, h 2, t 5, dh 4] from the [3, 5, 8] input, angles per (batch, position).
    let x4 = |x: &Tensor| {
        x.reshape((3, 5, 2, 4))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let angles = (Tensor::arange(0f32, 3. * 5. * 2., &Device::Cpu).unwrap() * 0.3)
        .unwrap()
        .reshape((3, 1, 5, 2))
        .unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let composite = |x: &Tensor| {
        let (x1, x2) = (x.narrow(3, 0, 2)?, x.narrow(3, 2, 2)?);
        let first = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let second = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Tensor::cat(&[first, second], 3)? * 0.5
    };
    let (y1, y2, g1, g2) = grads(
        |x| {
            rotary(&x4(x), &cos, &sin, 0.5)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((3, 5, 8))
                .unwrap()
        },
        |x| {
            composite(&x4(x))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((3, 5, 8))
                .unwrap()
        },
    );
    assert!(max_diff(&y1, &y2) < 1e-6);
    assert!(max_diff(&g1, &g2) < 1e-6, "{}", max_diff(&g1, &g2));
}

#[test]
fn fused_swiglu_matches_composite_forward_and_backward() {
    let up = Var::from_tensor(&(input().cos().unwrap() * 1.5).unwrap()).unwrap();
    let (y1, y2, g1, g2) = grads(
        |x| swiglu(x, up.as_tensor()).unwrap(),
        |x| (x.silu().unwrap() * up.as_tensor()).unwrap(),
    );
    assert!(max_diff(&y1, &y2) < 1e-5);
    assert!(max_diff(&g1, &g2) < 1e-4, "{}", max_diff(&g1, &g2));
    // and the gradient of `up`
    let x = input();
    let r = (input().cos().unwrap() + 0.1).unwrap();
    let ga = (swiglu(&x, up.as_tensor()).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gb = ((x.silu().unwrap() * up.as_tensor()).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let d = max_diff(
        ga.get(up.as_tensor()).unwrap(),
        gb.get(up.as_tensor()).unwrap(),
    );
    assert!(d < 1e-5, "{d}");
}

/// `f`'s output and the gradients of `sum(output * r)` (a fixed `r`) with
/// respect to `vars`, computed through the fused kernels and again through
/// each op's own composite branch (what other devices run).
fn on_both_paths(vars: &[&Var], f: impl Fn() -> Tensor) -> [(Tensor, Vec<Tensor>); 2] {
    [OpsPath::Fused, OpsPath::Composite].map(|path| {
        with_path(path, || {
            let y = f();
            let n = y.elem_count();
            let r = (Tensor::arange(0f32, n as f32, y.device())
                .unwrap()
                .reshape(y.shape())
                .unwrap()
                .sin()
                .unwrap()
                + 0.1)
                .unwrap();
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let grads = vars
                .iter()
                .map(|v| grads.get(v.as_tensor()).unwrap().clone())
                .collect();
            (y, grads)
        })
    })
}

/// The two paths agree: outputs within `fwd`, every gradient within `bwd`.
fn paths_agree(name: &str, vars: &[&Var], fwd: f32, bwd: f32, f: impl Fn() -> Tensor) {
    let [(y1, g1), (y2, g2)] = on_both_paths(vars, f);
    assert_eq!(y1.dims(), y2.dims(), "{name}: shapes");
    let d = max_diff(&y1, &y2);
    assert!(d < fwd, "{name}: outputs differ by {d}");
    for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
        let d = max_diff(a, b);
        assert!(d < bwd, "{name}: gradient {i} differs by {d}");
    }
}

#[test]
fn every_op_gives_the_same_through_its_own_composite_branch() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&input()).unwrap(); // [3, 5, 8]
    let rows = Var::from_tensor(&input().reshape((15, 8)).unwrap()).unwrap();
    let w = Var::new(&[1.0f32, 0.5, 2.0, -1.0, 0.3, 1.2, 0.9, -0.4], &dev).unwrap();
    let b = Var::new(&[0.1f32, 0.0, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0], &dev).unwrap();
    let up = Var::from_tensor(&(input().cos().unwrap() * 1.5).unwrap()).unwrap();
    let xs = || x.as_tensor();
    paths_agree("gelu", &[&x], 1e-5, 1e-4, || gelu(xs()).unwrap());
    paths_agree("softmax", &[&x], 1e-6, 1e-5, || {
        softmax_last_dim(xs()).unwrap()
    });
    let square = Var::from_tensor(&input().narrow(2, 0, 5).unwrap().contiguous().unwrap()).unwrap();
    paths_agree("causal softmax", &[&square], 1e-6, 1e-5, || {
        causal_softmax(square.as_tensor()).unwrap()
    });
    paths_agree("layer norm", &[&x, &w, &b], 1e-5, 1e-4, || {
        layer_norm(xs(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap()
    });
    paths_agree("rms norm", &[&x, &w], 1e-5, 1e-4, || {
        rms_norm(xs(), w.as_tensor(), 1e-5).unwrap()
    });
    paths_agree("bias", &[&rows, &b], 1e-7, 1e-5, || {
        add_bias(rows.as_tensor(), b.as_tensor()).unwrap()
    });
    let targets = Tensor::new(&[3u32, 0, 7, 7, 1, 2, 5, 4, 6, 0, 1, 2, 3, 4, 5], &dev).unwrap();
    paths_agree("target log-probs", &[&rows], 1e-5, 1e-4, || {
        target_logprobs(rows.as_tensor(), &targets).unwrap()
    });
    let flat = Var::from_tensor(&input().reshape((6, 20)).unwrap()).unwrap(); // b=2, t=3, h=4, dh=5
    paths_agree("split heads", &[&flat], 1e-9, 1e-9, || {
        split_heads(flat.as_tensor(), 2, 4).unwrap()
    });
    let heads = Var::from_tensor(&input().reshape((2, 4, 3, 5)).unwrap()).unwrap();
    paths_agree("merge heads", &[&heads], 1e-9, 1e-9, || {
        merge_heads(heads.as_tensor()).unwrap()
    });
    // [b 3, h 2, t 5, dh 4], angles per (batch, position).
    let x4 = Var::from_tensor(&input().reshape((3, 2, 5, 4)).unwrap()).unwrap();
    let angles = (Tensor::arange(0f32, 3. * 5. * 2., &dev).unwrap() * 0.3)
        .unwrap()
        .reshape((3, 1, 5, 2))
        .unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    paths_agree("rotary", &[&x4], 1e-6, 1e-6, || {
        rotary(x4.as_tensor(), &cos, &sin, 0.5).unwrap()
    });
    paths_agree("swiglu", &[&x, &up], 1e-5, 1e-4, || {
        swiglu(xs(), up.as_tensor()).unwrap()
    });
}
