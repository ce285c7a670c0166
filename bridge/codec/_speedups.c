/* The transcoder's hot loop in C: a raw DynamoDB image (attribute-value JSON as parsed dicts and lists)
 * straight to the Avro bytes of the generic envelope's `before`/`after` union value.
 *
 * It writes exactly what `bridge.codec.transcode.image_writer` writes (tests/unit/test_speedups.py compares
 * the two byte for byte on arbitrary images). It handles the common shapes itself - S, N in plain
 * notation of up to 38 significant digits, B as bytes or base64 text, BOOL, NULL, M, L, and SS/NS/BS sets
 * of up to 64 members - and hands every other attribute value, well-formed or not, to `fallback`, the
 * Python writer of one value, so the Python code stays the one place that decides what is malformed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { T_NULL, T_BOOLEAN, T_LONG, T_STRING, T_BYTES, T_VSD, T_MAP, T_ARRAY, T_SS, T_NS, T_BS, T_COUNT };

#define MAX_DEPTH 64   /* deeper values go to the fallback (DynamoDB allows 32 levels) */
#define MAX_MEMBERS 64 /* larger sets go to the fallback, which sorts them in O(n log n) */

static PyObject *a2b_base64;     /* binascii.a2b_base64 */
static PyObject *strict_kwnames; /* ("strict_mode",) */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    char inline_buffer[4096];
} Out;

typedef struct {
    Out out;
    const unsigned char *tags;
    PyObject *fallback;
} Writer;

static int grow(Out *out, Py_ssize_t more) {
    Py_ssize_t needed = out->size + more;
    if (needed <= out->capacity) return 0;
    Py_ssize_t capacity = out->capacity * 2 > needed ? out->capacity * 2 : needed;
    char *data = out->data == out->inline_buffer ? PyMem_Malloc(capacity) : PyMem_Realloc(out->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (out->data == out->inline_buffer) memcpy(data, out->inline_buffer, out->size);
    out->data = data;
    out->capacity = capacity;
    return 0;
}

static int put(Out *out, const void *bytes, Py_ssize_t n) {
    if (grow(out, n) < 0) return -1;
    memcpy(out->data + out->size, bytes, n);
    out->size += n;
    return 0;
}

static int put_byte(Out *out, unsigned char byte) {
    if (grow(out, 1) < 0) return -1;
    out->data[out->size++] = (char)byte;
    return 0;
}

/* An Avro long: zig-zag, then 7 bits per byte, low bits first. */
static int put_long(Out *out, int64_t n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    if (grow(out, 10) < 0) return -1;
    while (z > 0x7F) {
        out->data[out->size++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    out->data[out->size++] = (char)z;
    return 0;
}

static int put_counted(Out *out, const char *bytes, Py_ssize_t n) {
    if (put_long(out, n) < 0) return -1;
    return put(out, bytes, n);
}

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

/* ---- numbers -------------------------------------------------------------------------------------- */

typedef struct {
    int negative;
    const char *whole, *fraction; /* digits, not NUL-terminated */
    Py_ssize_t whole_len, fraction_len;
    int has_dot;
} NumberText;

/* Split `-?digits(.digits)?` (either side of the dot may be empty); 0 when the text is anything else. */
static int split_number(PyObject *text, NumberText *n) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) return 0;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    n->negative = len > 0 && s[0] == '-';
    s += n->negative;
    len -= n->negative;
    n->has_dot = 0;
    n->whole = s;
    n->whole_len = len;
    n->fraction = s + len;
    n->fraction_len = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') continue;
        if (c != '.' || n->has_dot) return 0;
        n->has_dot = 1;
        n->whole_len = i;
        n->fraction = s + i + 1;
        n->fraction_len = len - i - 1;
    }
    return n->whole_len + n->fraction_len > 0;
}

/* The digits of whole and fraction as one integer, when it has at most 38 significant digits. */
static int unscaled_value(const NumberText *n, Py_ssize_t fraction_len, __int128 *value) {
    __int128 v = 0;
    int significant = 0;
    for (Py_ssize_t part = 0; part < 2; part++) {
        const char *digits = part == 0 ? n->whole : n->fraction;
        Py_ssize_t count = part == 0 ? n->whole_len : fraction_len;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (v == 0 && digits[i] == '0') continue;
            if (++significant > 38) return 0;
            v = v * 10 + (digits[i] - '0');
        }
    }
    *value = n->negative ? -v : v;
    return 1;
}

static int all_zeros(const char *digits, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (digits[i] != '0') return 0;
    return 1;
}

/* Debezium's VariableScaleDecimal: scale, then the unscaled value big-endian in two's complement, in
 * Python's `(bit_length + 8) // 8` bytes. */
static int put_vsd(Writer *w, __int128 value, Py_ssize_t scale) {
    unsigned __int128 magnitude = value < 0 ? -(unsigned __int128)value : (unsigned __int128)value;
    int bits = 0;
    while (magnitude >> bits) bits++;
    int size = (bits + 8) / 8;
    unsigned char bytes[17];
    unsigned __int128 twos = (unsigned __int128)value;
    for (int i = size - 1; i >= 0; i--) {
        bytes[i] = (unsigned char)(twos & 0xFF);
        twos >>= 8;
    }
    if (put_byte(&w->out, w->tags[T_VSD]) < 0 || put_long(&w->out, scale) < 0) return -1;
    return put_counted(&w->out, (const char *)bytes, size);
}

static int put_integer(Writer *w, __int128 value) {
    if (value >= INT64_MIN && value <= INT64_MAX) {
        if (put_byte(&w->out, w->tags[T_LONG]) < 0) return -1;
        return put_long(&w->out, (int64_t)value);
    }
    return put_vsd(w, value, 0);
}

/* Write an exact number as the Python writer does: long when integral within int64, else
 * VariableScaleDecimal. Returns 1 when written, 0 when the text is for the fallback, -1 on error. */
static int put_number(Writer *w, PyObject *text) {
    NumberText n;
    __int128 value;
    if (!split_number(text, &n)) return 0;
    if (!n.has_dot || all_zeros(n.fraction, n.fraction_len)) {
        /* integral: "-12", "12.", "12.000"; long digit runs with a dot keep an exponent, so the fallback */
        if (n.has_dot && n.whole_len >= 19) return 0;
        if (!unscaled_value(&n, 0, &value)) return 0;
        return put_integer(w, value) < 0 ? -1 : 1;
    }
    if (!unscaled_value(&n, n.fraction_len, &value)) return 0;
    return put_vsd(w, value, n.fraction_len) < 0 ? -1 : 1;
}

/* Order of NS members: numeric value, as Python's `sorted` orders ints and Decimals (stable for ties). */
static int compare_numbers(const NumberText *a, const NumberText *b) {
    const char *aw = a->whole, *bw = b->whole;
    Py_ssize_t awl = a->whole_len, bwl = b->whole_len, afl = a->fraction_len, bfl = b->fraction_len;
    while (awl > 0 && *aw == '0') aw++, awl--;
    while (bwl > 0 && *bw == '0') bw++, bwl--;
    while (afl > 0 && a->fraction[afl - 1] == '0') afl--;
    while (bfl > 0 && b->fraction[bfl - 1] == '0') bfl--;
    int a_zero = awl == 0 && afl == 0, b_zero = bwl == 0 && bfl == 0;
    int a_sign = a_zero ? 0 : (a->negative ? -1 : 1), b_sign = b_zero ? 0 : (b->negative ? -1 : 1);
    if (a_sign != b_sign) return a_sign < b_sign ? -1 : 1;
    if (a_sign == 0) return 0;
    int magnitude;
    if (awl != bwl) {
        magnitude = awl < bwl ? -1 : 1;
    } else {
        magnitude = memcmp(aw, bw, awl);
        if (magnitude == 0) {
            Py_ssize_t common = afl < bfl ? afl : bfl;
            magnitude = memcmp(a->fraction, b->fraction, common);
            if (magnitude == 0) magnitude = afl == bfl ? 0 : (afl < bfl ? -1 : 1);
        }
        magnitude = magnitude < 0 ? -1 : (magnitude > 0 ? 1 : 0);
    }
    return a_sign * magnitude;
}

/* ---- sets ----------------------------------------------------------------------------------------- */

typedef struct {
    const char *data;
    Py_ssize_t size;
    PyObject *owner; /* a new reference to keep `data` alive, or NULL */
    NumberText number;
    PyObject *text;
} Member;

static int compare_bytes(const Member *a, const Member *b) {
    Py_ssize_t common = a->size < b->size ? a->size : b->size;
    int c = memcmp(a->data, b->data, common);
    if (c != 0) return c;
    return a->size == b->size ? 0 : (a->size < b->size ? -1 : 1);
}

/* Stable insertion sort: sets here have at most MAX_MEMBERS members. */
static void sort_members(Member *members, Py_ssize_t n, int numeric) {
    for (Py_ssize_t i = 1; i < n; i++) {
        Member m = members[i];
        Py_ssize_t j = i;
        while (j > 0 && (numeric ? compare_numbers(&members[j - 1].number, &m.number)
                                 : compare_bytes(&members[j - 1], &m)) > 0) {
            members[j] = members[j - 1];
            j--;
        }
        members[j] = m;
    }
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
            m->text = value;
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
                int written = put_number(w, members[i].text);
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

/* ---- values and maps ------------------------------------------------------------------------------ */

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
static PyObject *encode_image(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) != T_COUNT) {
        PyErr_SetString(PyExc_TypeError, "encode_image(image: dict, tags: bytes of 11 branch tags, fallback)");
        return NULL;
    }
    Writer w;
    w.out.data = w.out.inline_buffer;
    w.out.size = 0;
    w.out.capacity = sizeof(w.out.inline_buffer);
    w.tags = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    w.fallback = args[2];
    PyObject *result = NULL;
    if (put_byte(&w.out, 0x02) == 0 && put_item(&w, args[0], 0) == 0)
        result = PyBytes_FromStringAndSize(w.out.data, w.out.size);
    if (w.out.data != w.out.inline_buffer) PyMem_Free(w.out.data);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_image", (PyCFunction)(void (*)(void))encode_image, METH_FASTCALL,
     "encode_image(image, tags, fallback) -> bytes: a raw DynamoDB image as the Avro map of the generic envelope."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *binascii = PyImport_ImportModule("binascii");
    if (binascii == NULL) return NULL;
    a2b_base64 = PyObject_GetAttrString(binascii, "a2b_base64");
    Py_DECREF(binascii);
    if (a2b_base64 == NULL) return NULL;
    strict_kwnames = Py_BuildValue("(s)", "strict_mode");
    if (strict_kwnames == NULL) return NULL;
    return PyModule_Create(&module);
}
