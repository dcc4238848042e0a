/* Optional accelerator: UDP sends carried out by a native thread, and receives read in batches
 * (`Receiver`, further down) (pks.transport._sendq).
 *
 * Sending a datagram on loopback costs the sender the whole of the kernel's work — the UDP/IP
 * send path and the receiving socket's side, run in the sender's context — about a fifth of
 * the proxy's CPU per call. A `SendQueue` takes that work off the event loop's thread: `send`
 * (under the GIL) appends the datagram to a queue and returns; a native thread, which never
 * touches a Python object and never takes the GIL, hands the queue to the kernel with
 * `sendmmsg` (up to 64 datagrams per call), in order. The loop's thread keeps a reference to
 * each queued object and to its datagram's bytes (whose buffer the thread reads) until the
 * native thread is done with them; `send` and `reap` release the
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
    PyObject *obj; /* the caller's object (a Send), given back with a failure */
    PyObject *data; /* the datagram's bytes: a reference of our own, since buf points into it
                       and obj need not keep it alive (nor keep holding it) until reaped */
    const char *buf; /* PyBytes_AS_STRING(data) */
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
    Items held; /* sends between hold() and flush(): the loop's thread only, no lock */
    int holding;
    unsigned long long flushed; /* datagrams sent by flush() itself */
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

/* The sendmmsg vector of items[0:k]. */
static void fill(struct mmsghdr *msgs, struct iovec *iov, Item *items, int k) {
    for (int j = 0; j < k; j++) {
        Item *it = &items[j];
        iov[j].iov_base = (void *)it->buf;
        iov[j].iov_len = (size_t)it->len;
        memset(&msgs[j].msg_hdr, 0, sizeof(struct msghdr));
        msgs[j].msg_hdr.msg_name = &it->addr;
        msgs[j].msg_hdr.msg_namelen = it->alen;
        msgs[j].msg_hdr.msg_iov = &iov[j];
        msgs[j].msg_hdr.msg_iovlen = 1;
    }
}

static void send_all(SendQueue *q, Item *items, Py_ssize_t n, int *failed) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    Py_ssize_t i = 0;
    while (i < n) {
        int k = (int)((n - i) < BATCH ? (n - i) : BATCH);
        fill(msgs, iov, items + i, k);
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

/* Send items[0:n] now, without waiting: the number taken (sent, or failed with err set) —
 * fewer than n when the socket's buffer is full. */
static Py_ssize_t send_now(SendQueue *q, Item *items, Py_ssize_t n) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    Py_ssize_t i = 0;
    while (i < n) {
        int k = (int)((n - i) < BATCH ? (n - i) : BATCH);
        fill(msgs, iov, items + i, k);
        int sent = sendmmsg(q->fd, msgs, (unsigned int)k, MSG_DONTWAIT);
        if (sent > 0)
            i += sent;
        else if (sent < 0 && errno == EINTR)
            continue;
        else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else { /* the first datagram of this batch failed: it is taken, with its errno */
            items[i].err = sent < 0 ? errno : EIO;
            i++;
        }
    }
    return i;
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
        Py_DECREF(it->data);
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
    it.data = data; /* referenced below whenever the item outlives this call */
    it.buf = PyBytes_AS_STRING(data);
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
    if (q->holding) { /* flush() sends it, with the others of this batch */
        Py_INCREF(obj);
        Py_INCREF(data);
        if (items_push(&q->held, &it) != 0) {
            Py_DECREF(obj);
            Py_DECREF(data);
            return PyErr_NoMemory();
        }
        Py_RETURN_TRUE;
    }
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
            Py_INCREF(data);
            rc = items_push(&q->pending, &it);
            if (rc == 0)
                pthread_cond_signal(&q->cv);
            q->queued++;
        } else if (sent < 0) { /* given back by this very call (has_done below) */
            it.err = errno;
            Py_INCREF(obj);
            Py_INCREF(data);
            rc = items_push(&q->done, &it);
        }
    } else {
        Py_INCREF(obj);
        Py_INCREF(data);
        rc = items_push(&q->pending, &it);
        if (rc == 0 && q->idle)
            pthread_cond_signal(&q->cv);
        q->queued++;
    }
    int has_done = q->done.n > 0;
    pthread_mutex_unlock(&q->mu);
    if (rc != 0) {
        Py_DECREF(obj);
        Py_DECREF(data);
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

static PyObject *SendQueue_hold(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    if (!q->started) {
        PyErr_SetString(PyExc_ValueError, "the send queue is closed");
        return NULL;
    }
    q->holding = 1;
    Py_RETURN_NONE;
}

static PyObject *SendQueue_flush(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    q->holding = 0;
    Items held = q->held;
    Py_ssize_t first = 0; /* held[first:] still to hand over */
    int rc = 0;
    if (held.n > 0) {
        pthread_mutex_lock(&q->mu);
        int mine = q->idle && q->pending.n == 0; /* nothing queued before them: send here */
        pthread_mutex_unlock(&q->mu);
        if (mine) {
            first = send_now(q, held.items, held.n);
            q->flushed += (unsigned long long)first;
            pthread_mutex_lock(&q->mu);
            for (Py_ssize_t i = 0; i < first; i++) {
                Item *it = &held.items[i];
                if (it->err != 0) /* given back below, as send() gives its own failures */
                    rc |= items_push(&q->done, it);
            }
            pthread_mutex_unlock(&q->mu);
            for (Py_ssize_t i = 0; i < first; i++) {
                if (held.items[i].err == 0) {
                    Py_DECREF(held.items[i].obj);
                    Py_DECREF(held.items[i].data);
                }
            }
        }
        if (first < held.n) { /* behind queued sends, or the buffer is full: the thread */
            pthread_mutex_lock(&q->mu);
            for (Py_ssize_t i = first; i < held.n; i++)
                rc |= items_push(&q->pending, &held.items[i]);
            q->queued += (unsigned long long)(held.n - first);
            if (q->idle)
                pthread_cond_signal(&q->cv);
            pthread_mutex_unlock(&q->mu);
        }
        q->held.n = 0;
    }
    if (rc != 0) /* out of memory: the references leak rather than be freed mid-flight */
        return PyErr_NoMemory();
    pthread_mutex_lock(&q->mu);
    int has_done = q->done.n > 0;
    pthread_mutex_unlock(&q->mu);
    if (!has_done)
        Py_RETURN_NONE;
    return take_done(q);
}

static PyObject *SendQueue_reap(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    uint64_t count;
    ssize_t r = read(q->efd, &count, sizeof count); /* clears the event (non-blocking) */
    (void)r;
    return take_done(q);
}

static PyObject *SendQueue_close(SendQueue *q, PyObject *Py_UNUSED(ignored)) {
    if (q->held.n > 0 && q->started) { /* a batch still held goes out first */
        PyObject *early = SendQueue_flush(q, NULL);
        Py_XDECREF(early); /* its failures are given back below with the rest */
        if (early == NULL)
            PyErr_Clear();
    }
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

static PyObject *SendQueue_flushed(SendQueue *q, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(q->flushed);
}

static void SendQueue_dealloc(SendQueue *q) {
    stop_thread(q);
    PyObject *rest = take_done(q);
    Py_XDECREF(rest);
    if (q->fd >= 0)
        close(q->fd);
    if (q->efd >= 0)
        close(q->efd);
    for (Py_ssize_t i = 0; i < q->held.n; i++) { /* never flushed: never sent */
        Py_DECREF(q->held.items[i].obj);
        Py_DECREF(q->held.items[i].data);
    }
    free(q->held.items);
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
    {"hold", (PyCFunction)SendQueue_hold, METH_NOARGS,
     "Keep the following sends until flush() (a batch of received datagrams being handled)."},
    {"flush", (PyCFunction)SendQueue_flush, METH_NOARGS,
     "Send what hold() kept: here with sendmmsg when nothing is queued before it and the "
     "socket takes it, else through the thread; returns what reap() would."},
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
    {"flushed", (getter)SendQueue_flushed, NULL, "datagrams sent by flush() itself", NULL},
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

/* ---- Receiving: a batch of datagrams per system call ----------------------------------------
 *
 * The event loop's own UDP transport reads one datagram per recvfrom and calls the protocol
 * once per datagram, with a new (host, port) tuple whose host string is formatted anew each
 * time. A `Receiver` reads up to RBATCH datagrams with one recvmmsg and gives them back as a
 * list of (bytes, source) pairs, where source is whatever `make(host, port)` returned for that
 * address: kept in a small direct-mapped cache keyed by the raw socket address, so that the
 * messages of one peer share one source object (and its host string, whose hash is then
 * computed once). The cache has a fixed size: a flood from many (spoofed) sources only
 * overwrites its slots. Datagrams longer than `max` are dropped here, counted in `too_large`.
 */
#define RBATCH 32
#define RCACHE 256 /* a power of two */

typedef struct {
    struct sockaddr_storage addr;
    socklen_t alen;
    PyObject *value; /* make()'s answer for addr, or NULL */
} Slot;

typedef struct {
    PyObject_HEAD
    int fd; /* our own duplicate of the socket */
    Py_ssize_t max; /* the longest datagram taken */
    PyObject *make;
    char *bufs; /* RBATCH buffers of max + 1 bytes: a longer datagram shows as truncated */
    struct mmsghdr msgs[RBATCH];
    struct iovec iov[RBATCH];
    struct sockaddr_storage addrs[RBATCH];
    Slot cache[RCACHE];
    unsigned long long too_large;
} Receiver;

static PyObject *Receiver_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    int fd;
    Py_ssize_t max;
    PyObject *make;
    static char *kwlist[] = {"fd", "max", "make", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "inO", kwlist, &fd, &max, &make))
        return NULL;
    if (max < 1 || max > 65535) {
        PyErr_SetString(PyExc_ValueError, "max: 1 to 65535 bytes");
        return NULL;
    }
    if (!PyCallable_Check(make)) {
        PyErr_SetString(PyExc_TypeError, "make must be callable");
        return NULL;
    }
    Receiver *r = (Receiver *)type->tp_alloc(type, 0); /* zeroed: the cache is empty */
    if (r == NULL)
        return NULL;
    r->fd = -1;
    r->max = max;
    Py_INCREF(make);
    r->make = make;
    r->bufs = malloc((size_t)RBATCH * (size_t)(max + 1));
    if (r->bufs == NULL) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    r->fd = dup(fd);
    if (r->fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static size_t slot_of(const struct sockaddr_storage *ss) {
    uint32_t h = 2166136261u; /* FNV-1a over the address and port bytes */
    const unsigned char *p;
    size_t n;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        p = (const unsigned char *)&a->sin_addr;
        n = sizeof a->sin_addr;
        h = (h ^ (a->sin_port & 0xff)) * 16777619u;
        h = (h ^ (a->sin_port >> 8)) * 16777619u;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        p = (const unsigned char *)&a->sin6_addr;
        n = sizeof a->sin6_addr;
        h = (h ^ (a->sin6_port & 0xff)) * 16777619u;
        h = (h ^ (a->sin6_port >> 8)) * 16777619u;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h & (RCACHE - 1);
}

static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen) {
    if (alen != blen || a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* A new reference to the source object of ss (cached), or NULL with an exception. */
static PyObject *source_of(Receiver *r, const struct sockaddr_storage *ss, socklen_t alen) {
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
        PyErr_SetString(PyExc_OSError, "datagram from an address of another family");
        return NULL;
    }
    Slot *slot = &r->cache[slot_of(ss)];
    if (slot->value != NULL && same_addr(&slot->addr, slot->alen, ss, alen)) {
        Py_INCREF(slot->value);
        return slot->value;
    }
    char host[INET6_ADDRSTRLEN];
    int port;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    PyObject *value = PyObject_CallFunction(r->make, "si", host, port);
    if (value == NULL)
        return NULL;
    Py_XSETREF(slot->value, value);
    Py_INCREF(value); /* one for the slot, one for the caller */
    memcpy(&slot->addr, ss, (size_t)alen);
    slot->alen = alen;
    return value;
}

static PyObject *Receiver_recv(Receiver *r, PyObject *Py_UNUSED(ignored)) {
    if (r->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the receiver is closed");
        return NULL;
    }
    size_t size = (size_t)r->max + 1;
    for (int i = 0; i < RBATCH; i++) {
        r->iov[i].iov_base = r->bufs + (size_t)i * size;
        r->iov[i].iov_len = size;
        memset(&r->msgs[i].msg_hdr, 0, sizeof r->msgs[i].msg_hdr);
        r->msgs[i].msg_hdr.msg_name = &r->addrs[i];
        r->msgs[i].msg_hdr.msg_namelen = sizeof r->addrs[i];
        r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
        r->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n;
    do
        n = recvmmsg(r->fd, r->msgs, RBATCH, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* nothing waiting, or an error the socket reported (ICMP, a full buffer): either way
           nothing to give; a pending error is cleared by this very read */
        return PyList_New(0);
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &r->msgs[i].msg_hdr;
        size_t len = r->msgs[i].msg_len;
        if ((h->msg_flags & MSG_TRUNC) || len > (size_t)r->max) {
            r->too_large++;
            continue;
        }
        PyObject *source = source_of(r, &r->addrs[i], h->msg_namelen);
        if (source == NULL) {
            if (PyErr_ExceptionMatches(PyExc_OSError)) { /* not IP: skipped, as asyncio would not */
                PyErr_Clear();
                continue;
            }
            Py_DECREF(out);
            return NULL;
        }
        PyObject *data = PyBytes_FromStringAndSize(r->iov[i].iov_base, (Py_ssize_t)len);
        PyObject *pair = data == NULL ? NULL : PyTuple_New(2);
        if (pair == NULL) {
            Py_XDECREF(data);
            Py_DECREF(source);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, data);
        PyTuple_SET_ITEM(pair, 1, source);
        int rc = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static void Receiver_forget(Receiver *r) {
    for (int i = 0; i < RCACHE; i++)
        Py_CLEAR(r->cache[i].value);
}

static PyObject *Receiver_close(Receiver *r, PyObject *Py_UNUSED(ignored)) {
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    Receiver_forget(r);
    Py_RETURN_NONE;
}

static PyObject *Receiver_too_large(Receiver *r, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(r->too_large);
}

static PyObject *Receiver_cached(Receiver *r, void *Py_UNUSED(closure)) {
    long n = 0;
    for (int i = 0; i < RCACHE; i++)
        n += r->cache[i].value != NULL;
    return PyLong_FromLong(n);
}

static PyObject *Receiver_batch(Receiver *r, void *Py_UNUSED(closure)) {
    (void)r;
    return PyLong_FromLong(RBATCH);
}

static int Receiver_traverse(Receiver *r, visitproc visit, void *arg) {
    Py_VISIT(r->make);
    for (int i = 0; i < RCACHE; i++)
        Py_VISIT(r->cache[i].value);
    return 0;
}

static int Receiver_clear(Receiver *r) {
    Py_CLEAR(r->make);
    Receiver_forget(r);
    return 0;
}

static void Receiver_dealloc(Receiver *r) {
    PyObject_GC_UnTrack(r);
    if (r->fd >= 0)
        close(r->fd);
    Receiver_clear(r);
    free(r->bufs);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef Receiver_methods[] = {
    {"recv", (PyCFunction)Receiver_recv, METH_NOARGS,
     "The datagrams waiting, up to `batch` of them, as a list of (data, source) pairs: empty "
     "when none waits. Never blocks."},
    {"close", (PyCFunction)Receiver_close, METH_NOARGS,
     "Close our duplicate of the socket and forget the cached sources."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Receiver_getset[] = {
    {"too_large", (getter)Receiver_too_large, NULL, "datagrams dropped for their length", NULL},
    {"batch", (getter)Receiver_batch, NULL, "the most datagrams one recv() returns", NULL},
    {"cached", (getter)Receiver_cached, NULL, "source objects held (at most 256)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pks.transport._sendq.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "UDP receives of one socket, a batch per system call (recvmmsg).",
    .tp_new = Receiver_new,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_traverse = (traverseproc)Receiver_traverse,
    .tp_clear = (inquiry)Receiver_clear,
    .tp_methods = Receiver_methods,
    .tp_getset = Receiver_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.transport._sendq",
    "UDP sends by a native thread, receives in batches (optional accelerator).", -1, NULL,
};

PyMODINIT_FUNC PyInit__sendq(void) {
    if (PyType_Ready(&SendQueueType) < 0 || PyType_Ready(&ReceiverType) < 0)
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
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(&ReceiverType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
