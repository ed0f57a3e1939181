//! Process-wide settings for tensor work: the thread count and the device.

pub use candle_core::Device;

/// Fix the number of threads for tensor work (0: one per core) and return it.
/// Call once at start-up, before any tensor work: candle reads
/// `RAYON_NUM_THREADS` for its matrix products, and rayon's global pool is built once.
pub fn set_threads(threads: usize) -> crate::Result<usize> {
    if threads > MAX_THREADS {
        return Err(crate::Error::invalid(
            "threads",
            format!("{threads} is more than {MAX_THREADS}"),
        ));
    }
    let n = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // Fails only if the pool was already built, in which case the first setting stands.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}

/// The most threads accepted (`--threads`, `threads`): more than any machine
/// this runs on has cores, few enough that starting them cannot exhaust it.
pub const MAX_THREADS: usize = 256;

/// The device tensors live on: the first CUDA GPU when built with `cuda` and one is present, else the CPU.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}
