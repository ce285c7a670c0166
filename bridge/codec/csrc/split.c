/* split_images: a GetRecords page with each record's images cut out (bridge/source/rawbody.py); split_items:
 * a Scan page with each item cut out, and its key attributes (bridge/source/scanbody.py). */
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

/* split_items: a Scan page with each item cut out, and the key attributes of each (bridge/source/scanbody.py). */

typedef struct {
    Split sp;
    PyObject *keys;            /* the key attributes of each item, as JSON object texts */
    const char **names;        /* the key names, UTF-8 */
    Py_ssize_t *name_lens, name_count;
    Out key;                   /* the key object of the item being cut */
} ItemSplit;

static int is_key_name(const ItemSplit *is, const char *name, Py_ssize_t len) {
    if (memchr(name, '\\', len) != NULL) return 1; /* escaped: it may spell a key name; kept, harmless if not */
    for (Py_ssize_t i = 0; i < is->name_count; i++)
        if (is->name_lens[i] == len && memcmp(is->names[i], name, len) == 0) return 1;
    return 0;
}

/* Past one item (checked whole and valid as orjson reads it, member by member with `json_check`), its
 * text to `images` and the members named in key_names copied in order into one object text to `keys`
 * (repeated names too: orjson keeps the last, in the item as in the copy). Nesting is counted from the
 * item's values, one level more than a check of the whole item allows: still well within orjson's limit. */
static int item_member(ItemSplit *is) {
    Split *sp = &is->sp;
    Scan *s = &sp->s;
    if (!scan_peek(s, '{')) return 0;
    const char *start = s->p++;
    int first = 1;
    is->key.size = 0;
    if (put_byte(&is->key, '{') < 0) return -1;
    if (!scan_char(s, '}')) {
        do {
            if (!scan_peek(s, '"')) return 0;
            const char *name = s->p;
            if (!json_check(&s->p, s->end)) return 0; /* the name: a valid string, s->p past its closing quote */
            Py_ssize_t len = s->p - name - 2;
            if (!scan_char(s, ':') || !json_check(&s->p, s->end)) return 0;
            if (!is_key_name(is, name + 1, len)) continue; /* on to the `,` */
            if ((!first && put_byte(&is->key, ',') < 0) || put(&is->key, name, s->p - name) < 0) return -1;
            first = 0;
        } while (scan_char(s, ','));
        if (!scan_char(s, '}')) return 0;
    }
    if (put_byte(&is->key, '}') < 0) return -1;
    PyObject *key = PyBytes_FromStringAndSize(is->key.data, is->key.size);
    if (key == NULL) return -1;
    int appended = PyList_Append(is->keys, key);
    Py_DECREF(key);
    if (appended < 0) return -1;
    PyObject *text = PyBytes_FromStringAndSize(start, s->p - start);
    if (text == NULL) return -1;
    Py_ssize_t index = PyList_GET_SIZE(sp->images);
    appended = PyList_Append(sp->images, text);
    Py_DECREF(text);
    if (appended < 0) return -1;
    char placeholder[24];
    int n = snprintf(placeholder, sizeof placeholder, "%zd", index);
    if (put(&sp->kept, sp->copied, start - sp->copied) < 0 || put(&sp->kept, placeholder, n) < 0) return -1;
    sp->copied = s->p;
    return 1;
}

static int scan_page_member(Split *sp, const char *key, Py_ssize_t len) {
    if (!IS_KEY(key, len, "Items")) return scan_value(&sp->s);
    ItemSplit *is = (ItemSplit *)sp; /* `sp` is the first member of an ItemSplit */
    if (!scan_char(&sp->s, '[')) return 0;
    if (scan_char(&sp->s, ']')) return 1;
    do {
        int done = item_member(is);
        if (done <= 0) return done;
    } while (scan_char(&sp->s, ','));
    return scan_char(&sp->s, ']');
}

/* split_items(body: bytes, key_names: tuple[str, ...]) -> (bytes, list[bytes], list[bytes]) | None: the page
 * with each element of its `Items` array replaced by its index in the list of the items' JSON texts, and for
 * each item an object text of its members named in key_names (and of any whose name is spelled with an
 * escape, which may be one of them); None when the page is not shaped as expected (an item that is no object
 * or not valid JSON, an escaped member name of the page: the caller then parses it whole). */
PyObject *split_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_items(body: bytes, key_names: tuple[str, ...])");
        return NULL;
    }
    PyObject *body = args[0], *key_names = args[1];
    ItemSplit is;
    is.name_count = PyTuple_GET_SIZE(key_names);
    is.names = PyMem_Malloc(sizeof(char *) * (is.name_count + 1));
    is.name_lens = PyMem_Malloc(sizeof(Py_ssize_t) * (is.name_count + 1));
    if (is.names == NULL || is.name_lens == NULL) {
        PyMem_Free(is.names);
        PyMem_Free(is.name_lens);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < is.name_count; i++) {
        PyObject *name = PyTuple_GET_ITEM(key_names, i);
        is.names[i] = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &is.name_lens[i]) : NULL;
        if (is.names[i] == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "split_items: key names must be str");
            PyMem_Free(is.names);
            PyMem_Free(is.name_lens);
            return NULL;
        }
    }
    Split *sp = &is.sp;
    sp->s.p = sp->copied = PyBytes_AS_STRING(body);
    sp->s.end = sp->s.p + PyBytes_GET_SIZE(body);
    init_out(&sp->kept);
    init_out(&is.key);
    sp->images = PyList_New(0);
    is.keys = PyList_New(0);
    PyObject *result = NULL;
    if (sp->images != NULL && is.keys != NULL) {
        int done = scan_object(sp, scan_page_member);
        if (done > 0 && put(&sp->kept, sp->copied, sp->s.end - sp->copied) == 0) {
            PyObject *kept = PyBytes_FromStringAndSize(sp->kept.data, sp->kept.size);
            if (kept != NULL) result = Py_BuildValue("(NOO)", kept, sp->images, is.keys);
        } else if (done == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    Py_XDECREF(sp->images);
    Py_XDECREF(is.keys);
    free_out(&sp->kept);
    free_out(&is.key);
    PyMem_Free(is.names);
    PyMem_Free(is.name_lens);
    return result;
}
