/* trajarena.format._capture: one value into one row of a chunk buffer, as ``buffer[row] = value`` does it.
 *
 * A value is copied directly only when the result is exactly numpy's (see _capture.c); anything else goes
 * through ``PyObject_SetItem``. Frames (rows of at least 16 kB) are written with non-temporal stores: SSE2 on
 * any x86-64, AVX2 where the CPU has it (chosen by trajarena_store_init); memcpy elsewhere.
 */
#include "_capture.h"
#include <numpy/arrayscalars.h>

#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define TRAJARENA_SSE2 1
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TRAJARENA_AVX2 1 /* compiled for any x86-64, used where the CPU has it (see trajarena_store_init) */
#endif

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

void trajarena_copy_bytes(char *dst, const char *src, size_t n)
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
        if (PyArray_TYPE(a) == type_num || PyArray_EquivTypes(PyArray_DESCR(a), descr)) {
            trajarena_copy_bytes(dst, src, src_bytes);
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
int trajarena_store(PyObject *buf, Py_ssize_t row, PyObject *value)
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

void trajarena_store_init(void)
{
#ifdef TRAJARENA_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        stream = stream_avx2;
#endif
}
