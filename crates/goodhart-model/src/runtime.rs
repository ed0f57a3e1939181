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

/// Keep freed tensor memory in the process instead of returning it to the
/// kernel at once (glibc: no `mmap` for blocks under 32 MiB, trim above 1 GiB).
/// Tensor work frees and reallocates the same sizes at every step; by default
/// glibc maps each block over 128 KiB afresh and unmaps it on free, so every
/// step page-faults its buffers in again and every unmap interrupts the other
/// cores to flush their TLBs: on a 2-core machine that was 40% of an SFT
/// step's time (`perf`), and the step ran 1.6-1.8x faster without it. The cost
/// is resident memory staying at its peak. Idempotent; other platforms: no-op.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes glibc's allocator parameters; it is
            // safe to call at any time, from any thread.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

/// Run `f` on a thread of the global pool (directly if already on one). Tensor
/// work started from outside the pool hands every parallel operation to the
/// pool's threads and sleeps until they finish: a futex wake-up and a context
/// switch per matrix product, which in KV-cache sampling of small models was a
/// third of the time (`perf`). From inside the pool the caller's thread takes
/// part in the work and nothing is handed over.
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
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
