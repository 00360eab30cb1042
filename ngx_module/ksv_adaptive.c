/*
 * ngx_kserve: adaptive weights of a routed name; see ksv_adaptive.h.
 */

#include <math.h>
#include <string.h>

#include "ksv_adaptive.h"
#include "ksv_json_write.h"


#define ksv_adapt_eligible(v)  ((v).usable && (v).prior > 0)


static void ksv_adapt_floor(double *x, const ksv_adapt_variant_t *v,
    size_t n, double min_share);
static double ksv_adapt_gamma(uint64_t *state, double a);
static double ksv_adapt_normal(uint64_t *state);
static double ksv_adapt_round4(double x);


uint64_t
ksv_adapt_credit(uint64_t slo_us, uint64_t us)
{
    if (us <= slo_us) {
        return 1000;
    }

    return slo_us * 1000 / us;
}


/* ---- random numbers ------------------------------------------------------ */

uint64_t
ksv_adapt_random(uint64_t *state)
{
    uint64_t  x;

    x = *state ? *state : 0x9e3779b97f4a7c15ULL;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;

    *state = x;

    return x * 0x2545f4914f6cdd1dULL;
}


double
ksv_adapt_uniform(uint64_t *state)
{
    /* 53 bits, shifted off 0 by half a step: never 0, never 1 */
    return ((double) (ksv_adapt_random(state) >> 11) + 0.5)
           * (1.0 / 9007199254740992.0);
}


/* Marsaglia's polar method */

static double
ksv_adapt_normal(uint64_t *state)
{
    double  u, v, s;

    do {
        u = 2.0 * ksv_adapt_uniform(state) - 1.0;
        v = 2.0 * ksv_adapt_uniform(state) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);

    return u * sqrt(-2.0 * log(s) / s);
}


/* Marsaglia and Tsang (2000), for a >= 1: about 1.05 tries per draw */

static double
ksv_adapt_gamma(uint64_t *state, double a)
{
    double  d, c, x, v, u;

    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);

    for ( ;; ) {
        do {
            x = ksv_adapt_normal(state);
            v = 1.0 + c * x;
        } while (v <= 0.0);

        v = v * v * v;
        u = ksv_adapt_uniform(state);

        if (u < 1.0 - 0.0331 * x * x * x * x) {
            return d * v;
        }

        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) {
            return d * v;
        }
    }
}


double
ksv_adapt_beta(uint64_t *state, double a, double b)
{
    double  x, y;

    x = ksv_adapt_gamma(state, a);
    y = ksv_adapt_gamma(state, b);

    return x / (x + y);
}


/* ---- the window ---------------------------------------------------------- */

void
ksv_adapt_ring_init(ksv_adapt_ring_t *r, uint32_t nslots)
{
    memset(r, 0, sizeof(ksv_adapt_ring_t));

    if (nslots == 0) {
        nslots = 1;
    }

    r->nslots = nslots < KSV_ADAPT_MAX_SLOTS ? nslots : KSV_ADAPT_MAX_SLOTS;
}


void
ksv_adapt_ring_push(ksv_adapt_ring_t *r, const ksv_adapt_counts_t *cum,
    ksv_adapt_counts_t *window)
{
    uint32_t                  size, oldest;
    const ksv_adapt_counts_t  *last, *o;

    size = r->nslots + 1;

    if (r->filled) {
        last = &r->snap[r->head];

        if (cum->good < last->good || cum->slow < last->slow
            || cum->credit < last->credit
            || cum->failure < last->failure
            || cum->latency_us < last->latency_us)
        {
            r->filled = 0;
        }
    }

    r->head = r->filled ? (r->head + 1) % size : 0;
    r->snap[r->head] = *cum;

    if (r->filled < size) {
        r->filled++;
    }

    oldest = (r->head + size - (r->filled - 1)) % size;
    o = &r->snap[oldest];

    window->good = cum->good - o->good;
    window->slow = cum->slow - o->slow;
    window->credit = cum->credit - o->credit;
    window->failure = cum->failure - o->failure;
    window->latency_us = cum->latency_us - o->latency_us;
}


void
ksv_adapt_add(ksv_adapt_counts_t *to, const ksv_adapt_counts_t *c)
{
    to->good += c->good;
    to->slow += c->slow;
    to->credit += c->credit;
    to->failure += c->failure;
    to->latency_us += c->latency_us;
}


/* ---- shares -------------------------------------------------------------- */

/*
 * x (over the eligible variants) scaled to sum 1, then every value
 * below min_share raised to it and the others scaled down to make room,
 * until none is below: water-filling, at most n rounds.
 */

static void
ksv_adapt_floor(double *x, const ksv_adapt_variant_t *v, size_t n,
    double min_share)
{
    int     more;
    char    fixed[KSV_ADAPT_MAX_VARIANTS];
    size_t  i, ne, nfixed;
    double  sum, room;

    ne = 0;
    sum = 0.0;

    for (i = 0; i < n; i++) {
        fixed[i] = 0;

        if (!ksv_adapt_eligible(v[i]) || !(x[i] > 0.0)) {   /* NaN too */
            x[i] = 0.0;
        }

        if (ksv_adapt_eligible(v[i])) {
            sum += x[i];
            ne++;
        }
    }

    if (ne == 0) {
        return;
    }

    if (sum <= 0.0 || min_share * (double) ne >= 1.0) {
        for (i = 0; i < n; i++) {
            if (ksv_adapt_eligible(v[i])) {
                x[i] = 1.0 / (double) ne;
            }
        }

        return;
    }

    /*
     * Each round scales the free values into the room the fixed ones
     * leave; at least one stays free, as min_share * ne < 1.
     */

    nfixed = 0;

    do {
        room = 1.0 - min_share * (double) nfixed;
        sum = 0.0;

        for (i = 0; i < n; i++) {
            if (ksv_adapt_eligible(v[i]) && !fixed[i]) {
                sum += x[i];
            }
        }

        more = 0;

        for (i = 0; i < n; i++) {
            if (!ksv_adapt_eligible(v[i]) || fixed[i]) {
                continue;
            }

            x[i] = sum > 0.0 ? x[i] * room / sum
                             : room / (double) (ne - nfixed);

            if (x[i] < min_share) {
                x[i] = min_share;
                fixed[i] = 1;
                nfixed++;
                more = 1;
            }
        }

    } while (more);
}


void
ksv_adapt_start(const ksv_adapt_conf_t *conf, ksv_adapt_variant_t *v,
    size_t n)
{
    size_t  i;
    double  x[KSV_ADAPT_MAX_VARIANTS];

    n = n < KSV_ADAPT_MAX_VARIANTS ? n : KSV_ADAPT_MAX_VARIANTS;

    for (i = 0; i < n; i++) {
        x[i] = (double) v[i].prior;
    }

    ksv_adapt_floor(x, v, n, conf->min_share);

    for (i = 0; i < n; i++) {
        v[i].share = x[i];
        v[i].target = x[i];
    }
}


size_t
ksv_adapt_derive(const ksv_adapt_conf_t *conf, ksv_adapt_variant_t *v,
    size_t n, uint64_t *rng)
{
    size_t    i, d, ne;
    double    best, late, a, b;
    double    theta[KSV_ADAPT_MAX_VARIANTS], wins[KSV_ADAPT_MAX_VARIANTS];
    double    share[KSV_ADAPT_MAX_VARIANTS];
    uint32_t  draws;

    n = n < KSV_ADAPT_MAX_VARIANTS ? n : KSV_ADAPT_MAX_VARIANTS;
    ne = 0;

    for (i = 0; i < n; i++) {
        wins[i] = 0.0;
        ne += ksv_adapt_eligible(v[i]) ? 1 : 0;
    }

    if (ne == 0) {
        return 0;
    }

    draws = conf->draws ? conf->draws : 1;
    draws = draws < KSV_ADAPT_MAX_DRAWS ? draws : KSV_ADAPT_MAX_DRAWS;

    for (d = 0; d < draws; d++) {
        best = 0.0;

        for (i = 0; i < n; i++) {
            if (!ksv_adapt_eligible(v[i])) {
                continue;
            }

            /* a late success: good by its credit, bad by the rest */

            late = (double) v[i].window.credit / 1000.0;

            if (late > (double) v[i].window.slow) {
                late = (double) v[i].window.slow;
            }

            a = 1.0 + (double) v[i].window.good + late;
            b = 1.0 + (double) v[i].window.slow - late
                + (double) v[i].window.failure;

            theta[i] = ksv_adapt_beta(rng, a, b);

            if (theta[i] > best) {
                best = theta[i];
            }
        }

        /* every variant within tolerance of the best draw wins it */

        for (i = 0; i < n; i++) {
            if (ksv_adapt_eligible(v[i])
                && theta[i] >= best - conf->tolerance)
            {
                wins[i] += 1.0;
            }
        }
    }

    /* P(among the best) times the prior; floor() scales to sum 1 */

    for (i = 0; i < n; i++) {
        wins[i] = wins[i] / (double) draws * (double) v[i].prior;
        share[i] = v[i].share;

        /* back from ejection, or weighted in again: from the floor */

        if (ksv_adapt_eligible(v[i]) && !(share[i] >= conf->min_share)) {
            share[i] = conf->min_share;
        }
    }

    ksv_adapt_floor(wins, v, n, conf->min_share);
    ksv_adapt_floor(share, v, n, conf->min_share);

    /* a convex step between two floored distributions stays floored */

    for (i = 0; i < n; i++) {
        v[i].target = wins[i];
        v[i].share = share[i] + conf->rate * (wins[i] - share[i]);
    }

    return ne;
}


uint32_t
ksv_adapt_weight(double share)
{
    double  w;

    if (!(share > 0.0)) {
        return 0;
    }

    w = share * KSV_ADAPT_SCALE + 0.5;

    if (w < 1.0) {
        return 1;
    }

    return w > KSV_ADAPT_SCALE ? KSV_ADAPT_SCALE : (uint32_t) w;
}


/* ---- what a node publishes ----------------------------------------------- */

static char *
ksv_adapt_put_u64(char *p, char *last, uint64_t v)
{
    char    tmp[24];
    size_t  n;

    n = 0;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    if (p == NULL || (size_t) (last - p) < n) {
        return NULL;
    }

    while (n) {
        *p++ = tmp[--n];
    }

    return p;
}


static char *
ksv_adapt_put(char *p, char *last, const char *s, size_t len)
{
    if (p == NULL || (size_t) (last - p) < len) {
        return NULL;
    }

    memcpy(p, s, len);

    return p + len;
}


size_t
ksv_adapt_format(char *buf, size_t size, uint64_t time_ms,
    const ksv_adapt_named_t *v, size_t n)
{
    char    *p, *last;
    size_t   i;

    p = buf;
    last = buf + size;

    p = ksv_adapt_put(p, last, "ksv1 ", 5);
    p = ksv_adapt_put_u64(p, last, time_ms);
    p = ksv_adapt_put(p, last, "\n", 1);

    for (i = 0; i < n; i++) {
        if (v[i].len == 0 || memchr(v[i].name, ' ', v[i].len) != NULL
            || memchr(v[i].name, '\n', v[i].len) != NULL)
        {
            return 0;
        }

        p = ksv_adapt_put(p, last, v[i].name, v[i].len);
        p = ksv_adapt_put(p, last, " ", 1);
        p = ksv_adapt_put_u64(p, last, v[i].counts.good);
        p = ksv_adapt_put(p, last, " ", 1);
        p = ksv_adapt_put_u64(p, last, v[i].counts.slow);
        p = ksv_adapt_put(p, last, " ", 1);
        p = ksv_adapt_put_u64(p, last, v[i].counts.credit);
        p = ksv_adapt_put(p, last, " ", 1);
        p = ksv_adapt_put_u64(p, last, v[i].counts.failure);
        p = ksv_adapt_put(p, last, " ", 1);
        p = ksv_adapt_put_u64(p, last, v[i].counts.latency_us);
        p = ksv_adapt_put(p, last, "\n", 1);
    }

    return p ? (size_t) (p - buf) : 0;
}


/* a decimal number of 1 .. 19 digits ended by c; *s moves past c */

static int
ksv_adapt_get_u64(const char **s, const char *end, char c, uint64_t *v)
{
    size_t       n;
    const char  *p;

    p = *s;
    *v = 0;

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++, n++) {
        if (n == 19) {
            return -1;
        }

        *v = *v * 10 + (uint64_t) (*p - '0');
    }

    /* no leading zeros: one spelling per number */

    if (n == 0 || (n > 1 && **s == '0') || p == end || *p != c) {
        return -1;
    }

    *s = p + 1;

    return 0;
}


int
ksv_adapt_parse(const char *s, size_t len, uint64_t *time_ms,
    ksv_adapt_named_t *v, size_t max)
{
    size_t       n;
    const char  *p, *end, *name;

    p = s;
    end = s + len;

    if (len < 5 || memcmp(p, "ksv1 ", 5) != 0) {
        return -1;
    }

    p += 5;

    if (ksv_adapt_get_u64(&p, end, '\n', time_ms) != 0) {
        return -1;
    }

    for (n = 0; p < end; n++) {
        if (n == max) {
            return -1;
        }

        name = p;

        while (p < end && *p != ' ' && *p != '\n') {
            p++;
        }

        if (p == name || p == end || *p != ' ') {
            return -1;
        }

        v[n].name = name;
        v[n].len = (size_t) (p - name);
        p++;

        if (ksv_adapt_get_u64(&p, end, ' ', &v[n].counts.good) != 0
            || ksv_adapt_get_u64(&p, end, ' ', &v[n].counts.slow) != 0
            || ksv_adapt_get_u64(&p, end, ' ', &v[n].counts.credit) != 0
            || ksv_adapt_get_u64(&p, end, ' ', &v[n].counts.failure) != 0
            || ksv_adapt_get_u64(&p, end, '\n', &v[n].counts.latency_us)
               != 0)
        {
            return -1;
        }
    }

    return (int) n;
}


/* ---- the route status ---------------------------------------------------- */

static double
ksv_adapt_round4(double x)
{
    return floor(x * 10000.0 + 0.5) / 10000.0;
}


void
ksv_adapt_json(ksv_writer_t *w, const ksv_adapt_conf_t *conf,
    const ksv_adapt_timing_t *t, const ksv_str_t *names,
    const ksv_adapt_variant_t *v, const uint32_t *weights, size_t n)
{
    size_t                     i;
    uint64_t                   req;
    const ksv_adapt_counts_t  *c;

    ksv_json_lit(w, ",\"interval_ms\":");
    ksv_json_u64(w, t->interval_ms);
    ksv_json_lit(w, ",\"window_ms\":");
    ksv_json_u64(w, t->window_ms);
    ksv_json_lit(w, ",\"slo_ms\":");
    ksv_json_u64(w, t->slo_ms);
    ksv_json_lit(w, ",\"min_share\":");
    ksv_json_f64(w, ksv_adapt_round4(conf->min_share));
    ksv_json_lit(w, ",\"rate\":");
    ksv_json_f64(w, ksv_adapt_round4(conf->rate));
    ksv_json_lit(w, ",\"tolerance\":");
    ksv_json_f64(w, ksv_adapt_round4(conf->tolerance));
    ksv_json_lit(w, ",\"derived_ms_ago\":");

    if (t->derived_ms_ago < 0) {
        ksv_json_lit(w, "null");

    } else {
        ksv_json_i64(w, t->derived_ms_ago);
    }

    ksv_json_lit(w, ",\"variants\":[");

    for (i = 0; i < n; i++) {
        c = &v[i].window;
        req = c->good + c->slow + c->failure;

        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_lit(w, "{\"name\":");
        ksv_json_string(w, names[i].data, names[i].len);
        ksv_json_lit(w, ",\"share\":");
        ksv_json_f64(w, ksv_adapt_round4(v[i].share));
        ksv_json_lit(w, ",\"target\":");
        ksv_json_f64(w, ksv_adapt_round4(v[i].target));
        ksv_json_lit(w, ",\"weight\":");
        ksv_json_u64(w, weights[i]);
        ksv_json_lit(w, ",\"window\":{\"requests\":");
        ksv_json_u64(w, req);
        ksv_json_lit(w, ",\"good\":");
        ksv_json_u64(w, c->good);
        ksv_json_lit(w, ",\"slow\":");
        ksv_json_u64(w, c->slow);
        ksv_json_lit(w, ",\"credit\":");
        ksv_json_f64(w, ksv_adapt_round4((double) c->credit / 1000.0));
        ksv_json_lit(w, ",\"failure\":");
        ksv_json_u64(w, c->failure);
        ksv_json_lit(w, ",\"success_rate\":");

        if (req) {
            ksv_json_f64(w, ksv_adapt_round4((double) (c->good + c->slow)
                                             / (double) req));
            ksv_json_lit(w, ",\"within_slo\":");
            ksv_json_f64(w, ksv_adapt_round4((double) c->good
                                             / (double) req));
            ksv_json_lit(w, ",\"mean_latency_ms\":");
            ksv_json_f64(w, ksv_adapt_round4((double) c->latency_us
                                             / (double) req / 1000.0));

        } else {
            ksv_json_lit(w, "null,\"within_slo\":null,"
                            "\"mean_latency_ms\":null");
        }

        ksv_json_lit(w, "}}");
    }

    ksv_put_u8(w, ']');
}
