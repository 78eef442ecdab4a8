/* trajarena.format._capture: the game loop's copy of one step into the rows of a chunk, in C.
 *
 * It does what the Python setters of trajarena.format.chunks do (``buffer[row] = value`` for each leaf
 * of a nested observation/action, then the info values into their columns), without the interpreter's
 * cost per leaf: a Python setter spends ~0.1-0.2 us on each ``b[row] = v`` (index parsing, a view, the
 * cast machinery), which on a 50 us game step is most of the recorder's budget.
 *
 * Semantics are numpy's: a value is copied directly only when the result is exactly what
 * ``buffer[row] = value`` gives (an ndarray of the same dtype and shape as the row, a numpy scalar of
 * the same dtype, a Python bool/int/float into a bool/integer/float64 buffer when it fits); every other
 * value goes through ``PyObject_SetItem(buffer, row, value)``, i.e. numpy itself, with its casts,
 * broadcasting and errors. Nothing here trusts its inputs: rows, plans and buffers are checked on each
 * call (a wrong one raises, it is never written out of bounds).
 *
 * A plan is a tuple of leaves, each ``(shared, keys, buffer[, action check])``: the leaf's value is
 * reached from the root by ``keys`` after the first ``shared`` inner nodes of the previous leaf's path
 * (they are reused: ``obs["P1"]`` is looked up once for its four leaves). ``step`` also tests the action
 * leaves as trajarena.format.actions.ActionCheck does and flags a row it cannot vouch for. Python code
 * that numpy runs (``__array__``, ``__index__``) may change anything between two leaves: the row is
 * checked again before each read or write of a buffer, and the flag array is looked up when written.
 * One value into one row (and the frames' non-temporal copy) is _store.c's.
 */
#define TRAJARENA_CAPTURE_MAIN 1 /* the file that imports numpy's C API */
#include "_capture.h"
#include <math.h>

#define MAX_DEPTH 64

/* Whether row ``row`` of an action buffer is inside its space, as trajarena.format.actions.ActionCheck
 * tests it: ``check`` is ``(low, high)`` (float64 arrays of the row's size: integral values in
 * [low, high)) for an integer leaf buffered as float64, True for a float leaf (finite values). 1: it is;
 * 0: it is not, or this cannot tell (ActionCheck then looks at the chunk with numpy). */
static int action_ok(PyArrayObject *buf, Py_ssize_t row, PyObject *check)
{
    /* numpy may have run Python code since the row was checked (an __array__ that reshaped the buffer) */
    if (!PyArray_ISCARRAY(buf) || PyArray_NDIM(buf) < 1 || row < 0 || row >= PyArray_DIM(buf, 0))
        return 0;
    npy_intp n = PyArray_SIZE(buf) / PyArray_DIM(buf, 0);
    const char *src = PyArray_BYTES(buf) + row * PyArray_STRIDE(buf, 0);
    if (check == Py_True) {
        if (PyArray_TYPE(buf) == NPY_DOUBLE) {
            for (npy_intp i = 0; i < n; i++)
                if (!isfinite(((const double *)src)[i]))
                    return 0;
            return 1;
        }
        if (PyArray_TYPE(buf) == NPY_FLOAT) {
            for (npy_intp i = 0; i < n; i++)
                if (!isfinite(((const float *)src)[i]))
                    return 0;
            return 1;
        }
        return 0;
    }
    if (!PyTuple_CheckExact(check) || PyTuple_GET_SIZE(check) != 2 || PyArray_TYPE(buf) != NPY_DOUBLE)
        return 0;
    PyObject *lo = PyTuple_GET_ITEM(check, 0), *hi = PyTuple_GET_ITEM(check, 1);
    if (!PyArray_CheckExact(lo) || !PyArray_CheckExact(hi) || PyArray_TYPE((PyArrayObject *)lo) != NPY_DOUBLE
        || PyArray_TYPE((PyArrayObject *)hi) != NPY_DOUBLE || !PyArray_ISCARRAY_RO((PyArrayObject *)lo)
        || !PyArray_ISCARRAY_RO((PyArrayObject *)hi) || PyArray_SIZE((PyArrayObject *)lo) != n
        || PyArray_SIZE((PyArrayObject *)hi) != n)
        return 0;
    const double *v = (const double *)src, *l = PyArray_DATA((PyArrayObject *)lo), *h = PyArray_DATA((PyArrayObject *)hi);
    for (npy_intp i = 0; i < n; i++)
        if (!(v[i] == floor(v[i]) && v[i] >= l[i] && v[i] < h[i]))  /* NaN fails every comparison */
            return 0;
    return 1;
}

/* Where the dict lookups of a step found their keys the step before: positions in the dicts (PyDict_Next's),
 * one per lookup in the order a step makes them (the plans' leaves, then the info slots), or NULL. An env
 * builds its dicts the same way each step, so a lookup reads the entry at the remembered position and takes
 * it when its key is the very same object: no hashing, no comparison that could run Python code. */
typedef struct {
    int64_t *pos;
    Py_ssize_t n, next;
} Hints;

#define NO_HINT (-2) /* this lookup's key is in the dict as another (equal) object: plain lookups only */

/* The next lookup's hint (each lookup takes one, whatever its mapping), or NULL. */
static int64_t *next_hint(Hints *hints)
{
    return hints != NULL && hints->next < hints->n ? hints->pos + hints->next++ : NULL;
}

/* ``dict[key]`` (borrowed) or NULL (with an exception only if the lookup raised), through ``hint``. */
static PyObject *dict_item(PyObject *dict, PyObject *key, int64_t *hint)
{
    PyObject *k, *v;
    if (hint != NULL && *hint >= 0) {
        Py_ssize_t pos = (Py_ssize_t)*hint;
        if (PyDict_Next(dict, &pos, &k, &v) && k == key)
            return v;
    }
    v = PyDict_GetItemWithError(dict, key);
    if (v != NULL && hint != NULL && *hint != NO_HINT) { /* find its position for the next step */
        PyObject *found;
        Py_ssize_t pos = 0;
        *hint = NO_HINT;
        while (PyDict_Next(dict, &pos, &k, &found))
            if (k == key) {
                *hint = pos - 1; /* PyDict_Next leaves pos just after the entry it returned */
                break;
            }
    }
    return v;
}

/* ``node[key]`` (a new reference), as Python's subscript does it. */
static PyObject *item(PyObject *node, PyObject *key, Hints *hints)
{
    int64_t *hint = next_hint(hints);
    if (PyDict_CheckExact(node)) {
        PyObject *v = dict_item(node, key, hint);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
        if (!PyErr_Occurred()) {
            PyObject *args = PyTuple_Pack(1, key); /* KeyError(key), a tuple key included */
            if (args != NULL) {
                PyErr_SetObject(PyExc_KeyError, args);
                Py_DECREF(args);
            }
        }
        return NULL;
    }
    return PyObject_GetItem(node, key);
}

/* Write each leaf of ``root`` that ``plan`` names into its buffer's row. 0, or -1 with an exception. */
static int fill(Py_ssize_t row, PyObject *root, PyObject *plan, int *unchecked, Hints *hints)
{
    PyObject *nodes[MAX_DEPTH + 1];
    Py_ssize_t depth = 0;
    int rc = -1;
    if (!PyTuple_CheckExact(plan)) {
        PyErr_SetString(PyExc_TypeError, "_capture: a plan is a tuple of leaves");
        return -1;
    }
    nodes[0] = root;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(plan); i++) {
        PyObject *leaf = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_CheckExact(leaf) || PyTuple_GET_SIZE(leaf) < 3 || PyTuple_GET_SIZE(leaf) > 4
            || !PyTuple_CheckExact(PyTuple_GET_ITEM(leaf, 1))) {
            PyErr_SetString(PyExc_TypeError, "_capture: a plan's leaf is (shared, keys, buffer[, action check])");
            goto done;
        }
        Py_ssize_t shared = PyLong_AsSsize_t(PyTuple_GET_ITEM(leaf, 0));
        PyObject *keys = PyTuple_GET_ITEM(leaf, 1);
        Py_ssize_t n = PyTuple_GET_SIZE(keys);
        if (shared < 0 || shared > depth || shared + n > MAX_DEPTH + 1 || (n == 0 && shared != 0)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "_capture: a plan's leaf path is inconsistent");
            goto done;
        }
        while (depth > shared) {
            Py_DECREF(nodes[depth]);
            depth--;
        }
        for (Py_ssize_t k = 0; k + 1 < n; k++) {
            PyObject *child = item(nodes[depth], PyTuple_GET_ITEM(keys, k), hints);
            if (child == NULL)
                goto done;
            nodes[++depth] = child;
        }
        PyObject *value = n ? item(nodes[depth], PyTuple_GET_ITEM(keys, n - 1), hints) : Py_NewRef(root);
        if (value == NULL)
            goto done;
        int stored = trajarena_store(PyTuple_GET_ITEM(leaf, 2), row, value);
        Py_DECREF(value);
        if (stored < 0)
            goto done;
        if (unchecked != NULL && PyTuple_GET_SIZE(leaf) == 4 && PyTuple_GET_ITEM(leaf, 3) != Py_None
            && !action_ok((PyArrayObject *)PyTuple_GET_ITEM(leaf, 2), row, PyTuple_GET_ITEM(leaf, 3)))
            *unchecked = 1;
    }
    rc = 0;
done:
    while (depth > 0) {
        Py_DECREF(nodes[depth]);
        depth--;
    }
    return rc;
}

static int row_arg(PyObject *arg, Py_ssize_t *row)
{
    if (PyBool_Check(arg)) { /* buf[True] = v writes every row: not a row number */
        PyErr_SetString(PyExc_TypeError, "_capture: a row is an int, not a bool");
        return -1;
    }
    *row = PyLong_AsSsize_t(arg);
    return *row == -1 && PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(fill_doc,
"fill(row, value, plan)\n--\n\n"
"Write the leaves of ``value`` into row ``row`` of the plan's buffers (what compile_setter's setter does).");

static PyObject *py_fill(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t row;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fill(row, value, plan)");
        return NULL;
    }
    if (row_arg(args[0], &row) < 0 || fill(row, args[1], args[2], NULL, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ``key`` appended to the list ``*slow`` (made on the first key: most steps have none). 0, or -1. */
static int slow_key(PyObject **slow, PyObject *key)
{
    if (*slow == NULL && (*slow = PyList_New(0)) == NULL)
        return -1;
    return PyList_Append(*slow, key);
}

/* ``present[row] = True``: a C bool array's byte directly, anything else through ``store``. */
static int store_true(PyObject *present, Py_ssize_t row)
{
    PyArrayObject *a = (PyArrayObject *)present;
    if (PyArray_CheckExact(present) && PyArray_NDIM(a) == 1 && PyArray_TYPE(a) == NPY_BOOL && PyArray_ISCARRAY(a)
        && row >= 0 && row < PyArray_DIM(a, 0)) {
        ((npy_bool *)PyArray_DATA(a))[row] = 1;
        return 0;
    }
    return trajarena_store(present, row, Py_True);
}

/* The info values whose key has a slot ``(type, shape, values, present)`` and that match it; the other keys
 * into ``*slow``. 0, or -1 with an exception. */
static int put_info(Py_ssize_t row, PyObject *info, PyObject *slots, PyObject *skip, PyObject **slow, Hints *hints)
{
    Py_ssize_t pos = 0, size = PyDict_GET_SIZE(info);
    PyObject *key, *value;
    while (PyDict_Next(info, &pos, &key, &value)) {
        int rc = 0;
        if (PyDict_GET_SIZE(info) != size) { /* as Python's iteration says it */
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return -1;
        }
        Py_INCREF(key);
        Py_INCREF(value);
        PyObject *slot = dict_item(slots, key, next_hint(hints));
        Py_XINCREF(slot);
        if (slot == NULL) {
            rc = PyErr_Occurred() ? -1 : slow_key(slow, key);
        }
        else if (slot != skip) {
            int fits = PyTuple_CheckExact(slot) && PyTuple_GET_SIZE(slot) == 4
                       && (PyObject *)Py_TYPE(value) == PyTuple_GET_ITEM(slot, 0)
                       && PyTuple_CheckExact(PyTuple_GET_ITEM(slot, 1));
            if (fits) {
                PyObject *shape = PyTuple_GET_ITEM(slot, 1);
                Py_ssize_t nd = PyTuple_GET_SIZE(shape);
                if (nd) { /* the type is ndarray (or a subclass): its shape must be the slot's */
                    fits = PyArray_Check(value) && PyArray_NDIM((PyArrayObject *)value) == nd;
                    for (Py_ssize_t i = 0; fits && i < nd; i++) {
                        Py_ssize_t d = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, i));
                        if (d == -1 && PyErr_Occurred()) {
                            PyErr_Clear();
                            fits = 0;
                        }
                        fits = fits && d == PyArray_DIM((PyArrayObject *)value, i);
                    }
                }
            }
            if (!fits)
                rc = slow_key(slow, key);
            else if ((rc = trajarena_store(PyTuple_GET_ITEM(slot, 2), row, value)) == 0)
                rc = store_true(PyTuple_GET_ITEM(slot, 3), row);
        }
        Py_XDECREF(slot);
        Py_DECREF(value);
        Py_DECREF(key);
        if (rc < 0)
            return -1;
    }
    if (PyDict_GET_SIZE(info) != size) {
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(step_doc,
"step(row, action, obs, reward, terminated, truncated, info, plan)\n--\n\n"
"One recorded step into row ``row``: the leaves of ``action`` and ``obs``, reward, terminated, truncated, "
"and the info values that fit their slots. ``plan`` is ``(action plan, obs plan, reward, terminated, "
"truncated, slots, skip, unchecked[, hints])``; an action leaf ``(shared, keys, buffer, check)`` is tested as "
"ActionCheck does, and ``unchecked[0]`` set to 1 when it is outside its space or cannot be told. ``hints`` (int64, "
"kept from step to step, -1 at first) remembers where each dict lookup found its key. Returns the info keys left "
"to Python (no slot yet, or a value that does not match it), or None; True when ``info`` is not a dict (Python "
"stores it all).");

static PyObject *py_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t row;
    if (nargs != 8 || !PyTuple_CheckExact(args[7]) || PyTuple_GET_SIZE(args[7]) < 8 || PyTuple_GET_SIZE(args[7]) > 9
        || !PyDict_CheckExact(PyTuple_GET_ITEM(args[7], 5)) || !PyArray_CheckExact(PyTuple_GET_ITEM(args[7], 7))
        || PyArray_TYPE((PyArrayObject *)PyTuple_GET_ITEM(args[7], 7)) != NPY_UINT8
        || PyArray_SIZE((PyArrayObject *)PyTuple_GET_ITEM(args[7], 7)) < 1
        || !PyArray_ISCARRAY((PyArrayObject *)PyTuple_GET_ITEM(args[7], 7))) {
        PyErr_SetString(PyExc_TypeError, "step(row, action, obs, reward, terminated, truncated, info, "
                                         "(action plan, obs plan, reward, terminated, truncated, slots, skip, "
                                         "unchecked[, hints]))");
        return NULL;
    }
    PyObject *plan = args[7], *info = args[6];
    int unchecked = 0;
    Hints hints = {NULL, 0, 0}, *h = NULL;
    if (PyTuple_GET_SIZE(plan) == 9) { /* int64 positions, one per lookup (see Hints); anything else: no hints */
        PyArrayObject *pos = (PyArrayObject *)PyTuple_GET_ITEM(plan, 8);
        if (PyArray_CheckExact(pos) && PyArray_TYPE(pos) == NPY_INT64 && PyArray_ISCARRAY(pos) && PyArray_NDIM(pos) == 1) {
            hints.pos = (int64_t *)PyArray_DATA(pos), hints.n = PyArray_DIM(pos, 0);
            h = &hints;
        }
    }
    if (row_arg(args[0], &row) < 0 || fill(row, args[1], PyTuple_GET_ITEM(plan, 0), &unchecked, h) < 0
        || fill(row, args[2], PyTuple_GET_ITEM(plan, 1), NULL, h) < 0)
        return NULL;
    if (unchecked) { /* the flag array is looked at now: Python code may have resized it meanwhile */
        PyArrayObject *flag = (PyArrayObject *)PyTuple_GET_ITEM(plan, 7);
        if (PyArray_SIZE(flag) < 1 || !PyArray_ISCARRAY(flag)) {
            PyErr_SetString(PyExc_ValueError, "_capture: the plan's unchecked flag was resized");
            return NULL;
        }
        *(npy_uint8 *)PyArray_DATA(flag) = 1;
    }
    for (int i = 0; i < 3; i++)
        if (trajarena_store(PyTuple_GET_ITEM(plan, 2 + i), row, args[3 + i]) < 0)
            return NULL;
    if (info == Py_None)
        Py_RETURN_NONE;
    if (!PyDict_CheckExact(info))
        Py_RETURN_TRUE; /* another mapping: Python reads it as it would */
    if (PyDict_GET_SIZE(info) == 0)
        Py_RETURN_NONE;
    PyObject *slow = NULL;
    if (put_info(row, info, PyTuple_GET_ITEM(plan, 5), PyTuple_GET_ITEM(plan, 6), &slow, h) < 0) {
        Py_XDECREF(slow);
        return NULL;
    }
    if (slow == NULL)
        Py_RETURN_NONE;
    return slow;
}

static PyMethodDef methods[] = {
    {"fill", (PyCFunction)(void (*)(void))py_fill, METH_FASTCALL, fill_doc},
    {"step", (PyCFunction)(void (*)(void))py_step, METH_FASTCALL, step_doc},
    {"watch", (PyCFunction)(void (*)(void))trajarena_watch, METH_FASTCALL,
     "watch(fd, clock, poll_ms, max_ms) -> bool\n\nWait, without the GIL, until ``fd`` has input (True), or until the game "
     "loop's clock\n``[last_handoff, end_due, flush_seconds, waiting]`` (time.monotonic() seconds) says a flush is due, "
     "or\n``max_ms`` have passed (False). The clock is read every ``poll_ms``; ``waiting`` is set to 1 before the GIL "
     "is\ntaken back (the caller clears it)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_capture",
    "The game loop's copy of a step into chunk rows, in C (see trajarena.format.chunks).", -1, methods,
};

PyMODINIT_FUNC PyInit__capture(void)
{
    import_array();
    trajarena_store_init();
    if (PyType_Ready(&trajarena_CopierType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "Copier", (PyObject *)&trajarena_CopierType) < 0)
        Py_CLEAR(m);
    return m;
}
