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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <numpy/arrayscalars.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define TRAJARENA_SSE2 1
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TRAJARENA_AVX2 1 /* compiled for any x86-64, used where the CPU has it (see PyInit__capture) */
#endif

#define MAX_DEPTH 64
/* rows at least this big are written with non-temporal stores: a chunk is read by the writer long
 * after the game loop wrote it, so pulling its cache lines in first (a read per line) is wasted, and
 * the env's own data stays in the cache. Measured on duel (73 kB frames, 2-core VM, 7 interleaved
 * runs): recorder 4.57 us a step and env 44.7 us, against 4.58 / 45.0 with memcpy and 4.95 / 45.4 with
 * memcpy + a prefetch of the next row. On a 2-core AMD EPYC VM a 73 kB row takes 2.7 us with 16-byte
 * non-temporal stores, 7 us with memcpy, and ~8 % less than 16-byte with 32-byte (AVX2) stores. */
#define STREAM_BYTES (16 * 1024)

#ifdef TRAJARENA_SSE2
/* ``n`` (a multiple of 64) bytes to a 32-byte aligned ``dst`` with non-temporal stores */
static void stream_sse2(char *dst, const char *src, size_t n)
{
    for (size_t blocks = n / 64; blocks; blocks--, src += 64, dst += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)src);
        __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
        _mm_stream_si128((__m128i *)dst, a);
        _mm_stream_si128((__m128i *)(dst + 16), b);
        _mm_stream_si128((__m128i *)(dst + 32), c);
        _mm_stream_si128((__m128i *)(dst + 48), d);
    }
}

static void (*stream)(char *, const char *, size_t) = stream_sse2;
#endif

#ifdef TRAJARENA_AVX2
__attribute__((target("avx2"))) static void stream_avx2(char *dst, const char *src, size_t n)
{
    for (size_t blocks = n / 64; blocks; blocks--, src += 64, dst += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)src);
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + 32));
        _mm256_stream_si256((__m256i *)dst, a);
        _mm256_stream_si256((__m256i *)(dst + 32), b);
    }
}
#endif

static void copy_bytes(char *dst, const char *src, size_t n)
{
#ifdef TRAJARENA_SSE2
    if (n >= STREAM_BYTES) {
        size_t head = (32 - ((uintptr_t)dst & 31)) & 31, body;
        memcpy(dst, src, head);
        dst += head, src += head, n -= head;
        body = n - n % 64;
        stream(dst, src, body);
        memcpy(dst + body, src + body, n - body);
        _mm_sfence(); /* the stores are visible before the chunk is handed over */
        return;
    }
#endif
    memcpy(dst, src, n);
}

/* A Python int into an integer buffer of ``size`` bytes when it fits; 1 if stored, 0 if not. */
static int store_int(char *dst, int type_num, int size, PyObject *value)
{
    int overflow = 0;
    if (PyTypeNum_ISUNSIGNED(type_num)) {
        unsigned long long v = PyLong_AsUnsignedLongLong(value);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        switch (size) {
        case 1: if (v > UINT8_MAX) return 0; *(uint8_t *)dst = (uint8_t)v; return 1;
        case 2: if (v > UINT16_MAX) return 0; memcpy(dst, &(uint16_t){(uint16_t)v}, 2); return 1;
        case 4: if (v > UINT32_MAX) return 0; memcpy(dst, &(uint32_t){(uint32_t)v}, 4); return 1;
        case 8: memcpy(dst, &(uint64_t){(uint64_t)v}, 8); return 1;
        default: return 0;
        }
    }
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    switch (size) {
    case 1: if (v < INT8_MIN || v > INT8_MAX) return 0; *(int8_t *)dst = (int8_t)v; return 1;
    case 2: if (v < INT16_MIN || v > INT16_MAX) return 0; memcpy(dst, &(int16_t){(int16_t)v}, 2); return 1;
    case 4: if (v < INT32_MIN || v > INT32_MAX) return 0; memcpy(dst, &(int32_t){(int32_t)v}, 4); return 1;
    case 8: memcpy(dst, &(int64_t){(int64_t)v}, 8); return 1;
    default: return 0;
    }
}

/* A numpy scalar whose type is exactly the buffer's scalar type into ``dst``; 1 if stored, 0 if not
 * (a type that is not listed here: the general path below asks numpy). */
static int store_scalar(char *dst, int type_num, PyObject *value)
{
#define SCALAR(NUM, NAME, CTYPE) \
    case NUM: memcpy(dst, &PyArrayScalar_VAL(value, NAME), sizeof(CTYPE)); return 1;
    switch (type_num) {
    SCALAR(NPY_BOOL, Bool, npy_bool)
    SCALAR(NPY_BYTE, Byte, npy_byte)
    SCALAR(NPY_UBYTE, UByte, npy_ubyte)
    SCALAR(NPY_SHORT, Short, npy_short)
    SCALAR(NPY_USHORT, UShort, npy_ushort)
    SCALAR(NPY_INT, Int, npy_int)
    SCALAR(NPY_UINT, UInt, npy_uint)
    SCALAR(NPY_LONG, Long, npy_long)
    SCALAR(NPY_ULONG, ULong, npy_ulong)
    SCALAR(NPY_LONGLONG, LongLong, npy_longlong)
    SCALAR(NPY_ULONGLONG, ULongLong, npy_ulonglong)
    SCALAR(NPY_FLOAT, Float, npy_float)
    SCALAR(NPY_DOUBLE, Double, npy_double)
    default: return 0;
    }
#undef SCALAR
}

/* The direct copy of ``value`` into row ``row`` of ``buf``: 1 if done, 0 if numpy must do it. */
static int store_fast(PyArrayObject *buf, Py_ssize_t row, PyObject *value)
{
    PyArray_Descr *descr = PyArray_DESCR(buf);
    int type_num = descr->type_num, nd = PyArray_NDIM(buf);
    if (!PyArray_CheckExact(buf) || !PyArray_ISCARRAY(buf) || !PyTypeNum_ISNUMBER(type_num))
        return 0; /* ISCARRAY: contiguous, aligned, writeable, native byte order; object, text, structured, a
                     subclass with its own __setitem__: numpy */
    char *dst = PyArray_BYTES(buf) + row * PyArray_STRIDE(buf, 0);
    if (PyArray_CheckExact(value)) {
        PyArrayObject *a = (PyArrayObject *)value;
        if (PyArray_NDIM(a) != nd - 1 || !PyArray_ISCARRAY_RO(a))
            return 0;
        npy_intp count = 1; /* the row's values */
        for (int i = 1; i < nd; i++) {
            if (PyArray_DIM(a, i - 1) != PyArray_DIM(buf, i))
                return 0;
            count *= PyArray_DIM(a, i - 1);
        }
        const char *src = PyArray_BYTES(a);
        size_t row_bytes = (size_t)(count * PyArray_ITEMSIZE(buf)), src_bytes = (size_t)(count * PyArray_ITEMSIZE(a));
        if (src < dst + row_bytes && dst < src + src_bytes)
            return 0; /* a view of the row itself: numpy copies overlapping memory right */
        /* the same built-in number type, both in native byte order (ISCARRAY): equivalent, without numpy's cast lookup */
        if (PyArray_DESCR(a) == descr || PyArray_TYPE(a) == type_num || PyArray_EquivTypes(PyArray_DESCR(a), descr)) {
            copy_bytes(dst, src, src_bytes);
            return 1;
        }
        /* integer actions into their float64 buffer (see trajarena.format.actions): numpy's cast is C's */
        if (type_num == NPY_DOUBLE && PyArray_TYPE(a) == NPY_INT64) {
            const int64_t *ints = (const int64_t *)src;
            for (npy_intp i = 0; i < count; i++) {
                double v = (double)ints[i];
                memcpy(dst + i * sizeof v, &v, sizeof v);
            }
            return 1;
        }
        return 0;
    }
    if (nd != 1)
        return 0; /* a scalar into a row of several values: numpy broadcasts it */
    if ((PyObject *)Py_TYPE(value) == (PyObject *)descr->typeobj && store_scalar(dst, type_num, value))
        return 1; /* a numpy scalar of the buffer's own type (not a subclass): its value, without the lookups below */
    if (PyLong_CheckExact(value)) /* before the numpy scalar test, which walks a Python int's type's bases */
        return PyTypeNum_ISINTEGER(type_num) && store_int(dst, type_num, (int)PyArray_ITEMSIZE(buf), value);
    if (PyFloat_CheckExact(value)) {
        if (type_num != NPY_DOUBLE)
            return 0;
        double v = PyFloat_AS_DOUBLE(value);
        memcpy(dst, &v, sizeof v);
        return 1;
    }
    if (PyArray_IsScalar(value, Generic)) {
        PyArray_Descr *sd = PyArray_DescrFromScalar(value);
        if (sd == NULL) {
            PyErr_Clear();
            return 0;
        }
        int same = (sd == descr || PyArray_EquivTypes(sd, descr)) && PyTypeNum_ISNUMBER(sd->type_num);
        Py_DECREF(sd);
        if (!same)
            return 0;
        PyArray_ScalarAsCtype(value, dst);
        return 1;
    }
    if (PyBool_Check(value)) {
        if (type_num != NPY_BOOL)
            return 0;
        *(npy_bool *)dst = value == Py_True;
        return 1;
    }
    return 0;
}

/* ``buf[row] = value``; 0, or -1 with an exception set. */
static int store(PyObject *buf, Py_ssize_t row, PyObject *value)
{
    if (!PyArray_Check(buf) || PyArray_NDIM((PyArrayObject *)buf) < 1) {
        PyErr_SetString(PyExc_TypeError, "_capture: a plan's buffer is not an array with rows");
        return -1;
    }
    if (row < 0 || row >= PyArray_DIM((PyArrayObject *)buf, 0)) {
        PyErr_Format(PyExc_IndexError, "_capture: row %zd is outside the chunk's %zd rows", row,
                     (Py_ssize_t)PyArray_DIM((PyArrayObject *)buf, 0));
        return -1;
    }
    if (store_fast((PyArrayObject *)buf, row, value))
        return 0;
    PyObject *index = PyLong_FromSsize_t(row);
    if (index == NULL)
        return -1;
    int rc = PyObject_SetItem(buf, index, value);
    Py_DECREF(index);
    return rc;
}

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
        int stored = store(PyTuple_GET_ITEM(leaf, 2), row, value);
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

/* The info values whose key has a slot ``(type, shape, values, present)`` and that match it. */
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
    return store(present, row, Py_True);
}

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
            else if ((rc = store(PyTuple_GET_ITEM(slot, 2), row, value)) == 0)
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
        if (store(PyTuple_GET_ITEM(plan, 2 + i), row, args[3 + i]) < 0)
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_capture",
    "The game loop's copy of a step into chunk rows, in C (see trajarena.format.chunks).", -1, methods,
};

PyMODINIT_FUNC PyInit__capture(void)
{
    import_array();
#ifdef TRAJARENA_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        stream = stream_avx2;
#endif
    return PyModule_Create(&module);
}
