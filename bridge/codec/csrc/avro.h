/* Shared by the C module `bridge.codec._speedups` (module.c): an output buffer with Avro's primitives, exact
 * numbers, and the ordering of set members. objects.c writes an image from parsed Python objects, json.c from
 * its JSON text, split.c cuts the images out of a GetRecords page
 * and the items out of a Scan page. */
#ifndef BRIDGE_AVRO_H
#define BRIDGE_AVRO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* the union branches of an AttributeValue, in the order of the tag bytes the module functions take */
enum { T_NULL, T_BOOLEAN, T_LONG, T_STRING, T_BYTES, T_VSD, T_MAP, T_ARRAY, T_SS, T_NS, T_BS, T_COUNT };

#define MAX_DEPTH 64   /* deeper values go to the Python writer (DynamoDB allows 32 levels) */
#define MAX_MEMBERS 64 /* larger sets go to the Python writer, which sorts them in O(n log n) */

extern PyObject *a2b_base64;     /* binascii.a2b_base64 */
extern PyObject *strict_kwnames; /* ("strict_mode",) */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    char inline_buffer[4096];
} Out;

typedef struct {
    Out out;
    const unsigned char *tags; /* T_COUNT one-byte union tags */
    PyObject *fallback;        /* objects.c: the Python writer of one value */
} Writer;

typedef struct {
    int negative;
    const char *whole, *fraction; /* digits, not NUL-terminated */
    Py_ssize_t whole_len, fraction_len;
    int has_dot;
} NumberText;

typedef struct {
    const char *data;
    Py_ssize_t size;
    PyObject *owner; /* a new reference to keep `data` alive, or NULL */
    NumberText number;
} Member;

static inline int grow(Out *out, Py_ssize_t more) {
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

static inline int put(Out *out, const void *bytes, Py_ssize_t n) {
    if (grow(out, n) < 0) return -1;
    memcpy(out->data + out->size, bytes, n);
    out->size += n;
    return 0;
}

static inline int put_byte(Out *out, unsigned char byte) {
    if (grow(out, 1) < 0) return -1;
    out->data[out->size++] = (char)byte;
    return 0;
}

/* An Avro long: zig-zag, then 7 bits per byte, low bits first. */
static inline int put_long(Out *out, int64_t n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    if (grow(out, 10) < 0) return -1;
    while (z > 0x7F) {
        out->data[out->size++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    out->data[out->size++] = (char)z;
    return 0;
}

static inline int put_counted(Out *out, const char *bytes, Py_ssize_t n) {
    if (put_long(out, n) < 0) return -1;
    return put(out, bytes, n);
}

static inline void init_out(Out *out) {
    out->data = out->inline_buffer;
    out->size = 0;
    out->capacity = sizeof(out->inline_buffer);
}

static inline void free_out(Out *out) {
    if (out->data != out->inline_buffer) PyMem_Free(out->data);
}

int split_digits(const char *s, Py_ssize_t len, NumberText *n);
int put_split_number(Writer *w, NumberText n);
void sort_members(Member *members, Py_ssize_t n, int numeric);

/* Past one JSON value at *p (before `end`) when it is valid JSON as orjson reads it: 1, else 0. */
int json_check(const char **p, const char *end);

PyObject *encode_image(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_image_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *split_images(PyObject *module, PyObject *body);
PyObject *split_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* murmur.c */
PyObject *partition(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *record_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *record_append(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
