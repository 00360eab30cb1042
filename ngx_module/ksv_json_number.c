/*
 * ngx_kserve: JSON number spelling (see ksv_json_number.h).
 */

#include <string.h>

#include "ksv_json_number.h"


static const char  ksv_digits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";


/* Writes the decimal digits of v at the end of [.., end); returns the start. */

static char *
ksv_json_digits(char *end, uint64_t v)
{
    char      *p;
    uint32_t   r;

    p = end;

    while (v >= 100) {
        r = (uint32_t) (v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, &ksv_digits2[r * 2], 2);
    }

    if (v >= 10) {
        p -= 2;
        memcpy(p, &ksv_digits2[v * 2], 2);

    } else {
        *--p = (char) ('0' + v);
    }

    return p;
}


size_t
ksv_json_fmt_u64(char *buf, uint64_t v)
{
    char    tmp[20], *p;
    size_t  n;

    p = ksv_json_digits(tmp + sizeof(tmp), v);
    n = tmp + sizeof(tmp) - p;
    memcpy(buf, p, n);

    return n;
}


size_t
ksv_json_fmt_i64(char *buf, int64_t v)
{
    if (v < 0) {
        buf[0] = '-';
        return 1 + ksv_json_fmt_u64(buf + 1, (uint64_t) 0 - (uint64_t) v);
    }

    return ksv_json_fmt_u64(buf, (uint64_t) v);
}


/*
 * Shortest round-trip floats, after Ulf Adams' Ryu (PLDI 2018), written
 * for this file.  A finite v = m2 * 2^e2 owns the interval of reals that
 * round to it; its neighbours' midpoints bound it, included when m2 is
 * even (round-half-even reads them back as v).  With the bounds scaled by
 * 4 to keep them integers (mv = 4 m2, mp = mv + 2, mm = mv - 1 or - 2),
 * we compute vr, vp, vm = floor(mv, mp, mm * 2^e2 / 10^e10) for an e10
 * that leaves a digit or two more than needed, by a 64x128-bit multiply
 * with 5^q or 2^k / 5^q to 125 bits (exact for these mantissas), then
 * drop digits while [vm, vp] still holds a shorter number and round the
 * last one off: the shortest digits that read back as v, the nearest to
 * v among them.
 *
 * A float goes through the same code with its own m2, e2: the tables'
 * precision is more than it needs, never less.  The tables (5^i to 125
 * bits for i <= 325, their inverses for q <= 291) are computed once, when
 * the library is loaded, from exact big integers.
 */

typedef unsigned __int128  ksv_u128_t;

#define KSV_POW5_BITS       125
#define KSV_POW5_N          326     /* e2 < 0: 5^(-e2-q), up to 2^-1076 */
#define KSV_POW5_INV_N      292     /* e2 >= 0: 5^-q, up to 2^969 */
#define KSV_BIG_LIMBS       26      /* 5^325 < 2^755 < 2^(26*32) */

static ksv_u128_t  ksv_pow5[KSV_POW5_N];
static ksv_u128_t  ksv_pow5_inv[KSV_POW5_INV_N];


/* floor(log2(5^e)) + 1, 0 <= e <= 3528 */
#define ksv_pow5_bits(e)    ((int32_t) (((uint32_t) (e) * 1217359) >> 19) + 1)
/* floor(log10(2^e)), 0 <= e <= 1650 */
#define ksv_log10_pow2(e)   ((uint32_t) (e) * 78913 >> 18)
/* floor(log10(5^e)), 0 <= e <= 2620 */
#define ksv_log10_pow5(e)   ((uint32_t) (e) * 732923 >> 20)


static int
ksv_big_bit(const uint32_t *a, int32_t bit)
{
    return (a[bit >> 5] >> (bit & 31)) & 1;
}


/* a >= b, both of KSV_BIG_LIMBS limbs */

static int
ksv_big_ge(const uint32_t *a, const uint32_t *b)
{
    int  i;

    for (i = KSV_BIG_LIMBS - 1; i >= 0; i--) {
        if (a[i] != b[i]) {
            return a[i] > b[i];
        }
    }

    return 1;
}


static void
ksv_big_sub(uint32_t *a, const uint32_t *b)
{
    int       i;
    uint64_t  borrow, d;

    borrow = 0;

    for (i = 0; i < KSV_BIG_LIMBS; i++) {
        d = (uint64_t) a[i] - b[i] - borrow;
        a[i] = (uint32_t) d;
        borrow = (d >> 63) & 1;
    }
}


static void
ksv_big_shl1(uint32_t *a)
{
    int  i;

    for (i = KSV_BIG_LIMBS - 1; i > 0; i--) {
        a[i] = (a[i] << 1) | (a[i - 1] >> 31);
    }

    a[0] <<= 1;
}


__attribute__((constructor))
static void
ksv_json_tables(void)
{
    int32_t     i, b, bits;
    uint32_t    p5[KSV_BIG_LIMBS], r[KSV_BIG_LIMBS];
    uint64_t    carry;
    ksv_u128_t  top, q;

    memset(p5, 0, sizeof(p5));
    p5[0] = 1;

    for (i = 0; i < KSV_POW5_N; i++) {

        if (i > 0) {
            carry = 0;

            for (b = 0; b < KSV_BIG_LIMBS; b++) {
                carry += (uint64_t) p5[b] * 5;
                p5[b] = (uint32_t) carry;
                carry >>= 32;
            }
        }

        bits = ksv_pow5_bits(i);

        /* 5^i to KSV_POW5_BITS bits: its top bits, or itself shifted up */

        top = 0;

        for (b = bits - 1; b >= 0 && b >= bits - KSV_POW5_BITS; b--) {
            top = (top << 1) | (ksv_u128_t) ksv_big_bit(p5, b);
        }

        if (bits < KSV_POW5_BITS) {
            top <<= KSV_POW5_BITS - bits;
        }

        ksv_pow5[i] = top;

        if (i >= KSV_POW5_INV_N) {
            continue;
        }

        /*
         * floor(2^(bits - 1 + KSV_POW5_BITS) / 5^i) + 1 by long division:
         * the dividend is 2^(bits - 1), below 2 * 5^i, then zero bits
         */

        memset(r, 0, sizeof(r));
        r[(bits - 1) >> 5] = (uint32_t) 1 << ((bits - 1) & 31);
        q = 0;

        for (b = 0; b <= KSV_POW5_BITS; b++) {
            if (b > 0) {
                ksv_big_shl1(r);
            }

            q <<= 1;

            if (ksv_big_ge(r, p5)) {
                ksv_big_sub(r, p5);
                q |= 1;
            }
        }

        ksv_pow5_inv[i] = q + 1;
    }
}


/* floor(m * mul / 2^j), 64 <= j, the result below 2^64 */

static uint64_t
ksv_mul_shift(uint64_t m, ksv_u128_t mul, int32_t j)
{
    ksv_u128_t  lo, hi;

    lo = (ksv_u128_t) m * (uint64_t) mul;
    hi = (ksv_u128_t) m * (uint64_t) (mul >> 64);

    return (uint64_t) (((lo >> 64) + hi) >> (j - 64));
}


static int
ksv_pow5_factor_ge(uint64_t v, uint32_t q)
{
    uint32_t  n;

    for (n = 0; n < q; n++) {
        if (v % 5 != 0) {
            return 0;
        }

        v /= 5;
    }

    return 1;
}


static int
ksv_pow2_factor_ge(uint64_t v, uint32_t q)
{
    return q < 64 && (v & (((uint64_t) 1 << q) - 1)) == 0;
}


/*
 * The shortest digits of m2 * 2^e2 (m2 > 0, below 2^62): returns them,
 * *exp10 their decimal exponent.  lower_close: the gap to the number
 * below is half the gap above (m2 a power of two, not the smallest
 * exponent), so the lower bound is nearer.
 */

static uint64_t
ksv_shortest(uint64_t m2, int32_t e2, int lower_close, int32_t *exp10)
{
    int       accept, vm_exact, vr_exact;
    int32_t   e10, removed, i, j, k;
    uint32_t  q, last;
    uint64_t  mv, mp, mm, vr, vp, vm, out;

    accept = (m2 & 1) == 0;
    e2 -= 2;
    mv = 4 * m2;
    mp = mv + 2;
    mm = mv - (lower_close ? 1 : 2);

    vm_exact = 0;
    vr_exact = 0;

    if (e2 >= 0) {
        q = ksv_log10_pow2(e2) - (e2 > 3);
        e10 = (int32_t) q;
        k = KSV_POW5_BITS + ksv_pow5_bits(q) - 1;
        i = -e2 + (int32_t) q + k;

        vr = ksv_mul_shift(mv, ksv_pow5_inv[q], i);
        vp = ksv_mul_shift(mp, ksv_pow5_inv[q], i);
        vm = ksv_mul_shift(mm, ksv_pow5_inv[q], i);

        /* a bound is exact when 5^q divides it (2^(e2-q) is whole) */

        if (q <= 27) {
            vr_exact = ksv_pow5_factor_ge(mv, q);

            if (accept) {
                vm_exact = ksv_pow5_factor_ge(mm, q);

            } else {
                vp -= ksv_pow5_factor_ge(mp, q);
            }
        }

    } else {
        q = ksv_log10_pow5(-e2) - (-e2 > 1);
        e10 = (int32_t) q + e2;
        i = -e2 - (int32_t) q;
        k = ksv_pow5_bits(i) - KSV_POW5_BITS;
        j = (int32_t) q - k;

        vr = ksv_mul_shift(mv, ksv_pow5[i], j);
        vp = ksv_mul_shift(mp, ksv_pow5[i], j);
        vm = ksv_mul_shift(mm, ksv_pow5[i], j);

        /* x * 5^i / 2^q is whole when 2^q divides x */

        vr_exact = ksv_pow2_factor_ge(mv, q);

        if (accept) {
            vm_exact = ksv_pow2_factor_ge(mm, q);

        } else {
            vp -= ksv_pow2_factor_ge(mp, q);
        }
    }

    /*
     * Drop digits while a shorter number fits; vm_exact: the lower bound
     * itself is allowed (and reached); vr_exact: the digits dropped from
     * vr so far, but the last, were all zero (a tie is a real tie).
     */

    removed = 0;
    last = 0;

    while (vp / 10 > vm / 10) {
        vm_exact &= (vm % 10 == 0);
        vr_exact &= (last == 0);
        last = (uint32_t) (vr % 10);
        vr /= 10;
        vp /= 10;
        vm /= 10;
        removed++;
    }

    if (vm_exact && accept) {
        while (vm % 10 == 0) {
            vr_exact &= (last == 0);
            last = (uint32_t) (vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
    }

    if (vr_exact && last == 5 && vr % 2 == 0) {
        last = 4;       /* exactly half way: round to even */
    }

    out = vr + ((vr == vm && !(accept && vm_exact)) || last >= 5);

    *exp10 = e10 + removed;

    return out;
}


/*
 * digits * 10^e10 as printf's %.<prec>g writes it: exponent form when
 * the decimal exponent is below -4 or at least prec, trailing zeros
 * never; so a value whose shortest digits are printf's reads the same.
 */

static size_t
ksv_json_fmt_decimal(char *buf, int neg, uint64_t digits, int32_t e10,
    int prec)
{
    char     tmp[20], *d, *p;
    int32_t  n, x;

    while (digits != 0 && digits % 10 == 0) {
        digits /= 10;
        e10++;
    }

    d = ksv_json_digits(tmp + sizeof(tmp), digits);
    n = (int32_t) (tmp + sizeof(tmp) - d);
    x = e10 + n - 1;

    p = buf;

    if (neg) {
        *p++ = '-';
    }

    if (x < -4 || x >= prec) {
        *p++ = d[0];

        if (n > 1) {
            *p++ = '.';
            memcpy(p, d + 1, n - 1);
            p += n - 1;
        }

        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        x = x < 0 ? -x : x;

        if (x >= 100) {
            *p++ = (char) ('0' + x / 100);
            x %= 100;
        }

        memcpy(p, &ksv_digits2[x * 2], 2);
        p += 2;

    } else if (x >= n - 1) {
        memcpy(p, d, n);
        p += n;
        memset(p, '0', x - (n - 1));
        p += x - (n - 1);

    } else if (x >= 0) {
        memcpy(p, d, x + 1);
        p += x + 1;
        *p++ = '.';
        memcpy(p, d + x + 1, n - x - 1);
        p += n - x - 1;

    } else {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', -x - 1);
        p += -x - 1;
        memcpy(p, d, n);
        p += n;
    }

    return p - buf;
}


static size_t
ksv_json_fmt_special(char *buf, int neg, int nan)
{
    if (nan) {
        memcpy(buf, "NaN", 3);
        return 3;
    }

    if (neg) {
        memcpy(buf, "-Infinity", 9);
        return 9;
    }

    memcpy(buf, "Infinity", 8);
    return 8;
}


size_t
ksv_json_fmt_f32(char *buf, float v)
{
    int       neg;
    int32_t   e10;
    uint32_t  bits, mant, exp;
    uint64_t  digits;

    memcpy(&bits, &v, 4);

    neg = bits >> 31;
    exp = (bits >> 23) & 0xff;
    mant = bits & 0x7fffff;

    if (exp == 0xff) {
        return ksv_json_fmt_special(buf, neg, mant != 0);
    }

    /* whole numbers below 2^24 are their own shortest digits */

    if (v > -16777216.0f && v < 16777216.0f && v == (float) (int32_t) v) {
        buf[0] = '-';
        return neg + ksv_json_fmt_u64(buf + neg,
                                      (uint64_t) (neg ? -(int32_t) v
                                                      : (int32_t) v));
    }

    if (exp == 0) {
        digits = ksv_shortest(mant, 1 - 127 - 23, 0, &e10);

    } else {
        digits = ksv_shortest(mant | 0x800000, (int32_t) exp - 127 - 23,
                              mant == 0 && exp > 1, &e10);
    }

    return ksv_json_fmt_decimal(buf, neg, digits, e10, 9);
}


size_t
ksv_json_fmt_f64(char *buf, double v)
{
    int       neg;
    int32_t   e10;
    uint64_t  bits, mant, exp, digits;

    memcpy(&bits, &v, 8);

    neg = (int) (bits >> 63);
    exp = (bits >> 52) & 0x7ff;
    mant = bits & 0xfffffffffffffULL;

    if (exp == 0x7ff) {
        return ksv_json_fmt_special(buf, neg, mant != 0);
    }

    /* whole numbers below 2^53 are their own shortest digits */

    if (v > -9007199254740992.0 && v < 9007199254740992.0
        && v == (double) (int64_t) v)
    {
        buf[0] = '-';
        return neg + ksv_json_fmt_u64(buf + neg,
                                      (uint64_t) (neg ? -(int64_t) v
                                                      : (int64_t) v));
    }

    if (exp == 0) {
        digits = ksv_shortest(mant, 1 - 1023 - 52, 0, &e10);

    } else {
        digits = ksv_shortest(mant | (1ULL << 52), (int32_t) exp - 1023 - 52,
                              mant == 0 && exp > 1, &e10);
    }

    return ksv_json_fmt_decimal(buf, neg, digits, e10, 17);
}
