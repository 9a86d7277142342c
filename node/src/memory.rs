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
//!
//! Trimming releases only pages with nothing live on them, and glibc
//! gives each thread that contends for malloc an arena of its own (up to 8
//! per core): after a 100,000-post feed left memory, freed pages stayed
//! pinned by a few live allocations in each of many arenas. A node caps
//! them at two ([`tune_allocator`]): an idle member of three departments of
//! 100,000 posts went from 288 to ~200 MiB resident (BENCHMARKS.md, "Memory
//! by what is open").

/// How many malloc arenas a node's process uses (glibc's default is 8 per
/// core). Two keep the node's threads (two runtime workers, blocking
/// tasks) from waiting on one another's allocations.
const ARENAS: i32 = 2;

/// Caps malloc's arenas at [`ARENAS`] (glibc only; a no-op elsewhere).
/// Process-wide and idempotent: [`crate::Node::start`] calls it, before
/// the node's own threads allocate. Arenas made before stay.
#[allow(unsafe_code)]
pub(crate) fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt takes two integers and only sets malloc's own
        // parameters, under malloc's own lock.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    });
}

/// Returns the pages malloc holds free to the system (glibc only; a no-op
/// elsewhere). Costs a walk of the free lists: call it after a burst of
/// work, not in a loop. With [`tune_allocator`], the two `unsafe` blocks
/// of the project (see docs/architecture.md, "Dependencies"): FFI calls
/// with no pointers.
#[allow(unsafe_code)]
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only touches malloc's own
    // state, under malloc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
