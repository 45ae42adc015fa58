//! How far this host's TLB reaches: a dependent chain of loads over N cache lines, laid out three
//! ways with the same cache footprint (N lines, at most 512 KiB, which L2 holds) but different
//! page footprints:
//!
//! - `packed`: N consecutive lines;
//! - `one 2 MiB page`: N random lines of one 2 MiB-aligned range (one huge page, if the host backs
//!   the guest's huge pages with huge pages of its own; 512 small pages otherwise);
//! - `N 4 KiB pages`: one random line in each of N random 4 KiB pages of a 256 MiB buffer.
//!
//! The buffer is on transparent huge pages (`chance_runtime::hugemem`, as chanced's flow table).
//! If the third column grows with N while the second stays flat, the TLB maps this memory in
//! 4 KiB pages whatever the guest asked (a VM whose host backs it with small pages), and any
//! working set spread over more pages than the TLB holds (about 2000 on this machine) pays a
//! page walk per access. BENCHMARKS.md, "Where the table's time goes", reads the throughput
//! benchmark with it.
//!
//! Run: `cargo run --release -p chance-runtime --example tlb_reach`

use chance_runtime::hugemem::advise_huge_pages;
use std::time::Instant;

const BUFFER: usize = 256 << 20;
const WORDS_PER_LINE: usize = 8;
const WORDS_PER_PAGE: usize = 4096 / 8;
const WORDS_PER_HUGE_PAGE: usize = (2 << 20) / 8;

/// A bijective mix (splitmix64's finaliser), for reproducible "random" choices.
fn mix(i: usize) -> usize {
    let mut x = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x ^ x >> 32) as usize
}

/// `count` distinct values of `0..range`, in random order (a partial Fisher-Yates shuffle).
fn distinct(count: usize, range: usize, seed: usize) -> Vec<usize> {
    let mut values: Vec<usize> = (0..range).collect();
    for i in 0..count {
        let j = i + mix(i ^ seed) % (range - i);
        values.swap(i, j);
    }
    values.truncate(count);
    values
}

/// Nanoseconds per load of a chain that visits every word of `at` once per round, in random order.
fn chase(buffer: &mut [u64], at: &[usize], rounds: usize) -> f64 {
    let n = at.len();
    let order = distinct(n, n, 7);
    for k in 0..n {
        buffer[at[order[k]]] = at[order[(k + 1) % n]] as u64;
    }
    let mut p = at[order[0]];
    for _ in 0..n {
        p = buffer[p] as usize; // warm the caches and the TLB
    }
    let started = Instant::now();
    for _ in 0..rounds * n {
        p = buffer[p] as usize;
    }
    std::hint::black_box(p);
    started.elapsed().as_nanos() as f64 / (rounds * n) as f64
}

fn main() {
    // Whole 2 MiB pages: allocate one more and start at a boundary.
    let mut buffer = vec![1u64; (BUFFER + (2 << 20)) / 8];
    let skip = (buffer.as_ptr() as usize).next_multiple_of(2 << 20) - buffer.as_ptr() as usize;
    let buffer = &mut buffer[skip / 8..][..BUFFER / 8];
    let report = advise_huge_pages(&[(buffer.as_ptr().cast(), BUFFER)]);
    println!("buffer: {report}");
    println!("| lines | packed (ns) | one 2 MiB page (ns) | that many 4 KiB pages (ns) |");
    println!("|---|---|---|---|");
    for n in [500, 1000, 2000, 3000, 4000, 6000, 8000] {
        let packed: Vec<usize> = (0..n).map(|i| i * WORDS_PER_LINE).collect();
        let huge_page = distinct(n, WORDS_PER_HUGE_PAGE / WORDS_PER_LINE, 1)
            .into_iter()
            .map(|line| line * WORDS_PER_LINE)
            .collect::<Vec<_>>();
        let pages = distinct(n, BUFFER / 4096, 2)
            .into_iter()
            .enumerate()
            .map(|(i, page)| page * WORDS_PER_PAGE + mix(i + 3) % 64 * WORDS_PER_LINE)
            .collect::<Vec<_>>();
        let rounds = 4_000_000 / n;
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} |",
            chase(buffer, &packed, rounds),
            chase(buffer, &huge_page, rounds),
            chase(buffer, &pages, rounds)
        );
    }
}
