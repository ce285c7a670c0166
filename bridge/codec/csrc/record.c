/* record_append and record_size: kafka-python's v2 record (`DefaultRecordBatchBuilder.append` and `size_of`
 * in kafka/record/default_records.py) in C, byte for byte (bridge/sinks/kafka_append.py installs them;
 * tests/unit/test_speedups_record.py compares them with kafka-python's). Arguments of other types than the
 * bridge's (bytes key and value or None, a list of (str, bytes or None) headers, ints that fit 64 bits) give
 * NotImplemented before anything is written, and the caller runs kafka-python's Python code instead. */
#include "avro.h"

static int varint_size(int64_t value) {
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    int size = 1;
    while (z > 0x7f) {
        z >>= 7;
        size++;
    }
    return size;
}

static char *put_varint(char *p, int64_t value) {
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    while (z > 0x7f) {
        *p++ = (char)(0x80 | (z & 0x7f));
        z >>= 7;
    }
    *p++ = (char)z;
    return p;
}

/* A bytes object or None as kafka-python writes it: varint length and the bytes, or the varint of -1. */
static Py_ssize_t field_size(PyObject *field) {
    if (field == Py_None) return 1;
    return varint_size(PyBytes_GET_SIZE(field)) + PyBytes_GET_SIZE(field);
}

static char *put_field(char *p, PyObject *field) {
    if (field == Py_None) return put_varint(p, -1);
    Py_ssize_t size = PyBytes_GET_SIZE(field);
    p = put_varint(p, size);
    memcpy(p, PyBytes_AS_STRING(field), size);
    return p + size;
}

static int plain_field(PyObject *field) { return field == Py_None || PyBytes_CheckExact(field); }

/* The size of key, value and headers in a record (`size_of`), or -1 when one is not of the plain types
 * (no Python error set), -2 on a Python error. */
static Py_ssize_t fields_size(PyObject *key, PyObject *value, PyObject *headers) {
    if (!plain_field(key) || !plain_field(value) || !PyList_CheckExact(headers)) return -1;
    Py_ssize_t count = PyList_GET_SIZE(headers);
    Py_ssize_t size = field_size(key) + field_size(value) + varint_size(count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(header) || PyTuple_GET_SIZE(header) != 2) return -1;
        PyObject *name = PyTuple_GET_ITEM(header, 0), *content = PyTuple_GET_ITEM(header, 1);
        if (!PyUnicode_CheckExact(name) || !plain_field(content)) return -1;
        Py_ssize_t name_size;
        if (PyUnicode_AsUTF8AndSize(name, &name_size) == NULL) {
            PyErr_Clear(); /* a lone surrogate: kafka-python's own code raises its error */
            return -1;
        }
        size += varint_size(name_size) + name_size + field_size(content);
    }
    return size;
}

/* record_size(key, value, headers) -> int | NotImplemented: `DefaultRecordBatchBuilder.size_of`. */
PyObject *record_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "record_size(key, value, headers)");
        return NULL;
    }
    Py_ssize_t size = fields_size(args[0], args[1], args[2]);
    if (size == -1) Py_RETURN_NOTIMPLEMENTED;
    return PyLong_FromSsize_t(size);
}

static int get_int64(PyObject *object, int64_t *out) {
    if (!PyLong_CheckExact(object)) return -1;
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(object, &overflow);
    if (overflow || (value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    *out = value;
    return 0;
}

/* An int attribute of the builder into `out` (0), -1 when it is not a 64-bit int, -2 on a Python error. */
static int int_attribute(PyObject *builder, const char *name, int64_t *out) {
    PyObject *object = PyObject_GetAttrString(builder, name);
    if (object == NULL) return -2;
    int result = get_int64(object, out);
    Py_DECREF(object);
    return result;
}

static int set_int_attribute(PyObject *builder, const char *name, int64_t value) {
    PyObject *object = PyLong_FromLongLong(value);
    if (object == NULL) return -1;
    int result = PyObject_SetAttrString(builder, name, object);
    Py_DECREF(object);
    return result;
}

#define FALL_BACK(status) \
    do {                                                           \
        if ((status) == -2) return NULL;                           \
        Py_RETURN_NOTIMPLEMENTED;                                  \
    } while (0)

/* record_append(builder, offset, timestamp, key, value, headers, metadata) -> metadata | None |
 * NotImplemented: `DefaultRecordBatchBuilder.append(offset, timestamp, key, value, headers)` with an int
 * timestamp; None when the record does not fit the batch; `metadata(offset, size, timestamp)` once written. */
PyObject *record_append(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "record_append(builder, offset, timestamp, key, value, headers, metadata)");
        return NULL;
    }
    PyObject *builder = args[0], *key = args[3], *value = args[4], *headers = args[5];
    int64_t offset, timestamp, first = 0, batch_size, max_timestamp = 0, records;
    if (get_int64(args[1], &offset) < 0 || get_int64(args[2], &timestamp) < 0) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t fields = fields_size(key, value, headers);
    if (fields < 0) FALL_BACK(fields);
    PyObject *first_object = PyObject_GetAttrString(builder, "_first_timestamp");
    if (first_object == NULL) return NULL;
    int first_message = first_object == Py_None;
    int status = first_message ? 0 : get_int64(first_object, &first);
    Py_DECREF(first_object);
    if (status < 0) Py_RETURN_NOTIMPLEMENTED;
    if ((status = int_attribute(builder, "_batch_size", &batch_size)) < 0) FALL_BACK(status);
    if ((status = int_attribute(builder, "_num_records", &records)) < 0) FALL_BACK(status);
    if (!first_message && (status = int_attribute(builder, "_max_timestamp", &max_timestamp)) < 0) FALL_BACK(status);
    PyObject *buffer = PyObject_GetAttrString(builder, "_buffer");
    if (buffer == NULL) return NULL;
    if (!PyByteArray_CheckExact(buffer)) {
        Py_DECREF(buffer);
        Py_RETURN_NOTIMPLEMENTED;
    }
    int64_t delta = 0;
    if (!first_message && __builtin_sub_overflow(timestamp, first, &delta)) { /* Python's ints do not overflow */
        Py_DECREF(buffer);
        Py_RETURN_NOTIMPLEMENTED;
    }
    Py_ssize_t message = 1 + varint_size(delta) + varint_size(offset) + fields;
    Py_ssize_t required = message + varint_size(message), used = PyByteArray_GET_SIZE(buffer);
    PyObject *result = NULL;
    if (first_message) { /* set before the size check, as kafka-python does (the first record always fits) */
        if (set_int_attribute(builder, "_first_timestamp", timestamp) < 0) goto done;
        if (set_int_attribute(builder, "_max_timestamp", timestamp) < 0) goto done;
        max_timestamp = timestamp;
    } else if (required + used > batch_size) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (max_timestamp < timestamp && set_int_attribute(builder, "_max_timestamp", timestamp) < 0) goto done;
    if (set_int_attribute(builder, "_num_records", records + 1) < 0) goto done;
    if (PyObject_SetAttrString(builder, "_last_offset", args[1]) < 0) goto done;
    if (PyByteArray_Resize(buffer, used + required) < 0) goto done;
    char *p = PyByteArray_AS_STRING(buffer) + used;
    p = put_varint(p, message);
    *p++ = 0; /* attributes */
    p = put_varint(p, delta);
    p = put_varint(p, offset);
    p = put_field(p, key);
    p = put_field(p, value);
    Py_ssize_t count = PyList_GET_SIZE(headers);
    p = put_varint(p, count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = PyList_GET_ITEM(headers, i);
        Py_ssize_t name_size;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(header, 0), &name_size);
        p = put_varint(p, name_size);
        memcpy(p, name, name_size);
        p = put_field(p + name_size, PyTuple_GET_ITEM(header, 1));
    }
    PyObject *call[3] = {args[1], NULL, args[2]};
    call[1] = PyLong_FromSsize_t(required);
    if (call[1] == NULL) goto done;
    result = PyObject_Vectorcall(args[6], call, 3, NULL);
    Py_DECREF(call[1]);
done:
    Py_DECREF(buffer);
    return result;
}
