//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps memory that was freed in its arenas for reuse
//! and returns it only from the very top of the heap. After a burst (tens
//! of thousands of rooms created and abandoned) almost all of it is free
//! yet still counted in the process's RSS, for good. `malloc_trim` walks
//! the arenas and releases every free page (`madvise(MADV_DONTNEED)`), so
//! RSS falls back to what is really in use. It costs a pass over the free
//! lists, so it runs off the async runtime and only after a large unload.
//!
//! Other allocators (jemalloc, mimalloc) were measured and did worse here:
//! see docs/benchmarks.md, "Rooms created and abandoned".

/// Returns free heap pages to the OS. A no-op where glibc is not the
/// allocator.
#[allow(unsafe_code)]
pub fn release_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only inspects and releases the allocator's own
        // free memory; it has no preconditions and is thread-safe.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released = released != 0, "returned free memory to the OS");
    }
}
