/* encode_image: an image as parsed Python objects (dicts, lists, str) to the Avro map of the generic
 * envelope. It handles the common shapes itself and hands every other attribute value, well-formed or not,
 * to `fallback`, the Python writer of one value, so the Python code stays the one place that decides what is
 * malformed. */
#include "avro.h"

/* Append `fallback(av)`: the Python writer's bytes for one attribute value (it raises on a malformed one). */
static int fall_back(Writer *w, PyObject *av) {
    PyObject *bytes = PyObject_CallOneArg(w->fallback, av);
    if (bytes == NULL) return -1;
    if (!PyBytes_Check(bytes)) {
        Py_DECREF(bytes);
        PyErr_SetString(PyExc_TypeError, "the fallback writer must return bytes");
        return -1;
    }
    int result = put(&w->out, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return result;
}

static int split_number(PyObject *text, NumberText *n) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) return 0;
    return split_digits((const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), n);
}

static int put_number(Writer *w, PyObject *text) {
    NumberText n;
    return split_number(text, &n) ? put_split_number(w, n) : 0;
}

/* The bytes of a B value or BS member: bytes as they are, base64 text decoded as strictly as
 * `base64.b64decode(validate=True)`. 0 when it is for the fallback (anything else, or invalid). */
static int binary_member(PyObject *value, Member *m) {
    if (PyBytes_CheckExact(value)) {
        m->data = PyBytes_AS_STRING(value);
        m->size = PyBytes_GET_SIZE(value);
        m->owner = NULL;
        return 1;
    }
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) return 0;
    PyObject *args[] = {NULL, value, Py_True};
    PyObject *decoded = PyObject_Vectorcall(a2b_base64, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, strict_kwnames);
    if (decoded == NULL) {
        PyErr_Clear(); /* invalid base64: the fallback raises the poison error */
        return 0;
    }
    m->data = PyBytes_AS_STRING(decoded);
    m->size = PyBytes_GET_SIZE(decoded);
    m->owner = decoded;
    return 1;
}

/* An SS / NS / BS set record, members sorted. 1 written, 0 for the fallback, -1 on error. */
static int put_set(Writer *w, int tag, PyObject *values) {
    if (!PyList_CheckExact(values)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(values);
    if (n > MAX_MEMBERS) return 0;
    Member members[MAX_MEMBERS];
    Py_ssize_t ready = 0;
    int result = 0;
    for (; ready < n; ready++) {
        PyObject *value = PyList_GET_ITEM(values, ready);
        Member *m = &members[ready];
        m->owner = NULL;
        if (tag == T_BS) {
            if (!binary_member(value, m)) goto done;
        } else if (tag == T_NS) {
            if (!split_number(value, &m->number)) goto done;
        } else {
            if (!PyUnicode_CheckExact(value)) goto done;
            m->data = PyUnicode_AsUTF8AndSize(value, &m->size);
            if (m->data == NULL) { /* lone surrogates: the fallback decides */
                PyErr_Clear();
                goto done;
            }
        }
    }
    sort_members(members, n, tag == T_NS);
    result = -1;
    if (put_byte(&w->out, w->tags[tag]) < 0) goto done;
    if (n > 0) {
        if (put_long(&w->out, n) < 0) goto done;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (tag == T_NS) {
                int written = put_split_number(w, members[i].number);
                if (written <= 0) {
                    result = written; /* a member of over 38 digits: the fallback writes the whole set */
                    goto done;
                }
            } else if (put_counted(&w->out, members[i].data, members[i].size) < 0) {
                goto done;
            }
        }
    }
    result = put_byte(&w->out, 0) < 0 ? -1 : 1;
done:
    for (Py_ssize_t i = 0; i < ready && i < n; i++) Py_XDECREF(members[i].owner);
    return result;
}

static int put_item(Writer *w, PyObject *image, int depth);

static int put_string(Writer *w, PyObject *text) {
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data == NULL) return -1;
    if (put_byte(&w->out, w->tags[T_STRING]) < 0) return -1;
    return put_counted(&w->out, data, size);
}

/* One attribute value; anything not handled here goes to the fallback with the set written so far undone. */
static int put_value(Writer *w, PyObject *av, int depth) {
    if (!PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1 || depth > MAX_DEPTH) return fall_back(w, av);
    Py_ssize_t pos = 0, mark = w->out.size;
    PyObject *kind, *inner;
    PyDict_Next(av, &pos, &kind, &inner);
    if (!PyUnicode_CheckExact(kind) || !PyUnicode_IS_ASCII(kind)) return fall_back(w, av);
    const char *k = (const char *)PyUnicode_DATA(kind);
    Py_ssize_t klen = PyUnicode_GET_LENGTH(kind);
    int written = 0;
    if (klen == 1 && k[0] == 'S') {
        if (PyUnicode_CheckExact(inner)) {
            if (put_string(w, inner) == 0) return 0;
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
            PyErr_Clear();
        }
    } else if (klen == 1 && k[0] == 'N') {
        written = put_number(w, inner);
    } else if (klen == 1 && k[0] == 'M') {
        if (PyDict_CheckExact(inner)) {
            if (put_byte(&w->out, w->tags[T_MAP]) < 0) return -1;
            return put_item(w, inner, depth + 1);
        }
    } else if (klen == 1 && k[0] == 'L') {
        if (PyList_CheckExact(inner)) {
            Py_ssize_t n = PyList_GET_SIZE(inner);
            if (put_byte(&w->out, w->tags[T_ARRAY]) < 0 || put_long(&w->out, n) < 0) return -1;
            if (n == 0) return 0;
            Py_INCREF(inner);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(inner); i++) {
                if (put_value(w, PyList_GET_ITEM(inner, i), depth + 1) < 0) {
                    Py_DECREF(inner);
                    return -1;
                }
            }
            Py_DECREF(inner);
            return put_byte(&w->out, 0);
        }
    } else if (klen == 4 && memcmp(k, "BOOL", 4) == 0) {
        if (inner == Py_True || inner == Py_False) {
            if (put_byte(&w->out, w->tags[T_BOOLEAN]) < 0) return -1;
            return put_byte(&w->out, inner == Py_True);
        }
    } else if (klen == 4 && memcmp(k, "NULL", 4) == 0) {
        if (inner == Py_True) return put_byte(&w->out, w->tags[T_NULL]);
    } else if (klen == 1 && k[0] == 'B') {
        Member m;
        if (binary_member(inner, &m)) {
            written = put_byte(&w->out, w->tags[T_BYTES]) == 0 && put_counted(&w->out, m.data, m.size) == 0 ? 1 : -1;
            Py_XDECREF(m.owner);
        }
    } else if (klen == 2 && k[1] == 'S' && (k[0] == 'S' || k[0] == 'N' || k[0] == 'B')) {
        written = put_set(w, k[0] == 'S' ? T_SS : (k[0] == 'N' ? T_NS : T_BS), inner);
    }
    if (written < 0) return -1;
    if (written > 0) return 0;
    w->out.size = mark; /* a set may have written its tag before declining */
    return fall_back(w, av);
}

/* A map of attribute values: count, then name and value of each, then 0 (or just 0 when empty). */
static int put_item(Writer *w, PyObject *image, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(image);
    if (n > 0) {
        if (put_long(&w->out, n) < 0) return -1;
        Py_ssize_t pos = 0;
        PyObject *name, *av;
        Py_INCREF(image);
        while (PyDict_Next(image, &pos, &name, &av)) {
            Py_ssize_t size;
            const char *data;
            if (!PyUnicode_CheckExact(name)) {
                PyErr_SetString(PyExc_TypeError, "attribute name is not a string");
                data = NULL;
            } else {
                data = PyUnicode_AsUTF8AndSize(name, &size);
            }
            if (data == NULL || put_counted(&w->out, data, size) < 0 || put_value(w, av, depth) < 0) {
                Py_DECREF(image);
                return -1;
            }
        }
        Py_DECREF(image);
    }
    return put_byte(&w->out, 0);
}

/* encode_image(image: dict, tags: bytes, fallback) -> bytes: b"\x02" (the map branch of the optional
 * side), then `image` as an Avro map of AttributeValue. */
PyObject *encode_image(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) != T_COUNT) {
        PyErr_SetString(PyExc_TypeError, "encode_image(image: dict, tags: bytes of 11 branch tags, fallback)");
        return NULL;
    }
    Writer w;
    init_out(&w.out);
    w.tags = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    w.fallback = args[2];
    PyObject *result = NULL;
    if (put_byte(&w.out, 0x02) == 0 && put_item(&w, args[0], 0) == 0)
        result = PyBytes_FromStringAndSize(w.out.data, w.out.size);
    free_out(&w.out);
    return result;
}
