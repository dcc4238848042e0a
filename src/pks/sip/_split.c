/* Optional accelerator: a message's header lines cut into (key, line, value) (pks.sip._split).
 *
 * The parser's hottest loop: every message received is cut into one Header per line (key,
 * line as received, value without the blanks around it). In Python each line costs the line,
 * a partition tuple, the name, the value and its stripped copy, and a dict lookup that hashes
 * the name, after two searches of the message for the end of the header section (each a
 * method call with its argument parsing); here it costs the line and the value, in one pass
 * that also finds the empty line, with no copy of the header section first:
 * the name's key comes from a small table of the names met before, in C, keyed by the bytes
 * themselves (the dict is asked only for a name not in that table). The parser then builds
 * each Header from the flat list [key, line, value, key, line, value, …] this returns: from
 * compiled code that is a direct call, where calling the Header class from C would go through
 * the generic constructor (about 800 instructions a line).
 *
 * Only the common case is handled: every line has a colon and a name already in the parser's
 * table of known names (`pks.sip.parse._keys`, raw name as written → key). Anything else — a
 * folded line, a name not seen yet, a line without a colon — returns None and the parser does
 * the whole section the Python way (which validates the name, learns it, or raises the
 * ParseError). Without this module (pure Python, or not built) the parser always does that.
 * Names map to their key for good (the parser's table only grows), so the C table can keep
 * what the dict answered.
 *
 * Built by `python -m pks.accel build` next to the mypyc modules.
 *
 * SPDX-License-Identifier: AGPL-3.0-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

/* The byte strip() removes (bytes.strip() with no argument: ASCII whitespace). */
static inline int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* The next CRLF in [p, end), or NULL. */
static inline const char *find_crlf(const char *p, const char *end) {
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL || cr + 1 >= end)
            return NULL;
        if (cr[1] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

#define SLOTS 128 /* names remembered (a power of two) */
#define NAME_MAX_LEN 24 /* longer names always ask the dict */

typedef struct {
    Py_ssize_t len; /* 0: empty slot */
    char name[NAME_MAX_LEN];
    PyObject *key; /* a strong reference to the key (str) */
} Slot;

static Slot table[SLOTS];

static inline size_t slot_of(const char *name, Py_ssize_t len) {
    size_t h = (size_t)len;
    for (Py_ssize_t i = 0; i < len; i++)
        h = h * 31u + (unsigned char)name[i];
    return (h ^ (h >> 7)) & (SLOTS - 1);
}

/* The key of a raw name (borrowed), NULL if unknown (no exception) or on error (exception). */
static PyObject *key_of(PyObject *keys, const char *name, Py_ssize_t len) {
    Slot *slot = NULL;
    if (len <= NAME_MAX_LEN) {
        slot = &table[slot_of(name, len)];
        if (slot->len == len && memcmp(slot->name, name, (size_t)len) == 0)
            return slot->key;
    }
    PyObject *raw = PyBytes_FromStringAndSize(name, len);
    if (raw == NULL)
        return NULL;
    PyObject *key = PyDict_GetItemWithError(keys, raw); /* borrowed */
    Py_DECREF(raw);
    if (key != NULL && slot != NULL) {
        Py_INCREF(key);
        Py_XSETREF(slot->key, key);
        memcpy(slot->name, name, (size_t)len);
        slot->len = len;
    }
    return key;
}

/* split_headers(data, start, keys) -> list | None */
static PyObject *split_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split_headers(data, start, keys)");
        return NULL;
    }
    PyObject *data = args[0], *keys = args[2];
    if (!PyBytes_Check(data) || !PyDict_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "split_headers: data must be bytes, keys a dict");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0 || start > PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError, "split_headers: start out of the data");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(data);
    const char *p = buf + start, *end = buf + PyBytes_GET_SIZE(data);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (;;) {
        const char *eol = find_crlf(p, end);
        if (eol == NULL) /* no empty line: the parser says so */
            goto unusual;
        if (eol == p) { /* the empty line: the body starts after it */
            PyObject *body = PyLong_FromSsize_t(eol + 2 - buf);
            if (body == NULL)
                goto fail;
            int rc = PyList_Append(list, body);
            Py_DECREF(body);
            if (rc < 0)
                goto fail;
            return list;
        }
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || *p == ' ' || *p == '\t')
            goto unusual;
        PyObject *key = key_of(keys, p, colon - p); /* borrowed */
        if (key == NULL) {
            if (PyErr_Occurred())
                goto fail;
            goto unusual;
        }
        const char *v = colon + 1, *v_end = eol;
        while (v < v_end && is_blank(*v))
            v++;
        while (v_end > v && is_blank(v_end[-1]))
            v_end--;
        PyObject *raw = PyBytes_FromStringAndSize(p, eol - p);
        if (raw == NULL)
            goto fail;
        PyObject *value = PyBytes_FromStringAndSize(v, v_end - v);
        if (value == NULL) {
            Py_DECREF(raw);
            goto fail;
        }
        int rc = PyList_Append(list, key);
        if (rc == 0)
            rc = PyList_Append(list, raw);
        if (rc == 0)
            rc = PyList_Append(list, value);
        Py_DECREF(raw);
        Py_DECREF(value);
        if (rc < 0)
            goto fail;
        p = eol + 2;
    }
unusual:
    Py_DECREF(list);
    Py_RETURN_NONE;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_headers", (PyCFunction)(void (*)(void))split_headers, METH_FASTCALL,
     "split_headers(data, start, keys) -> [key, line, value, key, line, value, ..., body] for "
     "the CRLF-separated header lines from data[start] to the first empty line (body: the "
     "offset after it), or None when a line is not the common case (no colon, a name not in "
     "keys, a continuation line) or no empty line ends the header section."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.sip._split",
    "Header lines cut into (key, line, value) (optional accelerator of pks.sip.parse).", -1, methods,
};

PyMODINIT_FUNC PyInit__split(void) { return PyModule_Create(&module); }
