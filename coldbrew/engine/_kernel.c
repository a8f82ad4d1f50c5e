/* coldbrew.engine._kernel: tree-ensemble traversal over .brew node records (docs/format.md).
 *
 * Buffers come in through the buffer protocol (no numpy headers). Build with -ffp-contract=off so the
 * accumulation `out += leaf` is never fused with anything: the bits must equal scikit-learn's.
 * Trees are the outer loop over blocks of up to 4096 rows (as scikit-learn does), so each tree is read from
 * memory once per block while the block's rows and scores stay in cache.
 * Every visited node is bounds-checked, so a corrupt file raises instead of crashing or looping, and every leaf
 * value used must be finite (compile never writes NaN or infinity). Thresholds are not checked here: a NaN or
 * infinite threshold routes every row one way, exactly as a legitimate extreme threshold would, in both kernels
 * (IEEE comparisons), so the hottest loop does not pay for checking each one; verify() checks them all.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    double value;    /* split: threshold; scalar leaf: leaf value */
    int32_t feature; /* split: input column; leaf: -1 */
    int32_t right;   /* split: right child (tree-relative); vector leaf: row of leaf_values */
} node_t;

#define ROW_BLOCK 4096

enum { OK = 0, BAD_FEATURE, BAD_CHILD, BAD_LEAF, BAD_VALUE, BAD_FLAGS, BAD_BITSET, BAD_GROUP, BAD_DEPTH, BAD_WORK, NO_MEMORY,
       BAD_LINEAR };

/* The ValueError text for a corrupt tree, by status (both format versions). */
static const char *problem(int status)
{
    switch (status) {
    case BAD_FEATURE: return "feature index out of bounds";
    case BAD_CHILD: return "child index out of bounds";
    case BAD_LEAF: return "leaf index out of bounds";
    case BAD_VALUE: return "non-finite leaf value";
    case BAD_FLAGS: return "node flags out of bounds";
    case BAD_BITSET: return "categorical bitset out of bounds";
    case BAD_GROUP: return "tree group out of bounds";
    case BAD_DEPTH: return "tree deeper than the limit";
    case BAD_WORK: return "work budget exceeded";
    case BAD_LINEAR: return "linear leaf out of bounds";
    default: return "unknown problem";
    }
}

static int get(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    if (PyObject_GetBuffer(obj, view, writable ? (PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) : PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s buffer", name, writable ? " writable" : "");
        return -1;
    }
    return 0;
}

/* Every tree's node range lies inside the node array and trees do not overlap; else a ValueError. */
static int check_offsets(const int64_t *offsets, Py_ssize_t n_trees, Py_ssize_t n_nodes)
{
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        if (offsets[t] < 0 || offsets[t + 1] <= offsets[t] || offsets[t + 1] > n_nodes) {
            PyErr_SetString(PyExc_ValueError, "corrupt model: tree_offsets out of bounds");
            return -1;
        }
    }
    return 0;
}

/* NAME(p, n): the index of the first of the n items of type T at p (copied out: the buffer may be unaligned) for
 * which BAD holds, or -1. */
#define DEFINE_FIND(NAME, T, BAD)                                                  \
    static Py_ssize_t NAME(const void *p, Py_ssize_t n)                            \
    {                                                                              \
        for (Py_ssize_t i = 0; i < n; i++) {                                       \
            T item;                                                                \
            memcpy(&item, (const char *)p + i * (Py_ssize_t)sizeof(T), sizeof(T)); \
            if (BAD(item)) return i;                                               \
        }                                                                          \
        return -1;                                                                 \
    }

static inline int bad_node(node_t node) { return node.feature >= 0 ? isnan(node.value) : !isfinite(node.value); }
static inline int nonfinite(double v) { return !isfinite(v); }
static inline int nonfinite_f32(float v) { return !isfinite(v); }
DEFINE_FIND(find_bad_node, node_t, bad_node)
DEFINE_FIND(find_nonfinite, double, nonfinite)
DEFINE_FIND(find_nonfinite_f32, float, nonfinite_f32)

/* find(buf, len / itemsize) for a read-only buffer, as a Python int. */
static PyObject *first_index(PyObject *arg, Py_ssize_t itemsize, Py_ssize_t (*find)(const void *, Py_ssize_t))
{
    Py_buffer b;
    if (get(arg, &b, 0, "buf") < 0) return NULL;
    const Py_ssize_t bad = find(b.buf, b.len / itemsize);
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(bad);
}

#define DEFINE_MAP(NAME, T, F)                                      \
    static PyObject *NAME(PyObject *self, PyObject *arg)            \
    {                                                               \
        Py_buffer b;                                                \
        if (get(arg, &b, 1, "buf") < 0) return NULL;                \
        T *x = (T *)b.buf;                                          \
        const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(T);         \
        for (Py_ssize_t i = 0; i < n; i++) x[i] = F(x[i]);          \
        PyBuffer_Release(&b);                                       \
        Py_RETURN_NONE;                                             \
    }

PyDoc_STRVAR(expit_doc, "expit(buf): in place, x -> 1 / (1 + exp(-x)) with libm's exp (scipy's expit).");
static inline double expit1(double x) { return 1 / (1 + exp(-x)); }
DEFINE_MAP(expit, double, expit1)

/* ---- format version 2 (docs/format.md section 10): HistGradientBoosting, XGBoost, LightGBM ----------------
 * Separate from the version 1 path above: X is float64 (already cast to float32 and back when the model's
 * input_dtype is float32), each node has a flags byte (missing-value routing, categorical bitsets), the split
 * compares with < or <=, and scalar leaves are added to out[row, tree_groups[t]] in float64 or float32.
 */
#define V2_DEFAULT_LEFT 0x01
#define V2_CATEGORICAL 0x08
#define V2_OUTSIDE_LEFT 0x40
#define V2_FLAGS_KNOWN 0x7F

typedef struct {
    const int64_t *cat_offsets;
    Py_ssize_t n_bitsets;
    const uint32_t *cat_words;
    Py_ssize_t n_words;
} cats_t;

/* One version 2 tree: its node flags, the split's comparison, the model's categorical bitsets. */
typedef struct {
    const uint8_t *flags;
    int lt;
    const cats_t *cats;
} tree_v2;

/* 1: go left, 0: go right, or minus the problem of a corrupt node. */
static inline int v2_go_left(const tree_v2 *tree, const node_t *node, int64_t i, double x)
{
    const uint8_t fl = tree->flags[i];
    const cats_t *cats = tree->cats;
    if (fl & ~V2_FLAGS_KNOWN) return -BAD_FLAGS;
    const int def_left = (fl & V2_DEFAULT_LEFT) != 0;
    if (fl & V2_CATEGORICAL) {
        const int mode = (fl >> 4) & 3;
        if (mode == 3) return -BAD_FLAGS;
        if (isnan(x)) return def_left;
        const double b = node->value;
        if (!(b >= 0 && b < (double)cats->n_bitsets)) return -BAD_BITSET;
        const Py_ssize_t bi = (Py_ssize_t)b;
        const int64_t w0 = cats->cat_offsets[bi], w1 = cats->cat_offsets[bi + 1];
        if (w0 < 0 || w1 < w0 || w1 > cats->n_words) return -BAD_BITSET;
        const double nbits = (double)((w1 - w0) * 32);
        int inside;
        if (mode == 0) inside = x >= 0 && x < nbits && x == floor(x);  /* exact integers (scikit-learn) */
        else if (mode == 1) inside = x >= 0 && x < nbits;             /* truncate; x < 0 outside (XGBoost) */
        else if (mode == 2) inside = x > -1 && x < nbits;             /* truncate; (int)x < 0 outside (LightGBM) */
        else return -BAD_FLAGS;
        if (!inside) return (fl & V2_OUTSIDE_LEFT) != 0;
        const int64_t c = (int64_t)x; /* toward zero */
        return (int)((cats->cat_words[w0 + c / 32] >> (c % 32)) & 1u);
    }
    const int miss = (fl >> 1) & 3;
    if (miss == 3) return -BAD_FLAGS;
    if (isnan(x)) {
        if (miss == 0) return def_left;
        x = 0.0;
    }
    if (miss == 2 && x == 0.0) return def_left;
    return tree->lt ? (x < node->value) : (x <= node->value);
}

/* ---- traversal: both format versions ------------------------------------------------------------------------
 * Trees are the outer loop over blocks of up to ROW_BLOCK rows (as scikit-learn does), so each tree is read from
 * memory once per block while the block's rows and scores stay in cache; fewer than FEW_ROWS rows go row by row
 * through every tree. Large batches are split into contiguous shares of rows run on threads without the GIL; a
 * row's result does not depend on the split (its leaves are added in tree order whatever thread runs it). Every
 * visited split is checked (feature in range, right child after the left one and inside the tree, version 2
 * flags). A walk deeper than MAX_DEPTH is refused, and so is a row whose walks over all trees pass more splits
 * than the caller's budget (BrewPredictor: the header's n_trees x max_depth): a file cannot make a request cost
 * more than its header states, and its header cannot state a depth beyond MAX_DEPTH.
 */
#define MAX_DEPTH 1024
#define FEW_ROWS 16 /* fewer rows than this: row by row through every tree */
#define CLEAN_ROWS 64 /* a block of at least this many rows walks each clean tree in compact form */

typedef struct {
    double thr;
    uint32_t f;    /* feature | NAN_LEFT */
    int32_t step;  /* right child - i; 0 at a leaf */
} cnode_t;

#define NAN_LEFT 0x80000000u

/* The model's row form (rowform()), for one row through every tree: see "the row form" below. */
typedef struct {
    char magic[8];
    int64_t n_trees, n_nodes, n_features, K;
    int64_t steps;    /* the most splits a row can pass over all trees: the sum of each tree's deepest leaf */
    int32_t narrow;   /* 1: n8_t nodes (float32 thresholds) follow; 0: the walks use the compact form */
    int32_t lockstep; /* 1: LANES trees walked in lock-step to the group's deepest leaf; 0: lanes refilled */
    int32_t spread;   /* narrow: XS, the distance (in floats) between a row's values as the nodes read them */
    int32_t v2;
    int32_t bins;     /* narrow: 1: the thresholds are ranks, each row binned first (see rf_bin); 0: float32 values */
    int32_t leaf32;   /* narrow: 1: a leaf holds its value as its threshold (every leaf value is a float32 value);
                         2: its threshold is a NaN whose payload indexes the table of n_lv leaf values; 0: neither */
    int32_t qs;       /* narrow: the bit-vector tables for batches follow the bins: 1 (qs_build, AVX-512), 2 (qs2_build, AVX2) */
    int64_t n_lv;
    int64_t qs_bytes;
    int64_t pf_bytes; /* narrow: the perfect trees for batches (pf_build) at the end, or 0 */
} rfhead_t;

/* A narrow node: x <= thr goes left, where x = the row's value at slot / XS (feature f, or n_features + f, the
 * row's copy with NaN as -infinity, when a missing value goes left); step: to the right child. Slots are spread XS
 * floats apart so that XS rows interleaved (rf_block) are read at the same slot from consecutive addresses. A leaf
 * has step 0, and (leaf32 1) its value with the slot of the row's last value, always NaN, or (leaf32 2) a NaN
 * threshold whose payload indexes the row form's table of leaf values, or (0) a NaN threshold: every comparison
 * with it is false, and a walk that reached it stays put. */
#define XS 16
typedef struct {
    float thr;     /* rowform() folds "<" and float64 thresholds into "<="; NaN at a leaf */
    uint16_t slot; /* XS x the value's index in the row's copy; 0 at a leaf */
    uint16_t step; /* right child - this node; 0 at a leaf */
} n8_t;

/* A prediction: n_trees trees of nodes (tree t: nodes[offsets[t] .. offsets[t + 1]]) over n_rows rows of
 * n_features inputs, added to rows of K outputs; the version's extra arrays. */
typedef struct {
    const node_t *nodes;
    const int64_t *offsets;
    Py_ssize_t n_trees, n_features, K;
    int v2;
    int64_t max_steps; /* per row, over all trees */
    int64_t max_tree;  /* nodes in the largest tree (run_job) */
    /* version 1 */
    const double *leaf_values; /* vector leaves: n_leaves rows of K */
    Py_ssize_t n_leaves;
    int vector;
    /* version 2 */
    const uint8_t *flags;
    const int32_t *groups;
    cats_t cats;
    int lt, acc32;
    /* version 3 linear leaves (section 13), or lin_off NULL: node i's coefficients are lin_off[i] .. lin_off[i + 1] */
    const int64_t *lin_off;
    const int32_t *lin_feat;
    const double *lin_coef, *lin_const;
    Py_ssize_t n_lin;
    int lin_skip; /* 1: a NaN input's term is skipped (XGBoost gblinear); 0: a NaN gives the leaf's value (LightGBM) */
    /* the model's compact form (compact()), or ct NULL: each block of rows compacts the trees it walks */
    const cnode_t *ct;
    const uint8_t *clean; /* per tree: 1 if clean (ct holds it), 0 if it takes the checked walk */
    /* the model's row form (rowform()), or rf NULL: single rows take the walks above */
    const rfhead_t *rf;
    const int32_t *rf_groups, *rf_depth; /* per tree: its output; per LANES trees: their deepest leaf */
    const int32_t *rf_tdepth;             /* per tree: its deepest leaf */
    const n8_t *rf_nodes;                 /* narrow: the nodes (else the compact form) */
    const int64_t *rf_binoff;             /* bins: feature f's thresholds are rf_bins[rf_binoff[f] .. [f + 1]] */
    const double *rf_bins;                /* bins: each feature's distinct split thresholds, ascending */
    const double *rf_lv;                  /* leaf32 2: the leaf values (rf_lv[-1]: the index of the last) */
    const char *rf_qs;                    /* qs: the bit-vector tables (qs_build) */
    const int64_t *rf_pf;                 /* pf_bytes: each tree's offset (in 8-byte entries) among the perfect trees */
    const void *X; /* float (version 1) or double (version 2) rows */
    void *out;     /* double rows, or float when acc32 */
} job_t;


/* The problem of split node p of a tree (root, flags, size) that failed its checks for the row x. */
static int node_problem(const job_t *j, const node_t *root, const uint8_t *flags, int64_t size, int64_t p,
                        const void *x)
{
    const node_t *nd = root + p;
    if (nd->feature >= j->n_features) return BAD_FEATURE;
    if (nd->right <= p + 1 || nd->right >= size) return BAD_CHILD;
    if (j->v2) {
        const tree_v2 tree = {flags, j->lt, &j->cats};
        const int left = v2_go_left(&tree, nd, p, ((const double *)x)[nd->feature]);
        if (left < 0) return -left;
    }
    return BAD_FLAGS;
}

/* NAME(j, t, r, n, leaf, steps, bad): n walks: ROWS: rows r .. r + n - 1 through tree t; else row r through trees
 * t .. t + n - 1. Sets leaf[i] (tree-relative node) and steps[i] (splits passed) of walk i; returns OK, or the
 * problem with its walk in *bad. The left/right choice is a branch: on real data most are predictable, and a
 * predicted branch lets the next node's load start before this comparison is done (branch-free variants and
 * several interleaved walks measured 2-3x slower here). V2, LT: version 2 (double rows, flags) and its "<"
 * comparison (constants, so each variant is its own loop). A version 2 node with flags 0-3 (numeric, a missing
 * value goes to the default side or is read as 0.0: XGBoost, LightGBM, HistGradientBoosting) takes the short path. */
#define DEFINE_WALKS(NAME, V2, LT, ROWS, T)                                                                        \
    static int NAME(const job_t *j, Py_ssize_t t, Py_ssize_t r, Py_ssize_t n, int32_t *leaf, int32_t *steps,    \
                    Py_ssize_t *bad)                                                                             \
    {                                                                                                            \
        const Py_ssize_t nf = j->n_features;                                                                     \
        for (Py_ssize_t w = 0; w < n; w++) {                                                                     \
            const Py_ssize_t tt = ROWS ? t : t + w;                                                              \
            const node_t *root = j->nodes + j->offsets[tt];                                                      \
            const uint8_t *fls = V2 ? j->flags + j->offsets[tt] : NULL;                                          \
            const int64_t size = j->offsets[tt + 1] - j->offsets[tt];                                            \
            const T *x = (const T *)j->X + (ROWS ? r + w : r) * nf;                                              \
            int64_t i = 0;                                                                                       \
            int32_t d = 0;                                                                                       \
            for (;;) {                                                                                           \
                const node_t *nd = root + i;                                                                     \
                const int32_t f = nd->feature;                                                                   \
                if (f < 0) break;                                                                                \
                const int64_t rc = nd->right;                                                                    \
                if (__builtin_expect(f >= nf || (uint64_t)(rc - i - 2) >= (uint64_t)(size - i - 2), 0)) {        \
                    *bad = w;                                                                                    \
                    return node_problem(j, root, fls, size, i, x);                                               \
                }                                                                                                \
                if (__builtin_expect(++d > MAX_DEPTH, 0)) { *bad = w; return BAD_DEPTH; }                        \
                int left;                                                                                        \
                if (V2) {                                                                                        \
                    const double xv = (double)x[f];                                                              \
                    const unsigned fl = fls[i];                                                                  \
                    if (__builtin_expect(fl <= 3, 1)) { /* numeric; NaN: default side (0, 1) or 0.0 (2, 3) */    \
                        const double xz = (fl & 2u) && isnan(xv) ? 0.0 : xv;                                     \
                        left = (LT ? xz < nd->value : xz <= nd->value) || (isnan(xz) && (fl & 1u));              \
                    } else {                                                                                     \
                        const tree_v2 tree = {fls, LT, &j->cats};                                                \
                        left = v2_go_left(&tree, nd, i, xv);                                                     \
                        if (left < 0) { *bad = w; return -left; }                                                \
                    }                                                                                            \
                } else {                                                                                         \
                    left = (double)x[f] <= nd->value;                                                            \
                }                                                                                                \
                i = left ? i + 1 : rc;                                                                           \
            }                                                                                                    \
            leaf[w] = (int32_t)i;                                                                                \
            steps[w] = d;                                                                                        \
        }                                                                                                        \
        return OK;                                                                                               \
    }

/* Adds tree t's leaf to row r's outputs. OK or the problem. */
static inline int add_leaf(const job_t *j, Py_ssize_t t, const node_t *leaf, Py_ssize_t r)
{
    const Py_ssize_t K = j->K;
    if (leaf->feature != -1) return BAD_FEATURE; /* a leaf's marker is exactly -1 */
    if (j->v2 && j->lin_off != NULL) { /* LightGBM's Tree::Predict of a linear leaf, operation for operation */
        const int64_t i = leaf - j->nodes;
        const int64_t c0 = j->lin_off[i], c1 = j->lin_off[i + 1];
        if (c0 < 0 || c1 < c0 || c1 > j->n_lin) return BAD_LINEAR;
        for (int64_t c = c0; c < c1; c++) {
            if (j->lin_feat[c] < 0 || j->lin_feat[c] >= j->n_features) return BAD_LINEAR;
            if (!isfinite(j->lin_coef[c])) return BAD_VALUE;
        }
        if (!isfinite(j->lin_const[i])) return BAD_VALUE;
        const double *x = (const double *)j->X + r * j->n_features;
        if (j->acc32) { /* XGBoost's GBLinear::Pred: psum += x * w in float32, missing entries absent */
            float v = (float)j->lin_const[i];
            for (int64_t c = c0; c < c1; c++) {
                const double xv = x[j->lin_feat[c]];
                if (isnan(xv)) {
                    if (j->lin_skip) continue;
                    v = (float)leaf->value;
                    break;
                }
                v += (float)j->lin_coef[c] * (float)xv;
            }
            ((float *)j->out)[r * K + j->groups[t]] += v;
            return OK;
        }
        double v = j->lin_const[i];
        for (int64_t c = c0; c < c1; c++) {
            const double xv = x[j->lin_feat[c]];
            if (isnan(xv)) {
                if (j->lin_skip) continue;
                v = leaf->value; /* a missing input: the leaf's constant output */
                break;
            }
            v += j->lin_coef[c] * xv;
        }
        ((double *)j->out)[r * K + j->groups[t]] += v;
        return OK;
    }
    if (j->v2) {
        const int32_t g = j->groups[t];
        if (j->acc32) ((float *)j->out)[r * K + g] += (float)leaf->value;
        else ((double *)j->out)[r * K + g] += leaf->value;
        return OK;
    }
    double *o = (double *)j->out + r * K;
    if (j->vector) {
        const int32_t li = leaf->right;
        if (li < 0 || li >= j->n_leaves) return BAD_LEAF;
        const double *lv = j->leaf_values + (Py_ssize_t)li * K;
        for (Py_ssize_t c = 0; c < K; c++)
            if (!isfinite(lv[c])) return BAD_VALUE;
        for (Py_ssize_t c = 0; c < K; c++) o[c] += lv[c];
        return OK;
    }
    if (!isfinite(leaf->value)) return BAD_VALUE;
    o[t % K] += leaf->value;
    return OK;
}

static inline int check_group(const job_t *j, Py_ssize_t t)
{
    return j->v2 && (j->groups[t] < 0 || j->groups[t] >= j->K) ? BAD_GROUP : OK;
}


DEFINE_WALKS(rows_v1, 0, 0, 1, float)
DEFINE_WALKS(rows_v2_le, 1, 0, 1, double)
DEFINE_WALKS(rows_v2_lt, 1, 1, 1, double)
DEFINE_WALKS(trees_v1, 0, 0, 0, float)
DEFINE_WALKS(trees_v2_le, 1, 0, 0, double)
DEFINE_WALKS(trees_v2_lt, 1, 1, 0, double)

/* ---- clean trees: checked once per block, then walked without checks ---------------------------------------
 * A block of rows walks each tree thousands of times, so before it does, the tree is checked whole (O(tree size))
 * and copied into a compact walk-only form, cnode_t: a split's threshold, its feature with bit 31 set when a
 * missing value (NaN) goes left, and the step to its right child (right - i >= 2); a leaf is {NaN, 0, 0}, so
 * every comparison with it is false and its step is 0: a walk that reached it stays put. The walk then needs no
 * check per visited node: `i += (x OP threshold || NaN and bit 31) ? 1 : step` until the step is 0. A tree that
 * fails a check, or has a node the compact form does not hold (categorical bitsets, zero-as-missing), keeps the
 * checked walk, which names the problem as before. */

/* How a tree is walked: checked (every visited node), clean one walk at a time with branches, or clean in lanes. */
enum { CHECKED = 0, CLEAN_BRANCHY = 1, CLEAN_LANES = 2 };

/* Check tree t of the job whole and write its compact form to dst (room for its size), using depth (room for its
 * size) as scratch; CHECKED if it is not clean, else how to walk it. A clean tree: each split's feature in range,
 * its right child after the left one and inside the tree, its version 2 flags 0-3 (numeric; a missing value to the
 * default side or read as 0.0); each leaf's marker exactly -1. Lanes walk a group of rows as deep as the deepest
 * of them goes, so they pay on trees whose leaves are at similar depths (depth-limited XGBoost and forest trees:
 * 1.5x faster than branches) and lose on leaf-wise grown ones (LightGBM's, leaves from depth 3 to 17: 10% slower);
 * the rule: lanes when the deepest leaf is at most twice the depth a balanced tree with as many leaves has. */
static int compact_tree(const job_t *j, Py_ssize_t t, cnode_t *dst, int32_t *depth)
{
    const node_t *root = j->nodes + j->offsets[t];
    const uint8_t *fls = j->v2 ? j->flags + j->offsets[t] : NULL;
    const int64_t size = j->offsets[t + 1] - j->offsets[t];
    if (j->n_features >= (Py_ssize_t)NAN_LEFT) return CHECKED;
    int32_t deepest = 0, leaves = 0;
    for (int64_t i = 0; i < size; i++) depth[i] = 0;
    for (int64_t i = 0; i < size; i++) {
        const int32_t f = root[i].feature;
        if (f < 0) {
            if (f != -1) return CHECKED;
            dst[i] = (cnode_t){NAN, 0, 0};
            leaves++;
            if (depth[i] > deepest) deepest = depth[i];
            continue;
        }
        const int64_t rc = root[i].right;
        if (f >= j->n_features || rc <= i + 1 || rc >= size) return CHECKED;
        const int32_t below = depth[i] < MAX_DEPTH ? depth[i] + 1 : MAX_DEPTH; /* children come after: i + 1, rc */
        if (depth[i + 1] < below) depth[i + 1] = below;
        if (depth[rc] < below) depth[rc] = below;
        const double thr = root[i].value;
        uint32_t nan_left = 0;
        if (fls != NULL) {
            const unsigned fl = fls[i];
            if (fl > 3) return CHECKED;
            /* a NaN goes to the default side (fl & 2 clear), or is read as 0.0 and compared (fl & 2 set) */
            nan_left = (fl & 2u) ? (j->lt ? 0.0 < thr : 0.0 <= thr) : (fl & 1u);
        }
        dst[i] = (cnode_t){thr, (uint32_t)f | (nan_left ? NAN_LEFT : 0u), (int32_t)(rc - i)};
    }
    int32_t balanced = 0; /* ceil(log2(leaves)) */
    while (balanced < 31 && ((int64_t)1 << balanced) < leaves) balanced++;
    return deepest <= 2 * balanced ? CLEAN_LANES : CLEAN_BRANCHY;
}

/* NAME(j, ct, t, r, n, leaf, steps, bad): rows r .. r + n - 1 through the clean tree t in compact form ct, with
 * SEQ's results; every walk that would go deeper than MAX_DEPTH is left to SEQ, which names the problem. LT: "<"
 * comparisons, T: the rows' type. */
#define DEFINE_CLEAN(NAME, SEQ, LT, T)                                                                             \
    static int NAME(const job_t *j, const cnode_t *ct, Py_ssize_t t, Py_ssize_t r, Py_ssize_t n, int32_t *leaf,  \
                    int32_t *steps, Py_ssize_t *bad)                                                             \
    {                                                                                                            \
        const Py_ssize_t nf = j->n_features;                                                                     \
        for (Py_ssize_t w = 0; w < n; w++) {                                                                     \
            const T *x = (const T *)j->X + (r + w) * nf;                                                         \
            int64_t i = 0;                                                                                       \
            int32_t d = 0;                                                                                       \
            for (;;) {                                                                                           \
                const cnode_t c = ct[i];                                                                         \
                if (c.step == 0) break;                                                                          \
                if (__builtin_expect(++d > MAX_DEPTH, 0)) {                                                      \
                    Py_ssize_t b = 0;                                                                            \
                    const int status = SEQ(j, t, r + w, 1, leaf + w, steps + w, &b);                             \
                    *bad = w;                                                                                    \
                    if (status != OK) return status;                                                             \
                    goto next;                                                                                   \
                }                                                                                                \
                const double xv = (double)x[c.f & ~NAN_LEFT];                                                    \
                const int left = (LT ? xv < c.thr : xv <= c.thr) | ((xv != xv) & (int)(c.f >> 31));              \
                if (left) {                                                                                      \
                    i += 1;                                                                                      \
                    __asm__ volatile(""); /* a branch, not a conditional move: see the comment above */          \
                } else {                                                                                         \
                    i += c.step;                                                                                 \
                }                                                                                                \
            }                                                                                                    \
            leaf[w] = (int32_t)i;                                                                                \
            steps[w] = d;                                                                                        \
        next:;                                                                                                   \
        }                                                                                                        \
        return OK;                                                                                               \
    }

DEFINE_CLEAN(clean_v1, rows_v1, 0, float)
DEFINE_CLEAN(clean_v2_le, rows_v2_le, 0, double)
DEFINE_CLEAN(clean_v2_lt, rows_v2_lt, 1, double)

/* NAME: as the clean walk above, LANES rows at a time in lock-step and without a branch on the data: each step
 * moves every row of the group one level down (a row at a leaf moves by 0), so the group's loads overlap and
 * no comparison is mispredicted; the group is done when no row moved. */
#define LANES 8
/* The lane walks stay functions of their own: inlined into their caller, gcc spilled the lanes' registers (measured
 * 1.5x slower). */
#define NOINLINE __attribute__((noinline))
#define DEFINE_CLEAN_LANES(NAME, SEQ, ONE, LT, T)                                                                  \
    NOINLINE static int NAME(const job_t *j, const cnode_t *ct, Py_ssize_t t, Py_ssize_t r, Py_ssize_t n,        \
                             int32_t *leaf, int32_t *steps, Py_ssize_t *bad)                                     \
    {                                                                                                            \
        const Py_ssize_t nf = j->n_features;                                                                     \
        Py_ssize_t w0 = 0;                                                                                       \
        for (; w0 + LANES <= n; w0 += LANES) {                                                                   \
            const T *x0 = (const T *)j->X + (r + w0) * nf;                                                       \
            int32_t idx[LANES] = {0}, d[LANES] = {0};                                                            \
            int level = 0;                                                                                       \
            for (; level <= MAX_DEPTH; level++) {                                                                \
                int32_t moved = 0;                                                                               \
                _Pragma("GCC unroll 8") for (int k = 0; k < LANES; k++) {                                        \
                    const cnode_t c = ct[idx[k]];                                                                \
                    const double xv = (double)x0[k * nf + (c.f & ~NAN_LEFT)];                                    \
                    const int32_t left = (LT ? xv < c.thr : xv <= c.thr) | ((xv != xv) & (int32_t)(c.f >> 31));  \
                    const int32_t delta = (1 & -left) | (c.step & (left - 1)); /* no branch */                  \
                    idx[k] += delta;                                                                             \
                    d[k] += c.step != 0;                                                                         \
                    moved |= c.step;                                                                             \
                }                                                                                                \
                if (!moved) break;                                                                               \
            }                                                                                                    \
            if (__builtin_expect(level > MAX_DEPTH, 0)) {                                                        \
                Py_ssize_t b = 0;                                                                                \
                const int status = SEQ(j, t, r + w0, LANES, leaf + w0, steps + w0, &b);                          \
                if (status != OK) { *bad = w0 + b; return status; }                                              \
                continue;                                                                                        \
            }                                                                                                    \
            for (int k = 0; k < LANES; k++) {                                                                    \
                leaf[w0 + k] = idx[k];                                                                           \
                steps[w0 + k] = d[k];                                                                            \
            }                                                                                                    \
        }                                                                                                        \
        if (w0 == n) return OK;                                                                                  \
        Py_ssize_t b = 0;                                                                                        \
        const int status = ONE(j, ct, t, r + w0, n - w0, leaf + w0, steps + w0, &b);                             \
        if (status != OK) *bad = w0 + b;                                                                         \
        return status;                                                                                           \
    }

DEFINE_CLEAN_LANES(lanes_v1, rows_v1, clean_v1, 0, float)
DEFINE_CLEAN_LANES(lanes_v2_le, rows_v2_le, clean_v2_le, 0, double)
DEFINE_CLEAN_LANES(lanes_v2_lt, rows_v2_lt, clean_v2_lt, 1, double)


/* NAME(j, t0, r, n, leaf, steps, bad): as the checked walks SEQ (row r through trees t0 .. t0 + n - 1), LANES
 * trees at a time over the model's compact form j->ct, a lane taking the next tree as soon as its walk reaches a
 * leaf, so no lane idles while a deeper walk finishes (the trees of a leaf-wise grown model differ a lot in
 * depth) and the loads of different trees, cache misses for a single row, overlap. The step down is branch-free;
 * the only branches are a lane finishing (once per tree) and the depth limit. A tree that is not clean is walked
 * by SEQ when its turn comes; a problem anywhere (SEQ's, or a walk deeper than MAX_DEPTH) sends the whole range
 * to SEQ, which names it as before. */
static const cnode_t IDLE = {NAN, 0, 0}; /* an idle lane: a leaf */
#define DEFINE_REFILL(NAME, SEQ, LT, T, NANS)                                                                      \
    NOINLINE static int NAME(const job_t *j, Py_ssize_t t0, Py_ssize_t r, Py_ssize_t n, int32_t *leaf,           \
                             int32_t *steps, Py_ssize_t *bad)                                                    \
    {                                                                                                            \
        const T *x = (const T *)j->X + r * j->n_features;                                                        \
        const cnode_t *ct[LANES];                                                                                \
        int32_t idx[LANES], d[LANES];                                                                            \
        Py_ssize_t item[LANES], next = 0, busy = 0, b = 0;                                                       \
        /* the next clean tree's index into lane k (unclean ones on the way walked by SEQ), or the lane idles */ \
        for (int k = 0; k < LANES; k++) {                                                                        \
            idx[k] = 0, d[k] = 0;                                                                                \
            while (next < n && !j->clean[t0 + next]) {                                                           \
                if (SEQ(j, t0 + next, r, 1, leaf + next, steps + next, &b) != OK) goto redo;                     \
                next++;                                                                                          \
            }                                                                                                    \
            if (next < n) item[k] = next, ct[k] = j->ct + j->offsets[t0 + next], next++, busy++;                 \
            else item[k] = -1, ct[k] = &IDLE;                                                                    \
        }                                                                                                        \
        while (busy > 0) {                                                                                       \
            _Pragma("GCC unroll 8") for (int k = 0; k < LANES; k++) {                                            \
                const cnode_t c = ct[k][idx[k]];                                                                 \
                const double xv = (double)x[c.f & ~NAN_LEFT];                                                    \
                const int32_t miss = NANS ? (xv != xv) & (int32_t)(c.f >> 31) : 0;                               \
                const int32_t left = (LT ? xv < c.thr : xv <= c.thr) | miss;                                     \
                idx[k] += (1 & -left) | (c.step & (left - 1));                                                   \
                d[k]++;                                                                                          \
                if (__builtin_expect(c.step == 0, 0)) { /* at a leaf (or idle) */                                \
                    if (item[k] < 0) continue;                                                                   \
                    if (d[k] > MAX_DEPTH + 1) goto redo;                                                         \
                    leaf[item[k]] = idx[k];                                                                      \
                    steps[item[k]] = d[k] - 1;                                                                   \
                    idx[k] = 0, d[k] = 0;                                                                        \
                    while (next < n && !j->clean[t0 + next]) {                                                   \
                        if (SEQ(j, t0 + next, r, 1, leaf + next, steps + next, &b) != OK) goto redo;             \
                        next++;                                                                                  \
                    }                                                                                            \
                    if (next < n) item[k] = next, ct[k] = j->ct + j->offsets[t0 + next], next++;                 \
                    else item[k] = -1, ct[k] = &IDLE, busy--;                                                    \
                } else if (__builtin_expect(d[k] > MAX_DEPTH, 0)) {                                              \
                    goto redo;                                                                                   \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        return OK;                                                                                               \
    redo:                                                                                                        \
        return SEQ(j, t0, r, n, leaf, steps, bad);                                                               \
    }

DEFINE_REFILL(rtrees_v1, trees_v1, 0, float, 0) /* version 1 rows hold no NaN */
DEFINE_REFILL(rtrees_v2_le, trees_v2_le, 0, double, 1)
DEFINE_REFILL(rtrees_v2_lt, trees_v2_lt, 1, double, 1)
DEFINE_REFILL(rtrees_v2_le_nonan, trees_v2_le, 0, double, 0) /* a row without NaN: no missing-value rule */
DEFINE_REFILL(rtrees_v2_lt_nonan, trees_v2_lt, 1, double, 0)

typedef int (*clean_fn)(const job_t *, const cnode_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, int32_t *, int32_t *,
                        Py_ssize_t *);

typedef int (*walks_fn)(const job_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, int32_t *, int32_t *, Py_ssize_t *);

/* Scratch for ROW_BLOCK walks: each walk's leaf and steps, each row's steps over all trees. */
typedef struct {
    int32_t leaf[ROW_BLOCK], steps[ROW_BLOCK];
    int64_t row_steps[ROW_BLOCK];
    double vals[ROW_BLOCK]; /* the row form's leaf values, tree by tree */
    float *xf;              /* room for a row as the narrow row form reads it (rf_prep), or NULL */
    float *xb;              /* room for xb_rows rows as the narrow row form reads them (rf_block), or NULL */
    uint64_t *qv;           /* room for QS_ROWS rows' bit vectors of every tree (qs_rows), or NULL: the walks */
    int32_t *map;           /* rf_block: each of those rows' place in its block */
    Py_ssize_t xb_rows;
    cnode_t *ct;    /* room for the job's largest tree in compact form, or NULL: every tree takes the checked walk */
    int32_t *depth; /* room for the job's largest tree: compact_tree's scratch */
} scratch_t;

/* Rows r0 .. r0 + n - 1 (n <= ROW_BLOCK) through every tree, tree by tree. OK, or the problem with its tree. */
static int rows_block(const job_t *j, Py_ssize_t r0, Py_ssize_t n, scratch_t *s, Py_ssize_t *bad_tree)
{
    const walks_fn walks = !j->v2 ? rows_v1 : j->lt ? rows_v2_lt : rows_v2_le;
    const clean_fn lanes = !j->v2 ? lanes_v1 : j->lt ? lanes_v2_lt : lanes_v2_le;
    const clean_fn branchy = !j->v2 ? clean_v1 : j->lt ? clean_v2_lt : clean_v2_le;
    Py_ssize_t bad_row;
    for (Py_ssize_t i = 0; i < n; i++) s->row_steps[i] = 0;
    for (Py_ssize_t t = 0; t < j->n_trees; t++) {
        *bad_tree = t;
        int status = check_group(j, t);
        if (status == OK) {
            const int how = j->ct != NULL ? j->clean[t]
                            : s->ct != NULL && n >= CLEAN_ROWS ? compact_tree(j, t, s->ct, s->depth) : CHECKED;
            const cnode_t *ct = j->ct != NULL ? j->ct + j->offsets[t] : s->ct;
            if (how == CLEAN_LANES) status = lanes(j, ct, t, r0, n, s->leaf, s->steps, &bad_row);
            else if (how == CLEAN_BRANCHY) status = branchy(j, ct, t, r0, n, s->leaf, s->steps, &bad_row);
            else status = walks(j, t, r0, n, s->leaf, s->steps, &bad_row);
        }
        if (status != OK) return status;
        const node_t *root = j->nodes + j->offsets[t];
        for (Py_ssize_t i = 0; i < n; i++) {
            status = add_leaf(j, t, root + s->leaf[i], r0 + i);
            if (status != OK) return status;
            s->row_steps[i] += s->steps[i];
            if (s->row_steps[i] > j->max_steps) return BAD_WORK;
        }
    }
    return OK;
}

/* Row r through every tree, ROW_BLOCK trees at a time, leaves added in tree order. */
static int trees_row(const job_t *j, Py_ssize_t r, scratch_t *s, Py_ssize_t *bad_tree)
{
    walks_fn walks = j->ct != NULL ? (!j->v2 ? rtrees_v1 : j->lt ? rtrees_v2_lt : rtrees_v2_le)
                                   : (!j->v2 ? trees_v1 : j->lt ? trees_v2_lt : trees_v2_le);
    if (j->ct != NULL && j->v2) { /* a row without missing values: the walks without the NaN rule (8% faster) */
        const double *x = (const double *)j->X + r * j->n_features;
        int nan = 0;
        for (Py_ssize_t f = 0; f < j->n_features; f++) nan |= isnan(x[f]);
        if (!nan) walks = j->lt ? rtrees_v2_lt_nonan : rtrees_v2_le_nonan;
    }
    int64_t steps = 0;
    for (Py_ssize_t t0 = 0; t0 < j->n_trees; t0 += ROW_BLOCK) {
        const Py_ssize_t m = j->n_trees - t0 < ROW_BLOCK ? j->n_trees - t0 : ROW_BLOCK;
        Py_ssize_t bad = 0;
        int status = walks(j, t0, r, m, s->leaf, s->steps, &bad);
        if (status != OK) { *bad_tree = t0 + bad; return status; }
        for (Py_ssize_t i = 0; i < m; i++) {
            *bad_tree = t0 + i;
            status = check_group(j, t0 + i);
            if (status == OK) status = add_leaf(j, t0 + i, j->nodes + j->offsets[t0 + i] + s->leaf[i], r);
            if (status != OK) return status;
            steps += s->steps[i];
            if (steps > j->max_steps) return BAD_WORK;
        }
    }
    return OK;
}

/* ---- the row form: one row through every tree (a batch: rf_block) ------------------------------------------
 * A single row is a chain of dependent loads per tree (node, then the input it names, then the next node), so
 * its cost is latency, not work. rowform() checks the whole model once (every tree clean, as compact_tree()
 * says, every output group in range, version 1 leaves finite, each tree no deeper than the format's limit) and
 * records what the walk then needs no per-node or per-tree check for: each tree's output, the deepest leaf of
 * every LANES trees and of every tree summed (a row can pass no more splits than that, so the work budget is
 * checked once per model, not per walk). The model gets its own 8-byte nodes (n8_t), half the compact form's
 * memory: a model whose rows are float32 values (version 1, XGBoost's float32 input) a float32 threshold that
 * splits float32 inputs exactly as the float64 one does (for float32 x, x <= t iff x <= the largest float32 <= t,
 * and x < t iff x <= the largest float32 < t); a float64 model its thresholds' ranks, each row binned first (see
 * "bins" below). Only a model whose features or steps do not fit n8_t walks the compact form. LANES walks are
 * interleaved so their loads overlap; the step down is a conditional move (no branch to mispredict). Trees whose leaves sit
 * at similar depths (compact_tree's CLEAN_LANES: XGBoost, forests) go LANES at a time in lock-step to the
 * group's deepest leaf, with no test per step at all (a walk at a leaf stays put); leaf-wise grown ones
 * (LightGBM) refill a lane with the next tree when its walk ends. Whatever order the walks end in, each walk's
 * leaf value is kept and the values are added in tree order, exactly as the checked path adds them. A row that is
 * not what the row form assumes (a float64 value in a float32 model's row, an infinite input) takes the checked
 * path. */
#define RF_LANES 16 /* measured: 8 slower, 24 and 32 no faster */
#define RF_BURST 4 /* the refilled walks' steps between looking for finished ones: 4 measured faster than 1, 2 */
#define RF_FALLBACK (-1)
#define LV_MASK 0x3FFFFFu /* a float32 NaN's payload below its quiet bit: up to 4M leaf values */

static const n8_t IDLE8 = {NAN, 0, 0}; /* an idle lane: a leaf */

/* left ? a : b as a conditional move (gcc turns the ternary into a branch here, mispredicted half the time). */
#if defined(__x86_64__) && defined(__GNUC__)
#define SELECT(left, a, b) ({ __typeof__(b) _s = (b); __asm__("test %2, %2\n\tcmovnz %1, %0" : "+r"(_s) : "r"(a), "r"(left) : "cc"); _s; })
#else
#define SELECT(left, a, b) ((left) ? (a) : (b))
#endif

/* The next node of a walk at narrow node p for the row x (spread XS floats apart); p itself at a leaf. */
static inline const n8_t *n8_next(const n8_t *p, const float *x)
{
    const float thr = p->thr;
    const uint32_t slot = p->slot, step = p->step;
    const n8_t *right = p + step;
#if defined(__x86_64__) && defined(__GNUC__) /* compare and move in two instructions: left iff thr >= x */
    __asm__("ucomiss %[xv], %[thr]\n\tcmovae %[left], %[right]"
            : [right] "+r"(right) : [left] "r"(p + 1), [thr] "x"(thr), [xv] "m"(x[slot]) : "cc");
    return right;
#else
    return SELECT(x[slot] <= thr, p + 1, right);
#endif
}

static inline const cnode_t *cw_next(const cnode_t *p, const double *x, int nans, int lt)
{
    const cnode_t c = *p;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!nans) { /* left iff thr >= x ("<=") or thr > x ("<"); unordered: right */
        const cnode_t *right = p + c.step;
        if (lt)
            __asm__("ucomisd %[xv], %[thr]\n\tcmova %[left], %[right]"
                    : [right] "+r"(right) : [left] "r"(p + 1), [thr] "x"(c.thr), [xv] "m"(x[c.f & ~NAN_LEFT]) : "cc");
        else
            __asm__("ucomisd %[xv], %[thr]\n\tcmovae %[left], %[right]"
                    : [right] "+r"(right) : [left] "r"(p + 1), [thr] "x"(c.thr), [xv] "m"(x[c.f & ~NAN_LEFT]) : "cc");
        return right;
    }
#endif
    const double xv = x[c.f & ~NAN_LEFT];
    int left = lt ? xv < c.thr : xv <= c.thr;
    if (nans) left |= (xv != xv) & (int)(c.f >> 31);
    return SELECT(left, p + 1, p + c.step);
}

#define N8_NEXT(p, NANS, LT) n8_next(p, x)
/* As n8_next, the right child's line asked for while the compare waits on the row's value: a single row's walks
 * read their nodes from the second-level cache (LightGBM 500 x 63: 1.04x a row). */
static inline const n8_t *n8_next_ahead(const n8_t *p, const float *x)
{
    __builtin_prefetch(p + p->step);
    return n8_next(p, x);
}
#define N8_NEXT_AHEAD(p, NANS, LT) n8_next_ahead(p, x)
/* The value of the leaf q of a walk over nodes: lv's entry its payload names (leaf32 2: lv holds n_lv values, a
 * wrong index clamped), else the file's (orig), else (orig NULL) a narrow leaf32 node's own. */
static inline double lv_value(const void *q, const double *lv)
{
    uint32_t bits;
    memcpy(&bits, &((const n8_t *)q)->thr, sizeof bits);
    const uint32_t i = bits & LV_MASK, last = (uint32_t)lv[-1];
    return lv[i < last ? i : last];
}
#define LEAF_VALUE(q, nodes, orig, lv)                                                                           \
    ((lv) != NULL ? lv_value(q, lv) : (orig) != NULL ? (orig)[(q) - (nodes)].value : (double)((const n8_t *)(q))->thr)
#define CW_NEXT(p, NANS, LT) cw_next(p, x, NANS, LT)

/* NAME(nodes, roots, depth, m, x, orig, vals): trees 0 .. m - 1 (tree k's root at nodes + roots[k],
 * the deepest leaf of trees 16g .. 16g + 15 depth[g]) walked for row x in lock-step, 16 at a time; vals[k] =
 * tree k's leaf value (orig: the file's nodes, the row form's node i is its node i). */
#define DEFINE_RF_LOCK(NAME, NT, XT, NEXT, NANS, LT)                                                               \
    NOINLINE static void NAME(const NT *nodes, const int64_t *roots, const int32_t *depth, Py_ssize_t m,          \
                              const XT *x, const node_t *orig, const double *lv, double *vals)                   \
    {                                                                                                            \
        for (Py_ssize_t g0 = 0; g0 < m; g0 += RF_LANES) {                                                        \
            const NT *p[RF_LANES];                                                                               \
            _Pragma("GCC unroll 16") for (int k = 0; k < RF_LANES; k++) /* past m: tree m - 1 again */           \
                p[k] = nodes + roots[g0 + k < m ? g0 + k : m - 1];                                               \
            for (int32_t d = depth[g0 / RF_LANES]; d > 0; d--) {                                                 \
                _Pragma("GCC unroll 16") for (int k = 0; k < RF_LANES; k++) p[k] = NEXT(p[k], NANS, LT);         \
            }                                                                                                    \
            const int n = m - g0 < RF_LANES ? (int)(m - g0) : RF_LANES;                                          \
            for (int k = 0; k < n; k++) vals[g0 + k] = LEAF_VALUE(p[k], nodes, orig, lv);                        \
        }                                                                                                        \
    }

/* NAME(...): as the lock-step walks, but a lane takes the next tree as soon as its walk reaches a leaf (no lane
 * idles while a deeper walk finishes: leaf-wise grown trees differ a lot in depth). */
#define DEFINE_RF_REFILL(NAME, NT, XT, NEXT, IDLE_NODE, NANS, LT)                                                  \
    NOINLINE static void NAME(const NT *nodes, const int64_t *roots, const int32_t *depth, Py_ssize_t m,          \
                              const XT *x, const node_t *orig, const double *lv, double *vals)                   \
    {                                                                                                            \
        (void)depth;                                                                                             \
        const NT *p[RF_LANES];                                                                                   \
        Py_ssize_t item[RF_LANES], next = 0;                                                                     \
        uint32_t busy = 0;                                                                                       \
        for (int k = 0; k < RF_LANES; k++) {                                                                     \
            if (next < m) p[k] = nodes + roots[next], item[k] = next++, busy |= 1u << k;                         \
            else p[k] = &IDLE_NODE, item[k] = -1;                                                                \
        }                                                                                                        \
        while (busy) {                                                                                           \
            for (int b = 1; b < RF_BURST; b++) { /* a walk at a leaf stays put */                                \
                _Pragma("GCC unroll 16") for (int k = 0; k < RF_LANES; k++) p[k] = NEXT(p[k], NANS, LT);         \
            }                                                                                                    \
            uint32_t done = 0; /* the lanes whose walk stayed put: at a leaf */                                  \
            _Pragma("GCC unroll 16") for (int k = 0; k < RF_LANES; k++) {                                        \
                const NT *q = NEXT(p[k], NANS, LT);                                                              \
                done |= (uint32_t)(q == p[k]) << k;                                                              \
                p[k] = q;                                                                                        \
            }                                                                                                    \
            done &= busy;                                                                                        \
            while (done) {                                                                                       \
                const int k = __builtin_ctz(done);                                                               \
                done &= done - 1;                                                                                \
                vals[item[k]] = LEAF_VALUE(p[k], nodes, orig, lv);                                               \
                if (next < m) { /* and the root of the tree a lane takes next but one on its way: 1.03x */       \
                    if (next + RF_LANES < m) __builtin_prefetch(nodes + roots[next + RF_LANES]);                 \
                    p[k] = nodes + roots[next], item[k] = next++;                                                \
                }                                                                                                \
                else p[k] = &IDLE_NODE, busy &= ~(1u << k);                                                      \
            }                                                                                                    \
        }                                                                                                        \
    }

typedef void (*rf_walk_fn)(const void *, const int64_t *, const int32_t *, Py_ssize_t, const void *,
                           const node_t *, const double *, double *);

/* the compact form's walks, with and without the missing-value rule (a row without NaN: 8% faster) */
#define DEFINE_RF_CW(SUFFIX, NANS)                                                                            \
    DEFINE_RF_LOCK(rf_lock_le##SUFFIX, cnode_t, double, CW_NEXT, NANS, 0)                                     \
    DEFINE_RF_REFILL(rf_fill_le##SUFFIX, cnode_t, double, CW_NEXT, IDLE, NANS, 0)                             \
    DEFINE_RF_LOCK(rf_lock_lt##SUFFIX, cnode_t, double, CW_NEXT, NANS, 1)                                     \
    DEFINE_RF_REFILL(rf_fill_lt##SUFFIX, cnode_t, double, CW_NEXT, IDLE, NANS, 1)
DEFINE_RF_CW(_nan, 1)
DEFINE_RF_CW(, 0)
/* the narrow nodes' walks: no missing-value rule (a NaN reads the row's -infinity copy) */
DEFINE_RF_LOCK(rf_lock8, n8_t, float, N8_NEXT_AHEAD, 0, 0)
DEFINE_RF_REFILL(rf_fill8, n8_t, float, N8_NEXT_AHEAD, IDLE8, 0, 0)

/* rf_walks[narrow ? 0 : lt ? 2 : 1][lockstep][nans] */
static const rf_walk_fn rf_walks[3][2][2] = {
    {{(rf_walk_fn)rf_fill8, (rf_walk_fn)rf_fill8}, {(rf_walk_fn)rf_lock8, (rf_walk_fn)rf_lock8}},
    {{(rf_walk_fn)rf_fill_le, (rf_walk_fn)rf_fill_le_nan}, {(rf_walk_fn)rf_lock_le, (rf_walk_fn)rf_lock_le_nan}},
    {{(rf_walk_fn)rf_fill_lt, (rf_walk_fn)rf_fill_lt_nan}, {(rf_walk_fn)rf_lock_lt, (rf_walk_fn)rf_lock_lt_nan}},
};

/* ---- bins: float64 rows on narrow nodes ----------------------------------------------------------------------
 * A model whose rows are float64 values (LightGBM, scikit-learn's histogram models, XGBoost with float64 input)
 * cannot fold its thresholds into float32 ones. Its row form ranks them instead: feature f's distinct split
 * thresholds t_0 < t_1 < ... (every tree's), and a node x OP t_k holds k as its float32 threshold. A row is binned
 * once, each value x to bin(x) = the number of thresholds t with t < x (OP "<=") or t <= x (OP "<"), and then
 * x OP t_k iff bin(x) <= k, for every x that is not NaN (an infinite one too): for "<=", x <= t_k means every
 * t_j < x has j < k, and x > t_k would put t_0 .. t_k below x. So the rows walk the same 8-byte nodes as the
 * float32 models, with the same -infinity copy for the nodes that send a missing value left. */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each feature's distinct split thresholds, ascending: *off (n_features + 1 offsets) into *vals (*n of them).
 * 1, or 0 if a threshold is NaN or there are too many to rank exactly in a float32, or -1: no memory. Splits on
 * a feature out of range are skipped (the row form refuses their tree). */
static int rf_bin_table(const node_t *nodes, Py_ssize_t n_nodes, Py_ssize_t nf, int64_t **off, double **vals,
                        Py_ssize_t *n)
{
    int64_t *o = calloc((size_t)nf + 1, sizeof(int64_t)), *pos = calloc((size_t)nf + 1, sizeof(int64_t));
    double *v = NULL;
    int status = -1;
    if (o == NULL || pos == NULL) goto out;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        const int32_t f = nodes[i].feature;
        if (f < 0 || f >= nf) continue;
        if (isnan(nodes[i].value)) { status = 0; goto out; }
        o[f + 1]++;
    }
    for (Py_ssize_t f = 0; f < nf; f++) o[f + 1] += o[f], pos[f] = o[f];
    v = malloc(((size_t)o[nf] + 1) * sizeof(double));
    if (v == NULL) goto out;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        const int32_t f = nodes[i].feature;
        if (f >= 0 && f < nf) v[pos[f]++] = nodes[i].value;
    }
    int64_t w = 0; /* each feature's range sorted, then its distinct values moved down to w */
    for (Py_ssize_t f = 0; f < nf; f++) {
        const int64_t a = o[f], b = o[f + 1];
        qsort(v + a, (size_t)(b - a), sizeof(double), cmp_double);
        o[f] = w;
        for (int64_t i = a; i < b; i++)
            if (i == a || v[i] != v[i - 1]) v[w++] = v[i];
        if (w - o[f] >= (int64_t)1 << 24) { status = 0; goto out; }
    }
    o[nf] = w;
    *off = o, *vals = v, *n = w, o = NULL, v = NULL;
    status = 1;
out:
    free(o);
    free(pos);
    free(v);
    return status;
}

/* How many of the n ascending values t are below x (or_equal: at most x), by binary search; x is not NaN. A
 * threshold's rank (rowform) and a value's bin (rf_bin) are both this count. */
static inline int64_t count_below(const double *t, int64_t n, double x, int or_equal)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (or_equal ? t[mid] <= x : t[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The bin of x among feature f's thresholds (see above); x is not NaN. */
static inline float rf_bin(const job_t *j, Py_ssize_t f, double x)
{
    const int64_t a = j->rf_binoff[f];
    return (float)count_below(j->rf_bins + a, j->rf_binoff[f + 1] - a, x, j->lt);
}

/* Row r as the narrow nodes read it, into xf (slot s at xf[s * XS]): version 1, its float32 values; else its
 * values as float32 values or (bins) their bins, then again with NaN as -infinity. OK, or RF_FALLBACK: a float64
 * value that a float32 model's row cannot hold (or an infinite one), which takes the checked path. */
static int rf_prep(const job_t *j, Py_ssize_t r, float *xf)
{
    const Py_ssize_t nf = j->n_features;
    xf[(j->v2 ? 2 * nf : nf) * XS] = NAN; /* the slot a leaf32 leaf reads */
    if (!j->v2) {
        const float *x = (const float *)j->X + r * nf;
        for (Py_ssize_t f = 0; f < nf; f++) xf[f * XS] = x[f];
        return OK;
    }
    const double *xd = (const double *)j->X + r * nf;
    for (Py_ssize_t f = 0; f < nf; f++) {
        float v;
        if (isnan(xd[f])) {
            v = NAN;
        } else if (j->rf->bins) {
            v = rf_bin(j, f, xd[f]);
        } else {
            v = (float)xd[f];
            if ((double)v != xd[f] || isinf(v)) return RF_FALLBACK;
        }
        xf[f * XS] = v;
        xf[(nf + f) * XS] = isnan(v) ? -INFINITY : v;
    }
    return OK;
}

/* Row r through every tree over the row form: OK, or RF_FALLBACK when the row takes the checked path. */
static int rf_row(const job_t *j, Py_ssize_t r, double *vals, float *xf)
{
    const rfhead_t *h = j->rf;
    const Py_ssize_t nf = j->n_features, K = j->K;
    const void *x;
    int nans = 0;
    if (h->narrow) {
        if (rf_prep(j, r, xf) != OK) return RF_FALLBACK;
        x = xf;
    } else {
        const double *xd = (const double *)j->X + r * nf;
        for (Py_ssize_t f = 0; f < nf; f++) {
            if (isnan(xd[f])) nans = 1;
            else if (isinf(xd[f])) return RF_FALLBACK;
        }
        x = xd;
    }
    const rf_walk_fn walk = rf_walks[h->narrow ? 0 : j->lt ? 2 : 1][h->lockstep][nans]; /* narrow: never nans */
    const void *nodes = h->narrow ? (const void *)j->rf_nodes : (const void *)j->ct;
    for (Py_ssize_t t0 = 0; t0 < j->n_trees; t0 += ROW_BLOCK) {
        const Py_ssize_t m = j->n_trees - t0 < ROW_BLOCK ? j->n_trees - t0 : ROW_BLOCK;
        walk(nodes, j->offsets + t0, j->rf_depth + t0 / RF_LANES, m, x, h->narrow && h->leaf32 ? NULL : j->nodes,
             h->narrow && h->leaf32 == 2 ? j->rf_lv : NULL, vals);
        const int32_t *g = j->rf_groups + t0;
        if (j->acc32) {
            float *o = (float *)j->out + r * K;
            if (K == 1) { /* the sum in a register, not stored and reloaded per tree: the same additions */
                float sum = o[0];
                for (Py_ssize_t i = 0; i < m; i++) sum += (float)vals[i];
                o[0] = sum;
            } else {
                for (Py_ssize_t i = 0; i < m; i++) o[g[i]] += (float)vals[i];
            }
        } else {
            double *o = (double *)j->out + r * K;
            if (K == 1) {
                double sum = o[0];
                for (Py_ssize_t i = 0; i < m; i++) sum += vals[i];
                o[0] = sum;
            } else {
                for (Py_ssize_t i = 0; i < m; i++) o[g[i]] += vals[i];
            }
        }
    }
    return OK;
}

/* ---- the row form for a batch: a block of rows through each tree -------------------------------------------
 * A batch walks the row form's narrow nodes too, tree by tree over a block of rows small enough that the rows stay
 * in the first-level cache (each row copied once as float32 values or bins, as rf_row does). BLK_LANES walks are
 * interleaved, each a row of the block, with the step down a conditional move: a tree's nodes are in cache, so a
 * walk is a chain of dependent loads, and a mispredicted branch per level (half of them on real data) cost more
 * than the walk. Trees whose leaves sit at similar depths (the row form's lockstep) walk BLK_LANES rows in
 * lock-step to the tree's deepest leaf, with no test per step; leaf-wise grown ones refill a lane with the next
 * row as soon as its walk ends. Each tree's leaf values are added to the rows' outputs before the next tree's
 * walks, so every row's sum is in tree order, as on the checked path. */
#define BLK_LANES XS /* (a divisor of XS) 16: measured faster than 8 */
#define XB_BYTES 49152
#define PF_XB_BYTES 393216
#define BLK_BURST 4 /* blk_fill's steps between looking for finished walks: measured best of 1-8 */

/* Rows 0 .. n - 1 of the block xb (row i at xb + (i / XS) * S * XS + i % XS: each XS rows' values interleaved, so
 * the lanes of a group read one slot from consecutive addresses) through the tree at root, in lock-step to its
 * deepest leaf; vals[i] = row i's leaf value (orig: the file's nodes of the tree). */
NOINLINE static void blk_lock(const n8_t *root, int32_t deepest, Py_ssize_t n, const float *xb, Py_ssize_t S,
                              const node_t *orig, const double *lv, double *vals)
{
    for (Py_ssize_t g0 = 0; g0 < n; g0 += BLK_LANES) {
        const float *xg = xb + g0 / XS * S * XS + g0 % XS; /* lane k at xg + k (the last group is padded) */
        const n8_t *p[BLK_LANES];
        _Pragma("GCC unroll 16") for (int k = 0; k < BLK_LANES; k++) p[k] = root;
        for (int32_t d = deepest; d > 0; d--) {
            _Pragma("GCC unroll 16") for (int k = 0; k < BLK_LANES; k++) p[k] = n8_next(p[k], xg + k);
        }
        const int m = n - g0 < BLK_LANES ? (int)(n - g0) : BLK_LANES;
        for (int k = 0; k < m; k++) vals[g0 + k] = LEAF_VALUE(p[k], root, orig, lv);
    }
}

/* As blk_lock, a lane taking the block's next row as soon as its walk reaches a leaf. */
NOINLINE static void blk_fill(const n8_t *root, int32_t deepest, Py_ssize_t n, const float *xb, Py_ssize_t S,
                              const node_t *orig, const double *lv, double *vals)
{
    (void)deepest;
    const n8_t *p[BLK_LANES];
    const float *x[BLK_LANES];
    Py_ssize_t item[BLK_LANES], next = 0;
    uint32_t busy = 0;
    for (int k = 0; k < BLK_LANES; k++) {
        if (next < n) p[k] = root, x[k] = xb + next / XS * S * XS + next % XS, item[k] = next++, busy |= 1u << k;
        else p[k] = &IDLE8, x[k] = xb, item[k] = -1;
    }
    while (busy) {
        for (int b = 1; b < BLK_BURST; b++) { /* a walk at a leaf stays put */
            _Pragma("GCC unroll 16") for (int k = 0; k < BLK_LANES; k++) p[k] = n8_next(p[k], x[k]);
        }
        uint32_t done = 0; /* the lanes whose walk stayed put: at a leaf */
        _Pragma("GCC unroll 16") for (int k = 0; k < BLK_LANES; k++) {
            const n8_t *q = n8_next(p[k], x[k]);
            done |= (uint32_t)(q == p[k]) << k;
            p[k] = q;
        }
        done &= busy;
        while (done) {
            const int k = __builtin_ctz(done);
            done &= done - 1;
            vals[item[k]] = LEAF_VALUE(p[k], root, orig, lv);
            if (next < n) p[k] = root, x[k] = xb + next / XS * S * XS + next % XS, item[k] = next++;
            else p[k] = &IDLE8, busy &= ~(1u << k);
        }
    }
}

/* ---- perfect trees: a batch of shallow trees walked without steps -------------------------------------------
 * Trees of depth D <= PF_MAX_DEPTH (a tree's deepest leaf) are also kept as perfect binary trees in heap order,
 * 2^(D+1) 8-byte entries: entry 1 the root, entries h < 2^D splits {threshold, slot} whose children are 2h and
 * 2h + 1, entries 2^D .. 2^(D+1) - 1 the leaves' float64 values (a leaf above the last level fills every entry
 * below it; the splits there, never deciding anything, hold 0 and slot 0). A walk is then D steps of h = 2h + right,
 * where right = !(x <= thr) is the walks' own test on the same slot and threshold: on x86-64 a compare and an
 * add-with-carry, no step to load, and no test for a leaf. Read by batches only, when the padding costs at most
 * PF_MAX_RATIO x the nodes. */
#define PF_MAX_DEPTH 12
#define PF_MAX_RATIO 8
typedef struct {
    float thr;
    uint32_t slot;
} pf_t;

static inline uint64_t pf_next(const pf_t *tree, uint64_t h, const float *x)
{
    const pf_t c = tree[h];
#if defined(__x86_64__) && defined(__GNUC__) /* carry: thr < x or unordered, i.e. !(x <= thr) */
    __asm__("ucomiss %[xv], %[thr]\n\tadc %[h], %[h]" : [h] "+r"(h) : [thr] "x"(c.thr), [xv] "m"(x[c.slot]) : "cc");
    return h;
#else
    return 2 * h + !(x[c.slot] <= c.thr);
#endif
}

/* Rows 0 .. n - 1 of the block xb (laid out as for blk_lock) through the perfect tree of depth D at tree;
 * row i's leaf value added to its output at out[map[i] * K] (float32 when acc32). On x86-64 a step is four
 * instructions (the entry's slot and threshold, the compare with the row's value, the add-with-carry), lane k's
 * value at a fixed displacement from the group's rows. */
#if defined(__x86_64__) && defined(__GNUC__)
/* The memory a step reads, as an input the compiler sees (a sized array: clang refuses GCC's unsized one). */
typedef char pf_mem_t[1 << 30];
#define PF_STEP(k)                                                                                               \
    do {                                                                                                         \
        uint32_t s_;                                                                                             \
        float t_;                                                                                                \
        __asm__("movl 4(%[t],%[h],8), %k[s]\n\t"                                                                  \
                PF_VEX "movss (%[t],%[h],8), %[v]\n\t"                                                            \
                PF_VEX "ucomiss 4*" #k "(%[x],%q[s],4), %[v]\n\t"                                                  \
                "adc %[h], %[h]"                                                                                 \
                : [h] "+r"(h##k), [s] "=&r"(s_), [v] "=&x"(t_)                                                   \
                : [t] "r"(tree), [x] "r"(xg), "m"(*(const pf_mem_t *)tree), "m"(*(const pf_mem_t *)xg)              \
                : "cc");                                                                                         \
    } while (0)
#else
#define PF_STEP(k) h##k = pf_next(tree, h##k, xg + k)
#endif
/* The top levels of a perfect tree for a group's XS lanes at once, with AVX2 (blk_pf_avx2). Every split of the
 * first L levels is tested for all the lanes with two vector compares, !(x <= thr) (_CMP_NLE_UQ: NaN goes right, as
 * the steps' add-with-carry), bit e of lane k's word set when lane k goes right at heap entry e; each lane's walk
 * through them is then L steps of h = 2h + bit h of its word, all lanes in two vectors. The same test on the same
 * values as a step: the same entry after L levels. A test there serves all 16 lanes, which part below: 15 splits'
 * tests cost fewer instructions than the 64 steps they replace (XGBoost 2,000 x depth 8 on Zen 3, in-process A/B:
 * 5.20 -> 4.53 ns/tree-row with 4 levels; 3: 4.73, 5: slower). */
#define PF_TOP 4
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PF_AVX2 1
__attribute__((target("avx2"), always_inline)) static inline void pf_top(const pf_t *tree, int32_t L,
                                                                        const float *xg, uint32_t *h)
{
    __m256i w0 = _mm256_setzero_si256(), w1 = _mm256_setzero_si256(), bit = _mm256_set1_epi32(1);
    for (uint32_t e = 1; e < (1u << L); e++) {
        const float *x = xg + tree[e].slot;
        const __m256 thr = _mm256_broadcast_ss(&tree[e].thr);
        bit = _mm256_add_epi32(bit, bit); /* 1 << e */
        const __m256 c0 = _mm256_cmp_ps(_mm256_loadu_ps(x), thr, _CMP_NLE_UQ);
        const __m256 c1 = _mm256_cmp_ps(_mm256_loadu_ps(x + 8), thr, _CMP_NLE_UQ);
        w0 = _mm256_or_si256(w0, _mm256_and_si256(_mm256_castps_si256(c0), bit));
        w1 = _mm256_or_si256(w1, _mm256_and_si256(_mm256_castps_si256(c1), bit));
    }
    const __m256i one = _mm256_set1_epi32(1);
    __m256i h0 = one, h1 = one;
    for (int32_t d = 0; d < L; d++) {
        h0 = _mm256_add_epi32(_mm256_add_epi32(h0, h0), _mm256_and_si256(_mm256_srlv_epi32(w0, h0), one));
        h1 = _mm256_add_epi32(_mm256_add_epi32(h1, h1), _mm256_and_si256(_mm256_srlv_epi32(w1, h1), one));
    }
    _mm256_storeu_si256((__m256i *)h, h0);
    _mm256_storeu_si256((__m256i *)(h + 8), h1);
}
#define PF_TOP_LANES(L)                                                                                          \
    do {                                                                                                         \
        uint32_t hs[XS];                                                                                         \
        pf_top(tree, L, xg, hs);                                                                                 \
        h0 = hs[0], h1 = hs[1], h2 = hs[2], h3 = hs[3], h4 = hs[4], h5 = hs[5], h6 = hs[6], h7 = hs[7];          \
        h8 = hs[8], h9 = hs[9], h10 = hs[10], h11 = hs[11], h12 = hs[12], h13 = hs[13], h14 = hs[14];           \
        h15 = hs[15];                                                                                            \
    } while (0)
#else
#define PF_AVX2 0
#endif

/* Rows 0 .. n - 1 of the block xb through the perfect tree of depth D at tree (blk_pf_avx2: the first PF_TOP
 * levels by pf_top, the rest in steps); vals[i] = row i's leaf value, float32 when acc32 (every lane's: an idle
 * one's too, vals having room for whole groups). Defined twice by PF_WALK: blk_pf, and blk_pf_avx2 for CPUs
 * with AVX2. */
#define PF_LEAVES(T)                                                                                             \
    do {                                                                                                         \
        T *v_ = (T *)vals + g0;                                                                                  \
        v_[0] = (T)leaf[h0], v_[1] = (T)leaf[h1], v_[2] = (T)leaf[h2], v_[3] = (T)leaf[h3];                      \
        v_[4] = (T)leaf[h4], v_[5] = (T)leaf[h5], v_[6] = (T)leaf[h6], v_[7] = (T)leaf[h7];                      \
        v_[8] = (T)leaf[h8], v_[9] = (T)leaf[h9], v_[10] = (T)leaf[h10], v_[11] = (T)leaf[h11];                  \
        v_[12] = (T)leaf[h12], v_[13] = (T)leaf[h13], v_[14] = (T)leaf[h14], v_[15] = (T)leaf[h15];              \
    } while (0)
#define PF_WALK(NAME, ATTR, TOP)                                                                                 \
    ATTR NOINLINE static void NAME(const pf_t *tree, int32_t D, Py_ssize_t n, const float *xb, Py_ssize_t S,     \
                                   void *vals, int acc32)                                                        \
    {                                                                                                            \
        const double *leaf = (const double *)tree;                                                               \
        const int32_t d0 = D < (TOP) ? D : (TOP);                                                                \
        for (Py_ssize_t g0 = 0; g0 < n; g0 += XS) {                                                              \
            const float *xg = xb + g0 / XS * S * XS;                                                             \
            uint64_t h0 = 1, h1 = 1, h2 = 1, h3 = 1, h4 = 1, h5 = 1, h6 = 1, h7 = 1;                             \
            uint64_t h8 = 1, h9 = 1, h10 = 1, h11 = 1, h12 = 1, h13 = 1, h14 = 1, h15 = 1;                       \
            if (d0 > 0) PF_TOP_LANES(d0);                                                                        \
            for (int32_t d = d0; d < D; d++) {                                                                   \
                PF_STEP(0); PF_STEP(1); PF_STEP(2); PF_STEP(3); PF_STEP(4); PF_STEP(5); PF_STEP(6); PF_STEP(7);  \
                PF_STEP(8); PF_STEP(9); PF_STEP(10); PF_STEP(11); PF_STEP(12); PF_STEP(13); PF_STEP(14);         \
                PF_STEP(15);                                                                                     \
            }                                                                                                    \
            if (acc32) PF_LEAVES(float);                                                                         \
            else PF_LEAVES(double);                                                                              \
        }                                                                                                        \
    }
#if PF_AVX2 /* its steps VEX-encoded too: SSE ones after AVX code measured 2.5x slower (Zen 3) */
#define PF_VEX "v"
PF_WALK(blk_pf_avx2, __attribute__((target("avx2"))), PF_TOP)
#undef PF_TOP_LANES
#undef PF_VEX
#endif
#define PF_VEX ""
#define PF_TOP_LANES(L) (void)0
PF_WALK(blk_pf, , 0)
#undef PF_VEX
#undef PF_TOP_LANES
#undef PF_WALK
#undef PF_LEAVES
#undef PF_STEP

/* Each of m rows' leaf values (vals: float32 when vals32, else float64) added to its output out[map[i] * K] (map
 * NULL: row i's; out: float32 when out32), in a loop of its own after a tree's walks (measured no slower than adding
 * as each group's walks end, and the walks then need neither the map nor the outputs). A float64 value added to a
 * float32 output is rounded to float32 first, as the per-row walks add it. */
static void add_leaves(int out32, int vals32, const void *vals, Py_ssize_t m, const int32_t *map, Py_ssize_t K,
                       void *out)
{
    if (out32 && vals32 && map == NULL && K == 1) { /* the perfect trees' usual case: a plain vector add */
        float *o = out;
        const float *v = vals;
        for (Py_ssize_t i = 0; i < m; i++) o[i] += v[i];
    } else if (!out32 && !vals32 && map == NULL && K == 1) {
        double *o = out;
        const double *v = vals;
        for (Py_ssize_t i = 0; i < m; i++) o[i] += v[i];
    } else if (out32) {
        for (Py_ssize_t i = 0; i < m; i++)
            ((float *)out)[(map ? map[i] : i) * K] +=
                vals32 ? ((const float *)vals)[i] : (float)((const double *)vals)[i];
    } else {
        for (Py_ssize_t i = 0; i < m; i++)
            ((double *)out)[(map ? map[i] : i) * K] +=
                vals32 ? (double)((const float *)vals)[i] : ((const double *)vals)[i];
    }
}

/* The perfect tree below heap entry h (depth d of D) from the narrow tree n8 (node i; orig: the file's nodes). */
static void pf_fill(pf_t *tree, const n8_t *n8, const node_t *orig, int64_t i, uint64_t h, int32_t d, int32_t D)
{
    if (n8[i].step == 0) { /* a leaf: its value in every last-level entry below h */
        double *leaf = (double *)tree;
        for (uint64_t e = h << (D - d); e < (h + 1) << (D - d); e++) leaf[e] = orig[i].value;
        return;
    }
    tree[h] = (pf_t){n8[i].thr, n8[i].slot};
    pf_fill(tree, n8, orig, i + 1, 2 * h, d + 1, D);
    pf_fill(tree, n8, orig, i + n8[i].step, 2 * h + 1, d + 1, D);
}

/* 1 if the perfect trees' offsets agree with the trees' depths (their contents are the kernel's own). */
static int pf_ok(const job_t *j)
{
    const int64_t *off = j->rf_pf;
    if (off[0] != 0 || j->rf->pf_bytes != 8 * (j->n_trees + 1 + off[j->n_trees])) return 0;
    for (Py_ssize_t t = 0; t < j->n_trees; t++) {
        const int32_t D = j->rf_tdepth[t];
        if (D < 0 || D > PF_MAX_DEPTH || off[t + 1] - off[t] != (int64_t)2 << D) return 0;
    }
    return 1;
}

/* ---- bit vectors: a batch of small trees without walks ----------------------------------------------------
 * QuickScorer (Lucchese et al., SIGIR 2015), over 16 rows at a time with AVX-512 compares, or 8 with AVX2. A tree's leaves are
 * numbered left to right (their pre-order); a row's vector of a tree starts with every leaf's bit set, and each
 * split the row goes right at (a "false" node) clears the bits of the leaves of its left subtree: the row's exit
 * leaf, the one its walk reaches, is then the lowest bit left (the walk's path turns right exactly at its false
 * nodes on the way, and every leaf left of the exit leaf hangs off the left of one of them). Which way a row goes
 * at a node is the walk's own test, !(x <= thr) on the same narrow slot and threshold (NaN: right), so the leaf
 * and the sum are the walks'. Each slot's splits are sorted by threshold, so a group of rows stops reading them at
 * the first split none of its rows goes right at. Trees of at most 64 leaves (one 64-bit vector), on CPUs with
 * AVX-512 (F, VL) (rfhead_t.qs 1) or else AVX2 (qs 2, the tree-order tables: qs2_t); the walks otherwise. Tables
 * (qs_build): per slot the range of its splits; per tree the first of its leaf values; the leaf values in tree
 * order; per split its threshold, tree and the mask of the leaves it keeps. */
#define QS_GROUPS 4 /* 16 rows each: 64 rows per split read (1, 2 measured slower; 8 no faster) */
#define QS_ROWS (16 * QS_GROUPS)
#define QS_CHUNK 16 /* trees whose splits are read together, so their vectors stay in the first-level cache (16 KiB;
                       all trees at once measured 1.4x slower, 8-64 about the same) */
#define QS_CS(n_slots, n_trees) ((n_trees + QS_CHUNK - 1) / QS_CHUNK * (n_slots)) /* (chunk, slot) ranges */

typedef struct {
    const int64_t *soff, *lbase;
    const double *lval;
    const float *thr;
    const uint32_t *tree;
    const uint64_t *mask;
} qs_t;

static qs_t qs_tables(const char *q, Py_ssize_t n_slots, Py_ssize_t n_trees)
{
    qs_t t;
    const Py_ssize_t n_cs = QS_CS(n_slots, n_trees);
    t.soff = (const int64_t *)q;
    t.lbase = t.soff + n_cs + 1;
    t.lval = (const double *)(t.lbase + n_trees + 1);
    const int64_t n_split = t.soff[n_cs];
    t.thr = (const float *)(t.lval + t.lbase[n_trees]);
    t.tree = (const uint32_t *)(t.thr + n_split);
    t.mask = (const uint64_t *)(t.tree + n_split);
    return t;
}

/* The tree-order tables (qs 2, for CPUs without AVX-512): per tree the first of its leaf values (lbase, n_trees + 1),
 * the leaf values in tree order, per tree how many of its splits clear leaves among its first 32 only and how many
 * among the others only (cut, 2 x n_trees); then per split, tree by tree (tree t's from lbase[t] - t: a tree of L
 * leaves has L - 1 splits) and in each tree those first 32-only, then the others-only, then the splits that clear
 * leaves on both sides: the mask of the leaves it keeps, its threshold and its slot. A row's vector is two 32-bit
 * halves, and a split updates only the halves it clears bits in (the order of the clearings does not matter). */
typedef struct {
    const int64_t *lbase;
    const double *lval;
    const int32_t *cut;
    const uint64_t *keep;
    const float *thr;
    const uint32_t *slot;
} qs2_t;

static Py_ssize_t qs2_bytes(Py_ssize_t n_trees, Py_ssize_t n_leaves, Py_ssize_t n_split)
{
    return 8 * (n_trees + 1) + 8 * n_leaves + 8 * n_trees + 16 * n_split;
}

static qs2_t qs2_tables(const char *q, Py_ssize_t n_trees)
{
    qs2_t t;
    t.lbase = (const int64_t *)q;
    t.lval = (const double *)(t.lbase + n_trees + 1);
    const int64_t n_split = t.lbase[n_trees] - n_trees;
    t.cut = (const int32_t *)(t.lval + t.lbase[n_trees]);
    t.keep = (const uint64_t *)(t.cut + 2 * n_trees);
    t.thr = (const float *)(t.keep + n_split);
    t.slot = (const uint32_t *)(t.thr + n_split);
    return t;
}

/* ---- byte tables (qs 3): the bit vectors of binned models over bytes ----------------------------------------
 * A binned model (bins) whose features have at most QS3_MAX_THR thresholds each compares a row's bins as signed
 * bytes, 32 rows to an AVX2 compare: bin b as b - 128 (bins run 0 .. 255), NaN as 127 (above every threshold's
 * rank k - 128 <= 126: right, as the walks send it) and -infinity (the copy read where a NaN goes left) as -128
 * (below every one: left), so a byte goes right exactly where the walks' !(bin <= k) does. A tree's 64-bit vector
 * is kept as eight octants (leaves 8o .. 8o + 7, a byte per row): per tree and octant the splits whose left
 * subtree has leaves in it (an entry each: the threshold and the octant's byte of its left leaves, each repeated
 * four times, and the slot's offset among the rows' bytes), so a split clears bits only in the octants it touches
 * (most splits are deep: one octant), 64 rows at a time in two registers. The octants are then put together into
 * each row's 64-bit vector (byte shuffles), and the exit leaf found as with the other tables. Trees are taken
 * QS3_TREES at a time, so their vectors stay in the first-level cache until their leaf values are added. */
#define QS3_MAX_THR 255 /* thresholds per feature: bins 0 .. 255 (a 256th would need a 257th byte value) */
#ifndef QS3_ROWS
#define QS3_ROWS 128 /* rows per pass, each octant in QS3_ROWS / 32 registers (LightGBM 500 x 63 on Zen 4: 64 rows
                        2.93 ns per tree-row, 128 rows 2.60, 256 rows 2.56) */
#endif
#ifndef QS3_TREES
#define QS3_TREES 32 /* trees per chunk: 32 KiB of vectors (16 KiB and 64 KiB measured no faster) */
#endif
#ifndef QS3_XB_BYTES
#define QS3_XB_BYTES 196608 /* rows per block, as floats: each chunk of trees goes through all of them (48 KiB
                              measured 1-2% slower, 384 KiB the same) */
#endif
#define QS_PAD (QS3_ROWS > QS_ROWS ? QS3_ROWS : QS_ROWS) /* a block's rows: a whole number of groups of either */

typedef struct {
    int32_t thr4, left4, xoff; /* the threshold's byte and the octant's left leaves, x4; the slot x QS3_ROWS */
} qs3_e;

typedef struct {
    const int64_t *lbase, *eoff; /* per tree the first of its leaf values; per (tree, octant) its first entry */
    const double *lval;
    const qs3_e *e;
} qs3_t;

static Py_ssize_t qs3_bytes(Py_ssize_t n_trees, Py_ssize_t n_leaves, Py_ssize_t n_entries)
{
    return 8 * (n_trees + 1) + 8 * n_leaves + 8 * (8 * n_trees + 1) + (12 * n_entries + 7) / 8 * 8;
}

static qs3_t qs3_tables(const char *q, Py_ssize_t n_trees)
{
    qs3_t t;
    t.lbase = (const int64_t *)q;
    t.lval = (const double *)(t.lbase + n_trees + 1);
    t.eoff = (const int64_t *)(t.lval + t.lbase[n_trees]);
    t.e = (const qs3_e *)(t.eoff + 8 * n_trees + 1);
    return t;
}

/* The leaves of the tree (root, size nodes, a qs_tree) before each node, into before (size + 1 values). */
static void leaves_before(const node_t *root, int64_t size, int64_t *before)
{
    before[0] = 0;
    for (int64_t i = 0; i < size; i++) before[i + 1] = before[i] + (root[i].feature < 0);
}

/* A tree's (narrow nodes n8, the file's root, size nodes) leaves before each node, into before (size + 1 values),
 * and its leaf values in order into lval from index leaf: the bit-vector tables' numbering. The next index. */
static int64_t tree_leaves(const n8_t *n8, const node_t *root, int64_t size, int64_t *before, double *lval,
                           int64_t leaf)
{
    before[0] = 0;
    for (int64_t i = 0; i < size; i++) {
        before[i + 1] = before[i] + (n8[i].step == 0);
        if (n8[i].step == 0) lval[leaf++] = root[i].value;
    }
    return leaf;
}

/* The entries of the byte tables: per split, the octants its left subtree's leaves touch. before: room for the
 * largest tree's size + 1 values. */
static int64_t qs3_count(const node_t *nodes, const int64_t *offsets, Py_ssize_t n_trees, int64_t *before)
{
    int64_t n = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const node_t *root = nodes + offsets[t];
        const int64_t size = offsets[t + 1] - offsets[t];
        leaves_before(root, size, before);
        for (int64_t i = 0; i < size; i++)
            if (root[i].feature >= 0) n += (before[root[i].right] - 1) / 8 - before[i + 1] / 8 + 1;
    }
    return n;
}

/* The byte tables (qs3_t) into q (qs3_bytes() of room) from the narrow nodes n8 (bins: thresholds are ranks of at
 * most QS3_MAX_THR - 1). before: room for the largest tree's size + 1 values. */
static void qs3_build(char *q, const n8_t *n8, const node_t *nodes, const int64_t *offsets, Py_ssize_t n_trees,
                      Py_ssize_t n_leaves, int64_t *before)
{
    int64_t *lbase = (int64_t *)q;
    double *lval = (double *)(lbase + n_trees + 1);
    int64_t *eoff = (int64_t *)(lval + n_leaves);
    qs3_e *e = (qs3_e *)(eoff + 8 * n_trees + 1);
    int64_t leaf = 0, n = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const int64_t o0 = offsets[t], size = offsets[t + 1] - o0;
        lbase[t] = leaf;
        leaf = tree_leaves(n8 + o0, nodes + o0, size, before, lval, leaf);
        for (int o = 0; o < 8; o++) {
            eoff[8 * t + o] = n;
            for (int64_t i = 0; i < size; i++) {
                const n8_t c = n8[o0 + i];
                if (c.step == 0) continue;
                int64_t a = before[i + 1], b = before[i + c.step]; /* the left subtree's leaves */
                if (b <= 8 * o || a >= 8 * o + 8) continue;
                a = a > 8 * o ? a - 8 * o : 0, b = b < 8 * o + 8 ? b - 8 * o : 8;
                const uint32_t left = (((1u << (b - a)) - 1) << a) & 0xFFu;
                const uint32_t thr = (uint32_t)(uint8_t)(int8_t)((int)c.thr - 128);
                e[n++] = (qs3_e){(int32_t)(thr * 0x01010101u), (int32_t)(left * 0x01010101u),
                                 (int32_t)(c.slot / XS * QS3_ROWS)};
            }
        }
    }
    lbase[n_trees] = leaf;
    eoff[8 * n_trees] = n;
}

/* The position of row k's vector among a tree's QS3_ROWS (qs3_group's shuffles leave rows 2j, 2j + 1, 16 + 2j,
 * 17 + 2j of each 32 at positions 4j .. 4j + 3): the row at position p. */
static inline int qs3_row(int p)
{
    return (p & ~31) + 2 * ((p & 31) >> 2) + (p & 1) + ((p & 2) ? 16 : 0);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define QS_TARGET __attribute__((target("avx512f,avx512vl")))
/* cpuid 7's EBX (the extended features) if the OS saves every register state in xcr0_mask (cpuid and xgetbv, not
 * the compiler's __builtin_cpu_supports: with Zig's clang that pulls in a runtime whose own exp and expf replace the
 * C library's, whose bits the libraries' predictions have), else 0. Asked again by every batch, never remembered: a
 * process may be resumed from a snapshot on another CPU (Lambda SnapStart), where a row form built before it walks
 * instead. */
static unsigned cpu_features(unsigned xcr0_mask)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & xcr0_mask) != xcr0_mask || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return b;
}

/* 1 if the CPU has AVX-512 F (EBX 16) and VL (EBX 31) with SSE, AVX, opmask, ZMM_Hi256 and Hi16_ZMM state saved. */
static int qs_cpu(void)
{
    const unsigned b = cpu_features(0xE6u);
    return (b & (1u << 16)) && (b & (1u << 31));
}

/* 1 if the CPU has AVX2 (EBX 5) with SSE and AVX state saved. */
static int avx2_cpu(void)
{
    return (cpu_features(0x6u) & (1u << 5)) != 0;
}

/* qs_group without AVX-512 (the tree-order tables, qs 2): 32 rows at a time (two groups), each tree's vectors held
 * in AVX2 registers as 8 rows' low halves and 8 rows' high halves while its splits are read; a compare is the
 * walks' own, !(x <= thr) on the float32 slot (NaN: right). */
#define QS2_HALF(W, M, k, off) W##k = _mm256_andnot_si256(_mm256_andnot_si256(M, _mm256_castps_si256(_mm256_cmp_ps(r, _mm256_loadu_ps(xs + (off)), _CMP_NGE_UQ))), W##k)
#define QS2_KEEP(i, half) _mm256_castps_si256(_mm256_broadcast_ss((const float *)(keep + (i)) + (half)))
#define QS2_JOIN(L, H, o)                                                                                         \
    do {                                                                                                         \
        const __m256i ul = _mm256_unpacklo_epi32(L, H), uh = _mm256_unpackhi_epi32(L, H);                          \
        _mm256_storeu_si256((__m256i *)(o), _mm256_permute2x128_si256(ul, uh, 0x20));                               \
        _mm256_storeu_si256((__m256i *)(o) + 1, _mm256_permute2x128_si256(ul, uh, 0x31));                           \
    } while (0)
__attribute__((target("avx2"))) NOINLINE static void qs2_group(const qs2_t *q, Py_ssize_t n_trees, const float *xg,
                                                               Py_ssize_t gstride, uint64_t *v)
{
    const uint64_t *keep = q->keep;
    const float *thr = q->thr;
    const uint32_t *slot = q->slot;
    for (int g = 0; g < QS_GROUPS; g += 2) {
        const float *x = xg + g * gstride; /* rows 0-15 at x + slot + k, rows 16-31 at x + gstride + slot + k */
        for (Py_ssize_t t = 0; t < n_trees; t++) {
            const int64_t s0 = q->lbase[t] - t, s1 = s0 + q->cut[2 * t], s2 = s1 + q->cut[2 * t + 1];
            const int64_t s3 = q->lbase[t + 1] - (t + 1);
            const __m256i ones = _mm256_set1_epi32(-1);
            __m256i L0 = ones, L1 = ones, L2 = ones, L3 = ones, H0 = ones, H1 = ones, H2 = ones, H3 = ones;
            for (int64_t i = s0; i < s1; i++) { /* leaves 0-31 only */
                const __m256 r = _mm256_broadcast_ss(thr + i);
                const __m256i m = QS2_KEEP(i, 0);
                const float *xs = x + slot[i];
                QS2_HALF(L, m, 0, 0); QS2_HALF(L, m, 1, 8); QS2_HALF(L, m, 2, gstride); QS2_HALF(L, m, 3, gstride + 8);
            }
            for (int64_t i = s1; i < s2; i++) { /* leaves 32-63 only */
                const __m256 r = _mm256_broadcast_ss(thr + i);
                const __m256i m = QS2_KEEP(i, 1);
                const float *xs = x + slot[i];
                QS2_HALF(H, m, 0, 0); QS2_HALF(H, m, 1, 8); QS2_HALF(H, m, 2, gstride); QS2_HALF(H, m, 3, gstride + 8);
            }
            for (int64_t i = s2; i < s3; i++) { /* both */
                const __m256 r = _mm256_broadcast_ss(thr + i);
                const __m256i m = QS2_KEEP(i, 0), n = QS2_KEEP(i, 1);
                const float *xs = x + slot[i];
                QS2_HALF(L, m, 0, 0); QS2_HALF(L, m, 1, 8); QS2_HALF(L, m, 2, gstride); QS2_HALF(L, m, 3, gstride + 8);
                QS2_HALF(H, n, 0, 0); QS2_HALF(H, n, 1, 8); QS2_HALF(H, n, 2, gstride); QS2_HALF(H, n, 3, gstride + 8);
            }
            uint64_t *o = v + t * QS_ROWS + g * XS;
            QS2_JOIN(L0, H0, o);
            QS2_JOIN(L1, H1, o + 8);
            QS2_JOIN(L2, H2, o + 16);
            QS2_JOIN(L3, H3, o + 24);
        }
    }
}
#undef QS2_HALF
#undef QS2_KEEP
#undef QS2_JOIN

/* The vectors v (n_trees x QS_ROWS, 64-byte aligned) of the QS_ROWS rows whose slot s values are xg[s * XS + k]. */
QS_TARGET NOINLINE static void qs_group(const qs_t *q, Py_ssize_t n_slots, Py_ssize_t n_trees, const float *xg,
                                        Py_ssize_t gstride, uint64_t *v)
{
    const __m512i ones = _mm512_set1_epi64(-1);
    for (Py_ssize_t t = 0; t < n_trees * QS_ROWS / 8; t++) _mm512_store_si512((__m512i *)(v + t * 8), ones);
    const Py_ssize_t n_cs = QS_CS(n_slots, n_trees);
    for (Py_ssize_t cs = 0; cs < n_cs; cs++) { /* each chunk of trees, each slot */
        const Py_ssize_t s = cs % n_slots;
        __m512 x[QS_GROUPS];
        for (int g = 0; g < QS_GROUPS; g++) x[g] = _mm512_loadu_ps(xg + g * gstride + s * XS);
        const int64_t end = q->soff[cs + 1];
        for (int64_t i = q->soff[cs]; i < end; i++) {
            const __m512 r = _mm512_set1_ps(q->thr[i]);
            __mmask16 right[QS_GROUPS], any = 0;
            for (int g = 0; g < QS_GROUPS; g++) any |= right[g] = _mm512_cmp_ps_mask(x[g], r, _CMP_NLE_UQ);
            if (any == 0) break; /* no row goes right here, nor at any higher threshold */
            __m512i *vt = (__m512i *)(v + (size_t)q->tree[i] * QS_ROWS);
            const __m512i m = _mm512_set1_epi64((long long)q->mask[i]);
            for (int g = 0; g < QS_GROUPS; g++) {
                __m512i *w = vt + 2 * g;
                _mm512_store_si512(w, _mm512_mask_and_epi64(_mm512_load_si512(w), (__mmask8)right[g],
                                                            _mm512_load_si512(w), m));
                _mm512_store_si512(w + 1, _mm512_mask_and_epi64(_mm512_load_si512(w + 1), (__mmask8)(right[g] >> 8),
                                                                _mm512_load_si512(w + 1), m));
            }
        }
    }
}
/* The vectors v (QS3_TREES x QS3_ROWS, at positions qs3_row) of trees t0 .. t1 - 1 for the QS3_ROWS rows whose
 * bytes are xq (slot s's at xq + s * QS3_ROWS, 32-byte aligned); buf: 8 x QS3_ROWS bytes, 32-byte aligned. */
#define QS3_BCAST(p) _mm256_castps_si256(_mm256_broadcast_ss((const float *)(p)))
__attribute__((target("avx2"))) NOINLINE static void qs3_group(const qs3_t *q, Py_ssize_t t0, Py_ssize_t t1,
                                                               const int8_t *xq, uint64_t *v, uint8_t *buf)
{
    const __m256i ones = _mm256_set1_epi32(-1);
    for (Py_ssize_t t = t0; t < t1; t++) {
        const int64_t *eo = q->eoff + 8 * t;
        for (int o = 0; o < 8; o++) { /* each octant in QS3_ROWS / 32 registers */
            __m256i w[QS3_ROWS / 32];
            for (int r = 0; r < QS3_ROWS / 32; r++) w[r] = ones;
            for (const qs3_e *e = q->e + eo[o], *end = q->e + eo[o + 1]; e < end; e++) {
                const __m256i thr = QS3_BCAST(&e->thr4), left = QS3_BCAST(&e->left4);
                const __m256i *x = (const __m256i *)(xq + e->xoff);
                for (int r = 0; r < QS3_ROWS / 32; r++)
                    w[r] = _mm256_andnot_si256(_mm256_and_si256(_mm256_cmpgt_epi8(_mm256_load_si256(x + r), thr), left), w[r]);
            }
            for (int r = 0; r < QS3_ROWS / 32; r++) _mm256_store_si256((__m256i *)(buf + o * QS3_ROWS) + r, w[r]);
        }
        uint64_t *vt = v + (t - t0) * QS3_ROWS;
        for (int h = 0; h < QS3_ROWS; h += 32) { /* 8 octants x 32 rows of bytes -> 32 rows' 64-bit vectors */
            __m256i b[8];
            for (int o = 0; o < 8; o++) b[o] = _mm256_load_si256((const __m256i *)(buf + o * QS3_ROWS + h));
            const __m256i a01l = _mm256_unpacklo_epi8(b[0], b[1]), a01h = _mm256_unpackhi_epi8(b[0], b[1]);
            const __m256i a23l = _mm256_unpacklo_epi8(b[2], b[3]), a23h = _mm256_unpackhi_epi8(b[2], b[3]);
            const __m256i a45l = _mm256_unpacklo_epi8(b[4], b[5]), a45h = _mm256_unpackhi_epi8(b[4], b[5]);
            const __m256i a67l = _mm256_unpacklo_epi8(b[6], b[7]), a67h = _mm256_unpackhi_epi8(b[6], b[7]);
            const __m256i c0 = _mm256_unpacklo_epi16(a01l, a23l), c1 = _mm256_unpackhi_epi16(a01l, a23l);
            const __m256i c2 = _mm256_unpacklo_epi16(a01h, a23h), c3 = _mm256_unpackhi_epi16(a01h, a23h);
            const __m256i d0 = _mm256_unpacklo_epi16(a45l, a67l), d1 = _mm256_unpackhi_epi16(a45l, a67l);
            const __m256i d2 = _mm256_unpacklo_epi16(a45h, a67h), d3 = _mm256_unpackhi_epi16(a45h, a67h);
            __m256i *o = (__m256i *)(vt + h);
            _mm256_store_si256(o + 0, _mm256_unpacklo_epi32(c0, d0));
            _mm256_store_si256(o + 1, _mm256_unpackhi_epi32(c0, d0));
            _mm256_store_si256(o + 2, _mm256_unpacklo_epi32(c1, d1));
            _mm256_store_si256(o + 3, _mm256_unpackhi_epi32(c1, d1));
            _mm256_store_si256(o + 4, _mm256_unpacklo_epi32(c2, d2));
            _mm256_store_si256(o + 5, _mm256_unpackhi_epi32(c2, d2));
            _mm256_store_si256(o + 6, _mm256_unpacklo_epi32(c3, d3));
            _mm256_store_si256(o + 7, _mm256_unpackhi_epi32(c3, d3));
        }
    }
}
#undef QS3_BCAST

/* The leaf values of trees t0 .. t1 - 1 added, in tree order, to sums (QS3_ROWS doubles, by position) from their
 * vectors v (qs3_group), 4 rows to a register: the exit leaf's index from the lowest set bit (x & -x: one 32-bit
 * half holds it, and its float32 conversion's exponent is the bit's place), capped at the tree's last leaf as
 * qs_rows does, and its value gathered. Each row's sum is its own lane: the same additions as one row at a time. */
__attribute__((target("avx2"))) NOINLINE static void qs3_sum(const qs3_t *q, Py_ssize_t t0, Py_ssize_t t1,
                                                             const uint64_t *v, double *sums)
{
    const __m256i top = _mm256_set1_epi64x((long long)((uint64_t)1 << 63)), zero = _mm256_setzero_si256();
    const __m256i bias = _mm256_setr_epi32(-127, -95, -127, -95, -127, -95, -127, -95); /* exponent -> place */
    const __m256i low = _mm256_set1_epi64x(0xFFFFFFFFll), ff = _mm256_set1_epi32(0xFF);
    for (int p0 = 0; p0 < QS3_ROWS; p0 += 4) {
        __m256d acc = _mm256_loadu_pd(sums + p0);
        for (Py_ssize_t t = t0; t < t1; t++) {
            const __m256i x = _mm256_or_si256(_mm256_load_si256((const __m256i *)(v + (t - t0) * QS3_ROWS + p0)), top);
            const __m256i bit = _mm256_and_si256(x, _mm256_sub_epi64(zero, x));
            const __m256i e = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(bit)), 23), ff);
            const __m256i place = _mm256_andnot_si256(_mm256_cmpeq_epi32(e, zero), _mm256_add_epi32(e, bias));
            const __m256i last = _mm256_set1_epi32((int)(q->lbase[t + 1] - q->lbase[t] - 1));
            const __m256i leaf = _mm256_and_si256(_mm256_min_epi32(_mm256_add_epi32(place, _mm256_srli_epi64(place, 32)), last), low);
            acc = _mm256_add_pd(acc, _mm256_i64gather_pd(q->lval + q->lbase[t], leaf, 8));
        }
        _mm256_storeu_pd(sums + p0, acc);
    }
}
#else
static int qs_cpu(void) { return 0; }
static void qs_group(const qs_t *q, Py_ssize_t n_slots, Py_ssize_t n_trees, const float *xg, Py_ssize_t gstride,
                     uint64_t *v)
{
    (void)q, (void)n_slots, (void)n_trees, (void)xg, (void)gstride, (void)v;
}
static int avx2_cpu(void) { return 0; }
static void qs2_group(const qs2_t *q, Py_ssize_t n_trees, const float *xg, Py_ssize_t gstride, uint64_t *v)
{
    (void)q, (void)n_trees, (void)xg, (void)gstride, (void)v;
}
static void qs3_group(const qs3_t *q, Py_ssize_t t0, Py_ssize_t t1, const int8_t *xq, uint64_t *v, uint8_t *buf)
{
    (void)q, (void)t0, (void)t1, (void)xq, (void)v, (void)buf;
}
static void qs3_sum(const qs3_t *q, Py_ssize_t t0, Py_ssize_t t1, const uint64_t *v, double *sums)
{
    (void)q, (void)t0, (void)t1, (void)v, (void)sums;
}
#endif

/* Which bit vectors this CPU runs: 1, the sorted tables with AVX-512; 2, the tree-order tables with AVX2; 0, none. */
static int qs_kind(void) { return qs_cpu() ? 1 : avx2_cpu() ? 2 : 0; }

/* 1 if this CPU runs the tables of kind qs (a row form built on one CPU may be used on another: SnapStart). */
static int qs_runs(int qs) { return qs == 1 ? qs_cpu() : qs == 2 || qs == 3 ? avx2_cpu() : 0; }

/* 1 if the tree (root, size nodes) is a binary tree in pre-order, each split's left subtree exactly the nodes up
 * to its right child and the root's subtree the whole tree (what the leaves' left-to-right numbering needs), with
 * at most 64 leaves; else 0. A tree whose walks are safe but whose children overlap (a corrupt file the walks
 * still follow) is not one. ext: room for size values. */
static int qs_tree(const node_t *root, int64_t size, int64_t *ext)
{
    int64_t leaves = 0;
    for (int64_t i = size - 1; i >= 0; i--) { /* children come after their parent: ext[i], the subtree's end */
        if (root[i].feature < 0) {
            ext[i] = i + 1;
            leaves++;
            continue;
        }
        const int64_t rc = root[i].right;
        if (rc <= i + 1 || rc >= size || ext[i + 1] != rc) return 0;
        ext[i] = ext[rc];
    }
    return ext[0] == size && leaves <= 64;
}

/* The bit-vector tables for the narrow nodes n8 of a model whose trees have at most 64 leaves each, into q
 * (qs_bytes() of room). 0, or -1: no memory. */
static Py_ssize_t qs_bytes(Py_ssize_t n_slots, Py_ssize_t n_trees, Py_ssize_t n_leaves, Py_ssize_t n_split)
{
    return 8 * (QS_CS(n_slots, n_trees) + 1) + 8 * (n_trees + 1) + 8 * n_leaves + 16 * n_split;
}

typedef struct {
    float thr;
    uint32_t tree;
    uint64_t mask;
} qs_split_t;

static int cmp_split(const void *a, const void *b)
{
    const float x = ((const qs_split_t *)a)->thr, y = ((const qs_split_t *)b)->thr;
    return (x > y) - (x < y);
}

static int qs_build(char *q, const n8_t *n8, const node_t *nodes, const int64_t *offsets, Py_ssize_t n_trees,
                    Py_ssize_t n_slots, Py_ssize_t n_leaves, Py_ssize_t n_split, int64_t largest)
{
    const Py_ssize_t n_cs = QS_CS(n_slots, n_trees);
    int64_t *soff = (int64_t *)q, *lbase = soff + n_cs + 1;
    double *lval = (double *)(lbase + n_trees + 1);
    float *thr = (float *)(lval + n_leaves);
    uint32_t *tree = (uint32_t *)(thr + n_split);
    uint64_t *mask = (uint64_t *)(tree + n_split);
    qs_split_t *sp = malloc(((size_t)n_split + 1) * sizeof(qs_split_t));
    int64_t *before = malloc(((size_t)largest + 1) * sizeof(int64_t)), *pos = calloc((size_t)n_cs + 1, 8);
    if (sp == NULL || before == NULL || pos == NULL) {
        free(sp), free(before), free(pos);
        return -1;
    }
    memset(soff, 0, 8 * ((size_t)n_cs + 1));
    for (Py_ssize_t t = 0; t < n_trees; t++)
        for (int64_t i = offsets[t]; i < offsets[t + 1]; i++)
            if (n8[i].step != 0) soff[t / QS_CHUNK * n_slots + n8[i].slot / XS + 1]++;
    for (Py_ssize_t c = 0; c < n_cs; c++) soff[c + 1] += soff[c], pos[c] = soff[c];
    int64_t leaf = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const int64_t o = offsets[t], size = offsets[t + 1] - o;
        lbase[t] = leaf;
        leaf = tree_leaves(n8 + o, nodes + o, size, before, lval, leaf);
        for (int64_t i = 0; i < size; i++) {
            const n8_t c = n8[o + i];
            if (c.step == 0) continue;
            const int64_t a = before[i + 1], b = before[i + c.step]; /* the left subtree's leaves */
            const uint64_t left = b - a >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << (b - a)) - 1) << a;
            sp[pos[t / QS_CHUNK * n_slots + c.slot / XS]++] = (qs_split_t){c.thr, (uint32_t)t, ~left};
        }
    }
    lbase[n_trees] = leaf;
    for (Py_ssize_t c = 0; c < n_cs; c++) {
        qsort(sp + soff[c], (size_t)(soff[c + 1] - soff[c]), sizeof(qs_split_t), cmp_split);
        for (int64_t i = soff[c]; i < soff[c + 1]; i++) thr[i] = sp[i].thr, tree[i] = sp[i].tree, mask[i] = sp[i].mask;
    }
    free(sp), free(before), free(pos);
    return 0;
}

/* The tree-order tables (qs2_t) into q (qs2_bytes() of room). before: room for the largest tree's size + 1 values. */
static void qs2_build(char *q, const n8_t *n8, const node_t *nodes, const int64_t *offsets, Py_ssize_t n_trees,
                      Py_ssize_t n_leaves, Py_ssize_t n_split, int64_t *before)
{
    int64_t *lbase = (int64_t *)q;
    double *lval = (double *)(lbase + n_trees + 1);
    int32_t *cut = (int32_t *)(lval + n_leaves);
    uint64_t *keep = (uint64_t *)(cut + 2 * n_trees);
    float *thr = (float *)(keep + n_split);
    uint32_t *slot = (uint32_t *)(thr + n_split);
    int64_t leaf = 0, split = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const int64_t o = offsets[t], size = offsets[t + 1] - o;
        lbase[t] = leaf;
        leaf = tree_leaves(n8 + o, nodes + o, size, before, lval, leaf);
        int32_t n_side[3] = {0, 0, 0};
        for (int side = 0; side < 3; side++) /* 0: clears leaves 0-31 only; 1: 32-63 only; 2: both */
            for (int64_t i = 0; i < size; i++) {
                const n8_t c = n8[o + i];
                if (c.step == 0) continue;
                const int64_t a = before[i + 1], b = before[i + c.step]; /* the left subtree's leaves */
                if ((b <= 32 ? 0 : a >= 32 ? 1 : 2) != side) continue;
                const uint64_t left = b - a >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << (b - a)) - 1) << a;
                keep[split] = ~left, thr[split] = c.thr, slot[split++] = c.slot;
                n_side[side]++;
            }
        cut[2 * t] = n_side[0], cut[2 * t + 1] = n_side[1];
    }
    lbase[n_trees] = leaf;
}

/* m rows of the block xb (their places map) through every tree by bit vectors, their leaf values added to the
 * job's outputs in tree order (a row's outputs at j->out's row a + map[i]). */
static void qs_rows(const job_t *j, const float *xb, Py_ssize_t S, Py_ssize_t m, Py_ssize_t a, const int32_t *map,
                    uint64_t *v)
{
    const Py_ssize_t T = j->n_trees, K = j->K;
    const int kind = j->rf->qs;
    const qs_t q = kind == 1 ? qs_tables(j->rf_qs, S - 1, T) : (qs_t){0};
    const qs2_t q2 = kind == 2 ? qs2_tables(j->rf_qs, T) : (qs2_t){0};
    const int64_t *lbase = kind == 1 ? q.lbase : q2.lbase;
    const double *lval = kind == 1 ? q.lval : q2.lval;
    for (Py_ssize_t i0 = 0; i0 < m; i0 += QS_ROWS) {
        if (kind == 1) qs_group(&q, S - 1, T, xb + i0 / XS * S * XS, S * XS, v);
        else qs2_group(&q2, T, xb + i0 / XS * S * XS, S * XS, v);
        const int rows = m - i0 < QS_ROWS ? (int)(m - i0) : QS_ROWS;
        for (Py_ssize_t t = 0; t < T; t++) {
            const int64_t base = lbase[t], last = lbase[t + 1] - base - 1;
            const int32_t g = j->rf_groups[t];
            for (int k = 0; k < rows; k++) {
                const uint64_t bits = v[t * QS_ROWS + k];
                int64_t leaf = bits ? __builtin_ctzll(bits) : last;
                if (leaf > last) leaf = last;
                const double value = lval[base + leaf];
                const Py_ssize_t o = (a + map[i0 + k]) * K + g;
                if (j->acc32) ((float *)j->out)[o] += (float)value;
                else ((double *)j->out)[o] += value;
            }
        }
    }
}

/* qs_rows over the byte tables (qs 3): m rows of the block xb (at most cap), QS3_ROWS at a time, their bins as
 * bytes (xq); the trees QS3_TREES at a time, each chunk through every group of the block while its tables are in
 * cache; each row's leaf values added in tree order (one float64 output: in sums, then the row's). v: qs3_room(S,
 * cap) bytes, 64-byte aligned: QS3_TREES x QS3_ROWS vectors, 8 x QS3_ROWS bytes, the rows' sums and bytes. */
static Py_ssize_t qs3_room(Py_ssize_t S, Py_ssize_t cap)
{
    return 8 * QS3_TREES * QS3_ROWS + 8 * QS3_ROWS + 8 * cap + (S * cap + 63) / 64 * 64;
}

static void qs3_rows(const job_t *j, const float *xb, Py_ssize_t S, Py_ssize_t m, Py_ssize_t a, const int32_t *map,
                     uint64_t *v, Py_ssize_t cap)
{
    const Py_ssize_t T = j->n_trees, K = j->K, G = (m + QS3_ROWS - 1) / QS3_ROWS; /* groups */
    const qs3_t q = qs3_tables(j->rf_qs, T);
    uint8_t *buf = (uint8_t *)(v + QS3_TREES * QS3_ROWS);
    double *sums = (double *)(buf + 8 * QS3_ROWS);
    int8_t *xq = (int8_t *)(sums + cap);
    const int summed = K == 1 && !j->acc32; /* one float64 output: each row's sum in sums, by position */
    for (Py_ssize_t g = 0; g < G; g++) {
        const float *xg = xb + g * QS3_ROWS / XS * S * XS;
        int8_t *xqg = xq + g * (S - 1) * QS3_ROWS;
        for (Py_ssize_t s = 0; s < S - 1; s++) /* each slot's bins as bytes (see above) */
            for (int k = 0; k < QS3_ROWS; k++) {
                const float x = xg[k / XS * S * XS + k % XS + s * XS];
                xqg[s * QS3_ROWS + k] = isnan(x) ? 127 : x < 0.0f ? -128 : x > 255.0f ? 127 : (int8_t)((int)x - 128);
            }
        for (int p = 0; p < QS3_ROWS && summed; p++) {
            const Py_ssize_t k = g * QS3_ROWS + qs3_row(p);
            sums[g * QS3_ROWS + p] = ((double *)j->out)[a + map[k < m ? k : 0]];
        }
    }
    for (Py_ssize_t t0 = 0; t0 < T; t0 += QS3_TREES) {
        const Py_ssize_t t1 = T - t0 < QS3_TREES ? T : t0 + QS3_TREES;
        for (Py_ssize_t g = 0; g < G; g++) {
            qs3_group(&q, t0, t1, xq + g * (S - 1) * QS3_ROWS, v, buf);
            if (summed) { /* 4 rows to a register (2.6 -> 2.3 ns per tree-row against one at a time) */
                qs3_sum(&q, t0, t1, v, sums + g * QS3_ROWS);
                continue;
            }
            for (Py_ssize_t t = t0; t < t1; t++) { /* several outputs, or float32 sums: tree by tree */
                const uint64_t *vt = v + (t - t0) * QS3_ROWS;
                const int64_t last = q.lbase[t + 1] - q.lbase[t] - 1;
                const double *lv = q.lval + q.lbase[t];
                const int32_t out = j->rf_groups[t];
                for (int p = 0; p < QS3_ROWS; p++) {
                    const Py_ssize_t k = g * QS3_ROWS + qs3_row(p);
                    if (k >= m) continue;
                    const int64_t leaf = __builtin_ctzll(vt[p] | (uint64_t)1 << 63);
                    const double value = lv[leaf < last ? leaf : last];
                    const Py_ssize_t o = (a + map[k]) * K + out;
                    if (j->acc32) ((float *)j->out)[o] += (float)value;
                    else ((double *)j->out)[o] += value;
                }
            }
        }
    }
    for (Py_ssize_t g = 0; g < G && summed; g++)
        for (int p = 0; p < QS3_ROWS; p++) {
            const Py_ssize_t k = g * QS3_ROWS + qs3_row(p);
            if (k < m) ((double *)j->out)[a + map[k]] = sums[g * QS3_ROWS + p];
        }
}

/* Rows r0 .. r0 + n - 1 (n <= ROW_BLOCK) over the narrow row form, s->xb_rows at a time; a row the row form does
 * not take (rf_prep) goes through trees_row. OK, or its problem. */
static int rf_block(const job_t *j, Py_ssize_t r0, Py_ssize_t n, scratch_t *s, Py_ssize_t *bad_tree)
{
    const rfhead_t *h = j->rf;
    const Py_ssize_t K = j->K, S = (j->v2 ? 2 : 1) * j->n_features + 1; /* slots per row (rf_prep) */
    void (*walk)(const n8_t *, int32_t, Py_ssize_t, const float *, Py_ssize_t, const node_t *, const double *,
                 double *) =
        h->lockstep ? blk_lock : blk_fill; /* lock-step stopping when a group's walks all end: 1.5x slower */
    for (Py_ssize_t a = r0; a < r0 + n; a += s->xb_rows) {
        const Py_ssize_t b = a + s->xb_rows < r0 + n ? a + s->xb_rows : r0 + n;
        Py_ssize_t m = 0;
        for (Py_ssize_t r = a; r < b; r++) { /* the block's rows as the row form reads them */
            if (rf_prep(j, r, s->xb + m / XS * S * XS + m % XS) != OK) {
                const int status = trees_row(j, r, s, bad_tree); /* this row takes the checked walks */
                if (status != OK) return status;
                continue;
            }
            s->map[m++] = (int32_t)(r - a);
        }
        if (m == 0) continue;
        for (Py_ssize_t i = m; i % QS_PAD != 0; i++) /* the last group's idle lanes: any values, the last NaN */
            for (Py_ssize_t v = 0; v < S; v++) s->xb[i / XS * S * XS + i % XS + v * XS] = v == S - 1 ? NAN : 0.0f;
        if (s->qv != NULL) {
            if (h->qs == 3) qs3_rows(j, s->xb, S, m, a, s->map, s->qv, s->xb_rows);
            else qs_rows(j, s->xb, S, m, a, s->map, s->qv);
            continue;
        }
        const pf_t *pf = j->rf_pf != NULL ? (const pf_t *)(j->rf_pf + j->n_trees + 1) : NULL;
        /* the walk for this CPU, asked every block (a process may resume on another CPU); COLDBREW_AVX2=0 in the
         * environment: the steps alone (the tests check both) */
#if PF_AVX2
        const char *avx2_env = pf != NULL ? getenv("COLDBREW_AVX2") : NULL;
        void (*pf_walk)(const pf_t *, int32_t, Py_ssize_t, const float *, Py_ssize_t, void *, int) =
            pf != NULL && avx2_cpu() && !(avx2_env != NULL && strcmp(avx2_env, "0") == 0) ? blk_pf_avx2 : blk_pf;
#else
        void (*pf_walk)(const pf_t *, int32_t, Py_ssize_t, const float *, Py_ssize_t, void *, int) = blk_pf;
#endif
        for (Py_ssize_t t = 0; t < j->n_trees; t++) {
            const int64_t o = j->offsets[t];
            const int32_t g = j->rf_groups[t];
            if (pf != NULL) { /* the tree's leaf values, added below in a loop of their own */
                if (t + 1 < j->n_trees) /* the next tree on its way to the first-level cache: 1.1x faster */
                    for (int64_t e = j->rf_pf[t + 1]; e < j->rf_pf[t + 2]; e += 8) __builtin_prefetch(pf + e);
                pf_walk(pf + j->rf_pf[t], j->rf_tdepth[t], m, s->xb, S, s->vals, j->acc32);
            } else {
                walk(j->rf_nodes + o, j->rf_tdepth[t], m, s->xb, S, h->leaf32 ? NULL : j->nodes + o,
                     h->leaf32 == 2 ? j->rf_lv : NULL, s->vals);
            }
            /* the perfect walk's values are float32 when the outputs are, the general walk's always float64 */
            add_leaves(j->acc32, pf != NULL && j->acc32, s->vals, m, m == b - a ? NULL : s->map, K,
                       j->acc32 ? (void *)((float *)j->out + a * K + g) : (void *)((double *)j->out + a * K + g));
        }
    }
    return OK;
}

/* The rows r0 .. r1 - 1 run by one thread: all of them, or (next not NULL) blocks of DYN_ROWS taken in turn from
 * the shared counter *next, with the other threads (failed: set once a block fails; first_bad: its first row). */
typedef struct {
    const job_t *job;
    Py_ssize_t r0, r1;
    int status;
    Py_ssize_t bad_tree;
    Py_ssize_t *next;
    int *failed;
    Py_ssize_t first_bad;
} part_t;

/* Rows per block handed out to the threads: small enough that a thread which starts late (a VM's idle vCPU woken:
 * measured ~2 ms here) leaves its share to the others, large enough for the bit vectors' blocks of rows. */
#define DYN_ROWS 1024

static void *run_part(void *arg)
{
    part_t *p = arg;
    scratch_t *s = malloc(sizeof(scratch_t));
    if (s == NULL) { p->status = NO_MEMORY; return NULL; }
    s->ct = NULL, s->depth = NULL, s->xf = NULL, s->xb = NULL, s->map = NULL, s->xb_rows = 0, s->qv = NULL;
    const int blocks = p->job->rf != NULL && p->job->rf->narrow && p->r1 - p->r0 >= FEW_ROWS;
    if (p->job->rf != NULL && p->job->rf->narrow) {
        s->xf = malloc((2 * (size_t)p->job->n_features + 1) * XS * sizeof(float));
        if (s->xf == NULL) { free(s); p->status = NO_MEMORY; return NULL; }
    }
    if (blocks) { /* rows of about 48 KiB in all, a whole number of bit-vector groups, at most a block */
        const Py_ssize_t row_bytes = 4 * ((p->job->v2 ? 2 : 1) * p->job->n_features + 1);
        /* 48 KiB: measured a little faster than 12-24, as 96; the perfect trees' walks read their trees once per
         * block from the last-level cache, and larger blocks were faster for them (XGBoost 2,000 x d8 on Zen 3:
         * 5.8 -> 5.1 ns/tree-row from 48 to 384 KiB) */
        /* bit vectors of the kind this CPU runs (a process resumed on another CPU walks) */
        const int qs = p->job->rf_qs != NULL && qs_runs(p->job->rf->qs), qs3 = qs && p->job->rf->qs == 3;
        s->xb_rows = (p->job->rf_pf != NULL ? PF_XB_BYTES : qs3 ? QS3_XB_BYTES : XB_BYTES) / row_bytes / QS_PAD * QS_PAD;
        if (s->xb_rows < QS_PAD) s->xb_rows = QS_PAD;
        if (s->xb_rows > ROW_BLOCK) s->xb_rows = ROW_BLOCK;
        s->xb = malloc((size_t)(s->xb_rows * row_bytes));
        s->map = malloc((size_t)s->xb_rows * sizeof(int32_t));
        if (qs) /* 64-byte aligned: a tree's vectors are one cache line */
            s->qv = aligned_alloc(64, qs3 ? (size_t)qs3_room((p->job->v2 ? 2 : 1) * p->job->n_features + 1, s->xb_rows)
                                          : (size_t)p->job->n_trees * QS_ROWS * sizeof(uint64_t));
        if (s->xb == NULL || s->map == NULL || (qs && s->qv == NULL)) {
            free(s->xb), free(s->map), free(s->xf), free(s->qv), free(s);
            p->status = NO_MEMORY;
            return NULL;
        }
    }
    if (p->job->ct == NULL && p->r1 - p->r0 >= CLEAN_ROWS) {
        s->ct = malloc((size_t)p->job->max_tree * sizeof(cnode_t));
        s->depth = malloc((size_t)p->job->max_tree * sizeof(int32_t));
        if (s->depth == NULL) { free(s->ct); s->ct = NULL; }
    }
    p->status = OK;
    Py_ssize_t r = p->r0, end = p->next != NULL ? p->r0 : p->r1; /* the rows taken and not yet run: r .. end - 1 */
    for (;;) {
        if (r >= end) { /* the next block of the shared counter's, unless a block failed */
            if (p->next == NULL || __atomic_load_n(p->failed, __ATOMIC_RELAXED)) break;
            r = __atomic_fetch_add(p->next, DYN_ROWS, __ATOMIC_RELAXED);
            if (r >= p->r1) break;
            end = r + DYN_ROWS < p->r1 ? r + DYN_ROWS : p->r1;
        }
        const Py_ssize_t n = end - r < ROW_BLOCK ? end - r : ROW_BLOCK;
        if (n < FEW_ROWS) {
            for (Py_ssize_t i = r; i < r + n && p->status == OK; i++) {
                if (p->job->rf == NULL || rf_row(p->job, i, s->vals, s->xf) != OK)
                    p->status = trees_row(p->job, i, s, &p->bad_tree);
            }
        } else if (blocks) {
            p->status = rf_block(p->job, r, n, s, &p->bad_tree);
        } else {
            p->status = rows_block(p->job, r, n, s, &p->bad_tree);
        }
        if (p->status != OK) { /* every block before this one was taken first, and is run to its end */
            p->first_bad = r;
            if (p->failed != NULL) __atomic_store_n(p->failed, 1, __ATOMIC_RELAXED);
            break;
        }
        r += n;
    }
    free(s->xb);
    free(s->map);
    free(s->qv);
    free(s->ct);
    free(s->depth);
    free(s->xf);
    free(s);
    return NULL;
}

#define MAX_THREADS 64
#define MIN_ROWS_PER_THREAD 64

/* ---- the kept helper threads ------------------------------------------------------------------------------
 * A batch's helper threads are kept between calls: a thread created per call started ~2 ms late on this VM (an
 * idle vCPU woken), a fifth of a 10,000-row batch's time. After a job a helper spins for POOL_SPIN_NS looking for
 * the next one (back-to-back batches find it awake; no spinning when there are more threads than CPUs), then sleeps
 * on a condition variable, and ends after POOL_IDLE_NS without a job (no threads linger in an idle process: a fork
 * then copies a single-threaded one). A helper takes part in a job only if it claims its share before the calling
 * thread has run out of rows: the caller then cancels every share not claimed and does not wait for a helper still
 * waking up (the rows go to whoever takes them from the shared counter, so the results do not depend on who ran
 * them). One job at a time holds the pool; a call that finds it busy (another Python thread's batch) starts threads
 * of its own. A forked child starts helpers of its own (its parent's are not in it). */
#define POOL_SPIN_NS 2000000u       /* 2 ms */
#define POOL_IDLE_NS 1000000000u    /* 1 s */
enum { SHARE_IDLE = 0, SHARE_OPEN, SHARE_TAKEN, SHARE_DONE }; /* a share: IDLE (cancelled, or no job) */
typedef struct {
    pthread_mutex_t busy;   /* held by the job that has the pool */
    pthread_mutex_t m;      /* guards alive; with wake and done: helpers asleep, a caller asleep waiting for a share */
    pthread_cond_t wake, done;
    unsigned gen;           /* + 1 for every job posted (atomic) */
    part_t *parts;          /* the job's shares: helper i runs parts[i] once it has claimed share[i] */
    unsigned share[MAX_THREADS]; /* SHARE_* (atomic); shares 1 .. n - 1 are the helpers' */
    int alive[MAX_THREADS]; /* helper i is running (under m) */
    unsigned spin_ns;       /* how long a helper spins after a job (atomic) */
    long n_cpus;
    pid_t pid;              /* the process that started them */
} pool_t;
static pool_t pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      PTHREAD_COND_INITIALIZER, 0, NULL, {0}, {0}, 0, 1, 0};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin for up to spin_ns while *word == old; its value then. */
static unsigned pool_spin(const unsigned *word, unsigned old, uint64_t spin_ns)
{
    unsigned v;
    uint64_t t0 = 0;
    for (unsigned i = 0; (v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == old && spin_ns; i++) {
        if ((i & 63) == 0) {
            const uint64_t t = now_ns();
            if (t0 == 0) t0 = t;
            else if (t - t0 > spin_ns) break;
        }
        cpu_relax();
    }
    return v;
}

static void pool_broadcast(pthread_cond_t *cv)
{
    pthread_mutex_lock(&pool.m);
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(&pool.m);
}

static void *pool_helper(void *arg)
{
    const int i = (int)(intptr_t)arg;
    unsigned seen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE); /* (a job posted already: its share is open) */
    for (int first = 1;; first = 0) {
        unsigned v = first ? seen + 1 : pool_spin(&pool.gen, seen, __atomic_load_n(&pool.spin_ns, __ATOMIC_RELAXED));
        if (!first && v == seen) { /* asleep until the next job, or the end of this helper */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += POOL_IDLE_NS / 1000000000u;
            pthread_mutex_lock(&pool.m);
            while ((v = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE)) == seen) {
                if (pthread_cond_timedwait(&pool.wake, &pool.m, &until) != 0
                    && __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == seen) {
                    pool.alive[i] = 0; /* (a job posted from now on starts a new helper i) */
                    pthread_mutex_unlock(&pool.m);
                    return NULL;
                }
            }
            pthread_mutex_unlock(&pool.m);
        }
        if (!first) seen = v;
        unsigned open = SHARE_OPEN; /* the claim: the job's parts were written before its shares opened */
        if (__atomic_compare_exchange_n(&pool.share[i], &open, SHARE_TAKEN, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            run_part(&pool.parts[i]);
            __atomic_store_n(&pool.share[i], SHARE_DONE, __ATOMIC_RELEASE);
            pool_broadcast(&pool.done);
        }
    }
}

/* Run the shares parts[0 .. n - 1] (2 <= n <= MAX_THREADS, taking rows from one shared counter): parts[0] here,
 * the others on the pool's helpers that claim them in time. 0 if the pool was busy (nothing run), else 1. */
static int pool_run(part_t *parts, int n)
{
    if (pthread_mutex_trylock(&pool.busy) != 0) return 0;
    if (pool.pid != getpid()) { /* first use, or a forked child */
        const pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
        pthread_condattr_t ca;
        pool.m = m;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the helpers' idle deadline */
        pthread_cond_init(&pool.wake, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&pool.done, NULL);
        pool.gen = 0, pool.pid = getpid(), pool.n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
        for (int i = 0; i < MAX_THREADS; i++) pool.share[i] = SHARE_IDLE, pool.alive[i] = 0;
    }
    __atomic_store_n(&pool.spin_ns, n <= pool.n_cpus ? POOL_SPIN_NS : 0, __ATOMIC_RELAXED);
    pool.parts = parts; /* every share is IDLE: no helper reads this until its share opens */
    for (int i = 1; i < n; i++) __atomic_store_n(&pool.share[i], SHARE_OPEN, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool.m);
    pthread_attr_t attr;
    int have_attr = 0;
    for (int i = 1; i < n; i++) {
        if (pool.alive[i]) continue;
        if (!have_attr) {
            if (pthread_attr_init(&attr) != 0) break;
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            have_attr = 1;
        }
        pthread_t id; /* (none to be had: its share is cancelled below) */
        pool.alive[i] = pthread_create(&id, &attr, pool_helper, (void *)(intptr_t)i) == 0;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    __atomic_add_fetch(&pool.gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.m);
    run_part(&parts[0]);
    for (int i = 1; i < n; i++) { /* cancel the shares not claimed (their helpers late or missing), wait for the rest */
        unsigned open = SHARE_OPEN;
        if (__atomic_compare_exchange_n(&pool.share[i], &open, SHARE_IDLE, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        if (pool_spin(&pool.share[i], SHARE_TAKEN, POOL_SPIN_NS) == SHARE_TAKEN) {
            pthread_mutex_lock(&pool.m);
            while (__atomic_load_n(&pool.share[i], __ATOMIC_ACQUIRE) == SHARE_TAKEN) pthread_cond_wait(&pool.done, &pool.m);
            pthread_mutex_unlock(&pool.m);
        }
        __atomic_store_n(&pool.share[i], SHARE_IDLE, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&pool.busy);
    return 1;
}

/* Run the job over all rows on up to `threads` threads (each a contiguous share of the rows; a row's result does
 * not depend on the split), without the GIL. 0, or -1 with a ValueError naming the first share's problem. */
static int report(const job_t *job, const part_t *parts, Py_ssize_t n_parts);

static int run_job(job_t *job, Py_ssize_t n_rows, Py_ssize_t threads)
{
    if (job->rf != NULL && n_rows < FEW_ROWS) { /* a few rows over the row form: no scratch, no thread */
        double vals[ROW_BLOCK];
        float xs[(2 * 16 + 1) * XS]; /* room for rf_prep's copy of a row of up to 16 features, else malloc'd */
        float *xf = job->n_features <= 16 ? xs : NULL;
        const int need_xf = job->rf->narrow;
        part_t part = {job, 0, 0, OK, -1};
        Py_BEGIN_ALLOW_THREADS
        if (need_xf && xf == NULL) xf = malloc((2 * (size_t)job->n_features + 1) * XS * sizeof(float));
        for (Py_ssize_t r = 0; r < n_rows && part.status == OK; r++) {
            if ((need_xf && xf == NULL) || rf_row(job, r, vals, xf) != OK) { /* this row takes the checked path */
                part.r0 = r, part.r1 = r + 1;
                run_part(&part);
            }
        }
        if (xf != xs) free(xf);
        Py_END_ALLOW_THREADS
        return report(job, &part, 1);
    }
    if (job->rf_pf != NULL && !pf_ok(job)) job->rf_pf = NULL; /* then the walks */
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > n_rows / MIN_ROWS_PER_THREAD) threads = n_rows / MIN_ROWS_PER_THREAD;
    if (threads < 1) threads = 1;
    part_t parts[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    job->max_tree = 1; /* for the blocks' compact copies (not needed with the model's compact form) */
    for (Py_ssize_t t = 0; job->ct == NULL && n_rows >= CLEAN_ROWS && t < job->n_trees; t++) {
        const int64_t size = job->offsets[t + 1] - job->offsets[t];
        if (size > job->max_tree) job->max_tree = size;
    }
    Py_ssize_t next = 0; /* the threads take blocks of DYN_ROWS rows in turn (one thread: all the rows) */
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < threads; i++)
        parts[i] = (part_t){job, 0, n_rows, OK, -1, threads > 1 ? &next : NULL, &failed, -1};
    if (threads == 1) {
        run_part(&parts[0]);
    } else if (!pool_run(parts, (int)threads)) { /* the pool is busy: threads of this call's own */
        for (Py_ssize_t i = 1; i < threads; i++) started[i] = pthread_create(&ids[i], NULL, run_part, &parts[i]) == 0;
        run_part(&parts[0]);
        for (Py_ssize_t i = 1; i < threads; i++)
            if (started[i]) pthread_join(ids[i], NULL); /* (no thread to be had: the others took its rows) */
    }
    Py_END_ALLOW_THREADS
    return report(job, parts, threads);
}

/* 0 if every share ran OK; else -1 with a ValueError naming the problem of the lowest rows that failed, as one
 * thread would have met it first (MemoryError: no memory). */
static int report(const job_t *job, const part_t *parts, Py_ssize_t n_parts)
{
    Py_ssize_t first = -1; /* the share whose failed block has the lowest rows: as if one thread ran them all */
    for (Py_ssize_t i = 0; i < n_parts; i++)
        if (parts[i].status != OK && (first < 0 || parts[i].first_bad < parts[first].first_bad)) first = i;
    for (Py_ssize_t i = first < 0 ? n_parts : first; i < n_parts; i++) {
        if (parts[i].status == OK) continue;
        if (parts[i].status == NO_MEMORY) {
            PyErr_NoMemory();
            return -1;
        }
        if (parts[i].status == BAD_WORK)
            PyErr_Format(PyExc_ValueError, "corrupt model: a row took more than %lld steps, the header's "
                         "n_trees x max_depth", (long long)job->max_steps);
        else if (parts[i].status == BAD_DEPTH)
            PyErr_Format(PyExc_ValueError, "corrupt model: tree %zd is deeper than the format's limit of %d levels",
                         parts[i].bad_tree, MAX_DEPTH);
        else
            PyErr_Format(PyExc_ValueError, "corrupt model: %s in tree %zd", problem(parts[i].status),
                         parts[i].bad_tree);
        return -1;
    }
    return 0;
}


static const int64_t NO_BUDGET = INT64_MAX;

PyDoc_STRVAR(compact_doc,
"compact(nodes, node_flags, tree_offsets, n_features, split_lt) -> bytearray\n\n"
"The model's compact walk-only form, for predict_raw / predict_raw2's compact argument: every tree checked whole\n"
"once, 16 bytes per node then one byte per tree (0: the checked walk; 1, 2: clean, walked without per-node checks,\n"
"one walk at a time or in lanes).\n"
"node_flags: version 2's flags, or None (version 1). O(nodes): built once per loaded model.");

static PyObject *compact(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_flags, *o_offsets;
    Py_ssize_t n_features;
    int lt;
    if (!PyArg_ParseTuple(args, "OOOnp", &o_nodes, &o_flags, &o_offsets, &n_features, &lt)) return NULL;
    if (n_features < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features must be positive");
        return NULL;
    }
    Py_buffer bn, bf = {0}, bo;
    const int v2 = o_flags != Py_None;
    if (get(o_nodes, &bn, 0, "nodes") < 0) return NULL;
    if (get(o_offsets, &bo, 0, "tree_offsets") < 0) { PyBuffer_Release(&bn); return NULL; }
    if (v2 && get(o_flags, &bf, 0, "node_flags") < 0) { PyBuffer_Release(&bo); PyBuffer_Release(&bn); return NULL; }
    PyObject *result = NULL;
    const Py_ssize_t n_nodes = bn.len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = bo.len / (Py_ssize_t)sizeof(int64_t) - 1;
    if (bn.len % (Py_ssize_t)sizeof(node_t) || n_trees < 1 || (v2 && bf.len != n_nodes)) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree");
        goto done;
    }
    const int64_t *offsets = (const int64_t *)bo.buf;
    if (check_offsets(offsets, n_trees, n_nodes) < 0) goto done;
    result = PyByteArray_FromStringAndSize(NULL, n_nodes * (Py_ssize_t)sizeof(cnode_t) + n_trees);
    if (result == NULL) goto done;
    char *dst = PyByteArray_AsString(result);
    job_t job = {.nodes = (const node_t *)bn.buf, .offsets = offsets, .n_trees = n_trees, .n_features = n_features};
    job.v2 = v2;
    job.flags = v2 ? (const uint8_t *)bf.buf : NULL;
    job.lt = lt;
    cnode_t *ct = (cnode_t *)dst;
    uint8_t *clean = (uint8_t *)dst + n_nodes * (Py_ssize_t)sizeof(cnode_t);
    int64_t largest = 1;
    for (Py_ssize_t t = 0; t < n_trees; t++)
        if (offsets[t + 1] - offsets[t] > largest) largest = offsets[t + 1] - offsets[t];
    int32_t *depth = malloc((size_t)largest * sizeof(int32_t));
    if (depth == NULL) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t t = 0; t < n_trees; t++) clean[t] = (uint8_t)compact_tree(&job, t, ct + offsets[t], depth);
    free(depth);
done:
    if (v2) PyBuffer_Release(&bf);
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bn);
    return result;
}

/* The compact form given to a prediction (compact()): its size must be the model's, else a ValueError. */
static int use_compact(job_t *job, const Py_buffer *b, Py_ssize_t n_nodes)
{
    if (b->len != n_nodes * (Py_ssize_t)sizeof(cnode_t) + job->n_trees) {
        PyErr_SetString(PyExc_ValueError, "compact: not this model's compact form");
        return -1;
    }
    job->ct = (const cnode_t *)b->buf;
    job->clean = (const uint8_t *)b->buf + n_nodes * (Py_ssize_t)sizeof(cnode_t);
    return 0;
}

/* x OP t for float32 x as x <= the returned float32 (OP: "<" when lt, else "<="): the largest float32 <= t (or
 * < t); NaN when no finite float32 qualifies or t is NaN (x <= NaN is false, as x OP t is for every finite x). */
static float fold32(double t, int lt)
{
    if (isnan(t)) return NAN;
    float f = (float)t; /* the float32 nearest t: t's neighbour below or above, or t */
    if ((double)f > t) f = nextafterf(f, -INFINITY);
    if (lt && (double)f == t) f = nextafterf(f, -INFINITY);
    return f == -INFINITY ? NAN : f;
}

/* Where a row form's narrow nodes start: after its header, each tree's output and each LANES trees' deepest leaf. */
static Py_ssize_t rf_start(Py_ssize_t n_trees)
{
    const Py_ssize_t head = (Py_ssize_t)sizeof(rfhead_t) + 4 * (2 * n_trees + (n_trees + RF_LANES - 1) / RF_LANES);
    return (head + 7) / 8 * 8;
}

PyDoc_STRVAR(rowform_doc,
"rowform(nodes, node_flags, tree_offsets, tree_groups, n_features, n_outputs, split_lt, narrow) -> bytearray | None\n\n"
"The model's row form, for predict_raw / predict_raw2's rowform argument (one row at a time): every tree checked\n"
"whole once (None if one is not clean, as compact() says, has an output group out of range, a non-finite version\n"
"1 leaf or a depth at the format's limit: such a model keeps the checked walks). narrow: the rows are float32\n"
"values (version 1, input_dtype float32), so the form holds 8-byte nodes with float32 thresholds (when the\n"
"features and steps fit); else it walks the compact form. node_flags, tree_groups: version 2's, or None.");

static PyObject *rowform(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_flags, *o_offsets, *o_groups;
    Py_ssize_t n_features, K;
    int lt, narrow;
    if (!PyArg_ParseTuple(args, "OOOOnnpp", &o_nodes, &o_flags, &o_offsets, &o_groups, &n_features, &K, &lt, &narrow))
        return NULL;
    if (n_features < 1 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features and n_outputs must be positive");
        return NULL;
    }
    const int v2 = o_flags != Py_None;
    if (v2 != (o_groups != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "node_flags and tree_groups: both or neither");
        return NULL;
    }
    Py_buffer bn, bo, bf = {0}, bg = {0};
    if (get(o_nodes, &bn, 0, "nodes") < 0) return NULL;
    if (get(o_offsets, &bo, 0, "tree_offsets") < 0) { PyBuffer_Release(&bn); return NULL; }
    int got_f = 0, got_g = 0;
    PyObject *result = NULL;
    cnode_t *tmp = NULL;
    int32_t *depth = NULL;
    int64_t *binoff = NULL, *before = NULL; /* before: the bit-vector tables' leaf counts (qs 2, 3) */
    double *binv = NULL;
    if (v2) {
        if (get(o_flags, &bf, 0, "node_flags") < 0) goto done;
        got_f = 1;
        if (get(o_groups, &bg, 0, "tree_groups") < 0) goto done;
        got_g = 1;
    }
    const Py_ssize_t n_nodes = bn.len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = bo.len / (Py_ssize_t)sizeof(int64_t) - 1;
    if (bn.len % (Py_ssize_t)sizeof(node_t) || n_trees < 1
        || (v2 && (bf.len != n_nodes || bg.len != n_trees * (Py_ssize_t)sizeof(int32_t)))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree");
        goto done;
    }
    const int64_t *offsets = (const int64_t *)bo.buf;
    if (check_offsets(offsets, n_trees, n_nodes) < 0) goto done;
    const node_t *nodes = (const node_t *)bn.buf;
    job_t job = {.nodes = nodes, .offsets = offsets, .n_trees = n_trees, .n_features = n_features};
    job.v2 = v2;
    job.flags = v2 ? (const uint8_t *)bf.buf : NULL;
    job.lt = lt;
    /* narrow nodes: the feature field, the missing-value bit and the step fit 32 bits */
    int64_t largest = 1, max_step = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++)
        if (offsets[t + 1] - offsets[t] > largest) largest = offsets[t + 1] - offsets[t];
    for (Py_ssize_t i = 0; i < n_nodes; i++)
        if (nodes[i].feature >= 0 && nodes[i].right - i > max_step) max_step = nodes[i].right - (int64_t)i;
    int bins = v2 && !narrow; /* float64 rows: each binned first, the nodes holding their thresholds' ranks */
    if (bins) narrow = 1;
    if ((2 * n_features + 1) * XS > UINT16_MAX || max_step > UINT16_MAX) narrow = 0, bins = 0; /* n8_t's fields */
    if (!v2 && !narrow) { /* version 1 rows are float32: only the narrow walks read them */
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t n_bins = 0;
    if (bins) {
        const int status = rf_bin_table(nodes, n_nodes, n_features, &binoff, &binv, &n_bins);
        if (status < 0) {
            PyErr_NoMemory();
            goto done;
        }
        if (status == 0) narrow = 0, bins = 0; /* a NaN threshold, or too many to rank in a float32 */
    }
    int leaf32 = narrow; /* every leaf value a float32: the leaves hold them; else a table of them (leaf32 2) */
    Py_ssize_t n_leaves = 0;
    for (Py_ssize_t i = 0; narrow && i < n_nodes; i++) {
        if (nodes[i].feature >= 0) continue;
        n_leaves++;
        if ((double)(float)nodes[i].value != nodes[i].value) leaf32 = 2;
    }
    if (leaf32 == 2 && n_leaves > (Py_ssize_t)LV_MASK) leaf32 = 0;
    const Py_ssize_t n_lv = leaf32 == 2 ? n_leaves + 1 : 0; /* the index of the last value, then the values */
    /* bit vectors for batches: every tree at most 64 leaves, no NaN threshold (the splits are sorted); the
     * environment's COLDBREW_QS=0 turns them off (the walks then serve batches too: the tests check both) */
    const char *qs_env = getenv("COLDBREW_QS");
    int qs = narrow && !(qs_env != NULL && strcmp(qs_env, "0") == 0) ? qs_kind() : 0;
    for (Py_ssize_t i = 0; qs && !bins && i < n_nodes; i++)
        if (nodes[i].feature >= 0 && isnan(fold32(nodes[i].value, lt))) qs = 0;
    int64_t *ext = qs ? malloc((size_t)largest * sizeof(int64_t)) : NULL;
    if (qs && ext == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t t = 0; qs && t < n_trees; t++)
        if (!qs_tree(nodes + offsets[t], offsets[t + 1] - offsets[t], ext)) qs = 0;
    free(ext);
    /* byte tables (qs 3) where AVX2 runs the bit vectors and the bins fit bytes; COLDBREW_QS=2: the float tables */
    const int qs_want = qs_env != NULL && qs_env[0] >= '1' && qs_env[0] <= '3' && qs_env[1] == 0 ? qs_env[0] - '0' : 0;
    /* the AVX2 tables unless the AVX-512 ones are asked for (COLDBREW_QS=1): on Zen 4 (AVX-512) the AVX2 float
     * tables measured 2x faster than the AVX-512 ones, the byte tables 2.5x (LightGBM 500 x 63: 7.5, 3.8, 3.0 ns) */
    if (qs == 1 && qs_want != 1 && avx2_cpu()) qs = 2;
    int qs3 = qs == 2 && bins && (qs_want == 0 || qs_want == 3);
    for (Py_ssize_t f = 0; qs3 && f < n_features; f++)
        if (binoff[f + 1] - binoff[f] > QS3_MAX_THR) qs3 = 0;
    int64_t n_entries = 0;
    before = qs ? malloc(((size_t)largest + 1) * sizeof(int64_t)) : NULL;
    if (qs && before == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (qs3) qs = 3, n_entries = qs3_count(nodes, offsets, n_trees, before);
    const Py_ssize_t n_slots = (v2 ? 2 : 1) * n_features;
    const Py_ssize_t qsb = qs == 1   ? qs_bytes(n_slots, n_trees, n_leaves, n_nodes - n_leaves)
                           : qs == 2 ? qs2_bytes(n_trees, n_leaves, n_nodes - n_leaves)
                           : qs == 3 ? qs3_bytes(n_trees, n_leaves, n_entries)
                                     : 0;
    const Py_ssize_t start = rf_start(n_trees);
    const Py_ssize_t bin_start = start + (narrow ? n_nodes * (Py_ssize_t)sizeof(n8_t) : 0);
    const Py_ssize_t qs_start = bin_start + (bins ? 8 * (n_features + 1 + n_bins) : 0);
    const Py_ssize_t lv_start = qs_start + qsb;
    result = PyByteArray_FromStringAndSize(NULL, lv_start + 8 * n_lv);
    tmp = malloc((size_t)largest * sizeof(cnode_t));
    depth = malloc((size_t)largest * sizeof(int32_t));
    if (result == NULL || tmp == NULL || depth == NULL) {
        if (result != NULL) PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    char *dst = PyByteArray_AsString(result);
    memset(dst, 0, (size_t)start);
    rfhead_t *h = (rfhead_t *)dst;
    int32_t *groups = (int32_t *)(dst + sizeof(rfhead_t));
    int32_t *tdepth = groups + n_trees;
    int32_t *gdepth = tdepth + n_trees;
    n8_t *n8 = (n8_t *)(dst + start);
    if (bins) {
        memcpy(dst + bin_start, binoff, 8 * (size_t)(n_features + 1));
        memcpy(dst + bin_start + 8 * (n_features + 1), binv, 8 * (size_t)n_bins);
    }
    memcpy(h->magic, "cbrowf2", 8);
    h->n_trees = n_trees, h->n_nodes = n_nodes, h->n_features = n_features, h->K = K;
    h->narrow = narrow, h->lockstep = 1, h->spread = XS, h->v2 = v2, h->bins = bins, h->leaf32 = leaf32, h->n_lv = n_lv;
    h->qs = qs, h->qs_bytes = qsb;
    double *lv = (double *)(dst + lv_start) + 1;
    if (n_lv) lv[-1] = (double)(n_leaves - 1);
    Py_ssize_t next_leaf = 0;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const int how = compact_tree(&job, t, tmp, depth);
        const int64_t size = offsets[t + 1] - offsets[t];
        const node_t *root = nodes + offsets[t];
        int32_t deepest = 0;
        for (int64_t i = 0; i < size; i++) {
            if (depth[i] > deepest) deepest = depth[i];
            if (!v2 && root[i].feature < 0 && !isfinite(root[i].value)) goto refuse; /* add_leaf refuses it */
        }
        const int32_t g = v2 ? ((const int32_t *)bg.buf)[t] : (int32_t)(t % K);
        if (how == CHECKED || deepest >= MAX_DEPTH || g < 0 || g >= K) goto refuse;
        if (how != CLEAN_LANES) h->lockstep = 0;
        h->steps += deepest;
        groups[t] = g;
        tdepth[t] = deepest;
        if (deepest > gdepth[t / RF_LANES]) gdepth[t / RF_LANES] = deepest;
        for (int64_t i = 0; narrow && i < size; i++) {
            const cnode_t c = tmp[i];
            if (c.step == 0) {
                const uint16_t nan_slot = (uint16_t)((v2 ? 2 : 1) * n_features * XS);
                if (leaf32 == 2) { /* a quiet NaN carrying the leaf's index into lv */
                    const uint32_t bits = 0x7FC00000u | (uint32_t)next_leaf;
                    float nan_i;
                    memcpy(&nan_i, &bits, sizeof nan_i);
                    lv[next_leaf++] = root[i].value;
                    n8[offsets[t] + i] = (n8_t){nan_i, 0, 0};
                } else {
                    n8[offsets[t] + i] = leaf32 ? (n8_t){(float)root[i].value, nan_slot, 0} : IDLE8;
                }
                continue;
            }
            /* a node sending NaN left reads the row's second copy, NaN as -infinity: -inf <= thr holds unless thr
             * is NaN, which the fold gives only when no finite x goes left; -inf then sends only NaN left */
            const uint32_t f = c.f & ~NAN_LEFT, nan_left = c.f >> 31;
            float thr;
            if (bins) { /* the threshold's rank among its feature's: x OP t_k iff bin(x) <= k (rf_bin) */
                thr = (float)count_below(binv + binoff[f], binoff[f + 1] - binoff[f], c.thr, 0);
            } else {
                thr = fold32(c.thr, lt);
                if (nan_left && isnan(thr)) thr = -INFINITY;
            }
            const uint32_t slot = (f + (nan_left ? (uint32_t)n_features : 0)) * XS;
            n8[offsets[t] + i] = (n8_t){thr, (uint16_t)slot, (uint16_t)c.step};
        }
    }
    /* perfect trees: every tree at most PF_MAX_DEPTH deep, padded to at most PF_MAX_RATIO x the nodes in all */
    int64_t pf_entries = 0;
    int pf = narrow && !qs && !(qs_env != NULL && strcmp(qs_env, "0") == 0); /* bit vectors first */
    for (Py_ssize_t t = 0; pf && t < n_trees; t++) {
        if (tdepth[t] > PF_MAX_DEPTH) pf = 0;
        else pf_entries += (int64_t)2 << tdepth[t];
    }
    if (pf && pf_entries <= PF_MAX_RATIO * (int64_t)n_nodes) {
        const Py_ssize_t at = PyByteArray_Size(result);
        if (PyByteArray_Resize(result, at + 8 * (n_trees + 1 + pf_entries)) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        dst = PyByteArray_AsString(result), h = (rfhead_t *)dst, n8 = (n8_t *)(dst + start);
        int64_t *pf_off = (int64_t *)(dst + at);
        pf_t *trees = (pf_t *)(pf_off + n_trees + 1);
        memset(trees, 0, 8 * (size_t)pf_entries);
        pf_off[0] = 0;
        for (Py_ssize_t t = 0; t < n_trees; t++) {
            const int32_t D = ((const int32_t *)(dst + sizeof(rfhead_t)))[n_trees + t];
            pf_off[t + 1] = pf_off[t] + ((int64_t)2 << D);
            pf_fill(trees + pf_off[t], n8 + offsets[t], nodes + offsets[t], 0, 1, 0, D);
        }
        h->pf_bytes = 8 * (n_trees + 1 + pf_entries);
    }
    if (qs == 1 && qs_build(dst + qs_start, n8, nodes, offsets, n_trees, n_slots, n_leaves, n_nodes - n_leaves, largest) < 0) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }
    if (qs == 2) qs2_build(dst + qs_start, n8, nodes, offsets, n_trees, n_leaves, n_nodes - n_leaves, before);
    if (qs == 3) qs3_build(dst + qs_start, n8, nodes, offsets, n_trees, n_leaves, before);
    goto done;
refuse:
    Py_CLEAR(result);
    result = Py_NewRef(Py_None);
done:
    free(before);
    free(binoff);
    free(binv);
    free(tmp);
    free(depth);
    if (got_g) PyBuffer_Release(&bg);
    if (got_f) PyBuffer_Release(&bf);
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bn);
    return result;
}

/* The row form given to a prediction (rowform()): it must be this model's, else a ValueError. A row form whose
 * bound on the splits a row passes exceeds the caller's budget, or that walks a compact form the caller did not
 * give, is not used (each walk is then counted and checked, and the problem named, as without it). */
static int use_rowform(job_t *job, const Py_buffer *b, Py_ssize_t n_nodes)
{
    const rfhead_t *h = (const rfhead_t *)b->buf;
    const Py_ssize_t start = rf_start(job->n_trees);
    const Py_ssize_t bin_start = start + (b->len >= start && h->narrow ? n_nodes * (Py_ssize_t)sizeof(n8_t) : 0);
    const Py_ssize_t nf = job->n_features;
    const int64_t pf_bytes = b->len >= start ? h->pf_bytes : 0; /* the perfect trees: the last pf_bytes */
    const int pf_fits = pf_bytes == 0 || (h->narrow && pf_bytes % 8 == 0 && pf_bytes >= 8 * (job->n_trees + 1)
                                          && pf_bytes <= b->len - start);
    const Py_ssize_t len = pf_fits ? b->len - (Py_ssize_t)pf_bytes : -1; /* the rest */
    int fits = pf_fits && len >= start && memcmp(h->magic, "cbrowf2", 8) == 0 && h->n_trees == job->n_trees
               && h->n_nodes == n_nodes && h->n_features == nf && h->K == job->K && h->v2 == job->v2
               && (!h->narrow || h->spread == XS) && (h->bins == 0 || (h->bins == 1 && h->narrow && job->v2))
               && (h->leaf32 == 0 || (h->leaf32 == 1 && h->narrow) || (h->leaf32 == 2 && h->narrow && h->n_lv >= 2))
               && (h->leaf32 == 2 || h->n_lv == 0);
    if (fits && (h->n_lv < 0 || h->n_lv > len / 8 || h->qs_bytes < 0 || h->qs_bytes > len)) fits = 0;
    if (fits && (h->qs < 0 || h->qs > 3 || (h->qs && !h->narrow) || (h->qs == 3 && !h->bins) || (!h->qs && h->qs_bytes)))
        fits = 0;
    const Py_ssize_t lv_bytes = fits ? 8 * h->n_lv + h->qs_bytes : 0; /* the bit-vector tables, the leaf values */
    if (fits && h->bins) { /* each feature's thresholds: a range of the table, in order */
        const int64_t *off = (const int64_t *)((const char *)b->buf + bin_start);
        fits = len >= bin_start + 8 * (nf + 1) + lv_bytes && off[0] == 0 && off[nf] >= 0 && off[nf] <= len / 8
               && len == bin_start + 8 * (nf + 1 + off[nf]) + lv_bytes;
        for (Py_ssize_t f = 0; fits && f < nf; f++) fits = off[f] <= off[f + 1];
        job->rf_binoff = off;
        job->rf_bins = (const double *)(off + nf + 1);
    } else if (fits) {
        fits = len == bin_start + lv_bytes;
    }
    if (fits && h->leaf32 == 2) { /* its first entry: the index of its last value */
        job->rf_lv = (const double *)((const char *)b->buf + len - 8 * h->n_lv) + 1;
        fits = job->rf_lv[-1] == (double)(h->n_lv - 2);
    }
    if (!fits) {
        PyErr_SetString(PyExc_ValueError, "rowform: not this model's row form");
        return -1;
    }
    if (h->steps > job->max_steps || (!h->narrow && job->ct == NULL) || job->lin_off != NULL || job->vector) return 0;
    job->rf = h;
    job->rf_groups = (const int32_t *)((const char *)b->buf + sizeof(rfhead_t));
    job->rf_tdepth = job->rf_groups + job->n_trees;
    job->rf_depth = job->rf_tdepth + job->n_trees;
    job->rf_nodes = (const n8_t *)((const char *)b->buf + start);
    /* the bit-vector tables (the kernel's own: their sizes are checked, as the nodes', not their contents) */
    job->rf_qs = h->qs ? (const char *)b->buf + len - lv_bytes : NULL;
    job->rf_pf = pf_bytes ? (const int64_t *)((const char *)b->buf + len) : NULL; /* checked by batches: pf_ok */
    if (job->rf_qs != NULL && h->qs == 1) {
        const int64_t *soff = (const int64_t *)job->rf_qs;
        const Py_ssize_t n_slots = (job->v2 ? 2 : 1) * nf, T = job->n_trees, n_cs = QS_CS(n_slots, T);
        if (h->qs_bytes < 8 * (n_cs + T + 2) || h->qs_bytes != qs_bytes(n_slots, T, soff[n_cs + 1 + T], soff[n_cs]))
            job->rf_qs = NULL;
    } else if (job->rf_qs != NULL && h->qs == 3) {
        const int64_t *lbase = (const int64_t *)job->rf_qs, T = job->n_trees;
        if (h->qs_bytes < 8 * (T + 1) || lbase[T] < 1 || lbase[T] > h->qs_bytes / 8
            || h->qs_bytes < 8 * (T + 1 + lbase[T] + 8 * T + 1))
            job->rf_qs = NULL;
        else {
            const int64_t n_entries = lbase[T + 1 + lbase[T] + 8 * T];
            if (n_entries < 0 || n_entries > h->qs_bytes / 12 || h->qs_bytes != qs3_bytes(T, lbase[T], n_entries))
                job->rf_qs = NULL;
        }
    } else if (job->rf_qs != NULL) {
        const int64_t *lbase = (const int64_t *)job->rf_qs, T = job->n_trees;
        if (h->qs_bytes < 8 * (T + 1) || lbase[T] < T || h->qs_bytes != qs2_bytes(T, lbase[T], lbase[T] - T))
            job->rf_qs = NULL;
    }
    return 0;
}

/* run_job with the model's compact form and row form when given (None: without). 0, or -1 with an exception. */
/* The compact and row forms (o_compact, o_rowform: each None or a buffer) checked against the model and put in
 * job, their buffers held in ct and rf (*got_ct, *got_rf: held, for the caller to release): 0, or -1 with an
 * exception. */
static int hold_forms(job_t *job, Py_ssize_t n_nodes, PyObject *o_compact, PyObject *o_rowform, Py_buffer *ct,
                      int *got_ct, Py_buffer *rf, int *got_rf)
{
    if (o_compact != Py_None) {
        if (get(o_compact, ct, 0, "compact") < 0) return -1;
        *got_ct = 1;
        if (use_compact(job, ct, n_nodes) < 0) return -1;
    }
    if (o_rowform != Py_None) {
        if (get(o_rowform, rf, 0, "rowform") < 0) return -1;
        *got_rf = 1;
        if (use_rowform(job, rf, n_nodes) < 0) return -1;
    }
    return 0;
}

static int run_with(job_t *job, Py_ssize_t n_rows, Py_ssize_t threads, Py_ssize_t n_nodes, PyObject *o_compact,
                    PyObject *o_rowform)
{
    Py_buffer b_ct = {0}, b_rf = {0};
    int got_ct = 0, got_rf = 0, status = -1;
    if (hold_forms(job, n_nodes, o_compact, o_rowform, &b_ct, &got_ct, &b_rf, &got_rf) == 0)
        status = run_job(job, n_rows, threads);
    if (got_rf) PyBuffer_Release(&b_rf);
    if (got_ct) PyBuffer_Release(&b_ct);
    return status;
}

PyDoc_STRVAR(predict_raw_doc,
"predict_raw(nodes, tree_offsets, leaf_values, X, out, n_features, n_outputs, vector, max_steps=-1, threads=1,\n"
"            compact=None, rowform=None)\n\n"
"Add every tree's leaf value to out (float64, n_rows x n_outputs, pre-filled with the base score), tree by\n"
"tree in order. X is float32 (n_rows x n_features). leaf_values is used only when vector is true. max_steps: the\n"
"most splits a row may pass over all trees (negative: no budget); threads: run the rows on up to this many\n"
"threads (the result does not depend on it). compact: compact(nodes, None, tree_offsets, n_features, False) of\n"
"this model, or None (the results do not depend on it). rowform: rowform(nodes, None, tree_offsets, None,\n"
"n_features, n_outputs, False, True) of this model, or None: fewer than 16 rows walk it (the same results).");

static PyObject *predict_raw(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_offsets, *o_leaf, *o_X, *o_out, *o_compact = Py_None, *o_rowform = Py_None;
    Py_ssize_t n_features, K, threads = 1;
    long long max_steps = -1;
    int vector;
    if (!PyArg_ParseTuple(args, "OOOOOnnp|LnOO", &o_nodes, &o_offsets, &o_leaf, &o_X, &o_out, &n_features, &K,
                          &vector, &max_steps, &threads, &o_compact, &o_rowform))
        return NULL;
    if (n_features < 1 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features and n_outputs must be positive");
        return NULL;
    }
    Py_buffer b_nodes, b_offsets, b_leaf, b_X, b_out;
    PyObject *result = NULL;
    if (get(o_nodes, &b_nodes, 0, "nodes") < 0) return NULL;
    if (get(o_offsets, &b_offsets, 0, "tree_offsets") < 0) goto fail1;
    if (get(o_leaf, &b_leaf, 0, "leaf_values") < 0) goto fail2;
    if (get(o_X, &b_X, 0, "X") < 0) goto fail3;
    if (get(o_out, &b_out, 1, "out") < 0) goto fail4;

    const Py_ssize_t n_nodes = b_nodes.len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = b_offsets.len / (Py_ssize_t)sizeof(int64_t) - 1;
    const Py_ssize_t n_rows = b_X.len / ((Py_ssize_t)sizeof(float) * n_features);
    const Py_ssize_t n_leaves = b_leaf.len / ((Py_ssize_t)sizeof(double) * K);
    const int64_t *offsets = (const int64_t *)b_offsets.buf;
    if (b_nodes.len % sizeof(node_t) || n_trees < 1 || b_X.len % (sizeof(float) * n_features)
        || b_out.len != n_rows * K * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree with n_features / n_outputs");
        goto done;
    }
    if (check_offsets(offsets, n_trees, n_nodes) < 0) goto done;
    job_t job = {.nodes = (const node_t *)b_nodes.buf, .offsets = offsets, .n_trees = n_trees, .n_features = n_features};
    job.K = K;
    job.max_steps = max_steps < 0 ? NO_BUDGET : (int64_t)max_steps;
    job.leaf_values = (const double *)b_leaf.buf;
    job.n_leaves = n_leaves;
    job.vector = vector;
    job.X = b_X.buf;
    job.out = b_out.buf;
    if (run_with(&job, n_rows, threads, n_nodes, o_compact, o_rowform) < 0) goto done;
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&b_out);
fail4:
    PyBuffer_Release(&b_X);
fail3:
    PyBuffer_Release(&b_leaf);
fail2:
    PyBuffer_Release(&b_offsets);
fail1:
    PyBuffer_Release(&b_nodes);
    return result;
}

PyDoc_STRVAR(predict_raw2_doc,
"predict_raw2(nodes, node_flags, tree_offsets, tree_groups, cat_offsets, cat_words, X, out, n_features,\n"
"             n_outputs, split_lt, acc32, max_steps=-1, threads=1, linear_offsets=None, linear_features=None,\n"
"             linear_coeffs=None, linear_const=None, linear_skip=False, compact=None, rowform=None)\n\n"
"Format version 2: add every tree's scalar leaf to out[row, tree_groups[t]], tree by tree in order. X is\n"
"float64 (n_rows x n_features, NaN allowed); out is float32 when acc32 else float64, pre-filled with the base\n"
"score. split_lt: numeric splits go left on x < threshold (else x <= threshold). max_steps, threads: as\n"
"predict_raw. linear_offsets, linear_features, linear_coeffs, linear_const: version 3 linear leaves (or None);\n"
"linear_skip: a NaN input's term is skipped (else the leaf's value is used). compact: compact(nodes, node_flags,\n"
"tree_offsets, n_features, split_lt) of this model, or None (as predict_raw). rowform: rowform(nodes, node_flags,\n"
"tree_offsets, tree_groups, n_features, n_outputs, split_lt, narrow) of this model, or None (as predict_raw).");

/* A version 2 model's buffers, checked and held, and its job but the rows (bind2): predict_raw2 makes one per
 * call, bind2 once for many (a single row's call then skips the parsing, the buffers and the per-tree checks). */
typedef struct {
    Py_buffer b[10]; /* nodes, node_flags, tree_offsets, tree_groups, cat_offsets, cat_words, linear x 4 */
    int got;
    Py_buffer ct, rf;
    int got_ct, got_rf;
    job_t job; /* all but X and out */
    Py_ssize_t out_item;
} bound_t;

static void bound_release(bound_t *bd)
{
    for (int j = 0; j < bd->got; j++) PyBuffer_Release(&bd->b[j]);
    if (bd->got_rf) PyBuffer_Release(&bd->rf);
    if (bd->got_ct) PyBuffer_Release(&bd->ct);
    bd->got = bd->got_ct = bd->got_rf = 0;
}

/* bd from predict_raw2's arguments but X and out: 0, or -1 with an exception (bd released). */
static int bind2_fill(bound_t *bd, PyObject *const objs_in[10], Py_ssize_t n_features, Py_ssize_t K, int lt,
                      int acc32, long long max_steps, int lin_skip, PyObject *o_compact, PyObject *o_rowform)
{
    memset(bd, 0, sizeof *bd);
    const int linear = objs_in[6] != Py_None;
    if (n_features < 1 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features and n_outputs must be positive");
        return -1;
    }
    static const char *names[10] = {"nodes", "node_flags", "tree_offsets", "tree_groups", "cat_offsets", "cat_words",
                                    "linear_offsets", "linear_features", "linear_coeffs", "linear_const"};
    Py_buffer *b = bd->b;
    for (; bd->got < (linear ? 10 : 6); bd->got++)
        if (get(objs_in[bd->got], &b[bd->got], 0, names[bd->got]) < 0) goto fail;
    const Py_ssize_t n_nodes = b[0].len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = b[2].len / (Py_ssize_t)sizeof(int64_t) - 1;
    const int64_t *offsets = (const int64_t *)b[2].buf;
    cats_t cats = {(const int64_t *)b[4].buf, b[4].len / (Py_ssize_t)sizeof(int64_t) - 1,
                   (const uint32_t *)b[5].buf, b[5].len / (Py_ssize_t)sizeof(uint32_t)};
    if (cats.n_bitsets < 0) cats.n_bitsets = 0;
    if (b[0].len % sizeof(node_t) || n_trees < 1 || b[1].len != n_nodes
        || b[3].len != n_trees * (Py_ssize_t)sizeof(int32_t)
        || (linear && (b[6].len != (n_nodes + 1) * (Py_ssize_t)sizeof(int64_t)
                       || b[9].len != n_nodes * (Py_ssize_t)sizeof(double)
                       || b[7].len / (Py_ssize_t)sizeof(int32_t) != b[8].len / (Py_ssize_t)sizeof(double)))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree with n_features / n_outputs");
        goto fail;
    }
    if (check_offsets(offsets, n_trees, n_nodes) < 0) goto fail;
    job_t *job = &bd->job;
    *job = (job_t){.nodes = (const node_t *)b[0].buf, .offsets = offsets, .n_trees = n_trees, .n_features = n_features};
    job->K = K;
    job->v2 = 1;
    job->max_steps = max_steps < 0 ? NO_BUDGET : (int64_t)max_steps;
    job->flags = (const uint8_t *)b[1].buf;
    job->groups = (const int32_t *)b[3].buf;
    job->cats = cats;
    job->lt = lt;
    job->acc32 = acc32;
    if (linear) {
        job->lin_off = (const int64_t *)b[6].buf;
        job->lin_feat = (const int32_t *)b[7].buf;
        job->lin_coef = (const double *)b[8].buf;
        job->lin_const = (const double *)b[9].buf;
        job->n_lin = b[8].len / (Py_ssize_t)sizeof(double);
        job->lin_skip = lin_skip;
    }
    bd->out_item = acc32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    if (hold_forms(job, n_nodes, o_compact, o_rowform, &bd->ct, &bd->got_ct, &bd->rf, &bd->got_rf) < 0) goto fail;
    return 0;
fail:
    bound_release(bd);
    return -1;
}

/* The rows X (float64, n_rows x n_features) through the bound model into out: 0, or -1 with an exception. */
static int bound_run(const bound_t *bd, PyObject *o_X, PyObject *o_out, Py_ssize_t threads)
{
    Py_buffer bx, bo;
    if (get(o_X, &bx, 0, "X") < 0) return -1;
    if (get(o_out, &bo, 1, "out") < 0) {
        PyBuffer_Release(&bx);
        return -1;
    }
    int status = -1;
    job_t job = bd->job;
    const Py_ssize_t n_rows = bx.len / ((Py_ssize_t)sizeof(double) * job.n_features);
    if (bx.len % (sizeof(double) * job.n_features) || bo.len != n_rows * job.K * bd->out_item) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree with n_features / n_outputs");
    } else {
        job.X = bx.buf;
        job.out = bo.buf;
        status = run_job(&job, n_rows, threads);
    }
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bx);
    return status;
}

static PyObject *predict_raw2(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_flags, *o_offsets, *o_groups, *o_catoff, *o_catw, *o_X, *o_out;
    PyObject *o_lo = Py_None, *o_lf = Py_None, *o_lc = Py_None, *o_lk = Py_None, *o_compact = Py_None;
    PyObject *o_rowform = Py_None;
    Py_ssize_t n_features, K, threads = 1;
    long long max_steps = -1;
    int lt, acc32, lin_skip = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnnpp|LnOOOOpOO", &o_nodes, &o_flags, &o_offsets, &o_groups, &o_catoff,
                          &o_catw, &o_X, &o_out, &n_features, &K, &lt, &acc32, &max_steps, &threads, &o_lo, &o_lf,
                          &o_lc, &o_lk, &lin_skip, &o_compact, &o_rowform))
        return NULL;
    PyObject *const objs[10] = {o_nodes, o_flags, o_offsets, o_groups, o_catoff, o_catw, o_lo, o_lf, o_lc, o_lk};
    bound_t bd;
    if (bind2_fill(&bd, objs, n_features, K, lt, acc32, max_steps, lin_skip, o_compact, o_rowform) < 0) return NULL;
    const int status = bound_run(&bd, o_X, o_out, threads);
    bound_release(&bd);
    return status < 0 ? NULL : Py_NewRef(Py_None);
}

#define BOUND_NAME "coldbrew.engine._kernel.bound"
static void bound_destroy(PyObject *capsule)
{
    bound_t *bd = PyCapsule_GetPointer(capsule, BOUND_NAME);
    if (bd != NULL) {
        bound_release(bd);
        PyMem_Free(bd);
    }
}

PyDoc_STRVAR(bind2_doc,
"bind2(nodes, node_flags, tree_offsets, tree_groups, cat_offsets, cat_words, n_features, n_outputs, split_lt,\n"
"      acc32, max_steps=-1, linear_offsets=None, linear_features=None, linear_coeffs=None, linear_const=None,\n"
"      linear_skip=False, compact=None, rowform=None) -> capsule\n\n"
"predict_raw2's model, checked once and held (its buffers stay exported while the capsule lives), for\n"
"run_bound.");

static PyObject *bind2(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_flags, *o_offsets, *o_groups, *o_catoff, *o_catw;
    PyObject *o_lo = Py_None, *o_lf = Py_None, *o_lc = Py_None, *o_lk = Py_None, *o_compact = Py_None;
    PyObject *o_rowform = Py_None;
    Py_ssize_t n_features, K;
    long long max_steps = -1;
    int lt, acc32, lin_skip = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOnnpp|LOOOOpOO", &o_nodes, &o_flags, &o_offsets, &o_groups, &o_catoff, &o_catw,
                          &n_features, &K, &lt, &acc32, &max_steps, &o_lo, &o_lf, &o_lc, &o_lk, &lin_skip,
                          &o_compact, &o_rowform))
        return NULL;
    PyObject *const objs[10] = {o_nodes, o_flags, o_offsets, o_groups, o_catoff, o_catw, o_lo, o_lf, o_lc, o_lk};
    bound_t *bd = PyMem_Malloc(sizeof(bound_t));
    if (bd == NULL) return PyErr_NoMemory();
    if (bind2_fill(bd, objs, n_features, K, lt, acc32, max_steps, lin_skip, o_compact, o_rowform) < 0) {
        PyMem_Free(bd);
        return NULL;
    }
    PyObject *capsule = PyCapsule_New(bd, BOUND_NAME, bound_destroy);
    if (capsule == NULL) {
        bound_release(bd);
        PyMem_Free(bd);
    }
    return capsule;
}

PyDoc_STRVAR(run_bound_doc,
"run_bound(bound, X, out, threads): predict_raw2 with the model of bind2: X float64 (n_rows x n_features), out\n"
"as predict_raw2's.");

/* The bound model of a fast call's first argument, when the call has its want arguments; else NULL, a TypeError
 * naming usage raised. */
static const bound_t *bound_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *usage)
{
    if (nargs != want) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    return PyCapsule_GetPointer(args[0], BOUND_NAME);
}

static PyObject *run_bound(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const bound_t *bd = bound_arg(args, nargs, 4, "run_bound(bound, X, out, threads)");
    if (bd == NULL) return NULL;
    const Py_ssize_t threads = PyLong_AsSsize_t(args[3]);
    if (threads == -1 && PyErr_Occurred()) return NULL;
    if (bound_run(bd, args[1], args[2], threads) < 0) return NULL;
    return Py_NewRef(Py_None);
}

PyDoc_STRVAR(sigmoid_f32_doc,
"sigmoid_f32(buf): in place on float32, XGBoost's common::Sigmoid: 1.0f / (expf(min(-x, 88.7f)) + 1.0f + 1e-16f).");
static inline float xgb_sigmoid(float x)
{
    const float eps = 1e-16f;
    float v = -x;
    v = (88.7f < v) ? 88.7f : v; /* std::min(-x, 88.7f) is (b < a) ? b : a */
    float denom = expf(v) + 1.0f;
    denom = denom + eps;
    return 1.0f / denom;
}
DEFINE_MAP(sigmoid_f32, float, xgb_sigmoid)

/* Log-link outputs (docs/format.md section 11): LightGBM's std::exp on doubles, XGBoost's expf on floats. */
PyDoc_STRVAR(exp_f64_doc, "exp_f64(buf): in place on float64, x -> exp(x) with libm's exp (LightGBM's log link).");
static inline double exp1(double x) { return exp(x); }
DEFINE_MAP(exp_f64, double, exp1)

PyDoc_STRVAR(exp_f32_doc, "exp_f32(buf): in place on float32, x -> expf(x) (XGBoost's log-link objectives).");
static inline float expf1(float x) { return expf(x); }
DEFINE_MAP(exp_f32, float, expf1)

/* Parse (buf, n_outputs) for the row functions: a buffer (writable for the in-place ones) of n rows of n_outputs
 * items of itemsize bytes. */
static int get_rows(PyObject *args, int writable, Py_ssize_t itemsize, const char *what, Py_buffer *b, Py_ssize_t *K,
                    Py_ssize_t *n)
{
    PyObject *o;
    if (!PyArg_ParseTuple(args, "On", &o, K)) return -1;
    if (get(o, b, writable, "buf") < 0) return -1;
    if (*K < 1 || b->len % (itemsize * *K)) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "buffer is not rows of n_outputs %s", what);
        return -1;
    }
    *n = b->len / itemsize / *K;
    return 0;
}

/* NAME(buf, n_outputs): softmax in place on rows of T, the sum in double, as XGBoost's common::Softmax (float32,
 * fmaxf, expf) and LightGBM's Common::Softmax (float64, std::max, exp) do; they differ only in T, MAX and EXP. */
#define DEFINE_SOFTMAX(NAME, T, ITEMS, MAX, EXP)                                              \
    static PyObject *NAME(PyObject *self, PyObject *args)                                     \
    {                                                                                         \
        Py_buffer b;                                                                          \
        Py_ssize_t K, n;                                                                      \
        if (get_rows(args, 1, (Py_ssize_t)sizeof(T), ITEMS, &b, &K, &n) < 0) return NULL;     \
        for (Py_ssize_t r = 0; r < n; r++) {                                                  \
            T *p = (T *)b.buf + r * K;                                                        \
            T wmax = p[0];                                                                    \
            for (Py_ssize_t k = 1; k < K; k++) wmax = MAX(p[k], wmax);                        \
            double wsum = 0.0;                                                                \
            for (Py_ssize_t k = 0; k < K; k++) {                                              \
                p[k] = EXP(p[k] - wmax);                                                      \
                wsum += p[k];                                                                 \
            }                                                                                 \
            for (Py_ssize_t k = 0; k < K; k++) p[k] /= (T)wsum;                               \
        }                                                                                     \
        PyBuffer_Release(&b);                                                                 \
        Py_RETURN_NONE;                                                                       \
    }

static inline double std_max(double a, double b) { return (a < b) ? b : a; } /* C++'s std::max(a, b) */

PyDoc_STRVAR(softmax_f32_doc,
"softmax_f32(buf, n_outputs): in place on float32 rows, XGBoost's common::Softmax (fmaxf max, expf, double sum).");
DEFINE_SOFTMAX(softmax_f32, float, "floats", fmaxf, expf)

PyDoc_STRVAR(softmax_seq_doc,
"softmax_seq(buf, n_outputs): in place on float64 rows, LightGBM's Common::Softmax (exp, sequential sum).");
DEFINE_SOFTMAX(softmax_seq, double, "doubles", std_max, exp)

/* ---- CatBoost's fast exp (Poisson / Tweedie "Exponent", MultiClass softmax): coldbrew/engine/cbexp.py --------
 * fmath::expd_v as its AVX2/SSE2 lanes compute it: clamp, then the same float64 operations in the same order
 * (no fused multiply-add: -ffp-contract=off), the power of two and the table's mantissa assembled as bits. */
#include "_cbexp_table.h"

static inline double cb_fast_exp(double x)
{
    const double a = 2954.639443740597, ra = 0.0003384507717577858; /* 2048 / log(2) and 1 / a: cbexp.A, RA */
    const double b = 6755399441055744.0;                                 /* 3 * 2**51 */
    const double c1 = 1.0, c2 = 0.16666666685227835064, c3 = 3.0000000027955394;
    const uint64_t adj = (1u << 21) - (1u << 11);
    x = (x < 709.78272569338397) ? x : 709.78272569338397; /* _mm_min_pd(x, max): NaN -> max */
    x = (x > -708.39641853226408) ? x : -708.39641853226408;
    double d = x * a;
    d = d + b;
    uint64_t di;
    memcpy(&di, &d, sizeof di);
    double t = d - b;
    t = t * ra;
    t = t - x;
    uint64_t u = ((di + adj) >> 11) << 52;
    u |= CB_EXP_TABLE[di & 2047u];
    double scale;
    memcpy(&scale, &u, sizeof scale);
    double y = (c3 - t) * (t * t);
    y = y * c2;
    y = (y - t) + c1;
    return y * scale;
}
PyDoc_STRVAR(exp_cb_doc, "exp_cb(buf): in place on float64, CatBoost's fast exp (fmath::expd_v, its vector lanes).");
DEFINE_MAP(exp_cb, double, cb_fast_exp)

PyDoc_STRVAR(softmax_cb_doc,
"softmax_cb(buf, n_outputs): in place on float64 rows, CatBoost's CalcSoftmax (first largest, its fast exp,\n"
"sequential sum, then each divided by the sum).");

static PyObject *softmax_cb(PyObject *self, PyObject *args)
{
    Py_buffer b;
    Py_ssize_t K, n;
    if (get_rows(args, 1, (Py_ssize_t)sizeof(double), "doubles", &b, &K, &n) < 0) return NULL;
    for (Py_ssize_t r = 0; r < n; r++) {
        double *p = (double *)b.buf + r * K;
        double wmax = p[0];
        for (Py_ssize_t k = 1; k < K; k++)
            if (wmax < p[k]) wmax = p[k]; /* MaxElement: the first of the largest */
        double wsum = 0.0;
        for (Py_ssize_t k = 0; k < K; k++) {
            p[k] = cb_fast_exp(p[k] - wmax);
            wsum += p[k];
        }
        for (Py_ssize_t k = 0; k < K; k++) p[k] /= wsum;
    }
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* ---- the serving path without numpy: input casts and checks, element-wise file checks, argmax --------------
 * What numpy did around the traversal, with the same bits: a C cast double -> float is numpy's astype(float32)
 * (round to nearest, overflow to infinity), and the checks refuse exactly what coldbrew/engine/inputs.py refuses.
 */

PyDoc_STRVAR(cast_input_doc,
"cast_input(X, out, n_features, mode, zero_threshold) -> int\n\n"
"X: float64 rows (n_rows x n_features, C order). mode 0 (format version 1): out is float32, each value cast with\n"
"round-to-nearest; NaN, or infinity after the cast, is refused. mode 1 / 2 (version 2, input_dtype float32 /\n"
"float64): out is float64, rounded to float32 and back in mode 1; NaN (missing) passes, infinity (after the cast)\n"
"is refused; then |x| <= zero_threshold becomes 0.0 when zero_threshold > 0. Returns -1, or the flat index of\n"
"the first refused value (out is then incomplete).");

static PyObject *cast_input(PyObject *self, PyObject *args)
{
    PyObject *o_X, *o_out;
    Py_ssize_t n_features;
    int mode;
    double zero;
    if (!PyArg_ParseTuple(args, "OOnid", &o_X, &o_out, &n_features, &mode, &zero)) return NULL;
    if (n_features < 1 || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "n_features must be positive and mode 0, 1 or 2");
        return NULL;
    }
    Py_buffer bx, bo;
    if (get(o_X, &bx, 0, "X") < 0) return NULL;
    if (get(o_out, &bo, 1, "out") < 0) { PyBuffer_Release(&bx); return NULL; }
    const Py_ssize_t n = bx.len / (Py_ssize_t)sizeof(double);
    const Py_ssize_t out_item = mode == 0 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    PyObject *result = NULL;
    if (bx.len % (Py_ssize_t)sizeof(double) || n % n_features || bo.len != n * out_item) {
        PyErr_SetString(PyExc_ValueError, "X and out disagree with n_features");
        goto done;
    }
    const double *x = (const double *)bx.buf;
    Py_ssize_t bad = -1;
    if (mode == 0) {
        float *o = (float *)bo.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            const float v = (float)x[i];
            if (!isfinite(v)) { bad = i; break; }
            o[i] = v;
        }
    } else {
        double *o = (double *)bo.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            double v = mode == 1 ? (double)(float)x[i] : x[i];
            if (isinf(v)) { bad = i; break; }
            if (zero > 0 && fabs(v) <= zero) v = 0.0;
            o[i] = v;
        }
    }
    result = PyLong_FromSsize_t(bad);
done:
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bx);
    return result;
}

PyDoc_STRVAR(finish_raw_doc,
"finish_raw(out, divisor, f32) -> int\n\n"
"Divide every raw score by divisor when it is positive (format version 1's 'mean'), then return the index of the\n"
"first score that is NaN or infinite (an overflowing sum), or -1. out is float32 when f32, else float64.");

static PyObject *finish_raw(PyObject *self, PyObject *args)
{
    PyObject *o;
    double divisor;
    int f32;
    if (!PyArg_ParseTuple(args, "Odp", &o, &divisor, &f32)) return NULL;
    Py_buffer b;
    if (get(o, &b, 1, "out") < 0) return NULL;
    Py_ssize_t bad;
    if (f32) {
        bad = find_nonfinite_f32(b.buf, b.len / (Py_ssize_t)sizeof(float));
    } else {
        double *x = (double *)b.buf;
        const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(double);
        if (divisor > 0)
            for (Py_ssize_t i = 0; i < n; i++) x[i] /= divisor;
        bad = find_nonfinite(x, n);
    }
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(bad);
}

/* NAME(buf, n_outputs) -> list[int]: per row of n_outputs T values, the index of the first maximum (numpy's argmax: a
 * NaN counts as the maximum). */
#define DEFINE_ARGMAX(NAME, T, ITEMS)                                                           \
    static PyObject *NAME(PyObject *self, PyObject *args)                                       \
    {                                                                                           \
        Py_buffer b;                                                                            \
        Py_ssize_t K, n;                                                                        \
        if (get_rows(args, 0, (Py_ssize_t)sizeof(T), ITEMS, &b, &K, &n) < 0) return NULL;       \
        PyObject *list = PyList_New(n);                                                         \
        for (Py_ssize_t r = 0; list != NULL && r < n; r++) {                                    \
            const T *p = (const T *)b.buf + r * K;                                              \
            Py_ssize_t best = 0;                                                                \
            T m = p[0];                                                                         \
            for (Py_ssize_t k = 1; k < K && !isnan(m); k++) {                                   \
                if (isnan(p[k]) || p[k] > m) { m = p[k]; best = k; }                            \
            }                                                                                   \
            PyObject *i = PyLong_FromSsize_t(best);                                             \
            if (i == NULL || PyList_SetItem(list, r, i) < 0) Py_CLEAR(list);                    \
        }                                                                                       \
        PyBuffer_Release(&b);                                                                   \
        return list;                                                                            \
    }

PyDoc_STRVAR(argmax_f32_doc, "argmax_f32(buf, n_outputs) -> list[int]: numpy's argmax over float32 rows of n_outputs.");
DEFINE_ARGMAX(argmax_f32, float, "floats")

PyDoc_STRVAR(argmax_f64_doc, "argmax_f64(buf, n_outputs) -> list[int]: numpy's argmax over float64 rows of n_outputs.");
DEFINE_ARGMAX(argmax_f64, double, "doubles")

PyDoc_STRVAR(rising_doc, "rising(buf) -> bool: True if the int64 values strictly increase (tree_offsets).");

static PyObject *rising(PyObject *self, PyObject *arg)
{
    Py_buffer b;
    if (get(arg, &b, 0, "buf") < 0) return NULL;
    const int64_t *x = (const int64_t *)b.buf;
    const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(int64_t);
    int ok = 1;
    for (Py_ssize_t i = 1; i < n && ok; i++) ok = x[i - 1] < x[i];
    PyBuffer_Release(&b);
    return PyBool_FromLong(ok);
}

PyDoc_STRVAR(pair_proba_doc,
"pair_proba(p1, out, f32): a binary classifier's rows (1 - p, p) from p1 into out (twice as long, of p1's type:\n"
"float64, or with f32 float32, 1 - p worked out in float64 and rounded once, as Python's float arithmetic does).");

static PyObject *pair_proba(PyObject *self, PyObject *args)
{
    PyObject *o_p, *o_out;
    int f32;
    if (!PyArg_ParseTuple(args, "OOp", &o_p, &o_out, &f32)) return NULL;
    Py_buffer p, out;
    if (get(o_p, &p, 0, "p1") < 0) return NULL;
    if (get(o_out, &out, 1, "out") < 0) {
        PyBuffer_Release(&p);
        return NULL;
    }
    const Py_ssize_t size = f32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double), n = p.len / size;
    if (p.len % size != 0 || out.len != 2 * p.len) {
        PyBuffer_Release(&p);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "pair_proba: out must hold twice p1's values, of p1's type");
        return NULL;
    }
    if (f32) {
        const float *x = p.buf;
        float *o = out.buf;
        for (Py_ssize_t i = 0; i < n; i++) o[2 * i] = (float)(1.0 - (double)x[i]), o[2 * i + 1] = x[i];
    } else {
        const double *x = p.buf;
        double *o = out.buf;
        for (Py_ssize_t i = 0; i < n; i++) o[2 * i] = 1.0 - x[i], o[2 * i + 1] = x[i];
    }
    PyBuffer_Release(&p);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* One row for row_proba into x (n_features float64 values), cast and checked as cast_input's mode 1 or 2 with
 * zero: from a list or tuple of exactly n_features floats, ints or None (missing: NaN), or from a C-contiguous
 * float64 buffer of shape (1, n_features). 1, or 0 for anything else (nothing raised): the general path decides. */
static int row_values(PyObject *row, double *x, Py_ssize_t nf, int mode, double zero)
{
    const int list = PyList_CheckExact(row);
    if (list || PyTuple_CheckExact(row)) { /* (the limited API: no macros for the items) */
        if ((list ? PyList_Size(row) : PyTuple_Size(row)) != nf) return 0;
        for (Py_ssize_t i = 0; i < nf; i++) {
            PyObject *v = list ? PyList_GetItem(row, i) : PyTuple_GetItem(row, i); /* borrowed */
            if (PyFloat_CheckExact(v)) {
                x[i] = PyFloat_AsDouble(v);
            } else if (PyLong_CheckExact(v)) { /* float(v): array('d')'s own conversion */
                x[i] = PyLong_AsDouble(v);
                if (x[i] == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    return 0;
                }
            } else if (v == Py_None) {
                x[i] = NAN;
            } else {
                return 0;
            }
        }
    } else {
        Py_buffer b;
        if (PyObject_GetBuffer(row, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyErr_Clear();
            return 0;
        }
        const int ok = b.ndim == 2 && b.shape[0] == 1 && b.shape[1] == nf && b.itemsize == 8 && b.format != NULL
                       && (strcmp(b.format, "d") == 0 || strcmp(b.format, "<d") == 0 || strcmp(b.format, "=d") == 0);
        if (ok) memcpy(x, b.buf, (size_t)nf * sizeof(double));
        PyBuffer_Release(&b);
        if (!ok) return 0;
    }
    for (Py_ssize_t i = 0; i < nf; i++) {
        double v = mode == 1 ? (double)(float)x[i] : x[i];
        if (isinf(v)) return 0;
        if (zero > 0 && fabs(v) <= zero) v = 0.0;
        x[i] = v;
    }
    return 1;
}

PyDoc_STRVAR(row_proba_doc,
"row_proba(bound, row, base, out, mode, zero, divisor, how) -> bool\n\n"
"A binary classifier's one row in one call: the row (a list or tuple of n_features numbers or None, or a float64\n"
"buffer of shape (1, n_features)) cast and checked as cast_input's mode 1 or 2, its raw score from base through\n"
"the model of bind2, divided as finish_raw does, then out = (1 - p, p): how 1, p = expit (out float64); how 2,\n"
"p = XGBoost's sigmoid (out float32, 1 - p worked in float64 and rounded once). False, nothing raised and out\n"
"unspecified, for a row it does not take (a value to refuse, another shape or type), an overflowing score or a\n"
"model problem: the general path then answers, with its own messages. Same bits as that path.");

static PyObject *row_proba(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const bound_t *bd = bound_arg(args, nargs, 8, "row_proba(bound, row, base, out, mode, zero, divisor, how)");
    if (bd == NULL) return NULL;
    const long mode = PyLong_AsLong(args[4]), how = PyLong_AsLong(args[7]);
    const double zero = PyFloat_AsDouble(args[5]), divisor = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) return NULL;
    job_t job = bd->job;
    const Py_ssize_t nf = job.n_features, item = how == 1 ? (Py_ssize_t)sizeof(double) : (Py_ssize_t)sizeof(float);
    if ((mode != 1 && mode != 2) || (how != 1 && how != 2) || job.K != 1 || bd->out_item != item || nf > 256)
        Py_RETURN_FALSE;
    Py_buffer bb, bo;
    if (get(args[2], &bb, 0, "base") < 0) return NULL;
    if (get(args[3], &bo, 1, "out") < 0) {
        PyBuffer_Release(&bb);
        return NULL;
    }
    int done = 0;
    double x[256];
    union {
        double d;
        float f;
    } acc;
    if (bb.len == item && bo.len == 2 * item && row_values(args[1], x, nf, (int)mode, zero)) {
        memcpy(&acc, bb.buf, (size_t)item);
        job.X = x;
        job.out = &acc;
        if (run_job(&job, 1, 1) < 0) {
            PyErr_Clear(); /* the general path names the problem */
        } else if (how == 1) {
            const double raw = divisor > 0 ? acc.d / divisor : acc.d;
            if (isfinite(raw)) {
                const double p = expit1(raw);
                ((double *)bo.buf)[0] = 1 - p, ((double *)bo.buf)[1] = p, done = 1;
            }
        } else if (isfinite(acc.f)) {
            const float p = xgb_sigmoid(acc.f);
            ((float *)bo.buf)[0] = (float)(1.0 - (double)p), ((float *)bo.buf)[1] = p, done = 1;
        }
    }
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bb);
    return PyBool_FromLong(done);
}

PyDoc_STRVAR(first_bad_node_doc,
"first_bad_node(buf) -> int: index of the first node record with a NaN threshold or a non-finite leaf value, or -1.");

static PyObject *first_bad_node(PyObject *self, PyObject *arg) { return first_index(arg, sizeof(node_t), find_bad_node); }

PyDoc_STRVAR(first_nonfinite_doc, "first_nonfinite(buf) -> int: index of the first NaN or infinite float64, or -1.");

static PyObject *first_nonfinite(PyObject *self, PyObject *arg) { return first_index(arg, sizeof(double), find_nonfinite); }

#define METHOD(name, flags) {#name, name, flags, name##_doc}

static PyMethodDef methods[] = {
    METHOD(predict_raw, METH_VARARGS),
    METHOD(compact, METH_VARARGS),
    METHOD(rowform, METH_VARARGS),
    METHOD(expit, METH_O),
    METHOD(predict_raw2, METH_VARARGS),
    METHOD(bind2, METH_VARARGS),
    {"run_bound", (PyCFunction)(void (*)(void))run_bound, METH_FASTCALL, run_bound_doc},
    METHOD(sigmoid_f32, METH_O),
    METHOD(exp_f64, METH_O),
    METHOD(exp_f32, METH_O),
    METHOD(softmax_f32, METH_VARARGS),
    METHOD(softmax_seq, METH_VARARGS),
    METHOD(exp_cb, METH_O),
    METHOD(softmax_cb, METH_VARARGS),
    METHOD(cast_input, METH_VARARGS),
    METHOD(finish_raw, METH_VARARGS),
    METHOD(argmax_f32, METH_VARARGS),
    METHOD(argmax_f64, METH_VARARGS),
    METHOD(rising, METH_O),
    METHOD(pair_proba, METH_VARARGS),
    {"row_proba", (PyCFunction)(void (*)(void))row_proba, METH_FASTCALL, row_proba_doc},
    METHOD(first_bad_node, METH_O),
    METHOD(first_nonfinite, METH_O),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Compiled .brew traversal kernel.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) Py_CLEAR(m);
    return m;
}
