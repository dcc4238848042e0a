/* Optional accelerator: UDP sends carried out by a native thread (pks.transport._sendq).
 *
 * Sending a datagram on loopback costs the sender the whole of the kernel's work — the UDP/IP
 * send path and the receiving socket's side, run in the sender's context — about a fifth of
 * the proxy's CPU per call. A `SendQueue` takes that work off the event loop's thread: `send`
 * (under the GIL) appends the datagram to a queue and returns; a native thread, which never
 * touches a Python object and never takes the GIL, hands the queue to the kernel with
 * `sendmmsg` (up to 64 datagrams per call), in order. The loop's thread keeps a reference to
 * each queued object until the native thread is done with it; `send` and `reap` release the
 * finished ones and return those that failed, with their errno, so that the caller reports
 * them as before. When a batch had failures the thread writes to an eventfd (`event_fd`) that
 * the loop watches, so a failure is reported even if nothing else is sent.
 *
 * Handing a datagram over costs a wake-up of the thread when it sleeps: worth it under load,
 * not for a datagram now and then. So while the previous 10 ms saw fewer than BUSY_SENDS sends
 * and the thread has nothing in hand (asleep, queue empty: no order to keep), `send` sends
 * itself, at once, as the event loop would.
 *
 * Built by `python -m pks.accel build` next to the mypyc modules; without it
 * pks.transport.udp sends with the event loop's own `sendto` (the same behaviour, on the
 * loop's thread). Linux only (sendmmsg, eventfd).
 *
 * SPDX-License-Identifier: AGPL-3.0-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define WINDOW_NS 10000000LL /* 10 ms */
#define BUSY_SENDS 50 /* sends per window from which the thread takes them (5 000/s) */

typedef struct {
    PyObject *obj; /* the caller's object (a Send), kept alive while queued */
    const char *buf; /* the datagram: a bytes object's buffer, owned by obj */
    Py_ssize_t len;
    struct sockaddr_storage addr;
    socklen_t alen;
    int err; /* 0, or the errno of a failed send */
} Item;

typedef struct {
    Item *items;
    Py_ssize_t n, cap;
} Items;

typedef struct {
    PyObject_HEAD
    int fd; /* our own duplicate of the socket */
    int efd; /* eventfd: written when a batch had failures */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Items pending; /* appended by send(), taken whole by the thread */
    Items done; /* given back by the thread, released by send()/reap() */
    int idle; /* the thread waits on cv */
    int stop;
    long long window_start; /* CLOCK_MONOTONIC_COARSE ns: the current 10 ms window */
    int window_sends; /* sends in the current window */
    int busy; /* the previous window had BUSY_SENDS sends or more */
    unsigned long long queued; /* datagrams handed to the thread (the others sent by send()) */
} SendQueue;

static int items_push(Items *v, const Item *it) {
    if (v->n == v->cap) {
        Py_ssize_t cap = v->cap ? v->cap * 2 : 256;
        Item *grown = realloc(v->items, (size_t)cap * sizeof(Item));
        if (grown == NULL)
            return -1;
        v->items = grown;
        v->cap = cap;
    }
    v->items[v->n++] = *it;
    return 0;
}

static void send_all(SendQueue *q, Item *items, Py_ssize_t n, int *failed) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    Py_ssize_t i = 0;
    while (i < n) {
        int k = (int)((n - i) < BATCH ? (n - i) : BATCH);
        for (int j = 0; j < k; j++) {
            Item *it = &items[i + j];
            iov[j].iov_base = (void *)it->buf;
            iov[j].iov_len = (size_t)it->len;
            memset(&msgs[j].msg_hdr, 0, sizeof(struct msghdr));
            msgs[j].msg_hdr.msg_name = &it->addr;
            msgs[j].msg_hdr.msg_namelen = it->alen;
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
        }
        int sent = sendmmsg(q->fd, msgs, (unsigned int)k, 0);
        if (sent > 0) {
            i += sent;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = q->fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) <= 0) { /* full for a second: give the rest of this batch up */
                for (; i < n; i++)
                    items[i].err = EAGAIN;
                *failed = 1;
            }
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else { /* the first datagram of this batch failed: report it, go on after it */
            items[i].err = sent < 0 ? errno : EIO;
            *failed = 1;
            i++;
        }
    }
}

static void *run(void *arg) {
    SendQueue *q = (SendQueue *)arg;
    Items work = {NULL, 0, 0};
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->pending.n == 0 && !q->stop) {
            q->idle = 1;
            pthread_cond_wait(&q->cv, &q->mu);
            q->idle = 0;
        }
        if (q->pending.n == 0 && q->stop)
            break;
        Items taken = q->pending; /* take the whole queue; give the thread's empty array back */
        q->pending = work;
        q->pending.n = 0;
        pthread_mutex_unlock(&q->mu);

        int failed = 0;
        send_all(q, taken.items, taken.n, &failed);

        pthread_mutex_lock(&q->mu);
        int ok = 0;
        for (Py_ssize_t i = 0; i < taken.n; i++)
            ok |= items_push(&q->done, &taken.items[i]);
        if (ok != 0) /* out of memory: the references leak rather than be lost mid-flight */
            failed = 1;
        work = taken;
        work.n = 0;
        if (failed) {
            uint64_t one = 1;
            ssize_t w = write(q->efd, &one, sizeof one);
            (void)w;
        }
    }
    pthread_mutex_unlock(&q->mu);
    free(work.items);
    return NULL;
}

/* Release the finished items; a list of (obj, errno) of the failed ones, or None (NULL with an
 * exception when the list cannot be made: the references are released all the same). */
static PyObject *take_done(SendQueue *q) {
    Items done;
    pthread_mutex_lock(&q->mu);
    done = q->done;
    q->done.items = NULL;
    q->done.n = q->done.cap = 0;
    pthread_mutex_unlock(&q->mu);
    PyObject *failures = NULL;
    int error = 0;
    for (Py_ssize_t i = 0; i < done.n; i++) {
        Item *it = &done.items[i];
        if (it->err != 0 && !error) {
            PyObject *pair = Py_BuildValue("(Oi)", it->obj, it->err);
            if (failures == NULL && pair != NULL)
                failures = PyList_New(0);
            if (pair == NULL || failures == NULL || PyList_Append(failures, pair) < 0) {
                Py_CLEAR(failures);
                error = 1;
            }
            Py_XDECREF(pair);
        }
        Py_DECREF(it->obj);
    }
    free(done.items);
    if (error)
        return NULL;
    if (failures == NULL)
        Py_RETURN_NONE;
    return failures;
}

static int parse_addr(PyObject *host, int port, struct sockaddr_storage *ss, socklen_t *alen) {
    const char *h = PyUnicode_AsUTF8(host);
    if (h == NULL)
        return -1;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *alen = sizeof *a4;
        return 0;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *alen = sizeof *a6;
        return 0;
    }
    return 1;
}

static PyObject *SendQueue_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    int fd;
    static char *kwlist[] = {"fd", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &fd))
        return NULL;
    SendQueue *q = (SendQueue *)type->tp_alloc(type, 0);
    if (q == NULL)
        return NULL;
    q->fd = -1;
    q->efd = -1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->fd = dup(fd);
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0 || q->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(q);
        return NULL;
    }
    int rc = pthread_create(&q->thread, NULL, run, q);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(q);
        return NULL;
    }
    q->started = 1;
    return (PyObject *)q;
}

static void stop_thread(SendQueue *q) {
    if (!q->started)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(q->thread, NULL);
    Py_END_ALLOW_THREADS
    q->started = 0;
}

static PyObject *SendQueue_send(SendQueue *q, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "send(obj, data, host, port)");
        return NULL;
    }
    PyObject *obj = args[0], *data = args[1], *host = args[2];
    if (!PyBytes_Check(data) || !PyUnicode_Check(host) || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "send(obj, data: bytes, host: str, port: int)");
        return NULL;
    }
    long port = PyLong_AsLong(args[3]);
    if (port <= 0 || port > 65535) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    if (!q->started) {
        PyErr_SetString(PyExc_ValueError, "the send queue is closed");
        return NULL;
    }
    Item it;
    int bad = parse_addr(host, (int)port, &it.addr, &it.alen);
    if (bad < 0)
        return NULL;
    if (bad > 0) /* not an IP literal: the caller sends it the other way */
        Py_RETURN_FALSE;
    it.obj = obj;
    it.buf = PyBytes_AS_STRING(data); /* obj holds data: both live until reaped */
    it.len = PyBytes_GET_SIZE(data);
    it.err = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (now - q->window_start >= WINDOW_NS) {
        q->busy = q->window_sends >= BUSY_SENDS && now - q->window_start < 2 * WINDOW_NS;
        q->window_start = now;
        q->window_sends = 0;
    }
    q->window_sends++;
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (!q->busy && q->idle && q->pending.n == 0) { /* quiet: send it now, from here */
        ssize_t sent;
        do
            sent = sendto(q->fd, it.buf, (size_t)it.len, MSG_DONTWAIT,
                          (struct sockaddr *)&it.addr, it.alen);
        while (sent < 0 && errno == EINTR);
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            Py_INCREF(obj); /* the thread waits for room */
            rc = items_push(&q->pending, &it);
            if (rc == 0)
                pthread_cond_signal(&q->cv);
            q->queued++;
        } else if (sent < 0) { /* given back by this very call (has_done below) */
            it.err = errno;
            Py_INCREF(obj);
            rc = items_push(&q->done, &it);
        }
    } else {
        Py_INCREF(obj);
        rc = items_push(&q->pending, &it);
        if (rc == 0 && q->idle)
            pthread_cond_signal(&q->cv);
        q->queued++;
    }
    int has_done = q->done.n > 0;
    pthread_mutex_unlock(&q->mu);
    if (rc != 0) {
        Py_DECREF(obj);
        return PyErr_NoMemory();
    }
    if (!has_done)
        Py_RETURN_TRUE;
    PyObject *failures = take_done(q);
    if (failures == Py_None) {
        Py_DECREF(Py_None);
        Py_RETURN_TRUE;
    }
    return failures; /* or NULL: the exception */
}

static PyObject *SendQueue_reap(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    uint64_t count;
    ssize_t r = read(q->efd, &count, sizeof count); /* clears the event (non-blocking) */
    (void)r;
    return take_done(q);
}

static PyObject *SendQueue_close(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    stop_thread(q); /* the thread sends what was queued, then ends */
    PyObject *failures = take_done(q);
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    return failures;
}

static PyObject *SendQueue_event_fd(SendQueue *q, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(q->efd);
}

static PyObject *SendQueue_queued(SendQueue *q, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(q->queued);
}

static void SendQueue_dealloc(SendQueue *q) {
    stop_thread(q);
    PyObject *rest = take_done(q);
    Py_XDECREF(rest);
    if (q->fd >= 0)
        close(q->fd);
    if (q->efd >= 0)
        close(q->efd);
    free(q->pending.items);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    Py_TYPE(q)->tp_free((PyObject *)q);
}

static PyMethodDef SendQueue_methods[] = {
    {"send", (PyCFunction)(void (*)(void))SendQueue_send, METH_FASTCALL,
     "send(obj, data, host, port) -> True (sent or queued), False (host not an IP literal: "
     "neither) or the list of (obj, errno) of the sends that failed since the last answer "
     "(this one's too when send() made it itself)."},
    {"reap", (PyCFunction)SendQueue_reap, METH_NOARGS,
     "Release finished sends: None, or the list of (obj, errno) of those that failed."},
    {"close", (PyCFunction)SendQueue_close, METH_NOARGS,
     "Send what is queued, stop the thread; returns what reap() would."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SendQueue_getset[] = {
    {"event_fd", (getter)SendQueue_event_fd, NULL, "readable when failures wait for reap()",
     NULL},
    {"queued", (getter)SendQueue_queued, NULL,
     "datagrams handed to the thread so far (the others were sent by send() itself)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SendQueueType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pks.transport._sendq.SendQueue",
    .tp_basicsize = sizeof(SendQueue),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "UDP sends of one socket, carried out in order by a native thread.",
    .tp_new = SendQueue_new,
    .tp_dealloc = (destructor)SendQueue_dealloc,
    .tp_methods = SendQueue_methods,
    .tp_getset = SendQueue_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.transport._sendq",
    "UDP sends carried out by a native thread (optional accelerator).", -1, NULL,
};

PyMODINIT_FUNC PyInit__sendq(void) {
    if (PyType_Ready(&SendQueueType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SendQueueType);
    if (PyModule_AddObject(m, "SendQueue", (PyObject *)&SendQueueType) < 0) {
        Py_DECREF(&SendQueueType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
