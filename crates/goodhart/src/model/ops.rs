//! Normalisation and softmax that are fast when no gradient is needed and
//! differentiable when one is. candle-nn's fused kernels have no backward
//! pass: used on a tensor that tracks gradients they would silently cut the
//! graph, so training takes the composite path.

use candle_core::{DType, Result, Tensor, D};

/// LayerNorm over the last dimension.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if needs_grad(&[x, weight, bias]) || !x.is_contiguous() || x.dtype() != DType::F32 {
        let d = x.dim(D::Minus1)? as f64;
        let mean = (x.sum_keepdim(D::Minus1)? / d)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / d)?;
        let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
        normed.broadcast_mul(weight)?.broadcast_add(bias)
    } else {
        candle_nn::ops::layer_norm(x, weight, bias, eps as f32)
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if needs_grad(&[x]) || !x.is_contiguous() {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

fn needs_grad(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor) -> f32 {
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

    #[test]
    fn fast_and_differentiable_paths_agree() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 24., &dev).unwrap().reshape((2, 3, 4)).unwrap();
        let x = (x.sin().unwrap() * 3.0).unwrap();
        let w = Tensor::new(&[1.0f32, 0.5, 2.0, -1.0], &dev).unwrap();
        let b = Tensor::new(&[0.1f32, 0.0, -0.2, 0.3], &dev).unwrap();
        let fast = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let slow = layer_norm(xv.as_tensor(), &w, &b, 1e-5).unwrap();
        assert!(close(&fast, &slow) < 1e-5);
        // the differentiable path really carries a gradient back to x
        let grads = slow.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(xv.as_tensor()).is_some());

        let fast = softmax_last_dim(&x).unwrap();
        let slow = softmax_last_dim(xv.as_tensor()).unwrap();
        assert!(close(&fast, &slow) < 1e-6);
    }
}
