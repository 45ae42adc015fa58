/* The memory floor of the flow table's batched lookup (BENCHMARKS.md "Flow table").
 *
 * Models what `ConcurrentFlowTable::lookup_many_with` reads, with none of its work: the same two
 * arrays (8-byte tag words, one per bucket; 384-byte buckets of eight 48-byte slots, 64-byte
 * aligned) sized for the same capacity (1/7 headroom, whole buckets), on 2 MiB transparent huge
 * pages as chanced puts them (MADV_HUGEPAGE, then MADV_COLLAPSE), and the same access shape as
 * `dataplane/runtime/benches/flow_table.rs`'s `lookup_many*` rows: 64K probe keys spread over the
 * table, looked up in batches of B in three stages with the prefetch instruction -- hash each key
 * (one multiply) to two buckets and prefetch their tag words; load both tags and prefetch the slot
 * a tag byte picks (its first and third word: the lines an IPv4 key's read touches); load the
 * slot's three words. The slot depends on the tag loads, as in the table. What is left is what
 * the memory system charges for two independent random lines and one dependent random line a key.
 *
 * Two variants of the batch, as the optional MODE argument (BENCHMARKS.md "Breaking the tag ->
 * slot chain, modelled first"):
 *   chain   the table's shape, as above (the default);
 *   hinted  the slot's address known from the hash alone (an oracle: as if a key were always in
 *           the slot its hash names), prefetched at stage 1 with the tag words; stage 2 still
 *           loads the tags, but no prefetch waits for them: the tag -> slot chain is broken;
 *   lazy    stage 2 loads the first bucket's tag word only and prefetches the second's only for
 *           a key the first does not hold (half of them: 2.5 instead of 3 tag and slot lines a
 *           key), chosen without a branch; the slot's prefetch moves to a third stage.
 *
 * Usage: floor ENTRIES BATCH [SECONDS [MODE]]   (prints ns per key; BATCH 1 = no prefetch, serial)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PROBES (1u << 16)
#define SLOTS 8
#define WORDS 6
#define MAX_BATCH 64

enum mode { CHAIN, HINTED, LAZY };

struct bucket {
  uint64_t slots[SLOTS][WORDS];
} __attribute__((aligned(64)));

static void *huge_alloc(size_t bytes) {
  size_t len = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
  void *p = mmap(NULL, len + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  char *aligned = (char *)(((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
  if (madvise(aligned, len, MADV_HUGEPAGE) != 0) perror("madvise(MADV_HUGEPAGE)");
  memset(aligned, 0, len);
  if (len >= (2u << 20) && madvise(aligned, len, MADV_COLLAPSE) != 0) perror("madvise(MADV_COLLAPSE)");
  return aligned;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ENTRIES BATCH [SECONDS [chain|hinted|lazy]]\n", argv[0]);
    return 2;
  }
  uint64_t entries = strtoull(argv[1], NULL, 0);
  unsigned batch = (unsigned)strtoul(argv[2], NULL, 0);
  double seconds = argc > 3 ? atof(argv[3]) : 2.0;
  const char *name = argc > 4 ? argv[4] : "chain";
  enum mode mode = !strcmp(name, "hinted") ? HINTED : !strcmp(name, "lazy") ? LAZY : CHAIN;
  if (mode == CHAIN && strcmp(name, "chain")) {
    fprintf(stderr, "MODE is chain, hinted or lazy\n");
    return 2;
  }
  if (batch < 1 || batch > MAX_BATCH || PROBES % batch) {
    fprintf(stderr, "BATCH must divide %u and be at most %u\n", PROBES, MAX_BATCH);
    return 2;
  }
  uint64_t nb = ((entries * 8 + 6) / 7 + SLOTS - 1) / SLOTS;
  if (nb == 0) nb = 1;
  uint64_t *tags = huge_alloc(nb * sizeof(uint64_t));
  struct bucket *buckets = huge_alloc(nb * sizeof(struct bucket));
  uint64_t seed = 1;
  for (uint64_t b = 0; b < nb; b++) {
    tags[b] = splitmix(&seed) | 0x0101010101010101ull;
    for (int s = 0; s < SLOTS; s++) buckets[b].slots[s][0] = buckets[b].slots[s][1] = b + s;
  }
  uint64_t *keys = malloc(PROBES * sizeof(uint64_t));
  for (unsigned i = 0; i < PROBES; i++) keys[i] = splitmix(&seed);

  uint64_t sum = 0, lookups = 0, next = 0;
  double start = now(), elapsed = 0;
  uint32_t b1[MAX_BATCH], b2[MAX_BATCH];
  const uint64_t *slot[MAX_BATCH];
  do {
    for (int rep = 0; rep < 4096 / (int)batch; rep++) {
      const uint64_t *k = &keys[next];
      next = (next + batch) & (PROBES - 1);
      if (batch == 1) {
        uint64_t h = k[0] * 0x9e3779b97f4a7c15ull;
        uint64_t t = tags[((h >> 32) * nb) >> 32] ^ tags[((h & 0xffffffff) * nb) >> 32];
        uint32_t bucket = (t & 1) ? ((h >> 32) * nb) >> 32 : ((h & 0xffffffff) * nb) >> 32;
        const uint64_t *w = buckets[bucket].slots[(t >> 8) & 7];
        sum += w[0] + w[1] + w[2];
        continue;
      }
      for (unsigned i = 0; i < batch; i++) {
        uint64_t h = k[i] * 0x9e3779b97f4a7c15ull;
        b1[i] = ((h >> 32) * nb) >> 32;
        b2[i] = ((h & 0xffffffff) * nb) >> 32;
        __builtin_prefetch(&tags[b1[i]]);
        if (mode != LAZY) __builtin_prefetch(&tags[b2[i]]);
        if (mode == HINTED) {
          slot[i] = buckets[b1[i]].slots[(h >> 40) & 7];
          __builtin_prefetch(&slot[i][0]);
          __builtin_prefetch(&slot[i][2]);
        }
      }
      if (mode == LAZY) {
        /* Bit 0 of the first tag word stands for "the first bucket holds the key". */
        for (unsigned i = 0; i < batch; i++) {
          int first = tags[b1[i]] & 1;
          b2[i] = first ? b1[i] : b2[i];
          __builtin_prefetch(&tags[b2[i]]);
        }
        for (unsigned i = 0; i < batch; i++) {
          slot[i] = buckets[b2[i]].slots[(tags[b2[i]] >> 8) & 7];
          __builtin_prefetch(&slot[i][0]);
          __builtin_prefetch(&slot[i][2]);
        }
      } else {
        for (unsigned i = 0; i < batch; i++) {
          uint64_t t = tags[b1[i]] ^ tags[b2[i]];
          uint32_t bucket = (t & 1) ? b1[i] : b2[i];
          if (mode == HINTED) {
            sum += t & 1; /* the tags are still read (a hint is checked), nothing waits for them */
            continue;
          }
          slot[i] = buckets[bucket].slots[(t >> 8) & 7];
          __builtin_prefetch(&slot[i][0]);
          __builtin_prefetch(&slot[i][2]);
        }
      }
      for (unsigned i = 0; i < batch; i++) sum += slot[i][0] + slot[i][1] + slot[i][2];
    }
    lookups += 4096;
    elapsed = now() - start;
  } while (elapsed < seconds);
  printf("entries %llu buckets %llu batch %u %s: %.2f ns per key (%llu lookups, checksum %llu)\n",
         (unsigned long long)entries, (unsigned long long)nb, batch, name, elapsed * 1e9 / lookups,
         (unsigned long long)lookups, (unsigned long long)(sum & 0xffff));
  return 0;
}
