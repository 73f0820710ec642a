/*
 * Approximate greedy k-center coreset (see coreset.h for the semantics).
 *
 * The naive loop computes the distance of every point to every new center:
 * n * count distances (163,856 x 16,385 x 128 dims for a full MVTec class:
 * about 1.4 TB streamed, minutes). This file makes exactly the same
 * selection while computing about 1% of those distances, using bounds from
 * the triangle inequality:
 *
 *  - Every point is either "unassigned" (its distance is still the initial
 *    mean over the starts) or a member of the cluster of the center whose
 *    distance it holds: d_x = dist(x, c).
 *  - A new center q cannot lower d_x when dist(q, c) >= 2 d_x, nor any
 *    member of c's cluster when dist(q, c) >= 2 r_c (r_c: largest d in it).
 *  - The first ~2 sqrt(count) centers are "super-centers"; every later one
 *    is filed under the nearest. With sd_c = dist(c, its super-center s),
 *    dist(q, c) >= dist(q, s) - sd_c, so one distance per super-center
 *    rules out all clusters filed under it when dist(q, s) >= max over them
 *    of (sd_c + 2 r_c), and most of the others before dist(q, c) is needed.
 *  - Unassigned points use the starts as pivots:
 *    dist(x, q) >= |dist(x, s) - dist(q, s)| for every start s.
 * Every bound is weakened by a margin (relative 1e-4, far above the
 * rounding error of the computed distances), so a skipped point is one
 * whose computed distance would not have lowered d: the selection equals
 * the naive algorithm's bit for bit (tests/test_coreset.c checks this).
 *
 * Each cluster keeps its members' projected rows next to each other, so a
 * scan streams through memory rather than jumping through the whole
 * projection. The farthest point is kept per cluster and per super-center
 * as (largest d, lowest index), so finding it costs one pass over the
 * super-centers. The first, heavy steps scan super-centers in parallel;
 * member order inside a cluster may then vary, but nothing computed
 * depends on it, so the result does not depend on the thread count.
 *
 * Measured (2 cores, AVX-512, 163,856 x 1024 PatchCore features of MVTec
 * bottle, fraction 0.1, 128 dims): 1.1% of the naive distances, about 4 s
 * in all, versus 58 s for the naive loop; same indices.
 */
#include "methods/coreset.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "methods/coreset_internal.h"

void coreset_options_default(coreset_options *o)
{
    memset(o, 0, sizeof *o);
    o->fraction = 0.1;
    o->projection_dim = 128;
    o->n_starts = 10;
    o->seed = 0;
}

/* ------------------------------------------------------------ randomness */

void coreset_rng_init(coreset_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = seed ^ (stream * UINT64_C(0xD1B54A32D192ED03));
}

uint64_t coreset_rng_next(coreset_rng *r)
{
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void coreset_projection_matrix(int dim, int pdim, uint64_t seed, float *w)
{
    coreset_rng rng;
    coreset_rng_init(&rng, seed, CORESET_STREAM_PROJECTION);
    /* sqrt is correctly rounded, so the bound is the same everywhere */
    const float bound = (float)(1.0 / sqrt((double)dim));
    size_t total = (size_t)dim * (size_t)pdim;
    for (size_t i = 0; i < total; i++) {
        /* 24 random bits: (u * 2 - 1) is exact in float */
        float u2 = (float)(coreset_rng_next(&rng) >> 40) * 0x1p-23f;
        w[i] = (u2 - 1.0f) * bound;
    }
}

size_t coreset_pick_starts(size_t n, int n_starts, uint64_t seed,
                           size_t *starts)
{
    size_t want = (size_t)n_starts < n ? (size_t)n_starts : n;
    coreset_rng rng;
    coreset_rng_init(&rng, seed, CORESET_STREAM_STARTS);
    size_t got = 0;
    while (got < want) {
        size_t c = (size_t)(coreset_rng_next(&rng) % (uint64_t)n);
        size_t j = 0;
        while (j < got && starts[j] != c)
            j++;
        if (j == got)
            starts[got++] = c;
    }
    return want;
}

/* ----------------------------------------------------------- projection */

/* Rows per matmul call: bounds nothing but the call count, the output goes
 * straight into the projected matrix. */
#define PROJECT_ROWS 16384

nm_status coreset_project(const float *features, size_t n, int dim, int pdim,
                          uint64_t seed, float **proj, nm_error *err)
{
    *proj = NULL;
    if (pdim == dim)
        return NM_OK;
    float *w = malloc((size_t)dim * (size_t)pdim * sizeof *w);
    float *p = malloc(n * (size_t)pdim * sizeof *p);
    if (!w || !p) {
        free(w);
        free(p);
        return nm_fail(err, NM_ERR_NOMEM,
                       "coreset: out of memory projecting %zu x %d features",
                       n, dim);
    }
    coreset_projection_matrix(dim, pdim, seed, w);
    nm_backend *be = NULL;
    nm_status st = backend_create(omp_get_max_threads(), &be, err);
    for (size_t r = 0; st == NM_OK && r < n; r += PROJECT_ROWS) {
        size_t rows = n - r < PROJECT_ROWS ? n - r : PROJECT_ROWS;
        st = backend_matmul(be, features + r * (size_t)dim, w,
                            p + r * (size_t)pdim, (int64_t)rows, dim, pdim, 0,
                            err);
    }
    backend_destroy(be);
    free(w);
    if (st != NM_OK) {
        free(p);
        return st;
    }
    *proj = p;
    return NM_OK;
}

/* ------------------------------------------------------------- distances */

/* GNU vector extension: 16 independent partial sums, combined as halves
 * (lanes l + 8, then l + 4, then l + 2, then the last two). The same
 * operations in the same order on every instruction set, without FMA
 * contraction (ISO C mode), so both clones below return identical bits;
 * the AVX-512 one is about 3 times faster than SSE2. */
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

__attribute__((target_clones("avx512f", "default")))
float coreset_dist(const float *a, const float *b, int d)
{
    v16f acc = {0};
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        v16f x, y;
        memcpy(&x, a + i, sizeof x);
        memcpy(&y, b + i, sizeof y);
        v16f t = x - y;
        acc += t * t;
    }
    v8f h8 = __builtin_shufflevector(acc, acc, 0, 1, 2, 3, 4, 5, 6, 7) +
             __builtin_shufflevector(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15);
    v4f h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) +
             __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
    float sum = (h4[0] + h4[2]) + (h4[1] + h4[3]);
    float tail = 0.0f;
    for (; i < d; i++) {
        float t = a[i] - b[i];
        tail += t * t;
    }
    return sqrtf(sum + tail);
}

void coreset_initial_distances(const float *proj, size_t n, int pdim,
                               const size_t *starts, size_t n_starts,
                               float *sdist, float *d)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *x = proj + i * (size_t)pdim;
        double sum = 0.0;
        for (size_t j = 0; j < n_starts; j++) {
            float v = coreset_dist(x, proj + starts[j] * (size_t)pdim, pdim);
            if (sdist)
                sdist[i * n_starts + j] = v;
            sum += v;
        }
        d[i] = (float)(sum / (double)n_starts);
    }
}
/* ---------------------------------------------------------- point sets */

typedef struct member {
    uint32_t idx;
    float d; /* current distance to the selection */
} member;

/* A growable list of points with their projected rows (a thread's new
 * points during a step). */
typedef struct pointset {
    member *m;
    float *rows; /* len x pdim */
    size_t len, cap;
} pointset;

static int pointset_push(pointset *p, uint32_t idx, float d, const float *row,
                         int pdim)
{
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        member *m = realloc(p->m, cap * sizeof *m);
        if (!m)
            return -1;
        p->m = m;
        float *r = realloc(p->rows, cap * (size_t)pdim * sizeof *r);
        if (!r)
            return -1;
        p->rows = r;
        p->cap = cap;
    }
    p->m[p->len].idx = idx;
    p->m[p->len].d = d;
    memcpy(p->rows + p->len * (size_t)pdim, row, (size_t)pdim * sizeof *row);
    p->len++;
    return 0;
}

/* Fold one (d, idx) into a running (largest d, lowest index) pair. */
static inline void track_max(float d, uint32_t idx, float *r, uint32_t *arg)
{
    if (d > *r || (d == *r && idx < *arg)) {
        *r = d;
        *arg = idx;
    }
}

/* ------------------------------------------------------- greedy state */

/* A cluster's members and rows are a slice of the store. Clusters only
 * lose members after they are made, so the store is a bump allocator that
 * is compacted when full: memory is touched once instead of being
 * returned to and re-faulted from the system at every step. Order inside
 * a slice carries no meaning (members leave by moving the last one in). */
typedef struct cluster {
    size_t off, len;
} cluster;

typedef struct store {
    member *m;
    float *rows; /* cap x pdim */
    size_t cap, top;
} store;

/* The clusters filed under one super-center, as parallel arrays; entry 0
 * is the super-center's own cluster. */
typedef struct super {
    uint32_t *cid; /* cluster (= selection number) */
    float *sd;     /* its center's distance to the super-center */
    float *r;      /* its radius: largest d of a member, -1 when empty */
    uint32_t *arg; /* lowest index among its members with d == r */
    float *crow;   /* its center's projected row */
    size_t len, cap;
    float key;     /* no cluster here is reachable from q unless
                      dist(q, super-center) < key (margins included) */
    float rmax;    /* largest r over the clusters, and its point */
    uint32_t amax;
    size_t points; /* members of all its clusters */
} super;

/* A cluster to scan: position pos of super sup, its center at dqc. */
typedef struct todo {
    uint32_t sup, pos;
    float dqc;
} todo;

/* What one thread collects during a step. */
typedef struct worker {
    pointset fresh;  /* points the new center got closer to */
    todo *todo;      /* clusters to scan in this step */
    size_t n_todo, todo_cap;
    size_t u_lo, u_kept; /* this thread's slice of the unassigned */
    float u_r;           /* and their farthest point */
    uint32_t u_arg;
    coreset_stats st;
    int failed;
} worker;

typedef struct greedy {
    const float *proj;
    int pdim;
    const float *sdist; /* n x ns distances to the starts */
    size_t ns;
    member *un;  /* unassigned points (rows: in proj) */
    size_t n_un;
    float ur;    /* largest d among them, and its point */
    uint32_t uarg;
    store st;
    cluster *clusters; /* one per selection */
    size_t n_clusters;
    super *supers;
    size_t n_supers, max_supers;
    float *dqs;       /* distance of the new center to each super-center */
    uint32_t *active; /* super-centers whose key does not rule them out */
    worker *w;
    int n_workers;
    float delta; /* relative safety margin of every bound */
    float tau;   /* absolute one, for distances near underflow */
} greedy;

/* Distances are computed with a relative error far below delta; bounds are
 * weakened by delta (and tau) so they hold for the exact distances and
 * hence for the computed ones. */
static inline float up(const greedy *g, float v) { return v * (1.0f + g->delta); }
static inline float dn(const greedy *g, float v) { return v * (1.0f - g->delta); }

/* A lower bound of dist(x, y) from their distances a, b to one pivot. */
static inline float pair_bound(const greedy *g, float a, float b)
{
    float v1 = dn(g, a) - up(g, b), v2 = dn(g, b) - up(g, a);
    return v1 > v2 ? v1 : v2;
}

/* A cluster of radius r holds no point a new center can get closer to
 * unless the center is nearer than this to its center. */
static inline float reach_of(const greedy *g, float r)
{
    return r < 0.0f ? -INFINITY : 2.0f * up(g, r) + g->tau;
}

static inline void prefetch_bytes(const void *p, size_t bytes)
{
    const char *c = p;
    for (size_t i = 0; i < bytes; i += 64)
        __builtin_prefetch(c + i);
}

/* --------------------------------------------------------------- scans */

/* Points to look at below which a step runs on one thread. Most steps
 * take tens of microseconds; a parallel region costs a few (and, when
 * another process holds a core, a scheduler time slice at each barrier:
 * splitting all 16k steps of a large selection then took 10x longer than
 * one thread). Only the first, heavy steps are shared. */
#define CORESET_PARALLEL_POINTS 32768

/* Unassigned points in [lo, hi) of the list: pivot bound from the
 * starts, then the exact distance. Those that stay are packed from lo
 * (order kept, so proj and sdist are read sequentially). */
static void scan_unassigned_range(const greedy *g, uint32_t q, size_t lo,
                                  size_t hi, worker *w)
{
    const size_t ns = g->ns;
    const int pdim = g->pdim;
    const float *pq = g->proj + (size_t)q * (size_t)pdim;
    const float *sq = g->sdist + (size_t)q * ns;
    float r = -1.0f;
    uint32_t arg = UINT32_MAX;
    size_t keep = lo;
    for (size_t i = lo; i < hi; i++) {
        member mb = g->un[i];
        const float *sx = g->sdist + (size_t)mb.idx * ns;
        float lb = 0.0f;
        for (size_t j = 0; j < ns; j++) {
            float v = pair_bound(g, sx[j], sq[j]);
            lb = v > lb ? v : lb;
        }
        if (!(lb >= up(g, mb.d) + g->tau)) {
            const float *row = g->proj + (size_t)mb.idx * (size_t)pdim;
            float dist = coreset_dist(row, pq, pdim);
            w->st.exact++;
            if (dist < mb.d) {
                if (pointset_push(&w->fresh, mb.idx, dist, row, pdim)) {
                    w->failed = 1;
                    return;
                }
                w->st.moves++;
                continue;
            }
        }
        g->un[keep++] = mb;
        track_max(mb.d, mb.idx, &r, &arg);
    }
    w->u_lo = lo;
    w->u_kept = keep - lo;
    w->u_r = r;
    w->u_arg = arg;
}

/* All unassigned points, in one slice per thread (they are gone after the
 * first hundred or so centers, but the first steps see all n). */
static void scan_unassigned(greedy *g, uint32_t q)
{
    for (int t = 0; t < g->n_workers; t++) {
        g->w[t].u_lo = g->w[t].u_kept = 0;
        g->w[t].u_r = -1.0f;
        g->w[t].u_arg = UINT32_MAX;
    }
    const size_t n = g->n_un;
#pragma omp parallel num_threads(g->n_workers) if (n >= CORESET_PARALLEL_POINTS)
    {
        size_t t = (size_t)omp_get_thread_num();
        size_t nt = (size_t)omp_get_num_threads();
        scan_unassigned_range(g, q, n * t / nt, n * (t + 1) / nt, &g->w[t]);
    }
    size_t len = 0;
    g->ur = -1.0f;
    g->uarg = UINT32_MAX;
    for (int t = 0; t < g->n_workers; t++) {
        const worker *w = &g->w[t];
        memmove(g->un + len, g->un + w->u_lo, w->u_kept * sizeof *g->un);
        len += w->u_kept;
        track_max(w->u_r, w->u_arg, &g->ur, &g->uarg);
    }
    g->n_un = len;
}

/* The cluster at position pos of super s, whose center is at dqc from the
 * new center pq: member x is unaffected when dqc >= 2 d_x. */
static int scan_cluster(const greedy *g, super *s, size_t pos, const float *pq,
                        float dqc, worker *w)
{
    cluster *c = &g->clusters[s->cid[pos]];
    member *m = g->st.m + c->off;
    float *rows = g->st.rows + c->off * (size_t)g->pdim;
    const int pdim = g->pdim;
    const size_t row_bytes = (size_t)pdim * sizeof *rows;
    const float half = (dqc - g->tau) / (2.0f * (1.0f + g->delta));
    float r = -1.0f;
    uint32_t arg = UINT32_MAX;
    size_t i = 0, len = c->len;
    w->st.scans++;
    while (i < len) {
        member mb = m[i];
        if (mb.d > half) {
            const float *row = rows + i * (size_t)pdim;
            float dist = coreset_dist(row, pq, pdim);
            w->st.exact++;
            if (dist < mb.d) {
                if (pointset_push(&w->fresh, mb.idx, dist, row, pdim))
                    return -1;
                w->st.moves++;
                s->points--;
                if (i != --len) {
                    m[i] = m[len];
                    memcpy(rows + i * (size_t)pdim, rows + len * (size_t)pdim,
                           row_bytes);
                }
                continue;
            }
        }
        track_max(mb.d, mb.idx, &r, &arg);
        i++;
    }
    c->len = len;
    s->r[pos] = r;
    s->arg[pos] = arg;
    return 0;
}

static int worker_todo_reserve(worker *w, size_t need)
{
    if (need <= w->todo_cap)
        return 0;
    size_t cap = w->todo_cap ? w->todo_cap : 256;
    while (cap < need)
        cap *= 2;
    todo *t = realloc(w->todo, cap * sizeof *t);
    if (!t)
        return -1;
    w->todo = t;
    w->todo_cap = cap;
    return 0;
}

/* Queue the clusters of super s (its center at dqs from pq) that q might
 * reach, deciding from the centers' distances (rows contiguous per super),
 * and start fetching their members. */
static int plan_super(const greedy *g, uint32_t si, const float *pq, float dqs,
                      worker *w)
{
    const super *s = &g->supers[si];
    const int pdim = g->pdim;
    if (worker_todo_reserve(w, w->n_todo + s->len))
        return -1;
    for (size_t i = 0; i < s->len; i++) {
        float reach = reach_of(g, s->r[i]);
        if (!(pair_bound(g, dqs, s->sd[i]) < reach))
            continue;
        float dqc = dqs; /* entry 0 is the super-center itself */
        if (i > 0) {
            dqc = coreset_dist(pq, s->crow + i * (size_t)pdim, pdim);
            w->st.center_dists++;
        }
        if (dqc < reach) {
            const cluster *c = &g->clusters[s->cid[i]];
            prefetch_bytes(g->st.m + c->off, c->len * sizeof(member));
            __builtin_prefetch(g->st.rows + c->off * (size_t)pdim);
            todo *t = &w->todo[w->n_todo++];
            t->sup = si;
            t->pos = (uint32_t)i;
            t->dqc = dqc;
        }
    }
    return 0;
}

/* Key and farthest point of s from its clusters' current radii. */
static void refresh_super(const greedy *g, super *s)
{
    float key = -INFINITY, rmax = -1.0f;
    uint32_t amax = UINT32_MAX;
    for (size_t i = 0; i < s->len; i++) {
        float k = up(g, s->sd[i]) + reach_of(g, s->r[i]);
        key = k > key ? k : key;
        track_max(s->r[i], s->arg[i], &rmax, &amax);
    }
    s->key = key;
    s->rmax = rmax;
    s->amax = amax;
}

/* The supers in list (with the new center's distances dqs): first plan
 * all of them, so that the clusters to scan are known early and their
 * memory is in flight together, then scan (fetching the next cluster's
 * first rows during each), then refresh. */
static int scan_supers(const greedy *g, const uint32_t *list, size_t n,
                       const float *pq, worker *w)
{
    const size_t pdim = (size_t)g->pdim;
    w->n_todo = 0;
    for (size_t a = 0; a < n; a++)
        if (plan_super(g, list[a], pq, g->dqs[list[a]], w))
            return -1;
    for (size_t t = 0; t < w->n_todo; t++) {
        if (t + 1 < w->n_todo) {
            const todo *nx = &w->todo[t + 1];
            const cluster *c = &g->clusters[g->supers[nx->sup].cid[nx->pos]];
            prefetch_bytes(g->st.rows + c->off * pdim,
                           (c->len < 8 ? c->len : 8) * pdim * sizeof(float));
        }
        const todo *td = &w->todo[t];
        if (scan_cluster(g, &g->supers[td->sup], td->pos, pq, td->dqc, w))
            return -1;
    }
    for (size_t a = 0; a < n; a++)
        refresh_super(g, &g->supers[list[a]]);
    return 0;
}

/* ---------------------------------------------------------- structure */

static int super_push(greedy *g, super *s, uint32_t cid, float sd, float r,
                      uint32_t arg, const float *row)
{
    const int pdim = g->pdim;
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        uint32_t *c = realloc(s->cid, cap * sizeof *c);
        if (c)
            s->cid = c;
        float *d = realloc(s->sd, cap * sizeof *d);
        if (d)
            s->sd = d;
        float *rr = realloc(s->r, cap * sizeof *rr);
        if (rr)
            s->r = rr;
        uint32_t *a = realloc(s->arg, cap * sizeof *a);
        if (a)
            s->arg = a;
        float *cr = realloc(s->crow, cap * (size_t)pdim * sizeof *cr);
        if (cr)
            s->crow = cr;
        if (!c || !d || !rr || !a || !cr)
            return -1;
        s->cap = cap;
    }
    size_t i = s->len++;
    s->cid[i] = cid;
    s->sd[i] = sd;
    s->r[i] = r;
    s->arg[i] = arg;
    memcpy(s->crow + i * (size_t)pdim, row, (size_t)pdim * sizeof *row);
    s->points += g->clusters[cid].len;
    float k = up(g, sd) + reach_of(g, r);
    s->key = k > s->key ? k : s->key;
    track_max(r, arg, &s->rmax, &s->amax);
    return 0;
}

/* Slide every cluster down over the holes left by departed members. */
static void store_compact(greedy *g)
{
    store *st = &g->st;
    const size_t row = (size_t)g->pdim;
    size_t top = 0;
    for (size_t c = 0; c < g->n_clusters; c++) {
        cluster *cl = &g->clusters[c];
        if (cl->len && cl->off != top) {
            memmove(st->m + top, st->m + cl->off, cl->len * sizeof *st->m);
            memmove(st->rows + top * row, st->rows + cl->off * row,
                    cl->len * row * sizeof *st->rows);
        }
        cl->off = top;
        top += cl->len;
    }
    st->top = top;
}

/* The workers' fresh points become the new cluster at the top of the
 * store. Every point is in exactly one place, so after compaction the
 * store (capacity >= n) always has room. */
static void gather_fresh(greedy *g, cluster *out)
{
    const size_t row = (size_t)g->pdim;
    size_t total = 0;
    for (int t = 0; t < g->n_workers; t++)
        total += g->w[t].fresh.len;
    if (g->st.top + total > g->st.cap)
        store_compact(g);
    out->off = g->st.top;
    out->len = total;
    for (int t = 0; t < g->n_workers; t++) {
        pointset *f = &g->w[t].fresh;
        if (f->len == 0)
            continue; /* its buffers may not exist yet */
        memcpy(g->st.m + g->st.top, f->m, f->len * sizeof *f->m);
        memcpy(g->st.rows + g->st.top * row, f->rows,
               f->len * row * sizeof *f->rows);
        g->st.top += f->len;
        f->len = 0;
    }
}


/* Select q: lower every distance it lowers, and file its cluster under the
 * nearest super-center (or make it one). */
static int greedy_step(greedy *g, uint32_t q)
{
    const int pdim = g->pdim;
    const float *pq = g->proj + (size_t)q * (size_t)pdim;
    if (g->n_un) {
        scan_unassigned(g, q);
        for (int t = 0; t < g->n_workers; t++)
            if (g->w[t].failed)
                return -1;
    }
    /* distances to the super-centers: a few hundred, serial */
    size_t n_active = 0, best = 0, work = 0;
    for (size_t s = 0; s < g->n_supers; s++) {
        g->dqs[s] = coreset_dist(pq, g->supers[s].crow, pdim);
        if (g->dqs[s] < g->dqs[best])
            best = s;
        if (!(dn(g, g->dqs[s]) >= g->supers[s].key)) {
            g->active[n_active++] = (uint32_t)s;
            work += g->supers[s].points;
        }
    }
    if (n_active > 1 && work >= CORESET_PARALLEL_POINTS) {
#pragma omp parallel num_threads(g->n_workers)
        {
            worker *w = &g->w[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
            for (size_t a = 0; a < n_active; a++)
                if (!w->failed && scan_supers(g, g->active + a, 1, pq, w))
                    w->failed = 1;
        }
    } else if (scan_supers(g, g->active, n_active, pq, &g->w[0])) {
        g->w[0].failed = 1;
    }
    for (int t = 0; t < g->n_workers; t++)
        if (g->w[t].failed)
            return -1;

    uint32_t cid = (uint32_t)g->n_clusters;
    cluster *fresh = &g->clusters[cid];
    gather_fresh(g, fresh);
    g->n_clusters++;
    float r = -1.0f;
    uint32_t arg = UINT32_MAX;
    for (size_t i = 0; i < fresh->len; i++)
        track_max(g->st.m[fresh->off + i].d, g->st.m[fresh->off + i].idx, &r,
                  &arg);
    float sd = 0.0f;
    if (g->n_supers < g->max_supers) {
        best = g->n_supers++;
        super *s = &g->supers[best];
        s->key = -INFINITY;
        s->rmax = -1.0f;
        s->amax = UINT32_MAX;
    } else {
        sd = g->dqs[best];
    }
    return super_push(g, &g->supers[best], cid, sd, r, arg, pq);
}

/* The point farthest from the selection (lowest index on ties). */
static uint32_t greedy_argmax(const greedy *g, float *radius)
{
    float r = g->ur;
    uint32_t arg = g->uarg;
    for (size_t s = 0; s < g->n_supers; s++)
        track_max(g->supers[s].rmax, g->supers[s].amax, &r, &arg);
    *radius = r;
    return arg;
}

static void greedy_free(greedy *g)
{
    free(g->un);
    free(g->st.m);
    free(g->st.rows);
    free(g->clusters);
    for (size_t s = 0; s < g->n_supers; s++) {
        super *sp = &g->supers[s];
        free(sp->cid);
        free(sp->sd);
        free(sp->r);
        free(sp->arg);
        free(sp->crow);
    }
    free(g->supers);
    free(g->dqs);
    free(g->active);
    if (g->w) {
        for (int t = 0; t < g->n_workers; t++) {
            free(g->w[t].fresh.m);
            free(g->w[t].fresh.rows);
            free(g->w[t].todo);
        }
    }
    free(g->w);
}

/* Every point unassigned with its initial distance d0. */
static int greedy_init(greedy *g, const float *d0, size_t n, size_t count)
{
    g->un = malloc(n * sizeof *g->un);
    if (!g->un)
        return -1;
    g->n_un = n;
    g->ur = -1.0f;
    g->uarg = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        g->un[i].idx = (uint32_t)i;
        g->un[i].d = d0[i];
        track_max(d0[i], (uint32_t)i, &g->ur, &g->uarg);
    }
    /* twice the points: a compaction then frees at least n slots, so
     * the store is compacted a few times per run */
    g->st.cap = 2 * n;
    g->st.m = malloc(g->st.cap * sizeof *g->st.m);
    g->st.rows = malloc(g->st.cap * (size_t)g->pdim * sizeof *g->st.rows);
    /* ~2 sqrt(count) super-centers balance the distances to them (one per
     * super-center per step) against the clusters each one rules out */
    size_t ms = (size_t)(2.0 * sqrt((double)count));
    g->max_supers = ms < 16 ? 16 : ms;
    g->n_workers = omp_get_max_threads();
    g->clusters = calloc(count, sizeof *g->clusters);
    g->supers = calloc(g->max_supers, sizeof *g->supers);
    g->dqs = malloc(g->max_supers * sizeof *g->dqs);
    g->active = malloc(g->max_supers * sizeof *g->active);
    g->w = calloc((size_t)g->n_workers, sizeof *g->w);
    if (!g->st.m || !g->st.rows || !g->clusters || !g->supers || !g->dqs ||
        !g->active || !g->w)
        return -1;
    /* coreset_dist's relative rounding error is below (pdim / 16 + 6)
     * units of 2^-24 (~1e-6 for 128 dims); the margin is 100 times that
     * and grows with pdim */
    g->delta = 1e-4f * (g->pdim > 128 ? (float)g->pdim / 128.0f : 1.0f);
    g->tau = 1e-18f;
    return 0;
}

static void greedy_stats(const greedy *g, coreset_stats *st)
{
    for (int t = 0; t < g->n_workers; t++) {
        const coreset_stats *w = &g->w[t].st;
        st->exact += w->exact;
        st->center_dists += w->center_dists;
        st->scans += w->scans;
        st->moves += w->moves;
    }
}

/* --------------------------------------------------------------- driver */

static nm_status check_args(const float *features, size_t n, int dim,
                            const coreset_options *o, nm_error *err)
{
    if (!features || !o)
        return nm_fail(err, NM_ERR_ARG, "coreset: features and options are required");
    if (n == 0)
        return nm_fail(err, NM_ERR_ARG, "coreset: no features (n = 0)");
    if (n >= UINT32_MAX)
        return nm_fail(err, NM_ERR_LIMIT, "coreset: %zu features, at most %u",
                       n, (unsigned)UINT32_MAX - 1);
    if (dim <= 0)
        return nm_fail(err, NM_ERR_ARG, "coreset: feature dimension %d", dim);
    if (!(o->fraction > 0.0) || isinf(o->fraction))
        return nm_fail(err, NM_ERR_ARG,
                       "coreset: fraction %g must be in (0, 1]", o->fraction);
    if (o->projection_dim <= 0)
        return nm_fail(err, NM_ERR_ARG, "coreset: projection_dim %d",
                       o->projection_dim);
    if (o->n_starts < 1 || o->n_starts > CORESET_MAX_STARTS)
        return nm_fail(err, NM_ERR_ARG, "coreset: n_starts %d not in 1..%d",
                       o->n_starts, CORESET_MAX_STARTS);
    return NM_OK;
}

/* Largest squared norm a row may have: then no squared distance between
 * two rows (at most 2|x|^2 + 2|y|^2) overflows, so every distance and
 * every bound is a finite number. */
#define ROW_NORM_LIMIT (FLT_MAX / 8)

/* First row of m (n x cols) whose squared norm is NaN, infinite or above
 * ROW_NORM_LIMIT, or n. */
static size_t first_bad_row(const float *m, size_t n, int cols)
{
    size_t bad = n;
#pragma omp parallel for reduction(min : bad) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *row = m + i * (size_t)cols;
        v16f acc = {0};
        int j = 0;
        for (; j + 16 <= cols; j += 16) {
            v16f v;
            memcpy(&v, row + j, sizeof v);
            acc += v * v;
        }
        float lane[16], sum = 0.0f;
        memcpy(lane, &acc, sizeof lane);
        for (int l = 0; l < 16; l++)
            sum += lane[l];
        for (; j < cols; j++)
            sum += row[j] * row[j];
        if (!(sum <= ROW_NORM_LIMIT) && i < bad)
            bad = i;
    }
    return bad;
}

/* A projected row is NaN or infinite when its feature row is not finite,
 * so checking the projection reads 8 times less memory than checking the
 * features; it also rejects rows too large for float distances. */
static nm_status check_finite(const float *features, size_t n, int dim,
                              const float *checked, int cols, nm_error *err)
{
    size_t row = first_bad_row(checked, n, cols);
    if (row == n)
        return NM_OK;
    const float *f = features + row * (size_t)dim;
    for (int j = 0; j < dim; j++)
        if (!isfinite(f[j]))
            return nm_fail(err, NM_ERR_ARG,
                           "coreset: feature row %zu, column %d is not finite",
                           row, j);
    return nm_fail(err, NM_ERR_ARG,
                   "coreset: feature row %zu is too large (its squared norm "
                   "overflows float)", row);
}

static nm_status all_indices(size_t n, size_t **indices, size_t *count,
                             float *radius, nm_error *err)
{
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx)
        return nm_fail(err, NM_ERR_NOMEM, "coreset: out of memory");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    *indices = idx;
    *count = n;
    if (radius)
        *radius = 0.0f;
    return NM_OK;
}

static nm_status run_greedy(greedy *g, size_t count, const coreset_options *o,
                            size_t *out, float *radius, coreset_stats *st,
                            nm_error *err)
{
    size_t step = count / 100 ? count / 100 : 1;
    for (size_t t = 0; t < count; t++) {
        float r;
        uint32_t q = greedy_argmax(g, &r);
        out[t] = q;
        st->super_dists += g->n_supers;
        if (greedy_step(g, q))
            return nm_fail(err, NM_ERR_NOMEM,
                           "coreset: out of memory at selection %zu of %zu", t, count);
        if (o->progress && ((t + 1) % step == 0 || t + 1 == count))
            o->progress(o->progress_ctx, t + 1, count);
    }
    float r;
    greedy_argmax(g, &r);
    if (radius)
        *radius = r;
    return NM_OK;
}

/* Projection, starts and initial distances, then the greedy loop. */
static nm_status select_projected(const float *features, size_t n, int dim,
                                  const coreset_options *o, size_t want,
                                  size_t *out, float *radius,
                                  coreset_stats *st, nm_error *err)
{
    double t0 = omp_get_wtime();
    float *proj = NULL;
    nm_status s = coreset_project(features, n, dim, o->projection_dim, o->seed,
                                  &proj, err);
    if (s != NM_OK)
        return s;
    const float *p = proj ? proj : features;
    const int pdim = o->projection_dim;
    s = check_finite(features, n, dim, p, pdim, err);
    if (s != NM_OK) {
        free(proj);
        return s;
    }
    size_t starts[CORESET_MAX_STARTS];
    size_t ns = coreset_pick_starts(n, o->n_starts, o->seed, starts);
    float *sdist = malloc(n * ns * sizeof *sdist);
    float *d0 = malloc(n * sizeof *d0);
    greedy g = {.proj = p, .pdim = pdim, .sdist = sdist, .ns = ns};
    if (sdist && d0) {
        coreset_initial_distances(p, n, pdim, starts, ns, sdist, d0);
        if (greedy_init(&g, d0, n, want) == 0) {
            free(d0);
            d0 = NULL;
            st->project_s = omp_get_wtime() - t0;
            s = run_greedy(&g, want, o, out, radius, st, err);
            greedy_stats(&g, st);
            st->select_s = omp_get_wtime() - t0 - st->project_s;
        } else {
            s = nm_fail(err, NM_ERR_NOMEM, "coreset: out of memory for %zu points", n);
        }
    } else {
        s = nm_fail(err, NM_ERR_NOMEM, "coreset: out of memory for %zu points", n);
    }
    greedy_free(&g);
    free(d0);
    free(sdist);
    free(proj);
    return s;
}

nm_status coreset_greedy_select_stats(const float *features, size_t n, int dim,
                                      const coreset_options *opts,
                                      size_t **indices, size_t *count,
                                      float *radius, coreset_stats *stats,
                                      nm_error *err)
{
    if (!indices || !count)
        return nm_fail(err, NM_ERR_ARG, "coreset: indices and count are required");
    *indices = NULL;
    *count = 0;
    coreset_stats local;
    coreset_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    nm_status s = check_args(features, n, dim, opts, err);
    if (s != NM_OK)
        return s;
    if (opts->fraction >= 1.0) {
        s = check_finite(features, n, dim, features, dim, err);
        return s != NM_OK ? s : all_indices(n, indices, count, radius, err);
    }
    size_t want = (size_t)((double)n * opts->fraction);
    if (want == 0)
        want = 1;
    size_t *out = malloc(want * sizeof *out);
    if (!out)
        return nm_fail(err, NM_ERR_NOMEM, "coreset: out of memory");
    s = select_projected(features, n, dim, opts, want, out, radius, st, err);
    if (s != NM_OK) {
        free(out);
        return s;
    }
    *indices = out;
    *count = want;
    return NM_OK;
}

nm_status coreset_greedy_select(const float *features, size_t n, int dim,
                                const coreset_options *opts, size_t **indices,
                                size_t *count, float *radius, nm_error *err)
{
    return coreset_greedy_select_stats(features, n, dim, opts, indices, count,
                                       radius, NULL, err);
}
