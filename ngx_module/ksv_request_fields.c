/*
 * ngx_kserve: a request's own fields, scanned; see ksv_request_fields.h.
 */

#include <string.h>

#include "ksv_request_fields.h"


/* an object's member: its name (raw, without the quotes) and value */
typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *value;
    size_t       value_len;
} ksv_member_t;

/* walks the members of one object */
typedef struct {
    const char  *p;
    const char  *end;
    int          first;
} ksv_object_t;


/* the bytes that matter inside an object or an array */
static const uint8_t  ksv_special[256] = {
    ['"'] = 1, ['['] = 1, [']'] = 1, ['{'] = 1, ['}'] = 1
};


static const char *
ksv_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    return p;
}


/* p at the opening quote: past the closing one, or NULL */

static const char *
ksv_skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '"') {
            return p + 1;
        }

        if (*p == '\\') {
            if (++p == end) {
                return NULL;
            }

        } else if ((unsigned char) *p < 0x20) {
            return NULL;
        }
    }

    return NULL;
}


/*
 * One value at p: past its end, or NULL.  Objects and arrays are walked
 * with a stack of bits (1: object), so brackets must match.
 */

static const char *
ksv_skip_value(const char *p, const char *end)
{
    int       depth;
    uint64_t  stack[KSV_FIELDS_MAX_DEPTH / 64] = { 0 };
    unsigned  obj;

    if (p == end) {
        return NULL;
    }

    if (*p == '"') {
        return ksv_skip_string(p, end);
    }

    if (*p != '{' && *p != '[') {
        const char  *start = p;

        while (p < end
               && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
                   || *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
        {
            p++;
        }

        return p == start ? NULL : p;
    }

    depth = 0;

    while (p < end) {

        /* numbers, commas, literals: nothing to do but pass them */

        while (p < end && !ksv_special[(unsigned char) *p]) {
            p++;
        }

        if (p == end) {
            break;
        }

        switch (*p) {

        case '"':
            p = ksv_skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            continue;

        case '{':
        case '[':
            if (depth == KSV_FIELDS_MAX_DEPTH) {
                return NULL;
            }

            obj = (*p == '{');

            if (obj) {
                stack[depth / 64] |= (uint64_t) 1 << (depth % 64);

            } else {
                stack[depth / 64] &= ~((uint64_t) 1 << (depth % 64));
            }

            depth++;
            break;

        case '}':
        case ']':
            depth--;
            obj = (stack[depth / 64] >> (depth % 64)) & 1;

            if (obj != (*p == '}')) {
                return NULL;
            }

            if (depth == 0) {
                return p + 1;
            }

            break;
        }

        p++;
    }

    return NULL;
}


static int
ksv_object_open(ksv_object_t *o, const char *json, size_t len)
{
    o->end = json + len;
    o->p = ksv_ws(json, o->end);
    o->first = 1;

    if (o->p == o->end || *o->p != '{') {
        return -1;
    }

    o->p++;

    return 0;
}


/* the next member: 1, 0 at the end of the object, -1 when malformed */

static int
ksv_object_next(ksv_object_t *o, ksv_member_t *m)
{
    const char  *p, *end, *q;

    p = ksv_ws(o->p, o->end);
    end = o->end;

    if (p == end) {
        return -1;
    }

    if (*p == '}') {
        o->p = p + 1;
        return 0;
    }

    if (!o->first) {
        if (*p != ',') {
            return -1;
        }

        p = ksv_ws(p + 1, end);
    }

    if (p == end || *p != '"') {
        return -1;
    }

    q = ksv_skip_string(p, end);
    if (q == NULL) {
        return -1;
    }

    m->name = p + 1;
    m->name_len = (size_t) (q - 1 - (p + 1));

    p = ksv_ws(q, end);

    if (p == end || *p != ':') {
        return -1;
    }

    p = ksv_ws(p + 1, end);

    q = ksv_skip_value(p, end);
    if (q == NULL) {
        return -1;
    }

    m->value = p;
    m->value_len = (size_t) (q - p);

    o->p = q;
    o->first = 0;

    return 1;
}


static int
ksv_hex4(const char *p, uint32_t *v)
{
    int  i;

    *v = 0;

    for (i = 0; i < 4; i++) {
        *v <<= 4;

        if (p[i] >= '0' && p[i] <= '9') {
            *v |= (uint32_t) (p[i] - '0');

        } else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f') {
            *v |= (uint32_t) ((p[i] | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return 0;
}


/*
 * The characters of a string's raw contents (between the quotes) into
 * out, at most cap bytes: the length, or -1 for a bad escape or when
 * it does not fit.
 */

static int64_t
ksv_unescape(const char *s, size_t len, char *out, size_t cap)
{
    char        *o;
    size_t       need;
    uint32_t     c, lo;
    const char  *end;

    o = out;
    end = s + len;

    while (s < end) {
        if (*s != '\\') {
            if ((size_t) (o - out) == cap) {
                return -1;
            }

            *o++ = *s++;
            continue;
        }

        if (++s == end) {
            return -1;
        }

        switch (*s++) {
        case '"':  c = '"';  break;
        case '\\': c = '\\'; break;
        case '/':  c = '/';  break;
        case 'b':  c = '\b'; break;
        case 'f':  c = '\f'; break;
        case 'n':  c = '\n'; break;
        case 'r':  c = '\r'; break;
        case 't':  c = '\t'; break;

        case 'u':
            if (end - s < 4 || ksv_hex4(s, &c) != 0) {
                return -1;
            }

            s += 4;

            if (c >= 0xDC00 && c <= 0xDFFF) {
                return -1;
            }

            if (c >= 0xD800 && c <= 0xDBFF) {
                if (end - s < 6 || s[0] != '\\' || s[1] != 'u'
                    || ksv_hex4(s + 2, &lo) != 0
                    || lo < 0xDC00 || lo > 0xDFFF)
                {
                    return -1;
                }

                s += 6;
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            }

            break;

        default:
            return -1;
        }

        /* UTF-8 */

        need = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;

        if ((size_t) (o - out) + need > cap) {
            return -1;
        }

        if (c < 0x80) {
            *o++ = (char) c;

        } else if (c < 0x800) {
            *o++ = (char) (0xC0 | (c >> 6));
            *o++ = (char) (0x80 | (c & 0x3F));

        } else if (c < 0x10000) {
            *o++ = (char) (0xE0 | (c >> 12));
            *o++ = (char) (0x80 | ((c >> 6) & 0x3F));
            *o++ = (char) (0x80 | (c & 0x3F));

        } else {
            *o++ = (char) (0xF0 | (c >> 18));
            *o++ = (char) (0x80 | ((c >> 12) & 0x3F));
            *o++ = (char) (0x80 | ((c >> 6) & 0x3F));
            *o++ = (char) (0x80 | (c & 0x3F));
        }
    }

    return o - out;
}


/* whether a member's raw name, unescaped, is name */

static int
ksv_name_is(const ksv_member_t *m, const char *name, size_t name_len)
{
    char     buf[256];
    int64_t  n;

    if (memchr(m->name, '\\', m->name_len) == NULL) {
        return m->name_len == name_len
               && memcmp(m->name, name, name_len) == 0;
    }

    n = ksv_unescape(m->name, m->name_len, buf, sizeof(buf));

    return n == (int64_t) name_len && memcmp(buf, name, name_len) == 0;
}


int
ksv_request_fields(const char *json, size_t len, ksv_request_fields_t *f)
{
    int           rc;
    ksv_member_t  m;
    ksv_object_t  o;

    memset(f, 0, sizeof(ksv_request_fields_t));

    if (ksv_object_open(&o, json, len) != 0) {
        return -1;
    }

    while ((rc = ksv_object_next(&o, &m)) == 1) {
        if (f->id == NULL && ksv_name_is(&m, "id", 2)) {
            f->id = m.value;
            f->id_len = m.value_len;

        } else if (f->parameters == NULL
                   && ksv_name_is(&m, "parameters", 10))
        {
            f->parameters = m.value;
            f->parameters_len = m.value_len;
        }
    }

    if (rc != 0) {
        memset(f, 0, sizeof(ksv_request_fields_t));
        return -1;
    }

    return 0;
}


int
ksv_json_member(const char *obj, size_t len, const char *name,
    size_t name_len, const char **value, size_t *value_len)
{
    ksv_member_t  m;
    ksv_object_t  o;

    if (ksv_object_open(&o, obj, len) != 0) {
        return -1;
    }

    while (ksv_object_next(&o, &m) == 1) {
        if (ksv_name_is(&m, name, name_len)) {
            *value = m.value;
            *value_len = m.value_len;
            return 0;
        }
    }

    return -1;
}


int64_t
ksv_json_text(const char *value, size_t len, char *out)
{
    if (len == 4 && memcmp(value, "null", 4) == 0) {
        return -1;
    }

    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        return ksv_unescape(value + 1, len - 2, out, len);
    }

    memcpy(out, value, len);

    return (int64_t) len;
}
