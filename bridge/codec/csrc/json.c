/* The fast read path (bridge/source/rawbody.py) cuts each record's images out of the GetRecords page
 * (`split_images`) and `encode_image_json` writes one straight from its JSON text, without building
 * Python objects. It accepts what orjson accepts and writes what `encode_image` writes for orjson's
 * result; for anything else (escaped type tags, duplicate names, unusual numbers, non-canonical base64,
 * lone surrogates, deep nesting...) it declines and the caller parses the text and uses the object path. */
#include "avro.h"

#define DECLINE 1 /* parse results: 0 done, DECLINE, -1 Python error */

#define TRY(call)                                                                                              \
    do {                                                                                                       \
        int result_ = (call);                                                                                  \
        if (result_ != 0) return result_;                                                                      \
    } while (0)

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

/* A JSON string, decoded to UTF-8 and appended to `out` (or only checked, when `out` is NULL). */
static int json_string(Json *j, Out *out) {
    if (expect(j, '"')) return DECLINE;
    const unsigned char *p = (const unsigned char *)j->p, *end = (const unsigned char *)j->end;
    for (;;) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run && out != NULL && put(out, run, p - run) < 0) return -1;
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
                if (out != NULL && put_code_point(out, cp) < 0) return -1;
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
            if (out != NULL && put_byte(out, byte) < 0) return -1;
            continue;
        }
        int n = utf8_sequence(p, end);
        if (n == 0) return DECLINE;
        if (out != NULL && put(out, p, n) < 0) return -1;
        p += n;
    }
    j->p = (const char *)p + 1;
    return 0;
}

static int json_literal(Json *j, const char *word);

static int is_digit(const char *p, const char *end) {
    return p < end && *p >= '0' && *p <= '9';
}

/* Past `open` of an object or array; *more is 0 when `close` follows at once (then past it too). */
static int open_container(Json *j, char open, char close, int *more) {
    TRY(expect(j, open));
    skip_ws(j);
    *more = !(j->p < j->end && *j->p == close);
    if (!*more) j->p++;
    return 0;
}

/* After an element: past a ',' (*more = 1) or the `close` that ends the container (*more = 0). */
static int after_element(Json *j, char close, int *more) {
    skip_ws(j);
    *more = j->p < j->end && *j->p == ',';
    if (*more) {
        j->p++;
        return 0;
    }
    return expect(j, close);
}

/* One JSON value of any kind, checked as strictly as orjson reads it; 0 when valid. */
static int check_value(Json *j, int depth) {
    skip_ws(j);
    if (j->p >= j->end || depth > 1000) return DECLINE;
    char c = *j->p;
    if (c == '"') return json_string(j, NULL);
    if (c == 't') return json_literal(j, "true");
    if (c == 'f') return json_literal(j, "false");
    if (c == 'n') return json_literal(j, "null");
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        int more;
        TRY(open_container(j, c, close, &more));
        while (more) {
            if (c == '{') {
                TRY(json_string(j, NULL));
                TRY(expect(j, ':'));
            }
            TRY(check_value(j, depth + 1));
            TRY(after_element(j, close, &more));
        }
        return 0;
    }
    /* a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    const char *p = j->p, *end = j->end;
    if (p < end && *p == '-') p++;
    if (!is_digit(p, end)) return DECLINE;
    if (*p++ != '0')
        while (is_digit(p, end)) p++;
    if (p < end && *p == '.') {
        if (!is_digit(++p, end)) return DECLINE;
        while (is_digit(p, end)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, end)) return DECLINE;
        while (is_digit(p, end)) p++;
    }
    j->p = p;
    return 0;
}

int json_check(const char **p, const char *end) {
    Json j;
    j.p = *p;
    j.end = end;
    if (check_value(&j, 0) != 0) return 0;
    *p = j.p;
    return 1;
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

/* A map of attribute values; names must be unique (a duplicate declines: a dict keeps only the last). */
static int json_map(Json *j, int depth) {
    Out *out = &j->w->out;
    Py_ssize_t start = out->size, count = 0, base = j->names_size;
    int more;
    TRY(open_container(j, '{', '}', &more));
    while (more) {
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
        TRY(after_element(j, '}', &more));
    }
    j->names_size = base;
    if (count > 0 && insert_count(out, start, count) < 0) return -1; /* a block: count, items, 0 */
    return put_byte(out, 0);
}

static int json_list(Json *j, int depth) {
    Out *out = &j->w->out;
    Py_ssize_t start = out->size, count = 0;
    int more;
    TRY(open_container(j, '[', ']', &more));
    while (more) {
        TRY(json_value(j, depth + 1));
        count++;
        TRY(after_element(j, ']', &more));
    }
    if (count > 0 && insert_count(out, start, count) < 0) return -1; /* a block: count, items, 0 */
    return put_byte(out, 0);
}

/* An SS / NS / BS set: members decoded into `j->members`, sorted, written. */
static int json_set(Json *j, int tag) {
    Member members[MAX_MEMBERS];
    Py_ssize_t offsets[MAX_MEMBERS], count = 0;
    j->members.size = 0;
    int more;
    TRY(open_container(j, '[', ']', &more));
    while (more) {
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
        TRY(after_element(j, ']', &more));
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

/* encode_image_json(text: bytes, tags: bytes) -> bytes | None: what `encode_image` writes for
 * `orjson.loads(text)`, or None when the text is for the caller to parse. */
PyObject *encode_image_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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
