//! Matrix products in f32, or with bf16 operands on a GPU when a run asks for
//! it (`bf16 = true`, set once per process by the runtime's `set_bf16`).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Result, Tensor};

static BF16: AtomicBool = AtomicBool::new(false);

/// Take the bf16 path for every later product off the CPU (the runtime refuses
/// it for a CPU run; see the runtime's `set_bf16`).
pub(crate) fn set_bf16(on: bool) {
    BF16.store(on, Ordering::Relaxed);
}

/// Are products taken in bf16?
pub fn bf16() -> bool {
    BF16.load(Ordering::Relaxed)
}

#[cfg(test)]
thread_local! {
    /// A test's bf16 setting for products on its own thread, on any device.
    static TEST_BF16: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with products on this thread taken in bf16 even on the CPU (tests).
#[cfg(test)]
pub(crate) fn with_bf16<R>(f: impl FnOnce() -> R) -> R {
    let before = TEST_BF16.with(|b| b.replace(true));
    let out = f();
    TEST_BF16.with(|b| b.set(before));
    out
}

/// `a @ b`. In bf16 mode (f32 tensors off the CPU) both operands are rounded
/// to bf16 and the product, accumulated in f32 by cuBLAS, comes back as f32:
/// tensor-core speed for the products, while the weights, their gradients and
/// the optimiser's state stay f32 and every reduction (softmax, the norms,
/// log-probabilities, losses) runs on f32 activations.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(test)]
    let forced = TEST_BF16.with(|b| b.get());
    #[cfg(not(test))]
    let forced = false;
    let wanted = forced || (bf16() && !a.device().is_cpu());
    if wanted && a.dtype() == DType::F32 {
        a.to_dtype(DType::BF16)?
            .matmul(&b.to_dtype(DType::BF16)?)?
            .to_dtype(DType::F32)
    } else {
        a.matmul(b)
    }
}
