// The two hash maps every vocabulary needs (byte string -> id, and adjacent
// pair -> merge rank and result) and the merge loop shared by byte-level BPE and
// llama2.c: a binary heap of candidate pairs ordered by (rank, position), so a
// word of n symbols merges in O(n log n) instead of the O(n^2) rescans of the
// reference implementations, with the same result (lowest rank first, leftmost
// among equal ranks).
#define RLHF_TOK_INTERNAL
#include "tok/tok.h"

#include <stdlib.h>
#include <string.h>

static uint32_t table_size(int expected) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)expected + 16) cap <<= 1; // load <= 1/2
    return cap;
}

// FNV-1a, with a final mix so the low bits (the slot) depend on every byte
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 31);
}

// ------------------------------------------------------------- strmap --
void tok_strmap_build(tok_strmap *m, const char *blob, const uint32_t *off, const uint32_t *len,
                      int n) {
    uint32_t cap = table_size(n);
    m->blob = blob;
    m->off = off;
    m->len = len;
    m->mask = cap - 1;
    m->slot = (int32_t *)xmalloc(cap * sizeof(int32_t));
    memset(m->slot, 0xff, cap * sizeof(int32_t));
    for (int id = 0; id < n; id++) {
        const char *s = blob + off[id];
        uint32_t i = (uint32_t)hash_bytes(s, len[id]) & m->mask;
        for (;; i = (i + 1) & m->mask) {
            int32_t o = m->slot[i];
            if (o < 0) {
                m->slot[i] = id;
                break;
            }
            if (len[o] == len[id] && memcmp(blob + off[o], s, len[id]) == 0) break; // first wins
        }
    }
}

int tok_strmap_get(const tok_strmap *m, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        int32_t o = m->slot[i];
        if (o < 0) return -1;
        if (m->len[o] == n && memcmp(m->blob + m->off[o], s, n) == 0) return o;
    }
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    m->slot = NULL;
}

// ------------------------------------------------------------ pairmap --
void tok_pairmap_init(tok_pairmap *m, int expected) {
    uint32_t cap = table_size(expected);
    m->mask = cap - 1;
    m->n = 0;
    m->key = (uint64_t *)xmalloc(cap * sizeof(uint64_t));
    memset(m->key, 0xff, cap * sizeof(uint64_t));
    m->rank = (int32_t *)xmalloc(cap * sizeof(int32_t));
    m->merged = (int32_t *)xmalloc(cap * sizeof(int32_t));
}

static void pairmap_grow(tok_pairmap *m) {
    tok_pairmap bigger;
    tok_pairmap_init(&bigger, 2 * m->n + 16);
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->key[i] != UINT64_MAX)
            tok_pairmap_put(&bigger, (int)(m->key[i] >> 32), (int)(uint32_t)m->key[i], m->rank[i],
                            m->merged[i]);
    tok_pairmap_free(m);
    *m = bigger;
}

void tok_pairmap_put(tok_pairmap *m, int a, int b, int rank, int merged) {
    if (2 * (uint32_t)(m->n + 1) > m->mask + 1) pairmap_grow(m);
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        if (m->key[i] == k) return; // first wins
        if (m->key[i] == UINT64_MAX) break;
    }
    m->key[i] = k;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->n++;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->key);
    free(m->rank);
    free(m->merged);
    m->key = NULL;
    m->rank = m->merged = NULL;
}

// -------------------------------------------------------------- merge --
void tok_merge_work_free(tok_merge_work *w) {
    free(w->next);
    free(w->prev);
    free(w->heap);
    memset(w, 0, sizeof *w);
}

static void heap_push(tok_merge_cand *h, int *n, tok_merge_cand c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p].key <= c.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static tok_merge_cand heap_pop(tok_merge_cand *h, int *n) {
    tok_merge_cand top = h[0], last = h[--(*n)];
    if (*n == 0) return top;
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].key < h[c].key) c++;
        if (last.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static inline void consider(const tok_pairmap *m, const int *ids, int left, int right,
                            tok_merge_cand *heap, int *nh) {
    int rank, merged;
    if (tok_pairmap_get(m, ids[left], ids[right], &rank, &merged)) {
        tok_merge_cand c = {((uint64_t)(uint32_t)rank << 32) | (uint32_t)left, ids[left],
                            ids[right], merged};
        heap_push(heap, nh, c);
    }
}

int tok_merge(const tok_pairmap *m, int *ids, int n, tok_merge_work *w) {
    if (n < 2) return n;
    if (n == 2) { // the common short case, without the heap
        int rank, merged;
        if (!tok_pairmap_get(m, ids[0], ids[1], &rank, &merged)) return 2;
        ids[0] = merged;
        return 1;
    }
    if (n > w->cap) {
        w->cap = n > 2 * w->cap ? n : 2 * w->cap;
        w->next = (int *)xrealloc(w->next, (size_t)w->cap * sizeof(int));
        w->prev = (int *)xrealloc(w->prev, (size_t)w->cap * sizeof(int));
        w->heap = (tok_merge_cand *)xrealloc(w->heap, 3 * (size_t)w->cap * sizeof(tok_merge_cand));
    }
    int *next = w->next, *prev = w->prev, nh = 0;
    tok_merge_cand *heap = w->heap;
    for (int i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) consider(m, ids, i, i + 1, heap, &nh);
    while (nh > 0) {
        tok_merge_cand c = heap_pop(heap, &nh);
        int p = (int)(uint32_t)c.key, q = next[p];
        // stale: a merged symbol always changes id, so matching ids mean the pair is current
        if (ids[p] != c.a || q < 0 || ids[q] != c.b) continue;
        ids[p] = c.merged;
        ids[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) consider(m, ids, prev[p], p, heap, &nh);
        if (next[p] >= 0) consider(m, ids, p, next[p], heap, &nh);
    }
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) ids[k++] = ids[i];
    return k;
}
