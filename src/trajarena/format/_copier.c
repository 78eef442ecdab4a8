/* trajarena.format._capture.Copier: a low-priority thread of the game process, without the GIL, that
 * copies a chunk's frames from the game loop's private memory into the writer process's shared memory.
 *
 * Why: the game loop's copy of a frame into shared memory costs it ~2 us a step more than the same copy
 * into private memory in huge pages (a 73 kB ``duel`` frame touches 18 fresh 4 kB pages, whose page walks
 * miss under the env's cache pressure; shared memory gets no huge pages on a default Linux, private memory
 * does with MADV_HUGEPAGE). So the frames of a chunk are written into a private staging buffer and, at
 * the chunk's handoff, this thread copies its rows into the chunk's slot, then stores the job's number in
 * a counter of the shared memory: the writer process reads a chunk only once that counter has reached
 * the number its message carries. Numbers are stored in order (a job done early waits for those before).
 *
 * The thread runs at SCHED_IDLE and wakes from its own naps: at normal priority, or woken by the game
 * loop (Linux's wake-affine placement puts it on the game loop's core), it cost ``duel``'s game loop
 * more than the copy saved (1,000-2,000 interleaved rounds: -0.3 to -1.8 us a step against +1.3 to +1.9
 * at SCHED_IDLE). A thread at SCHED_IDLE may starve on a busy machine, so it is never waited for: a job
 * nobody has started after ``min_age`` seconds is done by whoever calls ``help`` (the game loop at its
 * next handoff, the writer's listener thread every poll, from ``watch``), so a chunk handed over reaches
 * the shared memory within tens of ms whatever the load.
 *
 * ``submit`` keeps a reference to each buffer until the job is done and the owner calls again (submit,
 * wait or close reap them, with the GIL); the thread touches no Python object. A forked copy of the owner
 * has no thread: its Copier refuses every call and frees nothing.
 */
#include "_capture.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define RING 16     /* jobs queued at most (submit waits for room; a writer has ~10 chunks) */
#define MAX_PAIRS 8 /* buffers one job copies (a chunk's large columns) */
/* Between jobs the thread naps (NAPS naps of NAP_NS) before it sleeps until ``submit`` wakes it; a game
 * loop at full speed hands a chunk over every few ms, so it never sleeps then. */
#define NAP_NS 500000
#define NAPS 100

enum { PENDING, RUNNING, DONE };

typedef struct {
    char *dst[MAX_PAIRS];
    const char *src[MAX_PAIRS];
    size_t n[MAX_PAIRS];
    int pairs, state;
    double submitted;
    uint64_t *counter, seq;
    PyObject *keep; /* the buffers and the counter, released once the job is done */
} Job;

typedef struct {
    PyObject_HEAD
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, done; /* a job or stop for the thread; a job done for the waiters */
    Job jobs[RING];
    /* [reaped, tail): done, references held; [tail, claim): started (some maybe done); [claim, head): pending */
    uint64_t head, claim, tail, reaped;
    int started, stop;
    pid_t owner;
} Copier;

/* The oldest pending job, now running (lock held), or NULL. */
static Job *claim(Copier *c, double min_age)
{
    if (c->claim == c->head)
        return NULL;
    Job *job = &c->jobs[c->claim % RING];
    if (min_age > 0.0 && trajarena_monotonic() - job->submitted < min_age)
        return NULL;
    job->state = RUNNING;
    c->claim++;
    return job;
}

/* Copy ``job`` (lock not held), then publish it and every job done before it, in order (lock held on return). */
static void run_job(Copier *c, Job *job)
{
    for (int i = 0; i < job->pairs; i++)
        trajarena_copy_bytes(job->dst[i], job->src[i], job->n[i]);
    pthread_mutex_lock(&c->lock);
    job->state = DONE;
    for (; c->tail < c->claim && c->jobs[c->tail % RING].state == DONE; c->tail++) {
        Job *first = &c->jobs[c->tail % RING];
        __atomic_store_n(first->counter, first->seq, __ATOMIC_RELEASE); /* after the copies (their sfence) */
    }
    pthread_cond_broadcast(&c->done);
}

static void *run(void *arg)
{
    Copier *c = (Copier *)arg;
    struct sched_param none = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &none); /* see the top of this file; best effort */
    int naps = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        Job *job = claim(c, 0.0);
        if (job != NULL) {
            naps = 0;
            pthread_mutex_unlock(&c->lock);
            run_job(c, job);
            continue;
        }
        if (c->stop)
            break;
        if (naps < NAPS) {
            naps++;
            pthread_mutex_unlock(&c->lock);
            struct timespec nap = {0, NAP_NS};
            nanosleep(&nap, NULL);
            pthread_mutex_lock(&c->lock);
        }
        else
            pthread_cond_wait(&c->work, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int trajarena_copier_help(PyObject *obj, double min_age)
{
    Copier *c = (Copier *)obj;
    int done = 0;
    if (c->owner != getpid() || !c->started)
        return 0;
    pthread_mutex_lock(&c->lock);
    for (Job *job; (job = claim(c, min_age)) != NULL; done++) {
        pthread_mutex_unlock(&c->lock);
        run_job(c, job);
    }
    pthread_mutex_unlock(&c->lock);
    return done;
}

/* Drop the references of the jobs done (with the GIL). */
static void reap(Copier *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t tail = c->tail;
    pthread_mutex_unlock(&c->lock);
    for (; c->reaped < tail; c->reaped++)
        Py_CLEAR(c->jobs[c->reaped % RING].keep);
}

/* Wait (without the GIL) until fewer than ``unfinished`` jobs are not done, helping with the pending ones. */
static void wait_below(Copier *c, uint64_t unfinished)
{
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&c->lock);
    while (c->head - c->tail >= unfinished) {
        Job *job = claim(c, 0.0); /* never wait for a thread that may starve */
        if (job != NULL) {
            pthread_mutex_unlock(&c->lock);
            run_job(c, job);
        }
        else
            pthread_cond_wait(&c->done, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    Py_END_ALLOW_THREADS
}

static int usable(Copier *c)
{
    if (c->owner != getpid()) {
        PyErr_SetString(PyExc_RuntimeError, "Copier: this is a forked copy of its owner (it has no thread)");
        return 0;
    }
    if (!c->started) {
        PyErr_SetString(PyExc_RuntimeError, "Copier: closed");
        return 0;
    }
    return 1;
}

static PyObject *copier_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Copier() takes no arguments");
        return NULL;
    }
    Copier *c = (Copier *)type->tp_alloc(type, 0);
    if (c == NULL)
        return NULL;
    c->owner = getpid();
    if (pthread_mutex_init(&c->lock, NULL) || pthread_cond_init(&c->work, NULL) || pthread_cond_init(&c->done, NULL)
        || pthread_create(&c->thread, NULL, run, c)) {
        Py_DECREF(c); /* started is 0: dealloc touches no thread */
        PyErr_SetString(PyExc_OSError, "Copier: cannot start its thread");
        return NULL;
    }
    c->started = 1;
    return (PyObject *)c;
}

/* A C-contiguous numpy array's address and size (``writable``: it must be). 0, or -1 with an exception. */
static int contiguous(PyObject *obj, int writable, char **ptr, size_t *n)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    if (!PyArray_Check(obj) || !PyArray_IS_C_CONTIGUOUS(a) || (writable && !PyArray_ISWRITEABLE(a))) {
        PyErr_SetString(PyExc_TypeError, "Copier.submit: buffers are C-contiguous numpy arrays (dst writable)");
        return -1;
    }
    *ptr = PyArray_BYTES(a), *n = (size_t)PyArray_NBYTES(a);
    return 0;
}

static PyObject *copier_submit(Copier *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) > MAX_PAIRS) {
        PyErr_Format(PyExc_TypeError, "submit(((src, dst), ...), counter, seq): at most %d pairs", MAX_PAIRS);
        return NULL;
    }
    if (!usable(c))
        return NULL;
    PyArrayObject *counter = (PyArrayObject *)args[1];
    if (!PyArray_Check(args[1]) || PyArray_TYPE(counter) != NPY_UINT64 || PyArray_SIZE(counter) < 1
        || !PyArray_IS_C_CONTIGUOUS(counter) || !PyArray_ISWRITEABLE(counter)) {
        PyErr_SetString(PyExc_TypeError, "Copier.submit: the counter is a writable uint64 array");
        return NULL;
    }
    unsigned long long seq = PyLong_AsUnsignedLongLong(args[2]);
    if (seq == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Job job = {.pairs = (int)PyTuple_GET_SIZE(args[0]), .state = PENDING,
               .counter = (uint64_t *)PyArray_DATA(counter), .seq = seq};
    for (int i = 0; i < job.pairs; i++) {
        PyObject *pair = PyTuple_GET_ITEM(args[0], i);
        char *src;
        size_t n;
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "Copier.submit: each pair is (src, dst)");
            return NULL;
        }
        if (contiguous(PyTuple_GET_ITEM(pair, 0), 0, &src, &n) < 0
            || contiguous(PyTuple_GET_ITEM(pair, 1), 1, &job.dst[i], &job.n[i]) < 0)
            return NULL;
        if (n != job.n[i]) {
            PyErr_SetString(PyExc_ValueError, "Copier.submit: src and dst differ in size");
            return NULL;
        }
        job.src[i] = src;
    }
    reap(c);
    if (c->head - c->reaped >= RING) {
        wait_below(c, RING - 1); /* no room in the ring */
        reap(c);
    }
    if ((job.keep = PyTuple_Pack(2, args[0], args[1])) == NULL)
        return NULL;
    job.submitted = trajarena_monotonic();
    pthread_mutex_lock(&c->lock);
    c->jobs[c->head % RING] = job;
    c->head++;
    pthread_cond_signal(&c->work); /* no system call unless the thread sleeps (no job for NAPS naps) */
    pthread_mutex_unlock(&c->lock);
    Py_RETURN_NONE;
}

static PyObject *copier_help(Copier *c, PyObject *arg)
{
    double min_age = PyFloat_AsDouble(arg);
    if (min_age == -1.0 && PyErr_Occurred())
        return NULL;
    if (!usable(c))
        return NULL;
    pthread_mutex_lock(&c->lock);
    int pending = c->claim < c->head; /* the usual case, none: the GIL is kept */
    pthread_mutex_unlock(&c->lock);
    int done = 0;
    if (pending) {
        Py_BEGIN_ALLOW_THREADS
        done = trajarena_copier_help((PyObject *)c, min_age);
        Py_END_ALLOW_THREADS
    }
    reap(c);
    return PyLong_FromLong(done);
}

static PyObject *copier_wait(Copier *c, PyObject *unused)
{
    if (!usable(c))
        return NULL;
    wait_below(c, 1);
    reap(c);
    Py_RETURN_NONE;
}

/* Finish every job (helping the thread), then stop it. */
static void stop(Copier *c)
{
    if (!c->started || c->owner != getpid())
        return;
    wait_below(c, 1);
    c->started = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    Py_END_ALLOW_THREADS
    reap(c);
}

static PyObject *copier_close(Copier *c, PyObject *unused)
{
    stop(c);
    Py_RETURN_NONE;
}

static void copier_dealloc(Copier *c)
{
    stop(c); /* a forked copy leaves the references (its owner's memory) as they are */
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyMethodDef copier_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))copier_submit, METH_FASTCALL,
     "submit(((src, dst), ...), counter, seq)\n--\n\nCopy each src into its dst on the thread, then store seq in "
     "counter[0] once this job and every earlier one are done. Waits (helping) when 16 jobs are unfinished."},
    {"help", (PyCFunction)copier_help, METH_O,
     "help(min_age)\n--\n\nDo here, without the GIL, every job nobody has started for min_age seconds; "
     "how many."},
    {"wait", (PyCFunction)copier_wait, METH_NOARGS, "wait()\n--\n\nEvery job submitted done (helping)."},
    {"close", (PyCFunction)copier_close, METH_NOARGS, "close()\n--\n\nFinish the jobs, stop the thread (idempotent)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject trajarena_CopierType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trajarena.format._capture.Copier",
    .tp_basicsize = sizeof(Copier),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Copier()\n--\n\nA low-priority thread that copies buffers without the GIL, then stores their job's "
              "number (the frames of a chunk into the writer process's shared memory; see _copier.c).",
    .tp_new = copier_new,
    .tp_dealloc = (destructor)copier_dealloc,
    .tp_methods = copier_methods,
};

int trajarena_is_copier(PyObject *obj)
{
    return Py_IS_TYPE(obj, &trajarena_CopierType);
}
