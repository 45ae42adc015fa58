//! Transparent huge pages for large, randomly read memory (the flow table).
//!
//! A lookup in a flow table of 10M entries (561 MB) reads two random cache lines; with 4 KiB pages
//! each read also misses the TLB, and the page walk is itself a chain of memory reads. Backing the
//! table with 2 MiB pages shortens those walks (BENCHMARKS.md "Flow table": 10M lookups 2 - 31 %
//! faster on the benchmark VM).
//!
//! The table is allocated by the engine with the global allocator: glibc `mmap`s it, 4 KiB
//! aligned. The constructor writes the buckets, so their pages are present; the tag words are
//! zeros, which the allocator gets from `calloc` (fresh, untouched pages) in a release build.
//! [`advise_huge_pages`] asks the kernel, per region, rounded inward to 2 MiB boundaries:
//!
//! 1. `madvise(MADV_HUGEPAGE)`: the range is eligible for transparent huge pages even when
//!    `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` (the usual default), so later
//!    faults get huge pages and khugepaged may collapse it;
//! 2. `madvise(MADV_POPULATE_WRITE)` (Linux 5.14): fault in the pages that are not present yet, as
//!    a write would but without writing (huge pages, now that the range is eligible). Without it
//!    `MADV_COLLAPSE` fails (`EINVAL`) on a 2 MiB range with no page present, and the lcores would
//!    take those faults later, on the packet path (zeroing a 2 MiB page takes tens of µs). The
//!    whole region is then committed memory, as it is anyway once the table fills;
//! 3. `madvise(MADV_COLLAPSE)` (Linux 6.1): collapse the already-present 4 KiB pages into huge pages
//!    now, synchronously, rather than whenever khugepaged gets to them (minutes for 561 MB at its
//!    default pace).
//!
//! None of these changes the memory's contents: the first only sets a flag on the mapping, the
//! second maps zero-filled pages where reads already gave zeros (or a private copy of the same
//! bytes), the third copies the small pages into a huge page under the kernel's locks (a
//! concurrent access waits for it). So the call is sound for any address range, mapped or not,
//! owned or not; a range the kernel cannot advise is an error in the report, never undefined
//! behaviour.
//!
//! `MADV_COLLAPSE` ignores the sysfs THP settings (the kernel would collapse even with `never`);
//! this module does not: when the administrator set `never` (in `enabled`, or for 2 MiB pages in
//! `hugepages-2048kB/enabled`), nothing is advised and the report says
//! [`HugePageError::Disabled`].

use std::fmt;
use std::time::{Duration, Instant};

/// The transparent huge page size on x86-64 (a PMD maps 2 MiB).
pub const HUGE_PAGE: usize = 2 << 20;

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const THP_ENABLED_2M: &str = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";

/// Why (part of) a request was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePageError {
    /// Transparent huge pages are `never` in sysfs (`path`): nothing was advised.
    Disabled {
        /// The sysfs file that says `[never]`.
        path: &'static str,
    },
    /// `madvise(MADV_HUGEPAGE)` failed. `EINVAL`: a kernel without THP, a process with
    /// `PR_SET_THP_DISABLE`, or memory that cannot have them (hugetlbfs, some device mappings);
    /// `ENOMEM`: part of the range is not mapped, or splitting the mapping would exceed
    /// `vm.max_map_count`.
    Advise {
        /// The `errno`.
        errno: i32,
    },
    /// `madvise(MADV_POPULATE_WRITE)` failed (the collapse was still tried). `EINVAL`: a kernel
    /// before 5.14, or memory that is not writable; `ENOMEM`: out of memory; `EFAULT`: part of
    /// the range cannot be faulted in (a file mapping past its end, say).
    Populate {
        /// The `errno`.
        errno: i32,
    },
    /// `madvise(MADV_COLLAPSE)` failed for some 2 MiB pages of a region. `EINVAL`: a kernel
    /// before 6.1, memory that cannot be collapsed, or a range with no page present; `ENOMEM`: no
    /// free huge page even after compaction; `EBUSY`: the memory cgroup would exceed its limit;
    /// `EAGAIN`: pages were busy (tried twice).
    Collapse {
        /// The `errno`.
        errno: i32,
    },
}

impl fmt::Display for HugePageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HugePageError::Disabled { path } => {
                write!(f, "transparent huge pages are disabled ({path} is `never`)")
            }
            HugePageError::Advise { errno } => write!(
                f,
                "madvise(MADV_HUGEPAGE): {}",
                std::io::Error::from_raw_os_error(errno)
            ),
            HugePageError::Populate { errno } => write!(
                f,
                "madvise(MADV_POPULATE_WRITE): {}",
                std::io::Error::from_raw_os_error(errno)
            ),
            HugePageError::Collapse { errno } => write!(
                f,
                "madvise(MADV_COLLAPSE): {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

impl std::error::Error for HugePageError {}

/// What [`advise_huge_pages`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugePageReport {
    /// Bytes of the regions as given.
    pub requested: usize,
    /// Bytes within 2 MiB boundaries given `MADV_HUGEPAGE` (the rest, at most 4 MiB a region, and
    /// regions under 2 MiB, keep 4 KiB pages).
    pub advised: usize,
    /// Bytes of the advised ranges whose `MADV_COLLAPSE` succeeded: mapped by huge pages now.
    pub collapsed: usize,
    /// The first failure, if any; the other regions were still tried.
    pub error: Option<HugePageError>,
    /// The process's `AnonHugePages` (`/proc/self/smaps_rollup`) before the call, in bytes, when
    /// readable.
    pub anon_huge_before: Option<u64>,
    /// ...and after it. The difference is what this call collapsed, give or take other threads'
    /// allocations (memory that was already huge counts as collapsed but adds nothing here).
    pub anon_huge_after: Option<u64>,
    /// Time the call took (collapsing copies the memory: 2.3 s a GB on the benchmark VM).
    pub elapsed: Duration,
}

impl HugePageReport {
    /// True when everything that could be advised was advised and collapsed.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.collapsed == self.advised
    }
}

impl fmt::Display for HugePageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: f64 = (1 << 20) as f64;
        write!(
            f,
            "{:.1} MiB requested, {:.1} MiB advised, {:.1} MiB collapsed in {} ms",
            self.requested as f64 / MIB,
            self.advised as f64 / MIB,
            self.collapsed as f64 / MIB,
            self.elapsed.as_millis()
        )?;
        if let (Some(before), Some(after)) = (self.anon_huge_before, self.anon_huge_after) {
            write!(
                f,
                ", AnonHugePages {:.1} -> {:.1} MiB",
                before as f64 / MIB,
                after as f64 / MIB
            )?;
        }
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// Asks the kernel to back each `(start, bytes)` region with transparent huge pages now: rounds it
/// inward to 2 MiB boundaries, then `madvise` `MADV_HUGEPAGE`, `MADV_POPULATE_WRITE` and
/// `MADV_COLLAPSE` (see the [module documentation](self)). Regions smaller than 2 MiB after
/// rounding are left alone.
///
/// Never panics; failures are in the report. Sound for any region (the advice never changes the
/// memory's contents), but meant for private anonymous memory that stays mapped for long: every
/// advised byte becomes committed memory.
pub fn advise_huge_pages(regions: &[(*const u8, usize)]) -> HugePageReport {
    let started = Instant::now();
    let mut report = HugePageReport {
        requested: regions
            .iter()
            .map(|&(_, len)| len)
            .fold(0, usize::saturating_add),
        advised: 0,
        collapsed: 0,
        error: None,
        anon_huge_before: None,
        anon_huge_after: None,
        elapsed: Duration::ZERO,
    };
    let ranges: Vec<(usize, usize)> = regions
        .iter()
        .filter_map(|&(start, len)| inward(start as usize, len))
        .collect();
    if ranges.is_empty() {
        report.elapsed = started.elapsed();
        return report;
    }
    if let Some(path) = thp_disabled() {
        report.error = Some(HugePageError::Disabled { path });
        report.elapsed = started.elapsed();
        return report;
    }
    report.anon_huge_before = anon_huge_pages();
    for (start, len) in ranges {
        if let Err(errno) = madvise(start, len, libc::MADV_HUGEPAGE) {
            report.error.get_or_insert(HugePageError::Advise { errno });
            continue;
        }
        report.advised += len;
        if let Err(errno) = madvise(start, len, libc::MADV_POPULATE_WRITE) {
            report
                .error
                .get_or_insert(HugePageError::Populate { errno });
        }
        // EAGAIN: some pages were busy (locked, on a per-CPU list); one retry usually suffices
        // (2 MiB ranges collapsed by the first attempt are skipped cheaply).
        let collapsed = match madvise(start, len, libc::MADV_COLLAPSE) {
            Err(libc::EAGAIN) => madvise(start, len, libc::MADV_COLLAPSE),
            result => result,
        };
        match collapsed {
            Ok(()) => report.collapsed += len,
            Err(errno) => {
                report
                    .error
                    .get_or_insert(HugePageError::Collapse { errno });
            }
        }
    }
    report.anon_huge_after = anon_huge_pages();
    report.elapsed = started.elapsed();
    report
}

/// `[start, start + len)` rounded inward to huge-page boundaries, if a huge page remains.
fn inward(start: usize, len: usize) -> Option<(usize, usize)> {
    let end = start.checked_add(len)?;
    let first = start.checked_next_multiple_of(HUGE_PAGE)?;
    let last = end - end % HUGE_PAGE;
    (last > first).then(|| (first, last - first))
}

/// `madvise(start, len, advice)`, or its `errno`.
fn madvise(start: usize, len: usize, advice: libc::c_int) -> Result<(), i32> {
    // SAFETY: `advice` is one of the three this module uses, none of which changes what any
    // address of the range reads: MADV_HUGEPAGE only marks the range's mappings as eligible for
    // transparent huge pages; MADV_POPULATE_WRITE faults pages in as a write would without writing
    // (zero-filled pages where reads already gave zeros, a private copy of the same bytes for
    // copy-on-write pages); MADV_COLLAPSE copies the range's pages into huge pages under the
    // kernel's locks. None changes a mapping's protection or unmaps anything, so the call is sound
    // for any address range, mapped or not (an unmapped or ineligible range is an errno). The
    // pointer is only passed to the kernel, never dereferenced.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

/// The sysfs file that disables 2 MiB transparent huge pages, if one does: the per-size control
/// unless it says `inherit`, else the top-level one. None when THP is enabled or the files are
/// absent (the kernel's `EINVAL` then says why).
fn thp_disabled() -> Option<&'static str> {
    match thp_mode(THP_ENABLED_2M).as_deref() {
        Some("never") => Some(THP_ENABLED_2M),
        Some("inherit") | None => {
            (thp_mode(THP_ENABLED).as_deref() == Some("never")).then_some(THP_ENABLED)
        }
        Some(_) => None,
    }
}

/// The bracketed word of a sysfs THP control (`always [madvise] never` -> `madvise`).
fn thp_mode(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let (_, rest) = text.split_once('[')?;
    let (mode, _) = rest.split_once(']')?;
    Some(mode.to_owned())
}

/// `AnonHugePages` of `/proc/self/smaps_rollup`, in bytes.
fn anon_huge_pages() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kib: u64 = line
        .trim_start_matches("AnonHugePages:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn regions_are_rounded_inward_to_huge_pages() {
        assert_eq!(inward(0, 2 * MIB), Some((0, 2 * MIB)));
        assert_eq!(inward(4096, 2 * MIB), None);
        assert_eq!(inward(4096, 4 * MIB), Some((2 * MIB, 2 * MIB)));
        assert_eq!(inward(2 * MIB - 16, 6 * MIB + 32), Some((2 * MIB, 6 * MIB)));
        assert_eq!(inward(usize::MAX - 4096, 8 * MIB), None);
        assert_eq!(inward(usize::MAX - 3 * MIB, 3 * MIB), None);
    }

    #[test]
    fn small_regions_are_left_alone() {
        let small = vec![1u8; MIB];
        let report = advise_huge_pages(&[(small.as_ptr(), small.len()), (core::ptr::null(), 0)]);
        assert_eq!(
            (
                report.requested,
                report.advised,
                report.collapsed,
                report.error
            ),
            (MIB, 0, 0, None)
        );
        assert!(report.is_complete());
    }

    /// 64 MiB, touched, then advised: every whole 2 MiB page of it is collapsed now (the Vec is
    /// 4 KiB aligned, so at least 60 MiB). With THP `never` the report says so instead.
    #[test]
    fn touched_memory_is_collapsed_into_huge_pages() {
        let memory = vec![0x5au8; 64 * MIB];
        let report = advise_huge_pages(&[(memory.as_ptr(), memory.len())]);
        eprintln!("{report}");
        assert_eq!(report.requested, 64 * MIB);
        if let Some(path) = thp_disabled() {
            assert_eq!(report.error, Some(HugePageError::Disabled { path }));
            assert_eq!((report.advised, report.collapsed), (0, 0));
            assert!(report.to_string().contains("is `never`"), "{report}");
        } else {
            assert_eq!(report.error, None, "{report}");
            assert!(report.advised >= 60 * MIB, "{report}");
            assert_eq!(report.collapsed, report.advised, "{report}");
            assert!(report.is_complete());
            // The process's huge pages include ours (other tests' memory only adds to it).
            let after = report.anon_huge_after.expect("smaps_rollup");
            assert!(after >= report.collapsed as u64, "{report}");
        }
        // Collapsing never changes the contents.
        assert!(memory.iter().all(|&b| b == 0x5a));
    }

    /// 64 MiB of zeros straight from the allocator (`calloc`: not one page touched, like the
    /// table's tag words): populated, then collapsed.
    #[test]
    fn untouched_memory_is_populated_then_collapsed() {
        let memory = vec![0u64; 8 * MIB];
        let report = advise_huge_pages(&[(memory.as_ptr().cast(), 64 * MIB)]);
        eprintln!("{report}");
        if let Some(path) = thp_disabled() {
            assert_eq!(report.error, Some(HugePageError::Disabled { path }));
        } else {
            assert_eq!(report.error, None, "{report}");
            assert!(report.advised >= 60 * MIB, "{report}");
            assert!(report.is_complete(), "{report}");
        }
        assert!(memory.iter().all(|&w| w == 0));
    }

    #[test]
    fn unmapped_memory_is_an_error_not_a_panic() {
        // 16 TiB: above a PIE executable and DPDK's reservations (from 4 GiB), far below the mmap
        // area (near 128 TiB). Nothing maps it: the kernel says ENOMEM.
        let start = 0x1000_0000_0000usize as *const u8;
        let report = advise_huge_pages(&[(start, 8 * MIB)]);
        match thp_disabled() {
            Some(path) => assert_eq!(report.error, Some(HugePageError::Disabled { path })),
            None => {
                assert_eq!(
                    report.error,
                    Some(HugePageError::Advise {
                        errno: libc::ENOMEM
                    }),
                    "{report}"
                );
                assert_eq!((report.advised, report.collapsed), (0, 0));
            }
        }
    }
}
