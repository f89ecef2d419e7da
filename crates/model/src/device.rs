//! Device choice and process-level tuning for libtorch.
use tch::Device;

/// CUDA device 0 when a CUDA libtorch and a GPU are present, else the CPU.
///
/// With a CUDA libtorch, the linker's `--as-needed` would drop
/// `libtorch_cuda.so` and CUDA would look absent on a GPU machine; this
/// package's `build.rs` links it with `--no-as-needed` when it is present.
pub fn best_device() -> Device {
    Device::cuda_if_available()
}

/// Stop glibc's malloc from returning large blocks to the kernel.
///
/// A CNN at 220x220 allocates and frees activation blocks of about 200 MB
/// every step. glibc serves blocks above its mmap threshold with a fresh
/// `mmap` and unmaps them on free, and trims the top of the heap once more
/// than `M_TRIM_THRESHOLD` is free, so every step page-faults its blocks in
/// again: measured here, that costs a third to a half of the training
/// speed. This sets `M_MMAP_MAX` to 0 (never mmap) and `M_TRIM_THRESHOLD`
/// to -1 (never trim), so freed memory stays with the process for reuse.
///
/// It governs the main thread's heap (glibc's main arena). glibc gives
/// other threads their own heaps of at most 64 MB, and serves larger
/// blocks on those threads with `mmap` whatever the settings, so train on
/// the main thread (the examples do). Safe to call more than once; returns
/// whether glibc accepted both settings (always `false` off glibc).
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is
        // thread-safe and has no memory-safety preconditions.
        unsafe {
            let a = libc::mallopt(libc::M_MMAP_MAX, 0);
            let b = libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
            a == 1 && b == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Whether the caller runs on the process's main thread (`None` where
/// that cannot be told).
pub(crate) fn on_main_thread() -> Option<bool> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: both calls only read the caller's ids.
        Some(unsafe { libc::gettid() == libc::getpid() })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// libtorch's random generator is one per process: initial weights and
/// dropout masks come from it. A trainer seeds it and then draws from it
/// while holding this lock, and everything else here that draws from it
/// (a [`crate::Classifier`] building its network) holds it too, so work in
/// parallel in one process (tests, a hyper-parameter sweep on threads, a
/// server loading models) cannot interleave draws with a training, which
/// stays reproducible from its seed.
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A panic while holding it leaves no broken state behind: the next
    // holder seeds the generator afresh.
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
