//! Tuning of the glibc allocator for a long-running process.
//!
//! glibc gives each thread that allocates under contention an arena of its
//! own, up to eight per core on 64-bit systems (mallopt(3), `M_ARENA_MAX`),
//! and an arena rarely returns freed memory to the system. The threads of
//! tokio's blocking pool come and go, so the resident size of a
//! long-running `floorwatch up` kept climbing for half an hour as new
//! threads took new arenas. The per-thread caches that glibc keeps in front
//! of the arenas serve most small allocations without contention, so two
//! arenas cost little.
//!
//! glibc also raises its mmap threshold to the size of any large block
//! freed (mallopt(3), `M_MMAP_THRESHOLD`), after which blocks of megabytes
//! come from the heap and leave holes in it. The embedded broker's reading
//! log grows and drops such blocks all the time, so a fixed threshold keeps
//! them in mappings of their own that return to the system when freed.
//! docs/benchmarks.md (soak) has the measurements.

/// Arenas the process may use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: libc::c_int = 2;

/// Allocations at least this large get a mapping of their own; 128 KiB is
/// glibc's starting value, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Applies [`MAX_ARENAS`] and [`MMAP_THRESHOLD`], except where the
/// environment sets `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_`, which
/// glibc then applies itself. Call it first in `main`, before any thread
/// starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, MAX_ARENAS);
    set(
        "MALLOC_MMAP_THRESHOLD_",
        libc::M_MMAP_THRESHOLD,
        MMAP_THRESHOLD,
    );
}

/// Sets allocator parameter `param` to `value` unless `env` is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set(env: &str, param: libc::c_int, value: libc::c_int) {
    if std::env::var_os(env).is_some() {
        return;
    }
    // SAFETY: mallopt takes two integers and changes a parameter of the
    // allocator, which it locks internally. It runs before the process
    // starts any thread.
    let changed = unsafe { libc::mallopt(param, value) };
    if changed != 1 {
        eprintln!("warning: glibc rejected the allocator setting {env}={value}, so memory use may grow over time");
    }
}

/// Does nothing where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
