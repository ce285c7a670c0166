/* partition: the Kafka partition of a record key, as Java's and kafka-python's default partitioners pick it
 * (bridge/sinks/kafka.py): the positive murmur2 hash of the key, modulo the partition count. */
#include "avro.h"

static uint32_t murmur2(const unsigned char *data, Py_ssize_t length) {
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28c ^ (uint32_t)length;
    Py_ssize_t i = 0;
    for (; i + 4 <= length; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                     (uint32_t)data[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (length & 3) {
        case 3: h ^= (uint32_t)data[i + 2] << 16; /* fall through */
        case 2: h ^= (uint32_t)data[i + 1] << 8; /* fall through */
        case 1:
            h ^= data[i];
            h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* partition(key: bytes, count: int) -> int: (murmur2(key) & 0x7fffffff) % count. */
PyObject *partition(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "partition(key: bytes, count: int)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    if (count <= 0) {
        PyErr_SetString(PyExc_ValueError, "partition: count must be positive");
        return NULL;
    }
    uint32_t h = murmur2((const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]));
    return PyLong_FromSsize_t((Py_ssize_t)((h & 0x7fffffff) % (uint32_t)count));
}
