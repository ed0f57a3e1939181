//! Process-wide settings for tensor work: the thread count and the device.

pub use candle_core::Device;

/// Fix the number of threads for tensor work (0: one per core) and return it.
/// Call once at start-up, before any tensor work: rayon's global pool is built
/// once, and candle reads its thread settings from the environment.
///
/// Work is parallel over the batch, not inside each kernel: a training step
/// or a sampling batch is cut into one shard per thread of the pool
/// (`Trainer::step_sharded`, `shards`) and each shard runs candle's kernels
/// serially. At the small shapes of the bundled tasks a kernel split across
/// threads spends more time handing over and waiting than computing (with
/// kernel-level threads an SFT step of the 2 x 64 model ran 1.4x faster on one
/// thread than on two); split by batch it runs 1.8x faster on two.
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
    // Before the pool's threads first allocate (and pick their arenas).
    keep_freed_memory();
    // candle: matrix products (RAYON_NUM_THREADS) and elementwise kernels
    // (CANDLE_NUM_THREADS) on the calling thread only.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    // Fails only if the pool was already built, in which case the first setting stands.
    let _ = by_batch(rayon::ThreadPoolBuilder::new().num_threads(n)).build_global();
    Ok(n)
}

/// A pool of `threads` threads whose work is cut by batch (`shards`): each
/// lane of a run has one.
pub fn pool(threads: usize) -> crate::Result<rayon::ThreadPool> {
    by_batch(rayon::ThreadPoolBuilder::new().num_threads(threads))
        .build()
        .map_err(|e| crate::Error::invalid("threads", e.to_string()))
}

fn by_batch(builder: rayon::ThreadPoolBuilder) -> rayon::ThreadPoolBuilder {
    builder.start_handler(|_| BY_BATCH.with(|b| b.set(true)))
}

thread_local! {
    /// Whether this thread belongs to a pool of `pool` or `set_threads`. On
    /// any other thread (a library user's, a unit test's) batches are not cut
    /// and candle's kernels keep their own threads.
    static BY_BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `n` items cut into one contiguous range per thread of the current pool (or
/// fewer, none empty): the shards of a batch. One shard outside the pools of
/// `pool` and `set_threads`.
pub fn shards(n: usize) -> Vec<std::ops::Range<usize>> {
    let threads = if BY_BATCH.with(|b| b.get()) {
        rayon::current_num_threads()
    } else {
        1
    };
    let parts = threads.clamp(1, n.max(1));
    (0..parts)
        .map(|i| n * i / parts..n * (i + 1) / parts)
        .filter(|r| !r.is_empty())
        .collect()
}

/// `f` over the shards of `n` items side by side, the results in shard order.
pub fn map_shards<T, F>(n: usize, f: F) -> crate::Result<Vec<T>>
where
    T: Send,
    F: Fn(std::ops::Range<usize>) -> crate::Result<T> + Sync,
{
    use rayon::prelude::*;
    let shards = shards(n);
    if shards.len() <= 1 {
        return Ok(vec![f(0..n)?]);
    }
    shards.into_par_iter().map(&f).collect()
}

/// `f` over pieces of `n` items of at most `max_piece` each, side by side,
/// its outputs concatenated in item order: forward passes over many
/// sequences. With more than one thread the pieces are small enough to give
/// every thread work; with one, they are the `max_piece`-sized chunks a
/// serial loop would take.
pub fn map_pieces<T, F>(n: usize, max_piece: usize, f: F) -> crate::Result<Vec<T>>
where
    T: Send,
    F: Fn(std::ops::Range<usize>) -> crate::Result<Vec<T>> + Sync,
{
    use rayon::prelude::*;
    let threads = shards(n).len();
    let piece = max_piece.min(n.div_ceil(threads)).max(1);
    let pieces: Vec<_> = (0..n).step_by(piece).map(|a| a..n.min(a + piece)).collect();
    let outputs: Vec<Vec<T>> = if threads <= 1 {
        pieces.into_iter().map(&f).collect::<crate::Result<_>>()?
    } else {
        pieces
            .into_par_iter()
            .map(&f)
            .collect::<crate::Result<_>>()?
    };
    Ok(outputs.into_iter().flatten().collect())
}

/// Keep freed tensor memory in the process instead of returning it to the
/// kernel at once (glibc: no `mmap` for blocks under 32 MiB, trim above 1 GiB,
/// and one arena for all threads).
/// Tensor work frees and reallocates the same sizes at every step; by default
/// glibc maps each block over 128 KiB afresh and unmaps it on free, so every
/// step page-faults its buffers in again and every unmap interrupts the other
/// cores to flush their TLBs: on a 2-core machine that was 40% of an SFT
/// step's time (`perf`), and the step ran 1.6-1.8x faster without it. The cost
/// is resident memory staying at its peak. Threads that each work on a shard of
/// a batch would otherwise each get an arena of their own, grown in 64 MiB
/// heaps that glibc unmaps whole as they empty: at 6 x 384 that page-faulted
/// 2.1 million times in a 23-step SFT bench, 0.36 million with one arena
/// (`perf stat`); the threads allocate few, large buffers, so sharing one
/// arena's lock is cheap. Idempotent; other platforms: no-op.
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
                libc::mallopt(libc::M_ARENA_MAX, 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_shards_cover_the_items_in_order() {
        assert_eq!(shards(10), vec![0..10], "not a pool's thread: one shard");
        let pool = pool(3).unwrap();
        pool.install(|| {
            assert_eq!(shards(10), vec![0..3, 3..6, 6..10]);
            assert_eq!(shards(2), vec![0..1, 1..2]);
            let sizes = map_pieces(10, 3, |r| Ok(vec![r.len()])).unwrap();
            assert_eq!(sizes, vec![3, 3, 3, 1]);
            let items = map_pieces(100, 64, |r| Ok(r.collect::<Vec<_>>())).unwrap();
            assert_eq!(items, (0..100).collect::<Vec<_>>());
            let sums = map_shards(7, |r| Ok(r.sum::<usize>())).unwrap();
            assert_eq!(sums, vec![1, 5, 15]);
        });
    }
}
