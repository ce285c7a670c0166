/* Exact numbers (long within int64, else Debezium's VariableScaleDecimal) and the order of set members,
 * as the Python writer (bridge/codec/transcode.py) writes and sorts them. */
#include "avro.h"

/* Split `-?digits(.digits)?` (either side of the dot may be empty); 0 when the text is anything else. */
int split_digits(const char *s, Py_ssize_t len, NumberText *n) {
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

/* Debezium's VariableScaleDecimal: scale, then the unscaled value big-endian in two's complement, in the
 * fewest bytes, as Java's BigInteger.toByteArray() and bridge.codec.writer.twos_complement (-128 is 80). */
static int put_vsd(Writer *w, __int128 value, Py_ssize_t scale) {
    /* the bits of the value without its sign bit: of value, or of ~value (-value - 1) when negative */
    unsigned __int128 magnitude = value < 0 ? ~(unsigned __int128)value : (unsigned __int128)value;
    int bits = 0;
    while (bits < 128 && magnitude >> bits) bits++;
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
int put_split_number(Writer *w, NumberText n) {
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

static int compare_bytes(const Member *a, const Member *b) {
    Py_ssize_t common = a->size < b->size ? a->size : b->size;
    int c = memcmp(a->data, b->data, common);
    if (c != 0) return c;
    return a->size == b->size ? 0 : (a->size < b->size ? -1 : 1);
}

/* Stable insertion sort: sets here have at most MAX_MEMBERS members. */
void sort_members(Member *members, Py_ssize_t n, int numeric) {
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
