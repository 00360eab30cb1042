/*
 * ngx_kserve: Triton config.pbtxt (protobuf text format) parser.
 *
 * A one-token-lookahead recursive descent parser.  Each message type has
 * a "field" function that is handed one field name at a time and either
 * consumes its value (returns 1) or declines (returns 0), in which case
 * the generic code skips the value and warns.  That keeps the schema in
 * one readable place per message and the syntax in one place overall.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_pbtxt.h"


typedef enum {
    PB_EOF = 0,
    PB_IDENT,
    PB_NUMBER,
    PB_STRING,
    PB_PUNCT
} pb_tok_type_t;

typedef struct {
    pb_tok_type_t   type;
    const char     *start;
    size_t          len;
    int             line;
    int             col;
} pb_tok_t;

typedef struct {
    const char         *p;
    const char         *end;
    int                 line;           /* of p, 1-based */
    int                 col;
    pb_tok_t            tok;            /* the lookahead */
    const char         *filename;
    ksv_arena_t        *arena;
    char               *err;
    size_t              errlen;
    int                 failed;
    unsigned            depth;
    ksv_pbtxt_warn_pt   warn;
    void               *warn_ctx;
} pb_t;

/* Consumes the value of field `name` into obj: 1, 0 unknown, -1 error. */
typedef int (*pb_field_pt)(pb_t *p, const pb_tok_t *name, void *obj);

/* Parses one element of a list (a scalar or a message) into obj. */
typedef int (*pb_elem_pt)(pb_t *p, void *obj);


static void pb_fail(pb_t *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void pb_warn(pb_t *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pb_body(pb_t *p, pb_field_pt field, void *obj, char close,
    const char *ctx);
static int pb_skip_value(pb_t *p);


/* ---- errors -------------------------------------------------------------- */

static void
pb_fail(pb_t *p, int line, int col, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    if (p->failed) {
        return;                 /* keep the first, most precise error */
    }
    p->failed = 1;

    if (p->errlen == 0) {
        return;
    }

    n = snprintf(p->err, p->errlen, "%s:%d:%d: ", p->filename, line, col);
    if (n < 0 || (size_t) n >= p->errlen) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - n, fmt, ap);
    va_end(ap);
}


static void
pb_warn(pb_t *p, int line, int col, const char *fmt, ...)
{
    int      n;
    char     buf[512];
    va_list  ap;

    if (p->warn == NULL) {
        return;
    }

    n = snprintf(buf, sizeof(buf), "%s:%d:%d: ", p->filename, line, col);
    if (n < 0 || (size_t) n >= sizeof(buf)) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);

    p->warn(p->warn_ctx, buf);
}


static void *
pb_alloc(pb_t *p, size_t size)
{
    void  *m;

    m = ksv_arena_alloc(p->arena, size ? size : 1);
    if (m == NULL) {
        pb_fail(p, p->tok.line, p->tok.col, "out of memory");
        return NULL;
    }
    memset(m, 0, size);
    return m;
}


/* ---- tokens ------------------------------------------------------------- */

static void
pb_advance(pb_t *p)
{
    if (*p->p == '\n') {
        p->line++;
        p->col = 1;
    } else {
        p->col++;
    }
    p->p++;
}


static int
pb_is_ident(int c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
           || (!first && c >= '0' && c <= '9');
}


/* Reads the next token into p->tok; sets failed on malformed text. */
static void
pb_next(pb_t *p)
{
    int       c, quote;
    pb_tok_t  *t = &p->tok;

    if (p->failed) {
        t->type = PB_EOF;
        return;
    }

    for ( ;; ) {
        while (p->p < p->end
               && (*p->p == ' ' || *p->p == '\t' || *p->p == '\n'
                   || *p->p == '\r' || *p->p == '\f' || *p->p == '\v'))
        {
            pb_advance(p);
        }
        if (p->p < p->end && *p->p == '#') {
            while (p->p < p->end && *p->p != '\n') {
                pb_advance(p);
            }
            continue;
        }
        break;
    }

    t->start = p->p;
    t->line = p->line;
    t->col = p->col;
    t->len = 0;

    if (p->p >= p->end) {
        t->type = PB_EOF;
        return;
    }

    c = (unsigned char) *p->p;

    if (pb_is_ident(c, 1)) {
        t->type = PB_IDENT;
        while (p->p < p->end && pb_is_ident((unsigned char) *p->p, 0)) {
            pb_advance(p);
        }

    } else if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') {
        /* integers, floats, hex, "-inf": precise checks happen when an
         * integer is actually wanted */
        t->type = PB_NUMBER;
        pb_advance(p);
        while (p->p < p->end) {
            c = (unsigned char) *p->p;
            if (pb_is_ident(c, 0) || c == '.') {
                pb_advance(p);
            } else if ((c == '-' || c == '+')
                       && (p->p[-1] == 'e' || p->p[-1] == 'E'))
            {
                pb_advance(p);
            } else {
                break;
            }
        }

    } else if (c == '"' || c == '\'') {
        t->type = PB_STRING;
        quote = c;
        pb_advance(p);
        for ( ;; ) {
            if (p->p >= p->end || *p->p == '\n') {
                pb_fail(p, t->line, t->col, "unterminated string");
                t->type = PB_EOF;
                return;
            }
            if (*p->p == '\\') {
                pb_advance(p);
                if (p->p >= p->end) {
                    continue;   /* reported as unterminated above */
                }
            } else if (*p->p == quote) {
                pb_advance(p);
                break;
            }
            pb_advance(p);
        }

    } else if (strchr("{}[]<>:,;", c) != NULL) {
        t->type = PB_PUNCT;
        pb_advance(p);

    } else {
        pb_fail(p, t->line, t->col, "unexpected character '%c'",
                c >= 0x20 && c < 0x7f ? c : '?');
        t->type = PB_EOF;
        return;
    }

    t->len = p->p - t->start;
}


static int
pb_is_punct(pb_t *p, char c)
{
    return p->tok.type == PB_PUNCT && p->tok.start[0] == c;
}


static int
pb_tok_eq(const pb_tok_t *t, const char *s)
{
    size_t  n = strlen(s);

    return t->len == n && memcmp(t->start, s, n) == 0;
}


static const char *
pb_tok_desc(const pb_tok_t *t)
{
    switch (t->type) {
    case PB_EOF:
        return "end of file";
    case PB_IDENT:
        return "identifier";
    case PB_NUMBER:
        return "number";
    case PB_STRING:
        return "string";
    default:
        return "punctuation";
    }
}


static void
pb_expected(pb_t *p, const char *what)
{
    if (p->tok.type == PB_PUNCT) {
        pb_fail(p, p->tok.line, p->tok.col, "expected %s, found '%c'",
                what, p->tok.start[0]);
    } else {
        pb_fail(p, p->tok.line, p->tok.col, "expected %s, found %s",
                what, pb_tok_desc(&p->tok));
    }
}


/* ---- scalars -------------------------------------------------------------- */

static int
pb_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/* Decodes the escapes of one quoted literal (quotes included) into out. */
static size_t
pb_unescape(const char *s, size_t len, char *out)
{
    int          v, d, i;
    const char  *end = s + len - 1;
    char        *o = out;

    for (s++; s < end; s++) {
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }

        s++;
        switch (*s) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'a': *o++ = '\a'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'v': *o++ = '\v'; break;

        case 'x':
            v = 0;
            for (i = 0; i < 2 && s + 1 < end && pb_hex(s[1]) >= 0; i++) {
                v = v * 16 + pb_hex(*++s);
            }
            *o++ = (char) v;
            break;

        case '0': case '1': case '2': case '3':
        case '4': case '5': case '6': case '7':
            v = *s - '0';
            for (i = 1; i < 3 && s + 1 < end; i++) {
                d = s[1] - '0';
                if (d < 0 || d > 7) {
                    break;
                }
                v = v * 8 + d;
                s++;
            }
            *o++ = (char) v;
            break;

        default:                /* \\ \" \' \? and anything else: itself */
            *o++ = *s;
            break;
        }
    }

    return o - out;
}


/* A string value; adjacent literals concatenate ("a" "b" is "ab"). */
static int
pb_read_string(pb_t *p, ksv_str_t *out)
{
    size_t       total;
    char        *buf;
    pb_t         save;

    if (p->tok.type != PB_STRING) {
        pb_expected(p, "a quoted string");
        return -1;
    }

    /* decoded length never exceeds the quoted length: size, then copy */
    total = 0;
    save = *p;
    while (p->tok.type == PB_STRING) {
        total += p->tok.len;
        pb_next(p);
    }
    if (p->failed) {
        return -1;
    }
    *p = save;

    buf = pb_alloc(p, total + 1);
    if (buf == NULL) {
        return -1;
    }

    total = 0;
    while (p->tok.type == PB_STRING) {
        total += pb_unescape(p->tok.start, p->tok.len, buf + total);
        pb_next(p);
    }

    if (total > KSV_MAX_STRING) {
        pb_fail(p, save.tok.line, save.tok.col, "string longer than %d bytes",
                KSV_MAX_STRING);
        return -1;
    }

    buf[total] = '\0';
    out->data = buf;
    out->len = (uint32_t) total;
    return 0;
}


static int
pb_read_int(pb_t *p, int64_t min, int64_t max, int64_t *out)
{
    char       buf[64], *end;
    long long  v;

    if (p->tok.type != PB_NUMBER || p->tok.len >= sizeof(buf)) {
        pb_expected(p, "an integer");
        return -1;
    }

    memcpy(buf, p->tok.start, p->tok.len);
    buf[p->tok.len] = '\0';

    errno = 0;
    v = strtoll(buf, &end, 0);
    if (*end != '\0' || end == buf) {
        pb_fail(p, p->tok.line, p->tok.col, "expected an integer, found '%s'",
                buf);
        return -1;
    }
    if (errno == ERANGE || v < min || v > max) {
        pb_fail(p, p->tok.line, p->tok.col,
                "integer %s out of range [%lld, %lld]", buf,
                (long long) min, (long long) max);
        return -1;
    }

    *out = v;
    pb_next(p);
    return 0;
}


static int
pb_read_bool(pb_t *p, uint8_t *out)
{
    if (pb_tok_eq(&p->tok, "true") || pb_tok_eq(&p->tok, "True")
        || pb_tok_eq(&p->tok, "t") || pb_tok_eq(&p->tok, "1"))
    {
        *out = 1;

    } else if (pb_tok_eq(&p->tok, "false") || pb_tok_eq(&p->tok, "False")
               || pb_tok_eq(&p->tok, "f") || pb_tok_eq(&p->tok, "0"))
    {
        *out = 0;

    } else {
        pb_expected(p, "true or false");
        return -1;
    }

    pb_next(p);
    return 0;
}


/* An enum identifier: index into names[] (NULL-terminated). */
static int
pb_read_enum(pb_t *p, const char *field, const char *const *names,
    const int *values, int *out)
{
    int  i;

    if (p->tok.type != PB_IDENT) {
        pb_expected(p, "an enum name");
        return -1;
    }

    for (i = 0; names[i] != NULL; i++) {
        if (pb_tok_eq(&p->tok, names[i])) {
            *out = values[i];
            pb_next(p);
            return 0;
        }
    }

    pb_fail(p, p->tok.line, p->tok.col, "unknown %s '%.*s'", field,
            (int) p->tok.len, p->tok.start);
    return -1;
}


/* ---- structure ------------------------------------------------------------ */

/*
 * The value of a scalar field: ": v" or ": [v, v, ...]"; elem reads one
 * element (and enforces its own limits).
 */
static int
pb_scalars(pb_t *p, pb_elem_pt elem, void *obj)
{
    if (pb_is_punct(p, ':')) {
        pb_next(p);
    } else if (!pb_is_punct(p, '[')) {
        pb_expected(p, "':'");
        return -1;
    }

    if (!pb_is_punct(p, '[')) {
        return elem(p, obj);
    }

    pb_next(p);
    while (!pb_is_punct(p, ']')) {
        if (elem(p, obj) != 0) {
            return -1;
        }
        if (pb_is_punct(p, ',')) {
            pb_next(p);
        } else if (!pb_is_punct(p, ']')) {
            pb_expected(p, "',' or ']'");
            return -1;
        }
    }
    pb_next(p);

    return p->failed ? -1 : 0;
}


/* One "{ ... }" or "< ... >": open, body via elem, checks depth. */
static int
pb_message(pb_t *p, pb_elem_pt elem, void *obj)
{
    int  rc;

    if (!pb_is_punct(p, '{') && !pb_is_punct(p, '<')) {
        pb_expected(p, "'{'");
        return -1;
    }

    if (++p->depth > KSV_PBTXT_MAX_DEPTH) {
        pb_fail(p, p->tok.line, p->tok.col, "nesting deeper than %d",
                KSV_PBTXT_MAX_DEPTH);
        return -1;
    }

    /* elem sees the opening token as lookahead and calls pb_body */
    rc = elem(p, obj);
    p->depth--;
    return rc;
}


/*
 * The value of a message field: "{..}", ": {..}", or a list of them
 * "[ {..}, {..} ]"; elem is called once per message.
 */
static int
pb_messages(pb_t *p, pb_elem_pt elem, void *obj)
{
    if (pb_is_punct(p, ':')) {
        pb_next(p);
    }

    if (!pb_is_punct(p, '[')) {
        return pb_message(p, elem, obj);
    }

    pb_next(p);
    while (!pb_is_punct(p, ']')) {
        if (pb_message(p, elem, obj) != 0) {
            return -1;
        }
        if (pb_is_punct(p, ',')) {
            pb_next(p);
        } else if (!pb_is_punct(p, ']')) {
            pb_expected(p, "',' or ']'");
            return -1;
        }
    }
    pb_next(p);

    return p->failed ? -1 : 0;
}


/* Parses the body after the opening token (the lookahead) to its close. */
static int
pb_open_body(pb_t *p, pb_field_pt field, void *obj, const char *ctx)
{
    char  close = pb_is_punct(p, '<') ? '>' : '}';

    pb_next(p);
    return pb_body(p, field, obj, close, ctx);
}


/*
 * Fields up to `close` ('\0': end of file).  Unknown fields are skipped
 * with a warning naming them by their path (ctx).
 */
static int
pb_body(pb_t *p, pb_field_pt field, void *obj, char close, const char *ctx)
{
    int       rc;
    pb_tok_t  name;

    for ( ;; ) {
        if (p->failed) {
            return -1;
        }

        if (close != '\0' && pb_is_punct(p, close)) {
            pb_next(p);
            return p->failed ? -1 : 0;
        }

        if (p->tok.type == PB_EOF) {
            if (close == '\0') {
                return 0;
            }
            pb_fail(p, p->tok.line, p->tok.col,
                    "unexpected end of file, expected '%c'", close);
            return -1;
        }

        if (p->tok.type != PB_IDENT) {
            pb_expected(p, "a field name");
            return -1;
        }

        name = p->tok;
        pb_next(p);

        rc = field(p, &name, obj);
        if (rc < 0 || p->failed) {
            return -1;
        }

        if (rc == 0) {
            if (ctx != NULL) {
                pb_warn(p, name.line, name.col,
                        "unknown field '%s%s%.*s' ignored", ctx,
                        ctx[0] ? "." : "", (int) name.len, name.start);
            }
            if (pb_skip_value(p) != 0) {
                return -1;
            }
        }

        if (pb_is_punct(p, ',') || pb_is_punct(p, ';')) {
            pb_next(p);
        }
    }
}


/* ---- skipping unknown fields ------------------------------------------ */

/* Inside a skipped message every field is "unknown" but not warned. */
static int
pb_skip_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    (void) name;
    (void) obj;

    return pb_skip_value(p) == 0 ? 1 : -1;
}


static int
pb_skip_message(pb_t *p, void *obj)
{
    return pb_open_body(p, pb_skip_field, obj, NULL);
}


static int
pb_skip_scalar(pb_t *p)
{
    if (p->tok.type == PB_STRING) {
        while (p->tok.type == PB_STRING) {
            pb_next(p);
        }
        return p->failed ? -1 : 0;
    }

    if (p->tok.type == PB_IDENT || p->tok.type == PB_NUMBER) {
        pb_next(p);
        return p->failed ? -1 : 0;
    }

    pb_expected(p, "a value");
    return -1;
}


static int
pb_skip_value(pb_t *p)
{
    if (pb_is_punct(p, ':')) {
        pb_next(p);
    }

    if (pb_is_punct(p, '{') || pb_is_punct(p, '<')) {
        return pb_message(p, pb_skip_message, NULL);
    }

    if (!pb_is_punct(p, '[')) {
        return pb_skip_scalar(p);
    }

    pb_next(p);
    while (!pb_is_punct(p, ']')) {
        if (pb_is_punct(p, '{') || pb_is_punct(p, '<')) {
            if (pb_message(p, pb_skip_message, NULL) != 0) {
                return -1;
            }
        } else if (pb_skip_scalar(p) != 0) {
            return -1;
        }
        if (pb_is_punct(p, ',')) {
            pb_next(p);
        } else if (!pb_is_punct(p, ']')) {
            pb_expected(p, "',' or ']'");
            return -1;
        }
    }
    pb_next(p);

    return p->failed ? -1 : 0;
}


/* ---- repeated fields in an arena ------------------------------------- */

/*
 * Makes room for element n of an arena array.  The capacity is implicit
 * (the next power of two of n), so the config structs need no extra
 * field; outgrown arrays stay in the arena, at most doubling its use.
 */
static void *
pb_grow(pb_t *p, void *arr, uint32_t n, size_t size, uint32_t max,
    const char *what)
{
    void  *na;

    if (n >= max) {
        pb_fail(p, p->tok.line, p->tok.col, "too many %s (limit %u)", what,
                max);
        return NULL;
    }

    if (n != 0 && (n & (n - 1)) != 0) {
        return arr;
    }

    na = pb_alloc(p, (size_t) (n ? 2 * n : 1) * size);
    if (na == NULL) {
        return NULL;
    }
    if (n != 0) {
        memcpy(na, arr, (size_t) n * size);
    }
    return na;
}


typedef struct {
    int64_t    *items;
    uint32_t   *n;
    uint32_t    max;
    int64_t     min_value;
    int64_t     max_value;
    const char *what;
} pb_ints_t;


static int
pb_int_elem(pb_t *p, void *obj)
{
    pb_ints_t  *l = obj;
    int64_t     v;

    if (*l->n >= l->max) {
        pb_fail(p, p->tok.line, p->tok.col, "too many %s (limit %u)",
                l->what, l->max);
        return -1;
    }
    if (pb_read_int(p, l->min_value, l->max_value, &v) != 0) {
        return -1;
    }
    l->items[(*l->n)++] = v;
    return 0;
}


/* A list of integers into a fixed array (dims, reshape). */
static int
pb_int_list(pb_t *p, int64_t *items, uint32_t *n, uint32_t max, int64_t lo,
    const char *what)
{
    pb_ints_t  l = { items, n, max, lo, INT64_MAX, what };

    return pb_scalars(p, pb_int_elem, &l);
}


typedef struct {
    void      **arr;              /* int32_t ** or int64_t ** */
    uint32_t   *n;
    int         wide;
    int64_t     lo;
    int64_t     hi;
    const char *what;
} pb_grow_ints_t;


static int
pb_grow_int_elem(pb_t *p, void *obj)
{
    pb_grow_ints_t  *l = obj;
    int64_t          v;
    void            *na;

    na = pb_grow(p, *l->arr, *l->n, l->wide ? 8 : 4, KSV_MAX_LIST, l->what);
    if (na == NULL || pb_read_int(p, l->lo, l->hi, &v) != 0) {
        return -1;
    }
    *l->arr = na;
    if (l->wide) {
        ((int64_t *) na)[(*l->n)++] = v;
    } else {
        ((int32_t *) na)[(*l->n)++] = (int32_t) v;
    }
    return 0;
}


/* A growable list of integers (gpus, versions, preferred sizes). */
static int
pb_grow_int_list(pb_t *p, void **arr, uint32_t *n, int wide, int64_t lo,
    int64_t hi, const char *what)
{
    pb_grow_ints_t  l = { arr, n, wide, lo, hi, what };

    return pb_scalars(p, pb_grow_int_elem, &l);
}


static int
pb_string_elem(pb_t *p, void *obj)
{
    return pb_read_string(p, obj);
}


static int
pb_string_field(pb_t *p, ksv_str_t *out)
{
    return pb_scalars(p, pb_string_elem, out);
}


static int
pb_bool_elem(pb_t *p, void *obj)
{
    return pb_read_bool(p, obj);
}


static int
pb_bool_field(pb_t *p, uint8_t *out)
{
    return pb_scalars(p, pb_bool_elem, out);
}


typedef struct {
    int64_t  lo;
    int64_t  hi;
    int64_t  v;
} pb_int_t;


static int
pb_one_int_elem(pb_t *p, void *obj)
{
    pb_int_t  *i = obj;

    return pb_read_int(p, i->lo, i->hi, &i->v);
}


static int
pb_int_field(pb_t *p, int64_t lo, int64_t hi, int64_t *out)
{
    pb_int_t  i = { lo, hi, 0 };

    if (pb_scalars(p, pb_one_int_elem, &i) != 0) {
        return -1;
    }
    *out = i.v;
    return 0;
}


/* ---- ModelInput / ModelOutput ------------------------------------------ */

static int
pb_reshape_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    uint32_t          n;
    ksv_io_config_t  *io = obj;

    if (!pb_tok_eq(name, "shape")) {
        return 0;
    }

    n = io->reshape_ndims;
    if (pb_int_list(p, io->reshape, &n, KSV_MAX_DIMS, -1, "reshape dims")
        != 0)
    {
        return -1;
    }
    io->reshape_ndims = (uint8_t) n;
    return 1;
}


static int
pb_reshape_body(pb_t *p, void *obj)
{
    ksv_io_config_t  *io = obj;

    io->has_reshape = 1;
    return pb_open_body(p, pb_reshape_field, io, "reshape");
}


static int
pb_data_type_elem(pb_t *p, void *obj)
{
    ksv_io_config_t  *io = obj;
    ksv_datatype_t    dt;

    if (p->tok.type != PB_IDENT) {
        pb_expected(p, "a data type such as TYPE_FP32");
        return -1;
    }

    dt = ksv_datatype_from_config_name(p->tok.start, p->tok.len);
    if (dt == KSV_TYPE_INVALID) {
        pb_fail(p, p->tok.line, p->tok.col, "unknown data_type '%.*s'",
                (int) p->tok.len, p->tok.start);
        return -1;
    }

    io->datatype = (uint8_t) dt;
    pb_next(p);
    return 0;
}


static const char *const  pb_format_names[] = {
    "FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW", NULL
};

static const int  pb_format_values[] = {
    KSV_FORMAT_NONE, KSV_FORMAT_NHWC, KSV_FORMAT_NCHW
};


static int
pb_format_elem(pb_t *p, void *obj)
{
    int  v;

    if (pb_read_enum(p, "input format", pb_format_names, pb_format_values,
                     &v) != 0)
    {
        return -1;
    }
    *(uint8_t *) obj = (uint8_t) v;
    return 0;
}


static int
pb_io_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    uint32_t          n;
    ksv_io_config_t  *io = obj;

    if (pb_tok_eq(name, "name")) {
        return pb_string_field(p, &io->name) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "data_type")) {
        return pb_scalars(p, pb_data_type_elem, io) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "dims")) {
        n = io->ndims;
        if (pb_int_list(p, io->dims, &n, KSV_MAX_DIMS, -1, "dims") != 0) {
            return -1;
        }
        io->ndims = (uint8_t) n;
        return 1;
    }

    if (pb_tok_eq(name, "optional")) {
        return pb_bool_field(p, &io->optional) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "allow_ragged_batch")) {
        return pb_bool_field(p, &io->allow_ragged_batch) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "reshape")) {
        return pb_messages(p, pb_reshape_body, io) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "format")) {
        return pb_scalars(p, pb_format_elem, &io->format) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "label_filename")) {
        return pb_string_field(p, &io->label_filename) == 0 ? 1 : -1;
    }

    return 0;
}


typedef struct {
    ksv_io_config_t  **arr;
    uint32_t          *n;
    const char        *what;
} pb_io_list_t;


static int
pb_io_body(pb_t *p, void *obj)
{
    pb_io_list_t     *l = obj;
    ksv_io_config_t  *na;

    na = pb_grow(p, *l->arr, *l->n, sizeof(ksv_io_config_t), KSV_MAX_TENSORS,
                 l->what);
    if (na == NULL) {
        return -1;
    }
    *l->arr = na;
    memset(&na[*l->n], 0, sizeof(ksv_io_config_t));

    return pb_open_body(p, pb_io_field, &na[(*l->n)++], l->what);
}


/* ---- instance_group ------------------------------------------------------ */

static const char *const  pb_kind_names[] = {
    "KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL", NULL
};

static const int  pb_kind_values[] = {
    KSV_KIND_AUTO, KSV_KIND_GPU, KSV_KIND_CPU, KSV_KIND_MODEL
};


static int
pb_kind_elem(pb_t *p, void *obj)
{
    int  v;

    if (pb_read_enum(p, "instance_group kind", pb_kind_names, pb_kind_values,
                     &v) != 0)
    {
        return -1;
    }
    *(uint8_t *) obj = (uint8_t) v;
    return 0;
}


static int
pb_group_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t                v;
    ksv_instance_group_t  *g = obj;

    if (pb_tok_eq(name, "name")) {
        return pb_string_field(p, &g->name) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "count")) {
        if (pb_int_field(p, INT32_MIN, INT32_MAX, &v) != 0) {
            return -1;
        }
        g->count = (int32_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "kind")) {
        return pb_scalars(p, pb_kind_elem, &g->kind) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "gpus")) {
        return pb_grow_int_list(p, (void **) &g->gpus, &g->ngpus, 0, 0,
                                INT32_MAX, "gpus") == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_group_body(pb_t *p, void *obj)
{
    ksv_model_config_t    *c = obj;
    ksv_instance_group_t  *na, *g;

    na = pb_grow(p, c->groups, c->ngroups, sizeof(ksv_instance_group_t),
                 KSV_MAX_LIST, "instance groups");
    if (na == NULL) {
        return -1;
    }
    c->groups = na;

    g = &na[c->ngroups++];
    memset(g, 0, sizeof(ksv_instance_group_t));
    g->count = 1;               /* Triton's default */
    g->kind = KSV_KIND_AUTO;

    return pb_open_body(p, pb_group_field, g, "instance_group");
}


/* ---- dynamic_batching ---------------------------------------------------- */

static const char *const  pb_action_names[] = { "REJECT", "DELAY", NULL };
static const int  pb_action_values[] = {
    KSV_TIMEOUT_REJECT, KSV_TIMEOUT_DELAY
};


static int
pb_action_elem(pb_t *p, void *obj)
{
    int  v;

    if (pb_read_enum(p, "timeout_action", pb_action_names, pb_action_values,
                     &v) != 0)
    {
        return -1;
    }
    *(uint8_t *) obj = (uint8_t) v;
    return 0;
}


static int
pb_queue_policy_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t              v;
    ksv_queue_policy_t  *q = obj;

    if (pb_tok_eq(name, "timeout_action")) {
        return pb_scalars(p, pb_action_elem, &q->timeout_action) == 0
               ? 1 : -1;
    }

    if (pb_tok_eq(name, "default_timeout_microseconds")) {
        if (pb_int_field(p, 0, INT64_MAX, &v) != 0) {
            return -1;
        }
        q->default_timeout_us = (uint64_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "allow_timeout_override")) {
        return pb_bool_field(p, &q->allow_timeout_override) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "max_queue_size")) {
        if (pb_int_field(p, 0, UINT32_MAX, &v) != 0) {
            return -1;
        }
        q->max_queue_size = (uint32_t) v;
        return 1;
    }

    return 0;
}


static int
pb_queue_policy_body(pb_t *p, void *obj)
{
    return pb_open_body(p, pb_queue_policy_field, obj,
                        "dynamic_batching.default_queue_policy");
}


static int
pb_batching_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t                  v;
    ksv_dynamic_batching_t  *b = obj;

    if (pb_tok_eq(name, "preferred_batch_size")) {
        return pb_grow_int_list(p, (void **) &b->preferred_batch_size,
                                &b->npreferred, 0, 1, INT32_MAX,
                                "preferred_batch_size values") == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "max_queue_delay_microseconds")) {
        if (pb_int_field(p, 0, INT64_MAX, &v) != 0) {
            return -1;
        }
        b->max_queue_delay_us = (uint64_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "preserve_ordering")) {
        return pb_bool_field(p, &b->preserve_ordering) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "priority_levels")) {
        if (pb_int_field(p, 0, UINT32_MAX, &v) != 0) {
            return -1;
        }
        b->priority_levels = (uint32_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "default_priority_level")) {
        if (pb_int_field(p, 0, UINT32_MAX, &v) != 0) {
            return -1;
        }
        b->default_priority_level = (uint32_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "default_queue_policy")) {
        return pb_messages(p, pb_queue_policy_body, &b->default_queue_policy)
               == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_batching_body(pb_t *p, void *obj)
{
    ksv_dynamic_batching_t  *b = obj;

    b->enabled = 1;             /* "dynamic_batching { }" turns it on */
    return pb_open_body(p, pb_batching_field, b, "dynamic_batching");
}


/* ---- parameters ---------------------------------------------------------- */

static int
pb_param_value_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    if (pb_tok_eq(name, "string_value")) {
        return pb_string_field(p, obj) == 0 ? 1 : -1;
    }
    return 0;
}


static int
pb_param_value_body(pb_t *p, void *obj)
{
    return pb_open_body(p, pb_param_value_field, obj, "parameters.value");
}


static int
pb_param_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    ksv_kv_t  *kv = obj;

    if (pb_tok_eq(name, "key")) {
        return pb_string_field(p, &kv->key) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "value")) {
        return pb_messages(p, pb_param_value_body, &kv->value) == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_param_body(pb_t *p, void *obj)
{
    int                  line, col;
    ksv_kv_t            *na, *kv;
    ksv_model_config_t  *c = obj;

    line = p->tok.line;
    col = p->tok.col;

    na = pb_grow(p, c->parameters, c->nparameters, sizeof(ksv_kv_t),
                 KSV_MAX_PARAMS, "parameters");
    if (na == NULL) {
        return -1;
    }
    c->parameters = na;

    kv = &na[c->nparameters++];
    memset(kv, 0, sizeof(ksv_kv_t));
    kv->value.data = "";

    if (pb_open_body(p, pb_param_field, kv, "parameters") != 0) {
        return -1;
    }

    if (kv->key.data == NULL) {
        pb_fail(p, line, col, "parameters entry without a key");
        return -1;
    }
    return 0;
}


/* ---- model_warmup --------------------------------------------------------- */

static int
pb_winput_value_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    uint8_t              on;
    uint32_t             n;
    ksv_warmup_input_t  *in = obj;

    if (pb_tok_eq(name, "data_type")) {
        return pb_scalars(p, pb_data_type_elem, &in->tensor) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "dims")) {
        n = in->tensor.ndims;
        if (pb_int_list(p, in->tensor.dims, &n, KSV_MAX_DIMS, 0, "dims")
            != 0)
        {
            return -1;
        }
        in->tensor.ndims = (uint8_t) n;
        return 1;
    }

    if (pb_tok_eq(name, "zero_data") || pb_tok_eq(name, "random_data")) {
        if (pb_bool_field(p, &on) != 0) {
            return -1;
        }
        if (on) {
            in->source = pb_tok_eq(name, "zero_data") ? KSV_WARMUP_ZERO
                                                      : KSV_WARMUP_RANDOM;
        }
        return 1;
    }

    if (pb_tok_eq(name, "input_data_file")) {
        in->source = KSV_WARMUP_FILE;
        return pb_string_field(p, &in->file) == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_winput_value_body(pb_t *p, void *obj)
{
    return pb_open_body(p, pb_winput_value_field, obj,
                        "model_warmup.inputs.value");
}


static int
pb_winput_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    ksv_warmup_input_t  *in = obj;

    if (pb_tok_eq(name, "key")) {
        return pb_string_field(p, &in->tensor.name) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "value")) {
        return pb_messages(p, pb_winput_value_body, in) == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_winput_body(pb_t *p, void *obj)
{
    ksv_warmup_t        *w = obj;
    ksv_warmup_input_t  *na;

    na = pb_grow(p, w->inputs, w->ninputs, sizeof(ksv_warmup_input_t),
                 KSV_MAX_TENSORS, "model_warmup inputs");
    if (na == NULL) {
        return -1;
    }
    w->inputs = na;
    memset(&na[w->ninputs], 0, sizeof(ksv_warmup_input_t));

    return pb_open_body(p, pb_winput_field, &na[w->ninputs++],
                        "model_warmup.inputs");
}


static int
pb_warmup_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t        v;
    ksv_warmup_t  *w = obj;

    if (pb_tok_eq(name, "name")) {
        return pb_string_field(p, &w->name) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "batch_size") || pb_tok_eq(name, "count")) {
        if (pb_int_field(p, 0, KSV_MAX_BATCH_REQUESTS, &v) != 0) {
            return -1;
        }
        if (pb_tok_eq(name, "count")) {
            w->count = (uint32_t) v;
        } else {
            w->batch_size = (uint32_t) v;
        }
        return 1;
    }

    if (pb_tok_eq(name, "inputs")) {
        return pb_messages(p, pb_winput_body, w) == 0 ? 1 : -1;
    }

    return 0;
}


static int
pb_warmup_body(pb_t *p, void *obj)
{
    ksv_model_config_t  *c = obj;
    ksv_warmup_t        *na;

    na = pb_grow(p, c->warmup, c->nwarmup, sizeof(ksv_warmup_t),
                 KSV_MAX_LIST, "model_warmup");
    if (na == NULL) {
        return -1;
    }
    c->warmup = na;
    memset(&na[c->nwarmup], 0, sizeof(ksv_warmup_t));

    return pb_open_body(p, pb_warmup_field, &na[c->nwarmup++],
                        "model_warmup");
}


/* ---- version_policy ------------------------------------------------------ */

static int
pb_latest_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t                v;
    ksv_version_policy_t  *vp = obj;

    if (pb_tok_eq(name, "num_versions")) {
        if (pb_int_field(p, 1, UINT32_MAX, &v) != 0) {
            return -1;
        }
        vp->latest_num = (uint32_t) v;
        return 1;
    }
    return 0;
}


static int
pb_latest_body(pb_t *p, void *obj)
{
    ksv_version_policy_t  *vp = obj;

    vp->kind = KSV_VPOLICY_LATEST;
    return pb_open_body(p, pb_latest_field, vp, "version_policy.latest");
}


static int
pb_all_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    (void) p;
    (void) name;
    (void) obj;
    return 0;
}


static int
pb_all_body(pb_t *p, void *obj)
{
    ksv_version_policy_t  *vp = obj;

    vp->kind = KSV_VPOLICY_ALL;
    return pb_open_body(p, pb_all_field, vp, "version_policy.all");
}


static int
pb_specific_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    ksv_version_policy_t  *vp = obj;

    if (pb_tok_eq(name, "versions")) {
        return pb_grow_int_list(p, (void **) &vp->versions, &vp->nversions,
                                1, 0, INT64_MAX, "versions") == 0 ? 1 : -1;
    }
    return 0;
}


static int
pb_specific_body(pb_t *p, void *obj)
{
    ksv_version_policy_t  *vp = obj;

    vp->kind = KSV_VPOLICY_SPECIFIC;
    return pb_open_body(p, pb_specific_field, vp, "version_policy.specific");
}


static int
pb_policy_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    if (pb_tok_eq(name, "latest")) {
        return pb_messages(p, pb_latest_body, obj) == 0 ? 1 : -1;
    }
    if (pb_tok_eq(name, "all")) {
        return pb_messages(p, pb_all_body, obj) == 0 ? 1 : -1;
    }
    if (pb_tok_eq(name, "specific")) {
        return pb_messages(p, pb_specific_body, obj) == 0 ? 1 : -1;
    }
    return 0;
}


static int
pb_policy_body(pb_t *p, void *obj)
{
    return pb_open_body(p, pb_policy_field, obj, "version_policy");
}


/* ---- ModelConfig -------------------------------------------------------- */

static int
pb_model_field(pb_t *p, const pb_tok_t *name, void *obj)
{
    int64_t              v;
    pb_io_list_t         l;
    ksv_model_config_t  *c = obj;

    if (pb_tok_eq(name, "name")) {
        return pb_string_field(p, &c->name) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "platform")) {
        return pb_string_field(p, &c->platform) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "backend")) {
        return pb_string_field(p, &c->backend) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "default_model_filename")) {
        return pb_string_field(p, &c->default_model_filename) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "max_batch_size")) {
        if (pb_int_field(p, 0, INT32_MAX, &v) != 0) {
            return -1;
        }
        c->max_batch_size = (int32_t) v;
        return 1;
    }

    if (pb_tok_eq(name, "input")) {
        l.arr = &c->inputs;
        l.n = &c->ninputs;
        l.what = "input";
        return pb_messages(p, pb_io_body, &l) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "output")) {
        l.arr = &c->outputs;
        l.n = &c->noutputs;
        l.what = "output";
        return pb_messages(p, pb_io_body, &l) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "instance_group")) {
        return pb_messages(p, pb_group_body, c) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "dynamic_batching")) {
        return pb_messages(p, pb_batching_body, &c->dynamic_batching) == 0
               ? 1 : -1;
    }

    if (pb_tok_eq(name, "parameters")) {
        return pb_messages(p, pb_param_body, c) == 0 ? 1 : -1;
    }

    if (pb_tok_eq(name, "version_policy")) {
        return pb_messages(p, pb_policy_body, &c->version_policy) == 0
               ? 1 : -1;
    }

    if (pb_tok_eq(name, "model_warmup")) {
        return pb_messages(p, pb_warmup_body, c) == 0 ? 1 : -1;
    }

    return 0;
}


int
ksv_pbtxt_parse(const char *text, size_t len, const char *filename,
    ksv_arena_t *arena, ksv_model_config_t *out, char *err, size_t errlen,
    ksv_pbtxt_warn_pt warn, void *warn_ctx)
{
    pb_t  p;

    memset(out, 0, sizeof(ksv_model_config_t));
    memset(&p, 0, sizeof(pb_t));

    p.p = text;
    p.end = text + len;
    p.line = 1;
    p.col = 1;
    p.filename = filename != NULL ? filename : "config.pbtxt";
    p.arena = arena;
    p.err = err;
    p.errlen = errlen;
    p.warn = warn;
    p.warn_ctx = warn_ctx;

    if (errlen > 0) {
        err[0] = '\0';
    }

    pb_next(&p);
    if (pb_body(&p, pb_model_field, out, '\0', "") != 0 || p.failed) {
        return -1;
    }

    return 0;
}


/* ---- defaults -------------------------------------------------------------- */

static int
pb_copy_str(ksv_arena_t *arena, ksv_str_t *dst, const char *s, size_t n)
{
    char  *d;

    d = ksv_arena_alloc(arena, n + 1);
    if (d == NULL) {
        return -1;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    dst->data = d;
    dst->len = (uint32_t) n;
    return 0;
}


/* What Triton refuses in an input or output and the parser cannot see
 * (dims are range-checked as they are read): no name, no data_type. */
static int
pb_check_io(const ksv_io_config_t *io, uint32_t n, const char *what,
    const char *model_name, char *err, size_t errlen)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        if (io[i].name.len == 0) {
            snprintf(err, errlen, "%s %u of model '%s' has no name", what, i,
                     model_name);
            return -1;
        }

        if (io[i].datatype == KSV_TYPE_INVALID) {
            snprintf(err, errlen, "%s '%.*s' of model '%s' has no data_type",
                     what, (int) io[i].name.len, io[i].name.data,
                     model_name);
            return -1;
        }
    }

    return 0;
}


/* Every warmup input is named and typed; batch_size 0 is 1, and more
 * than 1 needs a model that batches (Triton's rules). */
static int
pb_check_warmup(ksv_model_config_t *c, const char *model_name, char *err,
    size_t errlen)
{
    uint32_t             i, k;
    ksv_warmup_t        *w;
    ksv_warmup_input_t  *in;

    for (i = 0; i < c->nwarmup; i++) {
        w = &c->warmup[i];
        if (w->batch_size == 0) {
            w->batch_size = 1;
        }
        if (w->batch_size > 1 && c->max_batch_size == 0) {
            snprintf(err, errlen, "model_warmup '%.*s' of model '%s' has "
                     "batch_size %u, but the model does not batch "
                     "(max_batch_size 0)", (int) w->name.len, w->name.data,
                     model_name, w->batch_size);
            return -1;
        }
        for (k = 0; k < w->ninputs; k++) {
            in = &w->inputs[k];
            if (in->tensor.name.len == 0
                || in->tensor.datatype == KSV_TYPE_INVALID)
            {
                snprintf(err, errlen, "model_warmup '%.*s' of model '%s': "
                         "input %u needs a key and a data_type",
                         (int) w->name.len, w->name.data, model_name, k);
                return -1;
            }
            if (in->source == KSV_WARMUP_FILE
                && (in->file.len == 0
                    || memchr(in->file.data, '/', in->file.len) != NULL))
            {
                snprintf(err, errlen, "model_warmup '%.*s' of model '%s': "
                         "input_data_file must name a file in the model's "
                         "warmup directory", (int) w->name.len,
                         w->name.data, model_name);
                return -1;
            }
        }
    }
    return 0;
}


int
ksv_pbtxt_defaults(ksv_model_config_t *c, const char *model_name,
    ksv_arena_t *arena, char *err, size_t errlen)
{
    char                   buf[320];
    uint32_t               i;
    ksv_instance_group_t  *g;

    if (c->name.len == 0) {
        if (pb_copy_str(arena, &c->name, model_name, strlen(model_name))
            != 0)
        {
            goto nomem;
        }

    } else if (!ksv_str_eq(c->name, model_name)) {
        snprintf(err, errlen,
                 "model name '%.*s' in config.pbtxt does not match its "
                 "directory '%s'", (int) c->name.len, c->name.data,
                 model_name);
        return -1;
    }

    if (pb_check_io(c->inputs, c->ninputs, "input", model_name, err, errlen)
        != 0
        || pb_check_io(c->outputs, c->noutputs, "output", model_name, err,
                       errlen)
           != 0)
    {
        return -1;
    }

    if (c->ngroups == 0) {
        g = ksv_arena_alloc(arena, sizeof(ksv_instance_group_t));
        if (g == NULL) {
            goto nomem;
        }
        memset(g, 0, sizeof(ksv_instance_group_t));
        g->count = 1;
        g->kind = KSV_KIND_CPU;
        c->groups = g;
        c->ngroups = 1;
    }

    for (i = 0; i < c->ngroups; i++) {
        g = &c->groups[i];

        if (g->count < 1) {
            snprintf(err, errlen,
                     "instance_group %u of model '%s' has count %d, "
                     "expected at least 1", i, model_name, (int) g->count);
            return -1;
        }

        if (g->kind == KSV_KIND_AUTO) {
            g->kind = g->ngpus > 0 ? KSV_KIND_GPU : KSV_KIND_CPU;
        }

        if (g->name.len == 0) {
            snprintf(buf, sizeof(buf), "%.*s_%u", (int) c->name.len,
                     c->name.data, i);
            if (pb_copy_str(arena, &g->name, buf, strlen(buf)) != 0) {
                goto nomem;
            }
        }
    }

    if (c->version_policy.kind == KSV_VPOLICY_LATEST
        && c->version_policy.latest_num == 0)
    {
        c->version_policy.latest_num = 1;
    }

    if (c->default_model_filename.len == 0) {
        c->default_model_filename = ksv_str_lit("model.py");
    }

    if (pb_check_warmup(c, model_name, err, errlen) != 0) {
        return -1;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");
    return -1;
}
