/* split_images: a GetRecords page with each record's images cut out (bridge/source/rawbody.py). */
#include "avro.h"

typedef struct {
    const char *p, *end;
} Scan;

/* Past one JSON string (escapes skipped, not decoded); the raw text between the quotes in *raw. */
static int scan_string(Scan *s, const char **raw, Py_ssize_t *len) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
    if (s->p >= s->end || *s->p != '"') return 0;
    const char *start = ++s->p;
    while (s->p < s->end && *s->p != '"') s->p += *s->p == '\\' && s->end - s->p > 1 ? 2 : 1;
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

/* Past one JSON value of any kind (not validated: orjson parses all that is kept). */
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
    if (!json_check(&sp->s.p, sp->s.end)) return 0; /* an image cut out must be whole, valid JSON */
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
PyObject *split_images(PyObject *module, PyObject *body) {
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
