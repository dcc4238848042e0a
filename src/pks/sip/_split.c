/* Optional accelerator: a message cut into start line, header lines, body (pks.sip._split).
 *
 * The parser's hottest loop: every message received is cut into one Header per line (key,
 * line as received, value without the blanks around it). In Python each line costs the line,
 * a partition tuple, the name, the value and its stripped copy, and a dict lookup that hashes
 * the name, after two searches of the message for the ends of the start line and of the header
 * section (each a method call with its argument parsing) and before a second walk over the
 * headers for Content-Length; here it costs the line and the value, in one pass that also
 * finds both ends and reads Content-Length, with no copy of the header section first:
 * the name's key comes from a small table of the names met before, in C, keyed by the bytes
 * themselves (the dict is asked only for a name not in that table). The parser then builds
 * each Header from the flat list [first_end, body, content_length, kind, a, b, key, line, value,
 * key, line, value, …] this returns (kind, a, b: the start line's usual forms cut) — from
 * compiled code that is a direct call, where calling the Header class from C would go through
 * the generic constructor (measured by `python -m pksbench.instructions`, bench/README.md).
 *
 * Only the common case is handled: every line has a colon and a name already in the parser's
 * table of known names (`pks.sip.parse._keys`, raw name as written → key). Anything else — a
 * folded line, a name not seen yet, a line without a colon, no empty line, a Content-Length
 * that is not one plain number, more header lines than the caller's max_lines — returns None
 * and the parser does the whole message the Python way (which validates the name, learns it,
 * counts the fields, or raises the ParseError). Without this module (pure Python, or not
 * built) the parser always does that.
 *
 * The C table of names is this module's own; it depends on nothing the dict does after it
 * answered. Each slot holds its own reference to the key it hands out, so a dict that drops a
 * name (or is cleared, or freed) never frees a key under the table. The table keeps answers of
 * one dict only: a call with another dict empties it first. What it does rely on is that the
 * dict never maps a name it once answered to another key — true of the parser's (a name's key
 * is `names.key` of it, a function of the name); a caller that would remap names calls
 * `forget()` after.
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
static PyObject *bound; /* a strong reference to the dict whose answers the table holds */

/* Empty the table, releasing its keys (and the dict it was bound to). */
static void forget_all(void) {
    for (size_t i = 0; i < SLOTS; i++) {
        table[i].len = 0;
        Py_CLEAR(table[i].key);
    }
    Py_CLEAR(bound);
}

static inline size_t slot_of(const char *name, Py_ssize_t len) {
    size_t h = (size_t)len;
    for (Py_ssize_t i = 0; i < len; i++)
        h = h * 31u + (unsigned char)name[i];
    return (h ^ (h >> 7)) & (SLOTS - 1);
}

/* The key of a raw name (a new reference), NULL if unknown (no exception) or on error
 * (exception). The caller has bound the table to keys. */
static PyObject *key_of(PyObject *keys, const char *name, Py_ssize_t len) {
    Slot *slot = NULL;
    if (len <= NAME_MAX_LEN) {
        slot = &table[slot_of(name, len)];
        if (slot->len == len && memcmp(slot->name, name, (size_t)len) == 0)
            return Py_NewRef(slot->key);
    }
    PyObject *raw = PyBytes_FromStringAndSize(name, len);
    if (raw == NULL)
        return NULL;
    PyObject *key = PyDict_GetItemWithError(keys, raw); /* borrowed: owned at once */
    Py_DECREF(raw);
    if (key == NULL)
        return NULL;
    Py_INCREF(key);
    if (slot != NULL) {
        Py_XSETREF(slot->key, Py_NewRef(key));
        memcpy(slot->name, name, (size_t)len);
        slot->len = len;
    }
    return key;
}

#define FIXED 6 /* the integers before the header lines */

/* The start line [line, end) in its usual forms. A response `SIP/2.0 DDD[ reason]` with a
 * status of 100-699: *kind = the status, *a = where the reason starts. A request `METHOD SP
 * URI SP SIP/2.0` (two spaces, nothing empty, not starting with SIP/): *kind = -1, *a and *b
 * = the two spaces. Anything else: *kind = 0 (the parser reads it the Python way, and says
 * what is wrong). */
static void start_line(const char *line, const char *end, Py_ssize_t *kind, Py_ssize_t *a,
                       Py_ssize_t *b) {
    Py_ssize_t n = end - line;
    *kind = 0;
    *a = *b = 0;
    if (n >= 4 && memcmp(line, "SIP/", 4) == 0) {
        if (n < 11 || memcmp(line, "SIP/2.0 ", 8) != 0)
            return;
        const char *d = line + 8;
        if (d[0] < '1' || d[0] > '6' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9')
            return;
        if (n > 11 && d[3] != ' ')
            return;
        *kind = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
        *a = n > 11 ? 12 : 11;
        return;
    }
    const char *sp1 = memchr(line, ' ', (size_t)n);
    if (sp1 == NULL || sp1 == line)
        return;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1)
        return;
    if (end - sp2 - 1 != 7 || memcmp(sp2 + 1, "SIP/2.0", 7) != 0)
        return;
    *kind = -1;
    *a = sp1 - line;
    *b = sp2 - line;
}

/* split_message(data, keys, content_length_key[, max_lines]) -> list | None */
static PyObject *split_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "split_message(data, keys, content_length_key[, max_lines])");
        return NULL;
    }
    PyObject *data = args[0], *keys = args[1], *cl_key = args[2];
    /* past this many header lines, stop: the parser counts them and refuses the message
     * without the cost of cutting thousands of lines first */
    Py_ssize_t lines_left = PY_SSIZE_T_MAX;
    if (nargs == 4) {
        lines_left = PyLong_AsSsize_t(args[3]);
        if (lines_left == -1 && PyErr_Occurred())
            return NULL;
    }
    if (!PyBytes_Check(data) || !PyDict_Check(keys) || !PyUnicode_Check(cl_key)) {
        PyErr_SetString(PyExc_TypeError, "split_message: data must be bytes, keys a dict, "
                                         "content_length_key a str");
        return NULL;
    }
    if (keys != bound) { /* answers of another dict are not this one's */
        forget_all();
        bound = Py_NewRef(keys);
    }
    const char *buf = PyBytes_AS_STRING(data);
    const char *end = buf + PyBytes_GET_SIZE(data);
    const char *first_end = find_crlf(buf, end);
    if (first_end == NULL) /* no line at all: the parser says what is wrong */
        Py_RETURN_NONE;
    Py_ssize_t kind, a, b;
    start_line(buf, first_end, &kind, &a, &b);
    Py_ssize_t content_length = -1;
    PyObject *list = PyList_New(FIXED); /* first_end, body, content_length…: set at the end */
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < FIXED; i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(list, i, Py_None);
    }
    const char *p = first_end + 2;
    PyObject *key = NULL; /* the current line's */
    for (;;) {
        const char *eol = find_crlf(p, end);
        if (eol == NULL) /* no empty line: the parser says so */
            goto unusual;
        if (eol == p) { /* the empty line: the body starts after it */
            Py_ssize_t fixed[FIXED] = {first_end - buf, eol + 2 - buf, content_length, kind, a, b};
            for (Py_ssize_t i = 0; i < FIXED; i++) {
                PyObject *v = PyLong_FromSsize_t(fixed[i]);
                if (v == NULL)
                    goto fail;
                PyList_SetItem(list, i, v); /* steals v, releases the None */
            }
            return list;
        }
        if (--lines_left < 0) /* more lines than max_lines: the parser decides */
            goto unusual;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || *p == ' ' || *p == '\t')
            goto unusual;
        key = key_of(keys, p, colon - p); /* ours: released at the end of the line */
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
        if (key == cl_key || (PyUnicode_GET_LENGTH(key) == PyUnicode_GET_LENGTH(cl_key) &&
                              PyUnicode_Compare(key, cl_key) == 0)) {
            /* digits only, not too many for a Py_ssize_t, the same in every copy: else the
             * parser's own check says what is wrong */
            if (v == v_end || v_end - v > 15)
                goto unusual;
            Py_ssize_t n = 0;
            for (const char *d = v; d < v_end; d++) {
                if (*d < '0' || *d > '9')
                    goto unusual;
                n = n * 10 + (*d - '0');
            }
            if (content_length >= 0 && n != content_length)
                goto unusual;
            content_length = n;
        }
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
        Py_CLEAR(key);
        Py_DECREF(raw);
        Py_DECREF(value);
        if (rc < 0)
            goto fail;
        p = eol + 2;
    }
unusual:
    Py_XDECREF(key);
    Py_DECREF(list);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(key);
    Py_DECREF(list);
    return NULL;
}

static PyObject *forget(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    (void)self;
    forget_all();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"split_message", (PyCFunction)(void (*)(void))split_message, METH_FASTCALL,
     "split_message(data, keys, content_length_key[, max_lines]) -> [first_end, body, "
     "content_length, "
     "kind, a, b, key, line, value, key, line, value, ...]: the offsets of the start line's "
     "CRLF and of the body, the Content-Length (-1: none), the start line (kind: a status, "
     "a = the reason's offset; -1 a request, a and b = its two spaces; 0 = unusual) and the "
     "header lines up to the empty line; or None "
     "when something is not the common case (a line without a colon, a name not in keys, a "
     "continuation line, no empty line, a Content-Length that is not one number, more than "
     "max_lines header lines)."},
    {"forget", (PyCFunction)forget, METH_NOARGS,
     "Empty the table of names (the next call asks its dict again): for a caller whose dict "
     "maps a name it answered before to another key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.sip._split",
    "Header lines cut into (key, line, value) (optional accelerator of pks.sip.parse).", -1, methods,
};

PyMODINIT_FUNC PyInit__split(void) { return PyModule_Create(&module); }
