/* The module `bridge.codec._speedups`: the transcoder's hot loop in C.
 *
 * A raw DynamoDB image, as parsed objects (objects.c) or as JSON text (json.c), straight to the Avro bytes of
 * the generic envelope's `before`/`after` union value, exactly as `bridge.codec.transcode.image_writer`
 * writes them (tests/unit/test_speedups.py and test_speedups_json.py compare them byte for byte); and the
 * cuts that leave a GetRecords page's images and a Scan page's items as text (split.c); and the Kafka default
 * partitioner's murmur2 (murmur.c) and kafka-python's v2 record writer (record.c). */
#include "avro.h"

PyObject *a2b_base64;
PyObject *strict_kwnames;

static PyMethodDef methods[] = {
    {"encode_image", (PyCFunction)(void (*)(void))encode_image, METH_FASTCALL,
     "encode_image(image, tags, fallback) -> bytes: a raw DynamoDB image as the Avro map of the generic envelope."},
    {"encode_image_json", (PyCFunction)(void (*)(void))encode_image_json, METH_FASTCALL,
     "encode_image_json(text, tags) -> bytes | None: encode_image of the image's JSON text, or None (parse it)."},
    {"split_images", split_images, METH_O,
     "split_images(body) -> (bytes, list[bytes]) | None: a GetRecords page with its images cut out."},
    {"split_items", (PyCFunction)(void (*)(void))split_items, METH_FASTCALL,
     "split_items(body, key_names) -> (bytes, list[bytes], list[bytes]) | None: a Scan page with its items cut out, "
     "and their key attributes."},
    {"partition", (PyCFunction)(void (*)(void))partition, METH_FASTCALL,
     "partition(key, count) -> int: the Kafka default partitioner's choice, murmur2(key) & 0x7fffffff % count."},
    {"record_size", (PyCFunction)(void (*)(void))record_size, METH_FASTCALL,
     "record_size(key, value, headers) -> int | NotImplemented: kafka-python's DefaultRecordBatchBuilder.size_of."},
    {"record_append", (PyCFunction)(void (*)(void))record_append, METH_FASTCALL,
     "record_append(builder, offset, timestamp, key, value, headers, metadata) -> metadata | None | NotImplemented: "
     "kafka-python's DefaultRecordBatchBuilder.append."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods, NULL, NULL, NULL, NULL};

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
