//! Handing freed memory back to the system.
//!
//! glibc's malloc keeps what a process frees for its next allocations, in
//! the arena of the thread that freed it, and returns to the system only
//! the top of the main heap. A node's threads take turns reading and
//! dropping whole documents (a pin pass reads the ledger's live days), so
//! a pin node's resident memory grew day after day while its heap followed
//! what is live (BENCHMARKS.md, "A year of pinning": a heap profile found
//! ~30 MiB in use and 75 MiB resident at day 7, 115 MiB by day 15).
//! `malloc_trim` releases the free pages of every arena.

/// Returns the pages malloc holds free to the system (glibc only; a no-op
/// elsewhere). Costs a walk of the free lists: call it after a burst of
/// work, not in a loop. The one `unsafe` of the project (see
/// docs/architecture.md, "Dependencies"): an FFI call with no arguments.
#[allow(unsafe_code)]
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only touches malloc's own
    // state, under malloc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
