/* trajarena.format._capture.watch: the writer's listener thread waits for the writer process's
 * answers and for the game loop's flush deadlines without holding the GIL.
 *
 * A thread that waits for the GIL while the game loop releases it more often than the switch
 * interval (CartPole: numpy's random at each reset, every ~0.3 ms) starves: each release wakes it,
 * the game loop takes the GIL back first, and its timed wait starts over, so it never asks for a
 * switch; the game loop pays a futex wake each time (~3,000 a second, ~10 % of CartPole's speed,
 * for a listener that woke into Python every POLL_SECONDS). Here the looks at the clock are C reads
 * of doubles the game loop keeps up to date, so Python runs only when there is something to do,
 * and before it asks for the GIL the listener raises clock[3]: the game loop then sleeps a moment
 * at its next chunk handoff, which lets it in (ProcessHandoff._yield). */
#include "_capture.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

/* A copy job nobody has started for this long is done by the listener (see _copier.c). */
#define HELP_AGE_S 0.02

double trajarena_monotonic(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* what time.monotonic() reads */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

PyObject *trajarena_watch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "watch(fd, clock, poll_ms, max_ms[, copier]) takes 4 or 5 arguments");
        return NULL;
    }
    PyObject *copier = nargs == 5 && args[4] != Py_None ? args[4] : NULL; /* kept alive by args */
    if (copier != NULL && !trajarena_is_copier(copier)) {
        PyErr_SetString(PyExc_TypeError, "watch: copier must be a trajarena.format._capture.Copier or None");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]), poll_ms = PyLong_AsLong(args[2]), max_ms = PyLong_AsLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *clock = args[1];
    if (!PyArray_Check(clock) || PyArray_TYPE((PyArrayObject *)clock) != NPY_FLOAT64 ||
        PyArray_SIZE((PyArrayObject *)clock) != 4 || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)clock) ||
        !PyArray_ISWRITEABLE((PyArrayObject *)clock)) {
        PyErr_SetString(PyExc_TypeError, "watch: clock must be a writable C-contiguous float64 array of 4 values");
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX || poll_ms < 1 || poll_ms > 60000 || max_ms < 0 || max_ms > 3600000) {
        PyErr_SetString(PyExc_ValueError, "watch: fd in [0, INT_MAX], poll_ms in [1, 60000], max_ms in [0, 3600000]");
        return NULL;
    }
    /* the game loop writes c[0..2] (aligned 8-byte stores: a read sees the old value or the new one),
     * this thread c[3]; the array is kept alive by the reference in args while the GIL is released */
    volatile double *c = (volatile double *)PyArray_DATA((PyArrayObject *)clock);
    int ready = 0;
    Py_BEGIN_ALLOW_THREADS
    double start = trajarena_monotonic();
    for (;;) {
        struct pollfd p = {(int)fd, POLLIN, 0};
        int r = poll(&p, 1, (int)poll_ms);
        if (r > 0 || (r < 0 && errno != EINTR)) { /* input, the end of the pipe, or an error to read */
            ready = 1;
            break;
        }
        if (copier != NULL) /* a chunk's frames its starved copier has not started: copied here */
            trajarena_copier_help(copier, HELP_AGE_S);
        double now = trajarena_monotonic(), last = c[0], end_due = c[1], flush = c[2];
        if (now - last >= flush || (end_due > 0.0 && now >= end_due) || (now - start) * 1000.0 >= max_ms)
            break;
    }
    c[3] = 1.0; /* about to ask for the GIL: see ProcessHandoff._yield */
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ready);
}
