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
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        if (offsets[t] < 0 || offsets[t + 1] <= offsets[t] || offsets[t + 1] > n_nodes) {
            PyErr_SetString(PyExc_ValueError, "corrupt model: tree_offsets out of bounds");
            goto done;
        }
    }
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

static PyMethodDef methods[] = {
    {"predict_raw", predict_raw, METH_VARARGS, predict_raw_doc},
    {"expit", expit, METH_O, expit_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Compiled .brew traversal kernel.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
