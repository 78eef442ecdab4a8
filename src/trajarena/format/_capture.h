/* trajarena.format._capture: what its C files share. _capture.c walks a step's values (the plans'
 * leaves, the info slots); _store.c stores one value into a row, as ``buffer[row] = value`` would;
 * _copier.c is a thread that copies a chunk's frames into shared memory; _watch.c is the writer's listener
 * waiting without the GIL. */
#ifndef TRAJARENA_CAPTURE_H
#define TRAJARENA_CAPTURE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL trajarena_capture_ARRAY_API
#ifndef TRAJARENA_CAPTURE_MAIN
#define NO_IMPORT_ARRAY /* numpy's C API is imported once, by PyInit__capture */
#endif
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>

/* ``buf[row] = value``; 0, or -1 with an exception set. */
int trajarena_store(PyObject *buf, Py_ssize_t row, PyObject *value);
/* ``n`` bytes from ``src`` to ``dst``, with non-temporal stores for a frame's size or more (_store.c). */
void trajarena_copy_bytes(char *dst, const char *src, size_t n);
/* trajarena.format._capture.Copier (_copier.c); whether ``obj`` is one; without the GIL, do the jobs nobody
 * has started for ``min_age`` seconds (how many). */
extern PyTypeObject trajarena_CopierType;
int trajarena_is_copier(PyObject *obj);
int trajarena_copier_help(PyObject *copier, double min_age);
/* Pick the frame copy for this CPU (AVX2 where it has it): once, when the module is imported. */
void trajarena_store_init(void);
/* What time.monotonic() reads, in seconds (_watch.c). */
double trajarena_monotonic(void);
/* watch(fd, clock, poll_ms, max_ms[, copier]) -> bool, without the GIL (_watch.c). */
PyObject *trajarena_watch(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
