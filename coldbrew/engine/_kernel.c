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

typedef struct {
    double value;    /* split: threshold; scalar leaf: leaf value */
    int32_t feature; /* split: input column; leaf: -1 */
    int32_t right;   /* split: right child (tree-relative); vector leaf: row of leaf_values */
} node_t;

#define ROW_BLOCK 4096

enum { OK = 0, BAD_FEATURE, BAD_CHILD, BAD_LEAF, BAD_VALUE, BAD_FLAGS, BAD_BITSET, BAD_GROUP };

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
    default: return "unknown problem";
    }
}

/* OK when the split node at tree-relative index i (of a tree of size nodes) reads an input column and its right
 * child lies after its left child inside the tree; else the problem. */
static inline int check_split(const node_t *node, int64_t i, int64_t size, Py_ssize_t n_features)
{
    if (node->feature >= n_features) return BAD_FEATURE;
    if (node->right <= i + 1 || node->right >= size) return BAD_CHILD;
    return OK;
}

/* NAME(root, size, x, n_features, ctx, &leaf): the walk of one tree (size nodes from root) for the input row x down
 * to its leaf, in both format versions. Every split is checked, then GO_LEFT(ctx, node, i, x[node->feature]) says
 * 1 (left), 0 (right) or minus the problem. Sets *leaf and returns OK, or returns the problem. A macro so that each
 * version's GO_LEFT is inlined into the hottest loop. */
#define DEFINE_WALK(NAME, ROW_T, CTX_T, GO_LEFT)                                                                 \
    static inline int NAME(const node_t *root, int64_t size, const ROW_T *x, Py_ssize_t n_features, CTX_T ctx, \
                           const node_t **leaf)                                                                \
    {                                                                                                          \
        int64_t i = 0;                                                                                         \
        const node_t *node = root;                                                                             \
        while (node->feature >= 0) {                                                                           \
            const int bad = check_split(node, i, size, n_features);                                            \
            if (bad != OK) return bad;                                                                         \
            const int left = GO_LEFT(ctx, node, i, x[node->feature]);                                          \
            if (left < 0) return -left;                                                                        \
            i = left ? i + 1 : node->right;                                                                    \
            node = root + i;                                                                                   \
        }                                                                                                      \
        *leaf = node;                                                                                          \
        return node->feature == -1 ? OK : BAD_FEATURE;                                                         \
    }

/* Adds every tree to the rows r0 .. r0 + n_rows - 1 of out; returns OK, or the problem with its tree in *bad_tree. */
typedef int (*block_fn)(const void *job, Py_ssize_t r0, Py_ssize_t n_rows, Py_ssize_t *bad_tree);

/* Run add over all n_rows rows, ROW_BLOCK rows at a time, without the GIL. 0, or -1 with a ValueError set. */
static int run_blocks(block_fn add, const void *job, Py_ssize_t n_rows)
{
    int status = OK;
    Py_ssize_t bad_tree = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r0 = 0; r0 < n_rows && status == OK; r0 += ROW_BLOCK)
        status = add(job, r0, n_rows - r0 < ROW_BLOCK ? n_rows - r0 : ROW_BLOCK, &bad_tree);
    Py_END_ALLOW_THREADS
    if (status == OK) return 0;
    PyErr_Format(PyExc_ValueError, "corrupt model: %s in tree %zd", problem(status), bad_tree);
    return -1;
}

/* What both format versions traverse: n_trees trees of nodes (tree t: nodes[offsets[t] .. offsets[t + 1]]) over
 * rows of n_features inputs, adding to rows of K outputs. */
typedef struct {
    const node_t *nodes;
    const int64_t *offsets;
    Py_ssize_t n_trees, n_features, K;
} forest_t;

static inline const node_t *tree_root(const forest_t *f, Py_ssize_t t) { return f->nodes + f->offsets[t]; }
static inline int64_t tree_size(const forest_t *f, Py_ssize_t t) { return f->offsets[t + 1] - f->offsets[t]; }

/* Version 1: float32 inputs, x <= threshold goes left. */
static inline int v1_go_left(const void *unused, const node_t *node, int64_t i, float x)
{
    return (double)x <= node->value;
}
DEFINE_WALK(walk_v1, float, const void *, v1_go_left)

typedef struct {
    forest_t f;
    const double *leaf_values; /* vector leaves: n_leaves rows of K */
    Py_ssize_t n_leaves;
    int vector;
    const float *X;
    double *out;
} job_v1;

static int traverse_block(const void *job, Py_ssize_t r0, Py_ssize_t n_rows, Py_ssize_t *bad_tree)
{
    const job_v1 *j = job;
    const Py_ssize_t n_features = j->f.n_features, K = j->f.K;
    for (Py_ssize_t t = 0; t < j->f.n_trees; t++) {
        const node_t *root = tree_root(&j->f, t);
        const int64_t size = tree_size(&j->f, t);
        const Py_ssize_t k = j->vector ? 0 : t % K;
        for (Py_ssize_t r = r0; r < r0 + n_rows; r++) {
            const node_t *leaf = NULL;
            const int err = walk_v1(root, size, j->X + r * n_features, n_features, NULL, &leaf);
            if (err != OK) { *bad_tree = t; return err; }
            double *o = j->out + r * K;
            if (j->vector) {
                const int32_t li = leaf->right;
                if (li < 0 || li >= j->n_leaves) { *bad_tree = t; return BAD_LEAF; }
                const double *lv = j->leaf_values + (Py_ssize_t)li * K;
                for (Py_ssize_t c = 0; c < K; c++)
                    if (!isfinite(lv[c])) { *bad_tree = t; return BAD_VALUE; }
                for (Py_ssize_t c = 0; c < K; c++) o[c] += lv[c];
            } else {
                if (!isfinite(leaf->value)) { *bad_tree = t; return BAD_VALUE; }
                o[k] += leaf->value;
            }
        }
    }
    return OK;
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

PyDoc_STRVAR(predict_raw_doc,
"predict_raw(nodes, tree_offsets, leaf_values, X, out, n_features, n_outputs, vector)\n\n"
"Add every tree's leaf value to out (float64, n_rows x n_outputs, pre-filled with the base score), tree by\n"
"tree in order. X is float32 (n_rows x n_features). leaf_values is used only when vector is true.");

static PyObject *predict_raw(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_offsets, *o_leaf, *o_X, *o_out;
    Py_ssize_t n_features, K;
    int vector;
    if (!PyArg_ParseTuple(args, "OOOOOnnp", &o_nodes, &o_offsets, &o_leaf, &o_X, &o_out, &n_features, &K, &vector))
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
    const job_v1 job = {{(const node_t *)b_nodes.buf, offsets, n_trees, n_features, K}, (const double *)b_leaf.buf,
                        n_leaves, vector, (const float *)b_X.buf, (double *)b_out.buf};
    if (run_blocks(traverse_block, &job, n_rows) < 0) goto done;
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

/* NAME(buf): in place, every item of type T (a writable buffer) x -> F(x): the link functions. */
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

DEFINE_WALK(walk_v2, double, const tree_v2 *, v2_go_left)

typedef struct {
    forest_t f;
    const uint8_t *flags;
    const int32_t *groups;
    cats_t cats;
    int lt, acc32;
    const double *X;
    void *out; /* float32 when acc32, else float64 */
} job_v2;

static int traverse_block_v2(const void *job, Py_ssize_t r0, Py_ssize_t n_rows, Py_ssize_t *bad_tree)
{
    const job_v2 *j = job;
    const Py_ssize_t n_features = j->f.n_features, K = j->f.K;
    for (Py_ssize_t t = 0; t < j->f.n_trees; t++) {
        const tree_v2 tree = {j->flags + j->f.offsets[t], j->lt, &j->cats};
        const int32_t g = j->groups[t];
        if (g < 0 || g >= K) { *bad_tree = t; return BAD_GROUP; }
        for (Py_ssize_t r = r0; r < r0 + n_rows; r++) {
            const node_t *leaf = NULL;
            const int err = walk_v2(tree_root(&j->f, t), tree_size(&j->f, t), j->X + r * n_features, n_features, &tree,
                                    &leaf);
            if (err != OK) { *bad_tree = t; return err; }
            if (j->acc32) ((float *)j->out)[r * K + g] += (float)leaf->value;
            else ((double *)j->out)[r * K + g] += leaf->value;
        }
    }
    return OK;
}

PyDoc_STRVAR(predict_raw2_doc,
"predict_raw2(nodes, node_flags, tree_offsets, tree_groups, cat_offsets, cat_words, X, out, n_features,\n"
"             n_outputs, split_lt, acc32)\n\n"
"Format version 2: add every tree's scalar leaf to out[row, tree_groups[t]], tree by tree in order. X is\n"
"float64 (n_rows x n_features, NaN allowed); out is float32 when acc32 else float64, pre-filled with the base\n"
"score. split_lt: numeric splits go left on x < threshold (else x <= threshold).");

static PyObject *predict_raw2(PyObject *self, PyObject *args)
{
    PyObject *o_nodes, *o_flags, *o_offsets, *o_groups, *o_catoff, *o_catw, *o_X, *o_out;
    Py_ssize_t n_features, K;
    int lt, acc32;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnnpp", &o_nodes, &o_flags, &o_offsets, &o_groups, &o_catoff, &o_catw,
                          &o_X, &o_out, &n_features, &K, &lt, &acc32))
        return NULL;
    if (n_features < 1 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features and n_outputs must be positive");
        return NULL;
    }
    Py_buffer b[8];
    PyObject *objs[8] = {o_nodes, o_flags, o_offsets, o_groups, o_catoff, o_catw, o_X, o_out};
    const char *names[8] = {"nodes", "node_flags", "tree_offsets", "tree_groups", "cat_offsets", "cat_words", "X", "out"};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 8; got++) {
        if (get(objs[got], &b[got], got == 7, names[got]) < 0) goto done;
    }
    const Py_ssize_t n_nodes = b[0].len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = b[2].len / (Py_ssize_t)sizeof(int64_t) - 1;
    const Py_ssize_t n_rows = b[6].len / ((Py_ssize_t)sizeof(double) * n_features);
    const Py_ssize_t out_item = acc32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    const int64_t *offsets = (const int64_t *)b[2].buf;
    cats_t cats = {(const int64_t *)b[4].buf, b[4].len / (Py_ssize_t)sizeof(int64_t) - 1,
                   (const uint32_t *)b[5].buf, b[5].len / (Py_ssize_t)sizeof(uint32_t)};
    if (cats.n_bitsets < 0) cats.n_bitsets = 0;
    if (b[0].len % sizeof(node_t) || n_trees < 1 || b[1].len != n_nodes
        || b[3].len != n_trees * (Py_ssize_t)sizeof(int32_t) || b[6].len % (sizeof(double) * n_features)
        || b[7].len != n_rows * K * out_item) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes disagree with n_features / n_outputs");
        goto done;
    }
    if (check_offsets(offsets, n_trees, n_nodes) < 0) goto done;
    const job_v2 job = {{(const node_t *)b[0].buf, offsets, n_trees, n_features, K}, (const uint8_t *)b[1].buf,
                        (const int32_t *)b[3].buf, cats, lt, acc32, (const double *)b[6].buf, b[7].buf};
    if (run_blocks(traverse_block_v2, &job, n_rows) < 0) goto done;
    result = Py_NewRef(Py_None);
done:
    for (int j = 0; j < got; j++) PyBuffer_Release(&b[j]);
    return result;
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

PyDoc_STRVAR(first_bad_node_doc,
"first_bad_node(buf) -> int: index of the first node record with a NaN threshold or a non-finite leaf value, or -1.");

static PyObject *first_bad_node(PyObject *self, PyObject *arg) { return first_index(arg, sizeof(node_t), find_bad_node); }

PyDoc_STRVAR(first_nonfinite_doc, "first_nonfinite(buf) -> int: index of the first NaN or infinite float64, or -1.");

static PyObject *first_nonfinite(PyObject *self, PyObject *arg) { return first_index(arg, sizeof(double), find_nonfinite); }

#define METHOD(name, flags) {#name, name, flags, name##_doc}

static PyMethodDef methods[] = {
    METHOD(predict_raw, METH_VARARGS),
    METHOD(expit, METH_O),
    METHOD(predict_raw2, METH_VARARGS),
    METHOD(sigmoid_f32, METH_O),
    METHOD(exp_f64, METH_O),
    METHOD(exp_f32, METH_O),
    METHOD(softmax_f32, METH_VARARGS),
    METHOD(softmax_seq, METH_VARARGS),
    METHOD(cast_input, METH_VARARGS),
    METHOD(finish_raw, METH_VARARGS),
    METHOD(argmax_f32, METH_VARARGS),
    METHOD(argmax_f64, METH_VARARGS),
    METHOD(rising, METH_O),
    METHOD(first_bad_node, METH_O),
    METHOD(first_nonfinite, METH_O),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Compiled .brew traversal kernel.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
