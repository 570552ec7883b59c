/* The speed limit for fmipfast's neighbor-cache lookups: the same table design as
 * fmipfast/_kernels/ncache.pxi written directly in C, built by bench/bench_ncache.py with
 * `cc -O3 -march=native -shared -fPIC` and called through ctypes once per batch.
 *
 * Same hash (the keyed multilinear hash of ncache.pxi, its five keys derived from the 128-bit seed with
 * SipHash-2-4; the code below is a copy of the one there), same layout (int32 slot table of pow2 >= 2 * capacity slots pointing into a
 * [capacity][16] key array, linear probing) and the same batch schedule (hash a chunk of 32 keys and
 * prefetch their home slots, prefetch the key rows those slots point at, then probe).  Only lookups
 * are timed, so this file has no delete.  Not part of the package; benchmark use only.
 *
 * Hash kinds (lim_build's `kind`, the lookup function of the same name):
 *   LIM_MIX   the table's keyed hash (lim_lookup): the same work as fmipfast._core;
 *   LIM_SIP   SipHash-2-4 of the key under the seed (lim_lookup_sip): the hash the table used before;
 *   LIM_LEAN  an UNKEYED multiply-xorshift of the two 64-bit halves (lim_lookup_lean): the lean limit, what
 *             an open-addressing table costs with the cheapest decent hash and nothing against flooding. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#define SIPROUND                                                  \
    do {                                                          \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                    \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                    \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
    } while (0)

static inline uint64_t siphash24_16(const uint8_t *in, uint64_t k0, uint64_t k1) {
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m0 = load_le64(in), m1 = load_le64(in + 8), b = ((uint64_t)16) << 56;
    v3 ^= m0; SIPROUND; SIPROUND; v0 ^= m0;
    v3 ^= m1; SIPROUND; SIPROUND; v0 ^= m1;
    v3 ^= b; SIPROUND; SIPROUND; v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static inline int key_eq(const uint8_t *a, const uint8_t *b) {
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a, 8); memcpy(&a1, a + 8, 8); memcpy(&b0, b, 8); memcpy(&b1, b + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* Large arrays on 2 MiB boundaries with transparent huge pages requested, as numpy does for its large
 * allocations on Linux (so _core's tables get them too and the comparison is even). */
static void *big_alloc(size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, 1 << 21, size ? size : 1) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

enum { LIM_MIX = 0, LIM_LEAN = 1, LIM_SIP = 2 };

struct lim_table {
    uint8_t *keys;
    int32_t *slots;
    uint64_t mask, k0, k1, m[5];
    int kind;
};

/* SipHash-2-4 of an 8-octet message (the key derivation's). */
static inline uint64_t siphash24_8(const uint8_t *in, uint64_t k0, uint64_t k1) {
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m0 = load_le64(in), b = ((uint64_t)8) << 56;
    v3 ^= m0; SIPROUND; SIPROUND; v0 ^= m0;
    v3 ^= b; SIPROUND; SIPROUND; v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ncache.pxi fmip_nc_mix_keys / fmip_nc_mix16. */
static void mix_keys(uint64_t k0, uint64_t k1, uint32_t generation, uint64_t *m) {
    for (uint32_t j = 0; j < 5; j++) {
        uint8_t msg[8] = {(uint8_t)generation, (uint8_t)(generation >> 8), (uint8_t)(generation >> 16),
                          (uint8_t)(generation >> 24), (uint8_t)j, 0, 0, 0};
        m[j] = siphash24_8(msg, k0, k1);
    }
}

static inline uint64_t mix16(const uint8_t *in, const uint64_t *m) {
    uint64_t lo = load_le64(in), hi = load_le64(in + 8);
    uint64_t h = m[0] + m[1] * (lo & 0xffffffffULL) + m[2] * (lo >> 32) + m[3] * (hi & 0xffffffffULL) + m[4] * (hi >> 32);
    uint32_t x = (uint32_t)(h >> 32);
    x ^= x >> 16; x *= 0x85ebca6bU; x ^= x >> 13; x *= 0xc2b2ae35U; x ^= x >> 16;
    return x;
}

/* Unkeyed: one multiply per half, xorshifts to bring the high bits down (murmur/splitmix-style constants). */
static inline uint64_t lean_16(const uint8_t *in) {
    uint64_t h = load_le64(in) * 0x9E3779B97F4A7C15ULL ^ load_le64(in + 8);
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ULL;
    h ^= h >> 32;
    return h;
}

static inline __attribute__((always_inline)) uint64_t hash_of(int kind, const struct lim_table *t,
                                                              const uint8_t *key) {
    return kind == LIM_LEAN ? lean_16(key) : kind == LIM_MIX ? mix16(key, t->m) : siphash24_16(key, t->k0, t->k1);
}

/* The table's hash of one 16-octet key (generation 0), so the benchmark can check it equals fmipfast._core's. */
uint64_t lim_hash16(const uint8_t *key, const uint8_t *seed) {
    uint64_t m[5];
    mix_keys(load_le64(seed), load_le64(seed + 8), 0, m);
    return mix16(key, m);
}

/* A table holding keys[0:n] as entries 0..n-1 (the indices fmipfast._core hands out for the same
 * inserts into an empty table).  Returns NULL when out of memory. */
struct lim_table *lim_build(const uint8_t *keys, int64_t n, const uint8_t *seed, int kind) {
    struct lim_table *t = calloc(1, sizeof(*t));
    uint64_t nslots = 2;
    if (!t) return NULL;
    while (nslots < 2 * (uint64_t)n) nslots *= 2;
    t->keys = big_alloc((size_t)n * 16);
    t->slots = big_alloc(nslots * sizeof(int32_t));
    if (!t->keys || !t->slots) { free(t->keys); free(t->slots); free(t); return NULL; }
    memcpy(t->keys, keys, (size_t)n * 16);
    memset(t->slots, 0xff, nslots * sizeof(int32_t));
    t->mask = nslots - 1;
    t->k0 = load_le64(seed);
    t->k1 = load_le64(seed + 8);
    t->kind = kind;
    mix_keys(t->k0, t->k1, 0, t->m);
    for (int64_t e = 0; e < n; e++) {
        uint64_t pos = hash_of(kind, t, keys + e * 16) & t->mask;
        while (t->slots[pos] >= 0) {
            if (key_eq(t->keys + (int64_t)t->slots[pos] * 16, keys + e * 16)) break;  /* duplicate */
            pos = (pos + 1) & t->mask;
        }
        if (t->slots[pos] < 0) t->slots[pos] = (int32_t)e;
    }
    return t;
}

void lim_free(struct lim_table *t) {
    if (!t) return;
    free(t->keys);
    free(t->slots);
    free(t);
}

#define CHUNK 32

/* Look up n keys; out[i] = entry index or -1.  Returns the number of hits. */
static inline __attribute__((always_inline)) int64_t lookup(int kind, const struct lim_table *t,
                                                            const uint8_t *keys, int64_t n, int64_t *out) {
    uint64_t hs[CHUNK];
    int64_t hits = 0;
    for (int64_t base = 0; base < n; base += CHUNK) {
        int64_t m = n - base < CHUNK ? n - base : CHUNK;
        for (int64_t j = 0; j < m; j++) {
            hs[j] = hash_of(kind, t, keys + (base + j) * 16);
            __builtin_prefetch(&t->slots[hs[j] & t->mask]);
        }
        for (int64_t j = 0; j < m; j++) {
            int32_t e = t->slots[hs[j] & t->mask];
            if (e >= 0) __builtin_prefetch(t->keys + (int64_t)e * 16);
        }
        for (int64_t j = 0; j < m; j++) {
            const uint8_t *key = keys + (base + j) * 16;
            uint64_t pos = hs[j] & t->mask;
            int32_t e;
            for (;;) {
                e = t->slots[pos];
                if (e < 0 || key_eq(t->keys + (int64_t)e * 16, key)) break;
                pos = (pos + 1) & t->mask;
            }
            out[base + j] = e;
            hits += e >= 0;
        }
    }
    return hits;
}

int64_t lim_lookup(const struct lim_table *t, const uint8_t *keys, int64_t n, int64_t *out) {
    return lookup(LIM_MIX, t, keys, n, out);
}

int64_t lim_lookup_sip(const struct lim_table *t, const uint8_t *keys, int64_t n, int64_t *out) {
    return lookup(LIM_SIP, t, keys, n, out);
}

int64_t lim_lookup_lean(const struct lim_table *t, const uint8_t *keys, int64_t n, int64_t *out) {
    return lookup(LIM_LEAN, t, keys, n, out);
}
