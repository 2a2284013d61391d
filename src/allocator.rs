//! Arena limit of the glibc allocator.
//!
//! glibc gives each thread that allocates under contention an arena of its
//! own, up to eight per core on 64-bit systems (mallopt(3), `M_ARENA_MAX`),
//! and an arena rarely returns freed memory to the system. The threads of
//! tokio's blocking pool come and go, so the resident size of a
//! long-running `floorwatch up` kept climbing for half an hour as new
//! threads took new arenas. Two arenas hold it level (docs/benchmarks.md,
//! soak). The per-thread caches that glibc keeps in front of the arenas
//! serve most small allocations without contention.

/// Arenas the process may use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: libc::c_int = 2;

/// Limits glibc to [`MAX_ARENAS`] arenas, unless `MALLOC_ARENA_MAX` is set
/// in the environment, which then applies as glibc reads it. Call it first
/// in `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt takes two integers and changes a tunable of the
    // allocator, which it locks internally. It is called once, before the
    // process starts any thread.
    let changed = unsafe { libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS) };
    if changed != 1 {
        eprintln!(
            "warning: glibc rejected M_ARENA_MAX={MAX_ARENAS}, so memory use may grow with the thread count"
        );
    }
}

/// Does nothing where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
