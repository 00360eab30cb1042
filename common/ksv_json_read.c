/*
 * ngx_kserve: a small JSON reader (see ksv_json_read.h).
 */

#include <stdio.h>
#include <string.h>

#include "ksv_json_read.h"


typedef struct {
    const char   *p;
    const char   *start;
    const char   *end;
    ksv_arena_t  *arena;
    char         *err;
    size_t        errlen;
    int           failed;
} ksv_json_parser_t;


static void
kj_fail(ksv_json_parser_t *j, const char *msg)
{
    if (!j->failed) {
        snprintf(j->err, j->errlen, "offset %ld: %s",
                 (long) (j->p - j->start), msg);
        j->failed = 1;
    }
}


static void
kj_ws(ksv_json_parser_t *j)
{
    while (j->p < j->end
           && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n'
               || *j->p == '\r'))
    {
        j->p++;
    }
}


static int
kj_hex4(const char *p, unsigned *out)
{
    int       i;
    unsigned  v, c;

    v = 0;
    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];
        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if (c >= 'a' && c <= 'f') {
            c = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            c = c - 'A' + 10;
        } else {
            return -1;
        }
        v = v * 16 + c;
    }
    *out = v;
    return 0;
}


static char *
kj_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char) cp;
    } else if (cp < 0x800) {
        *o++ = (char) (0xC0 | (cp >> 6));
        *o++ = (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char) (0xE0 | (cp >> 12));
        *o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char) (0x80 | (cp & 0x3F));
    } else {
        *o++ = (char) (0xF0 | (cp >> 18));
        *o++ = (char) (0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char) (0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char) (0x80 | (cp & 0x3F));
    }
    return o;
}


/* A string at j->p (the opening quote): unescaped copy in the arena. */
static const char *
kj_string(ksv_json_parser_t *j, size_t *len)
{
    char        *out, *o;
    unsigned     cp, lo;
    const char  *s;

    s = ++j->p;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\') {
            j->p++;
        } else if ((unsigned char) *j->p < 0x20) {
            kj_fail(j, "control character in a string");
            return NULL;
        }
        j->p++;
    }
    if (j->p >= j->end) {
        kj_fail(j, "unterminated string");
        return NULL;
    }

    /* unescaping never grows the text */
    out = ksv_arena_alloc(j->arena, (size_t) (j->p - s) + 1);
    if (out == NULL) {
        kj_fail(j, "out of memory");
        return NULL;
    }

    for (o = out; s < j->p; s++) {
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (j->p - s < 5 || kj_hex4(s + 1, &cp) != 0) {
                kj_fail(j, "bad \\u escape");
                return NULL;
            }
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && j->p - s >= 7
                && s[1] == '\\' && s[2] == 'u' && kj_hex4(s + 3, &lo) == 0
                && lo >= 0xDC00 && lo <= 0xDFFF)
            {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            o = kj_utf8(o, cp);
            break;
        default:
            kj_fail(j, "bad escape");
            return NULL;
        }
    }
    *o = '\0';
    *len = (size_t) (o - out);
    j->p++;
    return out;
}


static ksv_jnode_t *kj_value(ksv_json_parser_t *j, int depth);


static ksv_jnode_t *
kj_node(ksv_json_parser_t *j, ksv_jtype_t type)
{
    ksv_jnode_t  *n;

    n = ksv_arena_alloc(j->arena, sizeof(ksv_jnode_t));
    if (n == NULL) {
        kj_fail(j, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->type = type;
    return n;
}


static int
kj_literal(ksv_json_parser_t *j, const char *word)
{
    size_t  n = strlen(word);

    if ((size_t) (j->end - j->p) >= n && memcmp(j->p, word, n) == 0) {
        j->p += n;
        return 1;
    }
    return 0;
}


static ksv_jnode_t *
kj_number(ksv_json_parser_t *j)
{
    const char     *s = j->p;
    ksv_jnode_t  *n;

    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
        kj_fail(j, "bad number");
        return NULL;
    }
    while (j->p < j->end
           && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.'
               || *j->p == 'e' || *j->p == 'E' || *j->p == '+'
               || *j->p == '-'))
    {
        j->p++;
    }
    n = kj_node(j, KSV_JSON_NUMBER);
    if (n != NULL) {
        n->text = s;
        n->len = (size_t) (j->p - s);
    }
    return n;
}


static ksv_jnode_t *
kj_container(ksv_json_parser_t *j, int depth, int object)
{
    char            close;
    ksv_jnode_t  *n, *item, **tail;
    const char     *key;
    size_t          keylen;

    n = kj_node(j, object ? KSV_JSON_OBJECT : KSV_JSON_ARRAY);
    if (n == NULL) {
        return NULL;
    }
    close = object ? '}' : ']';
    tail = &n->child;
    j->p++;
    kj_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return n;
    }

    for ( ;; ) {
        key = NULL;
        keylen = 0;
        if (object) {
            kj_ws(j);
            if (j->p >= j->end || *j->p != '"') {
                kj_fail(j, "expected a member name");
                return NULL;
            }
            key = kj_string(j, &keylen);
            if (key == NULL) {
                return NULL;
            }
            kj_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                kj_fail(j, "expected ':'");
                return NULL;
            }
            j->p++;
        }
        item = kj_value(j, depth + 1);
        if (item == NULL) {
            return NULL;
        }
        item->key = key;
        item->keylen = keylen;
        *tail = item;
        tail = &item->next;

        kj_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return n;
        }
        kj_fail(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return NULL;
    }
}


static ksv_jnode_t *
kj_value(ksv_json_parser_t *j, int depth)
{
    ksv_jnode_t  *n;

    if (depth > KSV_JSON_MAX_DEPTH) {
        kj_fail(j, "nested too deeply");
        return NULL;
    }
    kj_ws(j);
    if (j->p >= j->end) {
        kj_fail(j, "unexpected end");
        return NULL;
    }

    switch (*j->p) {
    case '{':
        return kj_container(j, depth, 1);
    case '[':
        return kj_container(j, depth, 0);
    case '"':
        n = kj_node(j, KSV_JSON_STRING);
        if (n != NULL) {
            n->text = kj_string(j, &n->len);
            if (n->text == NULL) {
                return NULL;
            }
        }
        return n;
    case 't':
        if (kj_literal(j, "true")) {
            return kj_node(j, KSV_JSON_TRUE);
        }
        break;
    case 'f':
        if (kj_literal(j, "false")) {
            return kj_node(j, KSV_JSON_FALSE);
        }
        break;
    case 'n':
        if (kj_literal(j, "null")) {
            return kj_node(j, KSV_JSON_NULL);
        }
        break;
    default:
        return kj_number(j);
    }

    kj_fail(j, "unexpected character");
    return NULL;
}


int
ksv_json_parse(const char *text, size_t len, ksv_arena_t *arena,
    ksv_jnode_t **out, char *err, size_t errlen)
{
    ksv_json_parser_t  j;

    memset(&j, 0, sizeof(j));
    j.p = text;
    j.start = text;
    j.end = text + len;
    j.arena = arena;
    j.err = err;
    j.errlen = errlen;

    *out = kj_value(&j, 0);
    if (*out != NULL) {
        kj_ws(&j);
        if (j.p != j.end) {
            kj_fail(&j, "text after the value");
        }
    }
    return j.failed ? -1 : 0;
}


ksv_jnode_t *
ksv_json_get(const ksv_jnode_t *obj, const char *key)
{
    size_t          n;
    ksv_jnode_t  *c;

    if (obj == NULL || obj->type != KSV_JSON_OBJECT) {
        return NULL;
    }
    n = strlen(key);
    for (c = obj->child; c != NULL; c = c->next) {
        if (c->keylen == n && memcmp(c->key, key, n) == 0) {
            return c;
        }
    }
    return NULL;
}


/* ---- ModelConfig JSON as protobuf text ---------------------------------- */

static int
kj_is(const char *key, size_t len, const char *const *names)
{
    for ( ; *names != NULL; names++) {
        if (strlen(*names) == len && memcmp(*names, key, len) == 0) {
            return 1;
        }
    }
    return 0;
}


/* fields whose JSON object is a protobuf map */
static const char *const  kj_maps[] = {
    "parameters", "cc_model_filenames", "metric_tags", "inputs", NULL
};

/* enum fields: their string is an identifier in text format */
static const char *const  kj_enums[] = {
    "data_type", "kind", "format", "timeout_action", "type", NULL
};

/* string fields: their string stays a string even when numeric */
static const char *const  kj_strings[] = {
    "name", "platform", "backend", "default_model_filename", "string_value",
    "key", "value", "label_filename", "runtime", "host_policy", NULL
};


static int
kj_is_ident(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a'
                                                      && s[0] <= 'z')
                      || s[0] == '_'))
    {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        {
            return 0;
        }
    }
    return 1;
}


static int
kj_is_int(const char *s, size_t len)
{
    size_t  i = 0;

    if (len > 0 && s[0] == '-') {
        i = 1;
    }
    if (i == len || len > 21) {
        return 0;
    }
    for ( ; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}


static void
kj_put_quoted(ksv_writer_t *w, const char *s, size_t len)
{
    char    esc[8];
    size_t  i;

    ksv_put_u8(w, '"');
    for (i = 0; i < len; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            ksv_put_u8(w, '\\');
            ksv_put_u8(w, c);
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\%03o", c);
            ksv_put_bytes(w, esc, 4);
        } else {
            ksv_put_u8(w, c);
        }
    }
    ksv_put_u8(w, '"');
}


static void
kj_put(ksv_writer_t *w, const char *s)
{
    ksv_put_bytes(w, s, strlen(s));
}


static void kj_fields(const ksv_jnode_t *obj, ksv_writer_t *w);


/* A scalar value of field key. */
static void
kj_scalar(const char *key, size_t keylen, const ksv_jnode_t *v,
    ksv_writer_t *w)
{
    switch (v->type) {
    case KSV_JSON_TRUE:
        kj_put(w, "true");
        break;
    case KSV_JSON_FALSE:
        kj_put(w, "false");
        break;
    case KSV_JSON_NUMBER:
        ksv_put_bytes(w, v->text, v->len);
        break;
    case KSV_JSON_STRING:
        if (kj_is(key, keylen, kj_enums) && kj_is_ident(v->text, v->len)) {
            ksv_put_bytes(w, v->text, v->len);
        } else if (!kj_is(key, keylen, kj_strings)
                   && kj_is_int(v->text, v->len))
        {
            ksv_put_bytes(w, v->text, v->len);
        } else {
            kj_put_quoted(w, v->text, v->len);
        }
        break;
    default:
        kj_put(w, "\"\"");
        break;
    }
}


static void
kj_field(const char *key, size_t keylen, const ksv_jnode_t *v,
    ksv_writer_t *w)
{
    const ksv_jnode_t  *c;

    if (!kj_is_ident(key, keylen)) {
        return;                 /* not a field name protobuf could have */
    }

    switch (v->type) {
    case KSV_JSON_NULL:
        return;

    case KSV_JSON_OBJECT:
        if (kj_is(key, keylen, kj_maps)) {
            for (c = v->child; c != NULL; c = c->next) {
                ksv_put_bytes(w, key, keylen);
                kj_put(w, " { key: ");
                kj_put_quoted(w, c->key, c->keylen);
                if (c->type == KSV_JSON_OBJECT) {
                    kj_put(w, " value { ");
                    kj_fields(c, w);
                    kj_put(w, "} ");
                } else {
                    kj_put(w, " value: ");
                    kj_scalar("value", 5, c, w);
                }
                kj_put(w, " }\n");
            }
            return;
        }
        ksv_put_bytes(w, key, keylen);
        kj_put(w, " { ");
        kj_fields(v, w);
        kj_put(w, "}\n");
        return;

    case KSV_JSON_ARRAY:
        /* repetition appends: one field per element fits both scalars
         * and messages */
        for (c = v->child; c != NULL; c = c->next) {
            if (c->type == KSV_JSON_ARRAY) {
                continue;       /* protobuf has no nested lists */
            }
            kj_field(key, keylen, c, w);
        }
        return;

    default:
        ksv_put_bytes(w, key, keylen);
        kj_put(w, ": ");
        kj_scalar(key, keylen, v, w);
        kj_put(w, "\n");
        return;
    }
}


static void
kj_fields(const ksv_jnode_t *obj, ksv_writer_t *w)
{
    const ksv_jnode_t  *c;

    for (c = obj->child; c != NULL; c = c->next) {
        kj_field(c->key, c->keylen, c, w);
    }
}


int
ksv_json_to_pbtxt(const ksv_jnode_t *obj, ksv_writer_t *w, char *err,
    size_t errlen)
{
    if (obj == NULL || obj->type != KSV_JSON_OBJECT) {
        snprintf(err, errlen, "the model configuration is not a JSON "
                 "object");
        return -1;
    }
    kj_fields(obj, w);
    if (w->failed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}


/* ---- base64 -------------------------------------------------------------- */

static int
kj_b64(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}


long
ksv_base64_decode(const char *in, size_t len, uint8_t *out)
{
    int       d;
    size_t    i, n;
    uint32_t  acc;
    int       bits;

    while (len > 0 && in[len - 1] == '=') {
        len--;
    }

    n = 0;
    acc = 0;
    bits = 0;
    for (i = 0; i < len; i++) {
        d = kj_b64((unsigned char) in[i]);
        if (d < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t) d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t) (acc >> bits);
        }
    }
    return (long) n;
}
