/* Optional accelerator: a compact str-keyed table for the dialplan index (pks.route._keytable).
 *
 * The dialplan index (pks.route.dialplan_index) finds a rule by a dict lookup on the whole
 * subject (exact rules) and on its first N characters (prefix rules). With a million rules a
 * dict lookup that hits reads four places far apart in memory: the index slot, the entry, the
 * key's text (compared byte by byte: the subject's slice is a new string) and the value; a
 * miss reads one or two. At that size each is a cache and TLB miss, and the lookup costs twice
 * the one on a small table.
 *
 * `KeyTable(mapping)` holds the same str -> object pairs in one array of 32-byte slots (open
 * addressing, linear probing, at most half full): a slot holds 32 bits of the key's hash, the
 * key itself when it has at most 19 characters (every phone number and prefix) and the value.
 * `get(subject, length)` = `mapping.get(subject[:length])` without making the slice: one
 * slot (one cache line) is read per probe, the value only on a hit. Large arrays are asked to
 * be backed by huge pages (madvise), which takes the TLB misses away too.
 *
 * Keys whose characters all fit a byte (the index's byte views always do) live in the slots;
 * any other key, and any other subject slice, goes through a plain dict kept beside them, so
 * the answer is the dict's for every str.
 *
 * Built by `python -m pks.accel build` next to the mypyc modules.
 *
 * SPDX-License-Identifier: AGPL-3.0-or-later
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INLINE_KEY 19
#define LONG_KEY 0xFF
#define HUGE_PAGE ((size_t)1 << 21)

typedef struct {
    uint32_t check;          /* the hash's upper half */
    uint8_t len;             /* the key's length, or LONG_KEY */
    char key[INLINE_KEY];    /* the key, or (char *, Py_ssize_t) of a copy for a long one */
    PyObject *value;         /* NULL: an empty slot */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask;             /* slots - 1 (a power of two) */
    Py_ssize_t used;
    PyObject *wide;          /* keys with a character above U+00FF: a dict, or NULL */
} KeyTable;

/* FNV-1a, then a 64-bit finaliser (murmur3's fmix64) so the low bits mix well. */
static inline uint64_t hash_bytes(const unsigned char *s, Py_ssize_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline int slot_is(const Slot *slot, uint32_t check, const unsigned char *s,
                          Py_ssize_t n) {
    if (slot->check != check)
        return 0;
    if (slot->len != LONG_KEY)
        return slot->len == n && memcmp(slot->key, s, (size_t)n) == 0;
    char *copy;
    Py_ssize_t size;
    memcpy(&copy, slot->key, sizeof copy);
    memcpy(&size, slot->key + sizeof copy, sizeof size);
    return size == n && memcmp(copy, s, (size_t)n) == 0;
}

/* The slot holding key s[:n] (whose hash_bytes is h), or the empty slot where it would go. */
static inline Slot *probe(const KeyTable *t, const unsigned char *s, Py_ssize_t n, uint64_t h) {
    uint32_t check = (uint32_t)(h >> 32);
    size_t i = (size_t)h & t->mask;
    for (;;) {
        Slot *slot = &t->slots[i];
        if (slot->value == NULL || slot_is(slot, check, s, n))
            return slot;
        i = (i + 1) & t->mask;
    }
}

/* The value of key s[:n] (borrowed), or NULL. */
static inline PyObject *lookup(const KeyTable *t, const unsigned char *s, Py_ssize_t n) {
    return probe(t, s, n, hash_bytes(s, n))->value;
}

static int put(KeyTable *t, PyObject *key, PyObject *value) {
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "KeyTable keys must be str");
        return -1;
    }
    if (PyUnicode_READY(key) < 0)
        return -1;
    if (PyUnicode_KIND(key) != PyUnicode_1BYTE_KIND) {
        if (t->wide == NULL && (t->wide = PyDict_New()) == NULL)
            return -1;
        return PyDict_SetItem(t->wide, key, value);
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(key);
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    uint64_t h = hash_bytes(s, n);
    Slot *slot = probe(t, s, n, h);
    if (slot->value != NULL) { /* a mapping has each key once; keep the last, as dict() does */
        Py_INCREF(value);
        Py_SETREF(slot->value, value);
        return 0;
    }
    slot->check = (uint32_t)(h >> 32);
    if (n <= INLINE_KEY) {
        slot->len = (uint8_t)n;
        memcpy(slot->key, s, (size_t)n);
    } else {
        char *copy = PyMem_RawMalloc((size_t)n);
        if (copy == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, s, (size_t)n);
        slot->len = LONG_KEY;
        memcpy(slot->key, &copy, sizeof copy);
        memcpy(slot->key + sizeof copy, &n, sizeof n);
    }
    Py_INCREF(value);
    slot->value = value;
    t->used++;
    return 0;
}

static void free_slots(KeyTable *t) {
    if (t->slots == NULL)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        Slot *slot = &t->slots[i];
        if (slot->value == NULL)
            continue;
        if (slot->len == LONG_KEY) {
            char *copy;
            memcpy(&copy, slot->key, sizeof copy);
            PyMem_RawFree(copy);
        }
        Py_CLEAR(slot->value);
    }
    free(t->slots);
    t->slots = NULL;
}

static int KeyTable_init(KeyTable *self, PyObject *args, PyObject *kwargs) {
    PyObject *mapping;
    static char *kwlist[] = {"mapping", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:KeyTable", kwlist, &PyDict_Type,
                                     &mapping))
        return -1;
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_TypeError, "KeyTable is built once");
        return -1;
    }
    size_t size = 8;
    while (size < (size_t)PyDict_GET_SIZE(mapping) * 2)
        size <<= 1;
    size_t bytes = size * sizeof(Slot);
    size_t align = bytes >= 2 * HUGE_PAGE ? HUGE_PAGE : 64;
    void *slots = NULL;
    if (posix_memalign(&slots, align, bytes) != 0) {
        PyErr_NoMemory();
        return -1;
    }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE)
        (void)madvise(slots, bytes, MADV_HUGEPAGE); /* a hint: refused is fine */
#endif
    memset(slots, 0, bytes);
    self->slots = slots;
    self->mask = size - 1;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(mapping, &pos, &key, &value)) {
        if (put(self, key, value) < 0)
            return -1;
    }
    return 0;
}

/* get(subject, length=-1): mapping.get(subject[:length]) (the whole subject when length < 0). */
static PyObject *KeyTable_get(KeyTable *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "get(subject: str, length: int = -1)");
        return NULL;
    }
    PyObject *subject = args[0];
    if (PyUnicode_READY(subject) < 0)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(subject);
    if (nargs == 2) {
        Py_ssize_t length = PyLong_AsSsize_t(args[1]);
        if (length == -1 && PyErr_Occurred())
            return NULL;
        if (length >= 0 && length < n)
            n = length;
    }
    PyObject *value = NULL;
    if (PyUnicode_KIND(subject) == PyUnicode_1BYTE_KIND) {
        if (self->slots != NULL)
            value = lookup(self, PyUnicode_1BYTE_DATA(subject), n);
    } else { /* its slice may fit a byte (a slot) or not (the dict) */
        PyObject *slice = PyUnicode_Substring(subject, 0, n);
        if (slice == NULL)
            return NULL;
        if (PyUnicode_KIND(slice) == PyUnicode_1BYTE_KIND) {
            if (self->slots != NULL)
                value = lookup(self, PyUnicode_1BYTE_DATA(slice), n);
        } else if (self->wide != NULL) {
            value = PyDict_GetItemWithError(self->wide, slice);
            if (value == NULL && PyErr_Occurred()) {
                Py_DECREF(slice);
                return NULL;
            }
        }
        Py_DECREF(slice);
    }
    if (value == NULL)
        Py_RETURN_NONE;
    Py_INCREF(value);
    return value;
}

static Py_ssize_t KeyTable_len(KeyTable *self) {
    return self->used + (self->wide == NULL ? 0 : PyDict_GET_SIZE(self->wide));
}

static int KeyTable_traverse(KeyTable *self, visitproc visit, void *arg) {
    if (self->slots != NULL) {
        for (size_t i = 0; i <= self->mask; i++)
            Py_VISIT(self->slots[i].value);
    }
    Py_VISIT(self->wide);
    return 0;
}

static int KeyTable_clear(KeyTable *self) {
    free_slots(self);
    self->used = 0;
    Py_CLEAR(self->wide);
    return 0;
}

static void KeyTable_dealloc(KeyTable *self) {
    PyObject_GC_UnTrack(self);
    KeyTable_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef KeyTable_methods[] = {
    {"get", (PyCFunction)(void (*)(void))KeyTable_get, METH_FASTCALL,
     "get(subject, length=-1) -> the value of key subject[:length] (the whole subject when "
     "length < 0), or None."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods KeyTable_as_sequence = {
    .sq_length = (lenfunc)KeyTable_len,
};

static PyTypeObject KeyTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pks.route._keytable.KeyTable",
    .tp_doc = "KeyTable(mapping): the mapping's str -> object pairs in a compact table.",
    .tp_basicsize = sizeof(KeyTable),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)KeyTable_init,
    .tp_dealloc = (destructor)KeyTable_dealloc,
    .tp_traverse = (traverseproc)KeyTable_traverse,
    .tp_clear = (inquiry)KeyTable_clear,
    .tp_methods = KeyTable_methods,
    .tp_as_sequence = &KeyTable_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pks.route._keytable",
    "A compact str-keyed table (optional accelerator of pks.route.dialplan_index).", -1, NULL,
};

PyMODINIT_FUNC PyInit__keytable(void) {
    if (PyType_Ready(&KeyTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KeyTableType);
    if (PyModule_AddObject(m, "KeyTable", (PyObject *)&KeyTableType) < 0) {
        Py_DECREF(&KeyTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
