/* Optional accelerator: the usual Via value read in one pass (pks.sip._via).
 *
 * Every request's top Via and every response's (ours) is parsed: the Python reader
 * (`pks.sip.via._parse_usual` with `pks.sip.params.parse_params`) makes a string per cut and
 * a tuple per partition and per parameter (what that costs per call: `python -m
 * pksbench.instructions`, bench/README.md). This reads
 * the same usual spelling — `SIP/2.0/<UDP|TCP|TLS|SCTP|WS|WSS> host[:port][;params]`, a token
 * host, printable ASCII, no quote, '<' or backslash — and returns the fields the Python reader
 * would give `Via`: (transport, host, port or None, params, text, branch, has_rport), with
 * params as parse_params makes them ((name lower-cased, value or None), …).
 *
 * Anything else returns None, and the Python reader decides (the same Via, the general regex
 * reader, or the ParseError): a value it would refuse is never accepted here.
 *
 * Built by `python -m pks.accel build` next to the mypyc modules.
 *
 * SPDX-License-Identifier: AGPL-3.0-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

static const char *const TRANSPORTS[] = {"UDP", "TCP", "TLS", "SCTP", "WS", "WSS"};
#define N_TRANSPORTS 6
static PyObject *transport_str[N_TRANSPORTS]; /* interned, as the Python reader's dict keys */

static inline int is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A str of ASCII bytes (lower-cased with `lower`). */
static PyObject *ascii(const char *s, Py_ssize_t n, int lower) {
    PyObject *o = PyUnicode_New(n, 127);
    if (o == NULL)
        return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(o);
    if (lower) {
        for (Py_ssize_t i = 0; i < n; i++)
            d[i] = (Py_UCS1)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    } else {
        memcpy(d, s, (size_t)n);
    }
    return o;
}

/* The parameters of [p, end) (after the sent-by's ';'), as parse_params gives them; sets
 * *branch (new reference or NULL) and *rport. Returns NULL without an exception when a
 * parameter is not usual (the Python reader then decides). */
static PyObject *params_of(const char *p, const char *end, PyObject **branch, int *rport) {
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    while (p < end && *p == ' ') /* parse_params strips the text, then one leading ';' */
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    if (p < end && *p == ';')
        p++;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *part_end = semi != NULL ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(part_end - p));
        const char *n = p, *n_end = eq != NULL ? eq : part_end;
        while (n < n_end && *n == ' ')
            n++;
        while (n_end > n && n_end[-1] == ' ')
            n_end--;
        if (n == n_end) /* an empty name: the Python reader raises */
            goto unusual;
        for (const char *c = n; c < n_end; c++) /* a token name (a blank or ',' inside: no) */
            if (*c == ' ' || *c == ',' || *c == '>')
                goto unusual;
        PyObject *name = ascii(n, n_end - n, 1);
        if (name == NULL)
            goto fail;
        PyObject *value;
        if (eq != NULL) {
            const char *v = eq + 1, *v_end = part_end;
            while (v < v_end && *v == ' ')
                v++;
            while (v_end > v && v_end[-1] == ' ')
                v_end--;
            value = ascii(v, v_end - v, 0);
            if (value == NULL) {
                Py_DECREF(name);
                goto fail;
            }
        } else {
            value = Py_None;
            Py_INCREF(value);
        }
        Py_ssize_t len = n_end - n;
        if (*branch == NULL && len == 6 && PyUnicode_CompareWithASCIIString(name, "branch") == 0) {
            *branch = value == Py_None ? PyUnicode_New(0, 127) : value;
            if (value != Py_None)
                Py_INCREF(value);
            if (*branch == NULL) {
                Py_DECREF(name);
                Py_DECREF(value);
                goto fail;
            }
        } else if (len == 5 && PyUnicode_CompareWithASCIIString(name, "rport") == 0) {
            *rport = 1;
        }
        PyObject *pair = PyTuple_Pack(2, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (pair == NULL)
            goto fail;
        int rc = PyList_Append(list, pair);
        Py_DECREF(pair);
        if (rc < 0)
            goto fail;
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    PyObject *tuple = PyList_AsTuple(list);
    Py_DECREF(list);
    return tuple;
unusual: /* no exception set: the caller returns None; on an error one is set */
fail:
    Py_DECREF(list);
    Py_CLEAR(*branch);
    return NULL;
}

/* parse_usual(text) -> (transport, host, port, params, text, branch, has_rport) | None */
static PyObject *parse_usual(PyObject *self, PyObject *text) {
    (void)self;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "parse_usual(text): text must be a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < size; i++) /* printable ASCII only: ' ' is the only blank */
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '<' || s[i] == '\\')
            Py_RETURN_NONE;
    const char *t = s, *end = s + size;
    while (t < end && *t == ' ')
        t++;
    while (end > t && end[-1] == ' ')
        end--;
    if (end - t < 8 || memcmp(t, "SIP/2.0/", 8) != 0)
        Py_RETURN_NONE;
    const char *blank = memchr(t + 8, ' ', (size_t)(end - t - 8));
    if (blank == NULL)
        Py_RETURN_NONE;
    PyObject *transport = NULL;
    for (int i = 0; i < N_TRANSPORTS; i++) {
        size_t n = strlen(TRANSPORTS[i]);
        if ((size_t)(blank - t - 8) == n && memcmp(t + 8, TRANSPORTS[i], n) == 0) {
            transport = transport_str[i];
            break;
        }
    }
    if (transport == NULL)
        Py_RETURN_NONE;
    const char *semi = memchr(blank, ';', (size_t)(end - blank));
    const char *host = blank + 1, *sent_end = semi != NULL ? semi : end;
    const char *colon = memchr(host, ':', (size_t)(sent_end - host));
    const char *host_end = colon != NULL ? colon : sent_end;
    if (host == host_end || *host == '.' || *host == '-' || host_end[-1] == '.' ||
        host_end[-1] == '-')
        Py_RETURN_NONE;
    for (const char *c = host; c < host_end; c++)
        if (!is_alnum(*c) && *c != '.' && *c != '-')
            Py_RETURN_NONE;
    long port = -1;
    if (colon != NULL) {
        Py_ssize_t n = sent_end - colon - 1;
        if (n < 1 || n > 5)
            Py_RETURN_NONE;
        port = 0;
        for (const char *c = colon + 1; c < sent_end; c++) {
            if (*c < '0' || *c > '9')
                Py_RETURN_NONE;
            port = port * 10 + (*c - '0');
        }
        if (port < 1 || port > 65535)
            Py_RETURN_NONE;
    }
    PyObject *branch = NULL, *params;
    int rport = 0;
    if (semi != NULL) {
        params = params_of(semi, end, &branch, &rport);
        if (params == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
    } else {
        params = PyTuple_New(0);
        if (params == NULL)
            return NULL;
    }
    PyObject *host_str = ascii(host, host_end - host, 0);
    PyObject *port_obj = port >= 0 ? PyLong_FromLong(port) : (Py_INCREF(Py_None), Py_None);
    PyObject *stripped;
    if (t == s && end == s + size) {
        stripped = text;
        Py_INCREF(stripped);
    } else {
        stripped = ascii(t, end - t, 0);
    }
    PyObject *result = NULL;
    if (host_str != NULL && port_obj != NULL && stripped != NULL)
        result = PyTuple_Pack(7, transport, host_str, port_obj, params, stripped,
                              branch != NULL ? branch : Py_None, rport ? Py_True : Py_False);
    Py_XDECREF(host_str);
    Py_XDECREF(port_obj);
    Py_XDECREF(stripped);
    Py_DECREF(params);
    Py_XDECREF(branch);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_usual", (PyCFunction)parse_usual, METH_O,
     "parse_usual(text) -> (transport, host, port, params, text, branch, has_rport) for a Via "
     "value in the usual spelling, or None (the Python reader decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.sip._via",
    "The usual Via value read in one pass (optional accelerator of pks.sip.via).", -1, methods,
};

PyMODINIT_FUNC PyInit__via(void) {
    for (int i = 0; i < N_TRANSPORTS; i++) {
        transport_str[i] = PyUnicode_InternFromString(TRANSPORTS[i]);
        if (transport_str[i] == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
