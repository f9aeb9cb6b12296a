//! Process-level tuning of glibc's allocator for inference: large tensors (tens of MB per
//! activation at the ITHQ shape) are by default allocated with `mmap` and returned to the
//! system when freed, so every step pays page faults and kernel zeroing on fresh memory again
//! (measured: ≈ 11 ms per 46 MB buffer on the development machine, a third of a bf16 GEMM's
//! time). [`tune_allocator`] keeps such blocks in the heap for reuse. It changes a process-wide
//! setting, so libraries never call it; the binaries of the workspace do at start-up.

/// Raises glibc's `mmap` and trim thresholds so that freed large blocks are reused (a no-op on
/// other C libraries). Returns whether the setting was applied.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h).
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: `mallopt` only changes allocator parameters; glibc caps the mmap threshold
        // at its maximum (HEAP_MAX) where the value is larger.
        unsafe {
            let a = mallopt(M_MMAP_THRESHOLD, 1 << 30);
            let b = mallopt(M_TRIM_THRESHOLD, i32::MAX);
            a == 1 && b == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
