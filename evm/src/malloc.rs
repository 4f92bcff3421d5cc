//! How the process's allocator treats freed memory.
//!
//! Building or validating a block allocates and frees tens of megabytes: trie nodes, encoded
//! leaves, receipts. glibc's malloc gives freed memory at the top of its heap back to the
//! kernel once more than a few megabytes are free there, and serves requests above a
//! threshold (128 KiB, raised to the largest such block freed so far) with their own mapping,
//! unmapped again on free. The next block then faults every one of those pages back in, each
//! zeroed by the kernel: hundreds of page faults per block of 5,000 transfers, about 5 % of
//! its time on this machine (see `BENCHMARKS.md`). [`keep_freed_memory`] keeps that memory in
//! the process for the next block instead.

/// glibc never serves a request below this with its own mapping (its largest allowed value on
/// 64-bit targets): every block-sized buffer comes from the heap and is reused after a free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of the heap that glibc keeps before giving any back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 512 << 20;

/// Makes glibc's malloc keep freed memory (up to 512 MiB at the top of the heap) for reuse,
/// and serve requests up to 32 MiB from the heap, instead of returning memory to the kernel
/// and faulting it back in on the next block. It acts on the whole process, so it is for a
/// binary to call once at startup (`tandem-evm` does, as its first step after logging; the
/// benchmarks do, to measure what it runs); glibc applies it under its own lock, whatever
/// threads run. Without effect elsewhere than on glibc, and when
/// `GLIBC_TUNABLES` is set: the operator's malloc settings win. Returns whether it applied
/// the settings.
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn apply() -> bool {
    // SAFETY: `mallopt` only sets malloc parameters; glibc takes its own lock to do so, and
    // both values are within the ranges it documents (`mallopt(3)`).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults of this process so far (`/proc/self/stat`, field 10).
    fn minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[7].parse().unwrap()
    }

    /// Allocates `bytes`, writes every page and frees it.
    fn touch(bytes: usize) {
        let mut buffer = vec![0u8; bytes];
        for page in buffer.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&buffer);
    }

    /// A buffer the size of a block's largest (24 MiB: 6,144 pages).
    const BYTES: usize = 24 << 20;

    #[test]
    fn freed_block_sized_buffers_are_reused_without_faulting() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            assert!(!keep_freed_memory(), "the operator's settings win");
            return;
        }
        assert!(keep_freed_memory());
        touch(BYTES);
        let before = minor_faults();
        touch(BYTES);
        let faults = minor_faults() - before;
        // 6,144 pages: glibc's defaults map the second buffer afresh (from its own mapping or
        // a heap that grows), faulting in every page.
        assert!(
            faults < 64,
            "{faults} page faults for a buffer freed just before"
        );
    }
}
