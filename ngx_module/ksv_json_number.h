/*
 * ngx_kserve: JSON number spelling (nginx-free).
 *
 * Integers in decimal, two digits at a time; FP32 and FP64 with the
 * fewest digits that read back as the same value (0.1, not 0.100000001),
 * laid out as printf's %.9g and %.17g lay them out (1e+10, 1.5e-07, 100,
 * -0), without printf.  NaN and infinities are written NaN, Infinity and
 * -Infinity, as Python's json module reads them.
 */

#ifndef KSV_JSON_NUMBER_H
#define KSV_JSON_NUMBER_H

#include <stddef.h>
#include <stdint.h>


/*
 * Numbers written at buf, which has room for the _MAX bytes;
 * each returns the length (no NUL).  For loops that reserve their room
 * once (ksv_writer_room()).
 */
#define KSV_JSON_INT_MAX    24          /* "-9223372036854775808" */
#define KSV_JSON_F32_MAX    32          /* "-1.17549435e-38", "-Infinity" */
#define KSV_JSON_F64_MAX    32          /* "-2.2250738585072014e-308" */

size_t ksv_json_fmt_u64(char *buf, uint64_t v);
size_t ksv_json_fmt_i64(char *buf, int64_t v);
size_t ksv_json_fmt_f32(char *buf, float v);
size_t ksv_json_fmt_f64(char *buf, double v);

#endif /* KSV_JSON_NUMBER_H */
