//! `tune_malloc` keeps freed training-sized blocks in the process: freeing
//! a 256 MB block and allocating it again must neither trim the heap nor
//! fault the pages in again. Runs without libtest's harness so the checks
//! happen on the main thread, whose arena `tune_malloc` governs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    const BLOCK: usize = 256 << 20;
    assert!(gemstones_model::internals::tune_malloc(), "glibc refused the settings");
    // SAFETY: plain libc calls; the block is written only within its size
    // and freed exactly once.
    unsafe {
        let touch = |p: *mut u8| {
            assert!(!p.is_null(), "malloc of {BLOCK} bytes failed");
            for i in (0..BLOCK).step_by(4096) {
                p.add(i).write_volatile(1);
            }
        };
        let faults = || {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut u);
            u.ru_minflt
        };
        let before = libc::mallinfo2();
        let p = libc::malloc(BLOCK).cast::<u8>();
        touch(p);
        let held = libc::mallinfo2();
        assert_eq!(held.hblkhd, before.hblkhd, "the block was mmapped, not taken from the heap");
        assert!(held.arena >= before.arena + BLOCK, "heap did not grow by the block");
        libc::free(p.cast());
        let freed = libc::mallinfo2();
        assert!(
            freed.arena >= before.arena + BLOCK,
            "free trimmed the heap: {} -> {} bytes",
            held.arena,
            freed.arena
        );
        let f0 = faults();
        let q = libc::malloc(BLOCK).cast::<u8>();
        touch(q);
        let refaults = faults() - f0;
        libc::free(q.cast());
        // 65,536 pages: the old pages are reused, so only a handful fault.
        assert!(refaults < 1_000, "{refaults} page faults re-allocating a freed block");
    }
    println!("malloc: freed blocks stay with the process and are reused without page faults");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!gemstones_model::internals::tune_malloc());
}
