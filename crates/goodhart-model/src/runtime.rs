//! Process-wide settings for tensor work: the thread count and the device.

pub use candle_core::Device;

/// Fix the number of threads for tensor work (0: one per core) and return it.
/// Call once at start-up, before any tensor work: rayon's global pool is built
/// once, and candle reads its thread settings from the environment.
///
/// Work is parallel over the batch, not inside each kernel: a training step
/// or a sampling batch is cut into shards (`shards`) and each shard runs
/// candle's kernels serially. At the small shapes of the bundled tasks a
/// kernel split across threads spends more time handing over and waiting than
/// computing (with kernel-level threads an SFT step of the 2 x 64 model ran
/// 1.4x faster on one thread than on two); split by batch it runs 1.8x faster
/// on two.
///
/// The thread count is a speed knob only: how a batch is cut depends on the
/// batch alone, never on the pool, so every result is the same at any count.
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
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}

/// A pool of `threads` threads.
pub fn pool(threads: usize) -> crate::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| crate::Error::invalid("threads", e.to_string()))
}

/// The most rows (sequences) of a batch one shard holds.
///
/// The rule that cuts a batch depends on the batch alone: `n` rows make
/// `ceil(n / SHARD_ROWS)` shards of near-equal size, whatever the thread
/// count. Shards are computed side by side when threads are free and reduced
/// in shard order, so one thread and sixteen give the same bits. Eight rows
/// keep a shard's matrix products large enough to run at speed (an SFT step of
/// 32 sequences is four shards) and give a 16-core machine work in every batch.
pub const SHARD_ROWS: usize = 8;

/// The most rows one shard of a sampling batch holds. Decoding runs one
/// token of every row per step, so a shard's per-step work is a handful of
/// rows and each step pays the kernels' fixed costs: at 8 rows a shard the
/// default's 2 x 64 model sampled 3.4x slower than at 32 (37,000 against
/// 127,000 new tokens/s on 2 threads, batch 64). Like [`SHARD_ROWS`], the cut
/// depends on the batch alone.
pub const SAMPLE_SHARD_ROWS: usize = 32;

/// `n` items cut into contiguous ranges of at most [`SHARD_ROWS`], near-equal
/// in size: the shards of a batch. The cut depends on `n` alone.
pub fn shards(n: usize) -> Vec<std::ops::Range<usize>> {
    shards_of(n, SHARD_ROWS)
}

/// `n` items cut into contiguous, near-equal ranges of at most `rows` each.
pub fn shards_of(n: usize, rows: usize) -> Vec<std::ops::Range<usize>> {
    let parts = n.div_ceil(rows.max(1)).max(1);
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

/// `f` over pieces of `n` items of at most `max_piece` (and [`SHARD_ROWS`])
/// each, side by side, its outputs concatenated in item order: forward passes
/// over many sequences. The pieces depend on `n` and `max_piece` alone.
pub fn map_pieces<T, F>(n: usize, max_piece: usize, f: F) -> crate::Result<Vec<T>>
where
    T: Send,
    F: Fn(std::ops::Range<usize>) -> crate::Result<Vec<T>> + Sync,
{
    use rayon::prelude::*;
    let piece = max_piece.clamp(1, SHARD_ROWS);
    let pieces: Vec<_> = (0..n).step_by(piece).map(|a| a..n.min(a + piece)).collect();
    let outputs: Vec<Vec<T>> = pieces
        .into_par_iter()
        .map(&f)
        .collect::<crate::Result<_>>()?;
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

/// The device tensors live on: the one chosen at start-up ([`select_device`]),
/// else the first CUDA GPU when built with `cuda` and one is present, else the
/// CPU. One device for the whole process: candle refuses to combine tensors of
/// two handles to the same GPU, so it is opened once and every later call
/// hands back the same handle.
pub fn device() -> Device {
    DEVICE.get_or_init(default_device).clone()
}

static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

/// Is this build able to run on a CUDA GPU (built with the `cuda` feature)?
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Choose the process's device from `spec` (`cpu`, `cuda` or `cuda:N`; `None`:
/// the default of [`device`]) before any tensor work, and return it. Asking for
/// a GPU in a build without `cuda`, or one that is not there, is an error; so is
/// a second choice that differs from the first.
pub fn select_device(spec: Option<&str>) -> crate::Result<Device> {
    let wanted = match spec {
        None => default_device(),
        Some(spec) => open_device(spec)?,
    };
    let chosen = DEVICE.get_or_init(|| wanted.clone());
    if chosen.location() != wanted.location() {
        return Err(crate::Error::invalid(
            "device",
            format!(
                "{} was already chosen for this process, not {}",
                device_name(chosen),
                device_name(&wanted)
            ),
        ));
    }
    Ok(chosen.clone())
}

/// `cpu`, `cuda` (the first GPU) or `cuda:N`, opened.
fn open_device(spec: &str) -> crate::Result<Device> {
    let invalid = |message: String| crate::Error::invalid("device", message);
    let ordinal = match spec.trim() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(invalid(format!(
                    "{spec:?} is not a device: expected cpu, cuda or cuda:N"
                )))
            }
        },
    };
    if !CUDA_BUILT {
        return Err(invalid(format!(
            "{spec} asked for, but this build has no CUDA support: rebuild with \
             `cargo build --release -p goodhart-cli --features cuda` (needs the CUDA toolkit), or use cpu"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| invalid(format!("cannot open CUDA GPU {ordinal}: {e}")))
}

/// A device as `--device` spells it: `cpu` or `cuda:N`.
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Take matrix products with bf16 operands (`bf16 = true`) for the rest of
/// the process, or not. For GPUs only: a CPU run is refused, since the CPU's
/// fused kernels are f32-only and candle's bf16 products there are no faster.
/// Weights, gradients, optimiser state and every reduction stay f32 either way
/// (see [`crate::model::ops::matmul`]).
pub fn set_bf16(on: bool) -> crate::Result<()> {
    if on && device().is_cpu() {
        return Err(crate::Error::invalid(
            "bf16",
            "bf16 = true is for a GPU and this run's device is the CPU (pass --device cuda \
             to a build with --features cuda, or set bf16 = false)",
        ));
    }
    crate::model::ops::set_bf16(on);
    Ok(())
}

/// The path the fused ops take on the CPU (`GOODHART_COMPOSITE_OPS`, read
/// once); an error for a value other than 0 or 1. Other devices always take
/// the composite path.
pub fn cpu_ops_path() -> crate::Result<crate::model::ops::OpsPath> {
    crate::model::ops::cpu_path()
        .map_err(|message| crate::Error::invalid(crate::model::ops::COMPOSITE_OPS_ENV, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_as_the_cli_spells_them_and_bad_ones_refused() {
        assert_eq!(
            open_device("cpu").unwrap().location(),
            Device::Cpu.location()
        );
        assert_eq!(device_name(&Device::Cpu), "cpu");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let err = open_device(bad).unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
        }
        if !CUDA_BUILT {
            for gpu in ["cuda", "cuda:1"] {
                let err = open_device(gpu).unwrap_err().to_string();
                assert!(err.contains("no CUDA support"), "{err}");
            }
        }
    }

    #[test]
    fn pieces_and_shards_cover_the_items_in_order_whatever_the_pool() {
        let expect = |shards: Vec<std::ops::Range<usize>>| {
            assert_eq!(
                shards,
                vec![0..6, 6..13, 13..20],
                "20 rows: three shards of at most 8"
            );
        };
        expect(shards(20));
        assert_eq!(shards(8), vec![0..8]);
        assert_eq!(shards_of(64, SAMPLE_SHARD_ROWS), vec![0..32, 32..64]);
        assert_eq!(shards_of(65, 32), vec![0..21, 21..43, 43..65]);
        assert_eq!(shards(0), Vec::<std::ops::Range<usize>>::new());
        for threads in [1, 3] {
            pool(threads).unwrap().install(|| {
                expect(shards(20));
                let sizes = map_pieces(10, 3, |r| Ok(vec![r.len()])).unwrap();
                assert_eq!(sizes, vec![3, 3, 3, 1]);
                let sizes = map_pieces(20, 64, |r| Ok(vec![r.len()])).unwrap();
                assert_eq!(sizes, vec![8, 8, 4], "pieces of at most SHARD_ROWS");
                let items = map_pieces(100, 64, |r| Ok(r.collect::<Vec<_>>())).unwrap();
                assert_eq!(items, (0..100).collect::<Vec<_>>());
                let sums = map_shards(20, |r| Ok(r.sum::<usize>())).unwrap();
                assert_eq!(sums, vec![15, 63, 112]);
            });
        }
    }
}
