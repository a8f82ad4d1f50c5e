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

enum { OK = 0, BAD_FEATURE, BAD_CHILD, BAD_LEAF, BAD_VALUE };

static int traverse_block(const node_t *nodes, const int64_t *offsets, Py_ssize_t n_trees,
                          const double *leaf_values, Py_ssize_t n_leaves, int vector,
                          const float *X, Py_ssize_t n_rows, Py_ssize_t n_features,
                          double *out, Py_ssize_t K, Py_ssize_t *bad_tree)
{
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const node_t *root = nodes + offsets[t];
        const int64_t size = offsets[t + 1] - offsets[t];
        const Py_ssize_t k = vector ? 0 : t % K;
        for (Py_ssize_t r = 0; r < n_rows; r++) {
            const float *x = X + r * n_features;
            int64_t i = 0;
            const node_t *node = root;
            while (node->feature >= 0) {
                if (node->feature >= n_features) { *bad_tree = t; return BAD_FEATURE; }
                if (node->right <= i + 1 || node->right >= size) { *bad_tree = t; return BAD_CHILD; }
                i = ((double)x[node->feature] <= node->value) ? i + 1 : node->right;
                node = root + i;
            }
            if (node->feature != -1) { *bad_tree = t; return BAD_FEATURE; }
            double *o = out + r * K;
            if (vector) {
                const int32_t li = node->right;
                if (li < 0 || li >= n_leaves) { *bad_tree = t; return BAD_LEAF; }
                const double *lv = leaf_values + (Py_ssize_t)li * K;
                for (Py_ssize_t c = 0; c < K; c++)
                    if (!isfinite(lv[c])) { *bad_tree = t; return BAD_VALUE; }
                for (Py_ssize_t c = 0; c < K; c++) o[c] += lv[c];
            } else {
                if (!isfinite(node->value)) { *bad_tree = t; return BAD_VALUE; }
                o[k] += node->value;
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
    int status = OK;
    Py_ssize_t bad_tree = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r0 = 0; r0 < n_rows && status == OK; r0 += ROW_BLOCK) {
        const Py_ssize_t nb = n_rows - r0 < ROW_BLOCK ? n_rows - r0 : ROW_BLOCK;
        status = traverse_block((const node_t *)b_nodes.buf, offsets, n_trees, (const double *)b_leaf.buf,
                                n_leaves, vector, (const float *)b_X.buf + r0 * n_features, nb, n_features,
                                (double *)b_out.buf + r0 * K, K, &bad_tree);
    }
    Py_END_ALLOW_THREADS
    if (status != OK) {
        const char *what = status == BAD_FEATURE ? "feature index out of bounds"
                         : status == BAD_CHILD ? "child index out of bounds"
                         : status == BAD_LEAF ? "leaf index out of bounds" : "non-finite leaf value";
        PyErr_Format(PyExc_ValueError, "corrupt model: %s in tree %zd", what, bad_tree);
        goto done;
    }
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

PyDoc_STRVAR(expit_doc, "expit(buf): in place, x -> 1 / (1 + exp(-x)) with libm's exp (scipy's expit).");

static PyObject *expit(PyObject *self, PyObject *arg)
{
    Py_buffer b;
    if (get(arg, &b, 1, "buf") < 0) return NULL;
    double *x = (double *)b.buf;
    const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(double);
    for (Py_ssize_t i = 0; i < n; i++) x[i] = 1 / (1 + exp(-x[i]));
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* ---- format version 2 (docs/format.md section 10): HistGradientBoosting, XGBoost, LightGBM ----------------
 * Separate from the version 1 path above: X is float64 (already cast to float32 and back when the model's
 * input_dtype is float32), each node has a flags byte (missing-value routing, categorical bitsets), the split
 * compares with < or <=, and scalar leaves are added to out[row, tree_groups[t]] in float64 or float32.
 */
#define V2_DEFAULT_LEFT 0x01
#define V2_CATEGORICAL 0x08
#define V2_OUTSIDE_LEFT 0x40
#define V2_FLAGS_KNOWN 0x7F

enum { BAD_FLAGS = 10, BAD_BITSET, BAD_GROUP };

typedef struct {
    const int64_t *cat_offsets;
    Py_ssize_t n_bitsets;
    const uint32_t *cat_words;
    Py_ssize_t n_words;
} cats_t;

/* 1: go left, 0: go right, -1: corrupt node (status in *err). */
static inline int v2_go_left(const node_t *node, uint8_t fl, double x, int lt, const cats_t *cats, int *err)
{
    const int def_left = (fl & V2_DEFAULT_LEFT) != 0;
    if (fl & V2_CATEGORICAL) {
        const int mode = (fl >> 4) & 3;
        if (mode == 3) { *err = BAD_FLAGS; return -1; }
        if (isnan(x)) return def_left;
        const double b = node->value;
        if (!(b >= 0 && b < (double)cats->n_bitsets)) { *err = BAD_BITSET; return -1; }
        const Py_ssize_t bi = (Py_ssize_t)b;
        const int64_t w0 = cats->cat_offsets[bi], w1 = cats->cat_offsets[bi + 1];
        if (w0 < 0 || w1 < w0 || w1 > cats->n_words) { *err = BAD_BITSET; return -1; }
        const double nbits = (double)((w1 - w0) * 32);
        int inside;
        if (mode == 0) inside = x >= 0 && x < nbits && x == floor(x);  /* exact integers (scikit-learn) */
        else if (mode == 1) inside = x >= 0 && x < nbits;             /* truncate; x < 0 outside (XGBoost) */
        else if (mode == 2) inside = x > -1 && x < nbits;             /* truncate; (int)x < 0 outside (LightGBM) */
        else { *err = BAD_FLAGS; return -1; }
        if (!inside) return (fl & V2_OUTSIDE_LEFT) != 0;
        const int64_t c = (int64_t)x; /* toward zero */
        return (int)((cats->cat_words[w0 + c / 32] >> (c % 32)) & 1u);
    }
    const int miss = (fl >> 1) & 3;
    if (miss == 3) { *err = BAD_FLAGS; return -1; }
    if (isnan(x)) {
        if (miss == 0) return def_left;
        x = 0.0;
    }
    if (miss == 2 && x == 0.0) return def_left;
    return lt ? (x < node->value) : (x <= node->value);
}

static int traverse_block_v2(const node_t *nodes, const uint8_t *flags, const int64_t *offsets,
                             const int32_t *groups, Py_ssize_t n_trees, const cats_t *cats, int lt, int acc32,
                             const double *X, Py_ssize_t n_rows, Py_ssize_t n_features,
                             void *out, Py_ssize_t K, Py_ssize_t *bad_tree)
{
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        const node_t *root = nodes + offsets[t];
        const uint8_t *froot = flags + offsets[t];
        const int64_t size = offsets[t + 1] - offsets[t];
        const int32_t g = groups[t];
        if (g < 0 || g >= K) { *bad_tree = t; return BAD_GROUP; }
        for (Py_ssize_t r = 0; r < n_rows; r++) {
            const double *x = X + r * n_features;
            int64_t i = 0;
            const node_t *node = root;
            while (node->feature >= 0) {
                if (node->feature >= n_features) { *bad_tree = t; return BAD_FEATURE; }
                if (node->right <= i + 1 || node->right >= size) { *bad_tree = t; return BAD_CHILD; }
                const uint8_t fl = froot[i];
                if (fl & ~V2_FLAGS_KNOWN) { *bad_tree = t; return BAD_FLAGS; }
                int err = OK;
                const int left = v2_go_left(node, fl, x[node->feature], lt, cats, &err);
                if (left < 0) { *bad_tree = t; return err; }
                i = left ? i + 1 : node->right;
                node = root + i;
            }
            if (node->feature != -1) { *bad_tree = t; return BAD_FEATURE; }
            if (acc32) ((float *)out)[r * K + g] += (float)node->value;
            else ((double *)out)[r * K + g] += node->value;
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
    int status = OK;
    Py_ssize_t bad_tree = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r0 = 0; r0 < n_rows && status == OK; r0 += ROW_BLOCK) {
        const Py_ssize_t nb = n_rows - r0 < ROW_BLOCK ? n_rows - r0 : ROW_BLOCK;
        status = traverse_block_v2((const node_t *)b[0].buf, (const uint8_t *)b[1].buf, offsets,
                                   (const int32_t *)b[3].buf, n_trees, &cats, lt, acc32,
                                   (const double *)b[6].buf + r0 * n_features, nb, n_features,
                                   (char *)b[7].buf + r0 * K * out_item, K, &bad_tree);
    }
    Py_END_ALLOW_THREADS
    if (status != OK) {
        const char *what = status == BAD_FEATURE ? "feature index" : status == BAD_CHILD ? "child index"
                         : status == BAD_FLAGS ? "node flags" : status == BAD_BITSET ? "categorical bitset"
                         : status == BAD_GROUP ? "tree group" : "leaf index";
        PyErr_Format(PyExc_ValueError, "corrupt model: %s out of bounds in tree %zd", what, bad_tree);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int j = 0; j < got; j++) PyBuffer_Release(&b[j]);
    return result;
}

PyDoc_STRVAR(sigmoid_f32_doc,
"sigmoid_f32(buf): in place on float32, XGBoost's common::Sigmoid: 1.0f / (expf(min(-x, 88.7f)) + 1.0f + 1e-16f).");

static PyObject *sigmoid_f32(PyObject *self, PyObject *arg)
{
    Py_buffer b;
    if (get(arg, &b, 1, "buf") < 0) return NULL;
    float *x = (float *)b.buf;
    const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(float);
    const float eps = 1e-16f;
    for (Py_ssize_t i = 0; i < n; i++) {
        float v = -x[i];
        v = (88.7f < v) ? 88.7f : v; /* std::min(-x, 88.7f) is (b < a) ? b : a */
        float denom = expf(v) + 1.0f;
        denom = denom + eps;
        x[i] = 1.0f / denom;
    }
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* Parse (buf, n_outputs) for the in-place row functions: a writable buffer of rows of n_outputs items. */
static int get_rows(PyObject *args, Py_buffer *b, Py_ssize_t itemsize, const char *what, Py_ssize_t *K, Py_ssize_t *n)
{
    PyObject *o;
    if (!PyArg_ParseTuple(args, "On", &o, K)) return -1;
    if (get(o, b, 1, "buf") < 0) return -1;
    if (*K < 1 || (b->len / itemsize) % *K) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "buffer is not rows of n_outputs %s", what);
        return -1;
    }
    *n = b->len / itemsize / *K;
    return 0;
}

PyDoc_STRVAR(softmax_f32_doc,
"softmax_f32(buf, n_outputs): in place on float32 rows, XGBoost's common::Softmax (fmaxf max, expf, double sum).");

static PyObject *softmax_f32(PyObject *self, PyObject *args)
{
    Py_buffer b;
    Py_ssize_t K, n;
    if (get_rows(args, &b, (Py_ssize_t)sizeof(float), "floats", &K, &n) < 0) return NULL;
    float *x = (float *)b.buf;
    for (Py_ssize_t r = 0; r < n; r++) {
        float *p = x + r * K;
        float wmax = p[0];
        for (Py_ssize_t k = 1; k < K; k++) wmax = fmaxf(p[k], wmax);
        double wsum = 0.0;
        for (Py_ssize_t k = 0; k < K; k++) {
            p[k] = expf(p[k] - wmax);
            wsum += p[k];
        }
        for (Py_ssize_t k = 0; k < K; k++) p[k] /= (float)wsum;
    }
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(softmax_seq_doc,
"softmax_seq(buf, n_outputs): in place on float64 rows, LightGBM's Common::Softmax (exp, sequential sum).");

static PyObject *softmax_seq(PyObject *self, PyObject *args)
{
    Py_buffer b;
    Py_ssize_t K, n;
    if (get_rows(args, &b, (Py_ssize_t)sizeof(double), "doubles", &K, &n) < 0) return NULL;
    double *x = (double *)b.buf;
    for (Py_ssize_t r = 0; r < n; r++) {
        double *p = x + r * K;
        double wmax = p[0];
        for (Py_ssize_t k = 1; k < K; k++) wmax = (p[k] < wmax) ? wmax : p[k]; /* std::max(p[k], wmax) */
        double wsum = 0.0;
        for (Py_ssize_t k = 0; k < K; k++) {
            p[k] = exp(p[k] - wmax);
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
    Py_ssize_t bad = -1;
    if (f32) {
        float *x = (float *)b.buf;
        const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(float);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!isfinite(x[i])) { bad = i; break; }
    } else {
        double *x = (double *)b.buf;
        const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(double);
        if (divisor > 0)
            for (Py_ssize_t i = 0; i < n; i++) x[i] /= divisor;
        for (Py_ssize_t i = 0; i < n; i++)
            if (!isfinite(x[i])) { bad = i; break; }
    }
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(bad);
}

PyDoc_STRVAR(argmax_doc,
"argmax(buf, n_outputs, f32) -> list[int]: per row of n_outputs values (float32 when f32, else float64), the\n"
"index of the first maximum (numpy's argmax: a NaN counts as the maximum).");

static PyObject *argmax(PyObject *self, PyObject *args)
{
    PyObject *o;
    Py_ssize_t K;
    int f32;
    if (!PyArg_ParseTuple(args, "Onp", &o, &K, &f32)) return NULL;
    Py_buffer b;
    if (get(o, &b, 0, "buf") < 0) return NULL;
    const Py_ssize_t item = f32 ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    if (K < 1 || b.len % (item * K)) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "buffer is not rows of n_outputs values");
        return NULL;
    }
    const Py_ssize_t n = b.len / (item * K);
    PyObject *list = PyList_New(n);
    if (list == NULL) { PyBuffer_Release(&b); return NULL; }
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t best = 0;
        double m = f32 ? (double)((const float *)b.buf)[r * K] : ((const double *)b.buf)[r * K];
        if (!isnan(m)) {
            for (Py_ssize_t k = 1; k < K; k++) {
                const double v = f32 ? (double)((const float *)b.buf)[r * K + k] : ((const double *)b.buf)[r * K + k];
                if (isnan(v)) { best = k; break; }
                if (v > m) { m = v; best = k; }
            }
        }
        PyObject *i = PyLong_FromSsize_t(best);
        if (i == NULL || PyList_SetItem(list, r, i) < 0) { Py_DECREF(list); PyBuffer_Release(&b); return NULL; }
    }
    PyBuffer_Release(&b);
    return list;
}

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

static PyObject *first_bad_node(PyObject *self, PyObject *arg)
{
    Py_buffer b;
    if (get(arg, &b, 0, "buf") < 0) return NULL;
    const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(node_t);
    Py_ssize_t bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        node_t node;
        memcpy(&node, (const char *)b.buf + i * (Py_ssize_t)sizeof(node_t), sizeof(node_t));
        if (node.feature >= 0 ? isnan(node.value) : !isfinite(node.value)) { bad = i; break; }
    }
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(bad);
}

PyDoc_STRVAR(first_nonfinite_doc, "first_nonfinite(buf) -> int: index of the first NaN or infinite float64, or -1.");

static PyObject *first_nonfinite(PyObject *self, PyObject *arg)
{
    Py_buffer b;
    if (get(arg, &b, 0, "buf") < 0) return NULL;
    const Py_ssize_t n = b.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, (const char *)b.buf + i * (Py_ssize_t)sizeof(double), sizeof(double));
        if (!isfinite(v)) { bad = i; break; }
    }
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(bad);
}

static PyMethodDef methods[] = {
    {"predict_raw", predict_raw, METH_VARARGS, predict_raw_doc},
    {"expit", expit, METH_O, expit_doc},
    {"predict_raw2", predict_raw2, METH_VARARGS, predict_raw2_doc},
    {"sigmoid_f32", sigmoid_f32, METH_O, sigmoid_f32_doc},
    {"softmax_f32", softmax_f32, METH_VARARGS, softmax_f32_doc},
    {"softmax_seq", softmax_seq, METH_VARARGS, softmax_seq_doc},
    {"cast_input", cast_input, METH_VARARGS, cast_input_doc},
    {"finish_raw", finish_raw, METH_VARARGS, finish_raw_doc},
    {"argmax", argmax, METH_VARARGS, argmax_doc},
    {"rising", rising, METH_O, rising_doc},
    {"first_bad_node", first_bad_node, METH_O, first_bad_node_doc},
    {"first_nonfinite", first_nonfinite, METH_O, first_nonfinite_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Compiled .brew traversal kernel.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
