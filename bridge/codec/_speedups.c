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
static int split_digits(const char *s, Py_ssize_t len, NumberText *n) {
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

static int split_number(PyObject *text, NumberText *n) {
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) return 0;
    return split_digits((const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), n);
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
static int put_split_number(Writer *w, NumberText n) {
    __int128 value;
    if (!n.has_dot || all_zeros(n.fraction, n.fraction_len)) {
        /* integral: "-12", "12.", "12.000"; long digit runs with a dot keep an exponent, so the fallback */
        if (n.has_dot && n.whole_len >= 19) return 0;
        if (!unscaled_value(&n, 0, &value)) return 0;
        return put_integer(w, value) < 0 ? -1 : 1;
    }
    if (!unscaled_value(&n, n.fraction_len, &value)) return 0;
    return put_vsd(w, value, n.fraction_len) < 0 ? -1 : 1;
}

static int put_number(Writer *w, PyObject *text) {
    NumberText n;
    return split_number(text, &n) ? put_split_number(w, n) : 0;
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
    (void)module;
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

/* ---- images still as JSON text -------------------------------------------------------------------- */
/* The fast read path (bridge/source/rawbody.py) cuts each record's images out of the GetRecords page
 * (`split_images`) and `encode_image_json` writes one straight from its JSON text, without building
 * Python objects. It accepts what orjson accepts and writes what `encode_image` writes for orjson's
 * result; for anything else (escaped type tags, duplicate names, unusual numbers, non-canonical base64,
 * lone surrogates, deep nesting...) it declines and the caller parses the text and uses the object path. */

#define DECLINE 1 /* parse results: 0 done, DECLINE, -1 Python error */

typedef struct {
    const char *p, *end;
    Writer *w;
    Out scratch; /* one decoded string */
    Out members; /* the decoded members of one set */
    Py_ssize_t *names, names_size, names_capacity; /* offset and size of the names of the open maps */
} Json;

#define MAX_NAMES 512 /* a map with more names goes to the caller (duplicate checks are quadratic) */

static void skip_ws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int expect(Json *j, char c) {
    skip_ws(j);
    if (j->p >= j->end || *j->p != c) return DECLINE;
    j->p++;
    return 0;
}

static int hex4(const char *p, unsigned *value) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return 0;
    }
    *value = v;
    return 1;
}

static int put_code_point(Out *out, unsigned cp) {
    unsigned char b[4];
    int n;
    if (cp < 0x80) b[0] = cp, n = 1;
    else if (cp < 0x800) b[0] = 0xC0 | (cp >> 6), b[1] = 0x80 | (cp & 0x3F), n = 2;
    else if (cp < 0x10000) b[0] = 0xE0 | (cp >> 12), b[1] = 0x80 | ((cp >> 6) & 0x3F), b[2] = 0x80 | (cp & 0x3F), n = 3;
    else
        b[0] = 0xF0 | (cp >> 18), b[1] = 0x80 | ((cp >> 12) & 0x3F), b[2] = 0x80 | ((cp >> 6) & 0x3F),
        b[3] = 0x80 | (cp & 0x3F), n = 4;
    return put(out, b, n);
}

/* The length of the valid UTF-8 sequence at p (2-4), or 0. */
static int utf8_sequence(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    int n;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if (end - p < n || p[1] < low || p[1] > high) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* A JSON string, decoded to UTF-8 and appended to `out`. */
static int json_string(Json *j, Out *out) {
    if (expect(j, '"')) return DECLINE;
    const unsigned char *p = (const unsigned char *)j->p, *end = (const unsigned char *)j->end;
    for (;;) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run && put(out, run, p - run) < 0) return -1;
        if (p >= end || *p < 0x20) return DECLINE;
        if (*p == '"') break;
        if (*p == '\\') {
            if (end - p < 2) return DECLINE;
            unsigned char e = p[1], byte;
            p += 2;
            if (e == 'u') {
                unsigned cp, low;
                if (end - p < 4 || !hex4((const char *)p, &cp)) return DECLINE;
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return DECLINE;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4((const char *)p + 2, &low)) return DECLINE;
                    if (low < 0xDC00 || low > 0xDFFF) return DECLINE;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                if (put_code_point(out, cp) < 0) return -1;
                continue;
            }
            switch (e) {
            case '"': byte = '"'; break;
            case '\\': byte = '\\'; break;
            case '/': byte = '/'; break;
            case 'b': byte = '\b'; break;
            case 'f': byte = '\f'; break;
            case 'n': byte = '\n'; break;
            case 'r': byte = '\r'; break;
            case 't': byte = '\t'; break;
            default: return DECLINE;
            }
            if (put_byte(out, byte) < 0) return -1;
            continue;
        }
        int n = utf8_sequence(p, end);
        if (n == 0) return DECLINE;
        if (put(out, p, n) < 0) return -1;
        p += n;
    }
    j->p = (const char *)p + 1;
    return 0;
}

static int json_literal(Json *j, const char *word) {
    size_t n = strlen(word);
    skip_ws(j);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return DECLINE;
    j->p += n;
    return 0;
}

static const signed char BASE64[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,  ['I'] = 9,
    ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27,
    ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45,
    ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
    ['/'] = 64,
}; /* the sextet + 1; 0: not in the alphabet */

/* Canonical base64 (length a multiple of 4, `=` only as the last one or two characters) decoded to `out`,
 * as `a2b_base64(strict_mode=True)` decodes it; anything else declines. */
static int base64_decode(const unsigned char *s, Py_ssize_t len, Out *out) {
    if (len % 4 != 0) return DECLINE;
    Py_ssize_t pad = len > 0 && s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    if (grow(out, len / 4 * 3) < 0) return -1;
    unsigned char *dst = (unsigned char *)out->data + out->size;
    Py_ssize_t written = 0;
    for (Py_ssize_t i = 0; i < len; i += 4) {
        int last = i + 4 == len, data = last ? 4 - (int)pad : 4;
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
            int sextet = k < data ? BASE64[s[i + k]] - 1 : 0;
            if (sextet < 0) return DECLINE;
            v = v << 6 | (unsigned)sextet;
        }
        dst[written++] = v >> 16;
        if (data > 2) dst[written++] = (v >> 8) & 0xFF;
        if (data > 3) dst[written++] = v & 0xFF;
    }
    out->size += written;
    return 0;
}

/* Insert `count` as an Avro long before the bytes written since `start` (a block count comes first). */
static int insert_count(Out *out, Py_ssize_t start, Py_ssize_t count) {
    unsigned char varint[10];
    int n = 0;
    uint64_t z = (uint64_t)count << 1;
    while (z > 0x7F) varint[n++] = (z & 0x7F) | 0x80, z >>= 7;
    varint[n++] = (unsigned char)z;
    if (grow(out, n) < 0) return -1;
    memmove(out->data + start + n, out->data + start, out->size - start);
    memcpy(out->data + start, varint, n);
    out->size += n;
    return 0;
}

static int json_value(Json *j, int depth);

#define TRY(call)                                                                                              \
    do {                                                                                                       \
        int result_ = (call);                                                                                  \
        if (result_ != 0) return result_;                                                                      \
    } while (0)

/* A map of attribute values; names must be unique (a duplicate declines: a dict keeps only the last). */
static int json_map(Json *j, int depth) {
    Out *out = &j->w->out;
    Py_ssize_t start = out->size, count = 0, base = j->names_size;
    TRY(expect(j, '{'));
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return put_byte(out, 0);
    }
    for (;;) {
        if (count == MAX_NAMES) return DECLINE;
        j->scratch.size = 0;
        TRY(json_string(j, &j->scratch));
        Py_ssize_t *names = j->names + base;
        for (Py_ssize_t i = 0; i < 2 * count; i += 2)
            if (names[i + 1] == j->scratch.size && memcmp(out->data + names[i], j->scratch.data, names[i + 1]) == 0)
                return DECLINE;
        if (put_long(out, j->scratch.size) < 0) return -1;
        if (j->names_size + 2 > j->names_capacity) {
            Py_ssize_t capacity = j->names_capacity * 2 + 64;
            Py_ssize_t *grown = PyMem_Realloc(j->names, capacity * sizeof(Py_ssize_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            j->names = grown;
            j->names_capacity = capacity;
        }
        j->names[j->names_size++] = out->size;
        j->names[j->names_size++] = j->scratch.size;
        if (put(out, j->scratch.data, j->scratch.size) < 0) return -1;
        TRY(expect(j, ':'));
        TRY(json_value(j, depth));
        count++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        TRY(expect(j, '}'));
        break;
    }
    j->names_size = base;
    if (insert_count(out, start, count) < 0) return -1;
    return put_byte(out, 0);
}

static int json_list(Json *j, int depth) {
    Out *out = &j->w->out;
    Py_ssize_t start = out->size, count = 0;
    TRY(expect(j, '['));
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return put_byte(out, 0);
    }
    for (;;) {
        TRY(json_value(j, depth + 1));
        count++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        TRY(expect(j, ']'));
        break;
    }
    if (insert_count(out, start, count) < 0) return -1;
    return put_byte(out, 0);
}

/* An SS / NS / BS set: members decoded into `j->members`, sorted, written. */
static int json_set(Json *j, int tag) {
    Member members[MAX_MEMBERS];
    Py_ssize_t offsets[MAX_MEMBERS], count = 0;
    j->members.size = 0;
    TRY(expect(j, '['));
    skip_ws(j);
    int empty = j->p < j->end && *j->p == ']';
    if (empty) j->p++;
    while (!empty) {
        if (count == MAX_MEMBERS) return DECLINE;
        offsets[count] = j->members.size;
        if (tag == T_BS) {
            j->scratch.size = 0;
            TRY(json_string(j, &j->scratch));
            TRY(base64_decode((const unsigned char *)j->scratch.data, j->scratch.size, &j->members));
        } else {
            TRY(json_string(j, &j->members));
        }
        count++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        TRY(expect(j, ']'));
        break;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Member *m = &members[i];
        m->owner = NULL;
        m->data = j->members.data + offsets[i];
        m->size = (i + 1 < count ? offsets[i + 1] : j->members.size) - offsets[i];
        if (tag == T_NS && !split_digits(m->data, m->size, &m->number)) return DECLINE;
    }
    sort_members(members, count, tag == T_NS);
    Out *out = &j->w->out;
    if (put_byte(out, j->w->tags[tag]) < 0) return -1;
    if (count > 0) {
        if (put_long(out, count) < 0) return -1;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (tag == T_NS) {
                int written = put_split_number(j->w, members[i].number);
                if (written <= 0) return written < 0 ? -1 : DECLINE;
            } else if (put_counted(out, members[i].data, members[i].size) < 0) {
                return -1;
            }
        }
    }
    return put_byte(out, 0);
}

/* One attribute value: an object with exactly one type tag, written unescaped. */
static int json_value(Json *j, int depth) {
    Writer *w = j->w;
    Out *out = &w->out;
    if (depth > MAX_DEPTH) return DECLINE;
    TRY(expect(j, '{'));
    TRY(expect(j, '"'));
    const char *kind = j->p;
    while (j->p < j->end && *j->p != '"' && *j->p != '\\') j->p++;
    if (j->p >= j->end || *j->p != '"') return DECLINE;
    Py_ssize_t klen = j->p++ - kind;
    TRY(expect(j, ':'));
    if (klen == 1 && (kind[0] == 'S' || kind[0] == 'N' || kind[0] == 'B')) {
        j->scratch.size = 0;
        TRY(json_string(j, &j->scratch));
        if (kind[0] == 'S') {
            if (put_byte(out, w->tags[T_STRING]) < 0 || put_counted(out, j->scratch.data, j->scratch.size) < 0)
                return -1;
        } else if (kind[0] == 'N') {
            NumberText n;
            if (!split_digits(j->scratch.data, j->scratch.size, &n)) return DECLINE;
            int written = put_split_number(w, n);
            if (written <= 0) return written < 0 ? -1 : DECLINE;
        } else {
            if (put_byte(out, w->tags[T_BYTES]) < 0) return -1;
            Py_ssize_t length_at = out->size;
            TRY(base64_decode((const unsigned char *)j->scratch.data, j->scratch.size, out));
            if (insert_count(out, length_at, out->size - length_at) < 0) return -1;
            /* insert_count writes zig-zag(n): a length is a long too */
        }
    } else if (klen == 1 && kind[0] == 'M') {
        if (put_byte(out, w->tags[T_MAP]) < 0) return -1;
        TRY(json_map(j, depth + 1));
    } else if (klen == 1 && kind[0] == 'L') {
        if (put_byte(out, w->tags[T_ARRAY]) < 0) return -1;
        TRY(json_list(j, depth));
    } else if (klen == 4 && memcmp(kind, "BOOL", 4) == 0) {
        skip_ws(j);
        int truth = j->p < j->end && *j->p == 't';
        TRY(json_literal(j, truth ? "true" : "false"));
        if (put_byte(out, w->tags[T_BOOLEAN]) < 0 || put_byte(out, truth) < 0) return -1;
    } else if (klen == 4 && memcmp(kind, "NULL", 4) == 0) {
        TRY(json_literal(j, "true"));
        if (put_byte(out, w->tags[T_NULL]) < 0) return -1;
    } else if (klen == 2 && kind[1] == 'S' && (kind[0] == 'S' || kind[0] == 'N' || kind[0] == 'B')) {
        TRY(json_set(j, kind[0] == 'S' ? T_SS : (kind[0] == 'N' ? T_NS : T_BS)));
    } else {
        return DECLINE;
    }
    return expect(j, '}');
}

static void init_out(Out *out) {
    out->data = out->inline_buffer;
    out->size = 0;
    out->capacity = sizeof(out->inline_buffer);
}

static void free_out(Out *out) {
    if (out->data != out->inline_buffer) PyMem_Free(out->data);
}

/* encode_image_json(text: bytes, tags: bytes) -> bytes | None: what `encode_image` writes for
 * `orjson.loads(text)`, or None when the text is for the caller to parse. */
static PyObject *encode_image_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) != T_COUNT) {
        PyErr_SetString(PyExc_TypeError, "encode_image_json(text: bytes, tags: bytes of 11 branch tags)");
        return NULL;
    }
    Writer w;
    Json j;
    init_out(&w.out);
    init_out(&j.scratch);
    init_out(&j.members);
    w.tags = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    w.fallback = NULL;
    j.w = &w;
    j.names = NULL;
    j.names_size = j.names_capacity = 0;
    j.p = PyBytes_AS_STRING(args[0]);
    j.end = j.p + PyBytes_GET_SIZE(args[0]);
    PyObject *result = NULL;
    int status = put_byte(&w.out, 0x02) < 0 ? -1 : json_map(&j, 0);
    if (status == 0) {
        skip_ws(&j);
        status = j.p == j.end ? 0 : DECLINE;
    }
    if (status == 0) result = PyBytes_FromStringAndSize(w.out.data, w.out.size);
    else if (status == DECLINE) result = Py_NewRef(Py_None);
    free_out(&w.out);
    free_out(&j.scratch);
    free_out(&j.members);
    PyMem_Free(j.names);
    return result;
}

/* ---- cutting images out of a GetRecords page ------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} Scan;

/* Past one JSON string (escapes skipped, not decoded); the raw text between the quotes in *raw. */
static int scan_string(Scan *s, const char **raw, Py_ssize_t *len) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
    if (s->p >= s->end || *s->p != '"') return 0;
    const char *start = ++s->p;
    while (s->p < s->end && *s->p != '"') s->p += *s->p == '\\' ? 2 : 1;
    if (s->p >= s->end) return 0;
    *raw = start;
    *len = s->p++ - start;
    return 1;
}

static int scan_char(Scan *s, char c) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
    if (s->p >= s->end || *s->p != c) return 0;
    s->p++;
    return 1;
}

static int scan_peek(Scan *s, char c) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
    return s->p < s->end && *s->p == c;
}

/* Past one JSON value of any kind (not validated: orjson parses whatever is kept). */
static int scan_value(Scan *s) {
    const char *raw;
    Py_ssize_t len;
    if (scan_peek(s, '"')) return scan_string(s, &raw, &len);
    if (s->p < s->end && (*s->p == '{' || *s->p == '[')) {
        int depth = 0;
        while (s->p < s->end) {
            char c = *s->p;
            if (c == '"') {
                if (!scan_string(s, &raw, &len)) return 0;
                continue;
            }
            s->p++;
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) return 1;
        }
        return 0;
    }
    const char *start = s->p;
    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' && *s->p != '\n') s->p++;
    return s->p > start;
}

#define IS_KEY(raw, len, word) ((len) == (Py_ssize_t)sizeof(word) - 1 && memcmp(raw, word, sizeof(word) - 1) == 0)

typedef struct {
    Scan s;
    Out kept;       /* the page without its images */
    const char *copied; /* the page is copied to `kept` up to here */
    PyObject *images;
} Split;

/* The members of an object: `member(split, key)` for each; 0 when the shape is not as expected. */
static int scan_object(Split *sp, int (*member)(Split *, const char *, Py_ssize_t)) {
    if (!scan_char(&sp->s, '{')) return 0;
    if (scan_char(&sp->s, '}')) return 1;
    do {
        const char *key;
        Py_ssize_t len;
        if (!scan_string(&sp->s, &key, &len) || memchr(key, '\\', len) != NULL || !scan_char(&sp->s, ':')) return 0;
        int done = member(sp, key, len);
        if (done <= 0) return done;
    } while (scan_char(&sp->s, ','));
    return scan_char(&sp->s, '}');
}

static int image_member(Split *sp, const char *key, Py_ssize_t len) {
    if (!IS_KEY(key, len, "NewImage") && !IS_KEY(key, len, "OldImage")) return scan_value(&sp->s);
    if (!scan_peek(&sp->s, '{')) return 0;
    const char *start = sp->s.p;
    if (!scan_value(&sp->s)) return 0;
    PyObject *text = PyBytes_FromStringAndSize(start, sp->s.p - start);
    if (text == NULL) return -1;
    Py_ssize_t index = PyList_GET_SIZE(sp->images);
    int appended = PyList_Append(sp->images, text);
    Py_DECREF(text);
    if (appended < 0) return -1;
    char placeholder[24];
    int n = snprintf(placeholder, sizeof placeholder, "%zd", index);
    if (put(&sp->kept, sp->copied, start - sp->copied) < 0 || put(&sp->kept, placeholder, n) < 0) return -1;
    sp->copied = sp->s.p;
    return 1;
}

static int record_member(Split *sp, const char *key, Py_ssize_t len) {
    return IS_KEY(key, len, "dynamodb") ? scan_object(sp, image_member) : scan_value(&sp->s);
}

static int page_member(Split *sp, const char *key, Py_ssize_t len) {
    if (!IS_KEY(key, len, "Records")) return scan_value(&sp->s);
    if (!scan_char(&sp->s, '[')) return 0;
    if (scan_char(&sp->s, ']')) return 1;
    do {
        int done = scan_peek(&sp->s, '{') ? scan_object(sp, record_member) : scan_value(&sp->s);
        if (done <= 0) return done;
    } while (scan_char(&sp->s, ','));
    return scan_char(&sp->s, ']');
}

/* split_images(body: bytes) -> (bytes, list[bytes]) | None: the page with each record's NewImage and
 * OldImage object replaced by its index in the list of their JSON texts; None when the page is not
 * shaped as expected (the caller then parses it whole). */
static PyObject *split_images(PyObject *module, PyObject *body) {
    (void)module;
    if (!PyBytes_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "split_images(body: bytes)");
        return NULL;
    }
    Split sp;
    sp.s.p = sp.copied = PyBytes_AS_STRING(body);
    sp.s.end = sp.s.p + PyBytes_GET_SIZE(body);
    init_out(&sp.kept);
    sp.images = PyList_New(0);
    if (sp.images == NULL) return NULL;
    PyObject *result = NULL;
    int done = scan_object(&sp, page_member);
    if (done > 0 && put(&sp.kept, sp.copied, sp.s.end - sp.copied) == 0) {
        PyObject *kept = PyBytes_FromStringAndSize(sp.kept.data, sp.kept.size);
        if (kept != NULL) result = Py_BuildValue("(NO)", kept, sp.images);
    } else if (done == 0) {
        result = Py_NewRef(Py_None);
    }
    Py_DECREF(sp.images);
    free_out(&sp.kept);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_image", (PyCFunction)(void (*)(void))encode_image, METH_FASTCALL,
     "encode_image(image, tags, fallback) -> bytes: a raw DynamoDB image as the Avro map of the generic envelope."},
    {"encode_image_json", (PyCFunction)(void (*)(void))encode_image_json, METH_FASTCALL,
     "encode_image_json(text, tags) -> bytes | None: encode_image of the image's JSON text, or None (parse it)."},
    {"split_images", split_images, METH_O,
     "split_images(body) -> (bytes, list[bytes]) | None: a GetRecords page with its images cut out."},
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
