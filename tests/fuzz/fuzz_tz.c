/*
 * fuzz_tz.c: libFuzzer target for the time zone readers: TZif data (an
 * input that begins with "TZif") or a POSIX TZ string (anything else).
 * A zone that loads must answer every question without crashing, keep
 * start <= t < end for its spans, map wall times back to instants showing
 * them, and let a cron search advance.
 */
// fuzz-sources: core/hg_cron.c core/hg_tz.c core/hg_hint.c
// fuzz-max-len: 4096
// fuzz-seed: CET-1CEST,M3.5.0,M10.5.0/3
// fuzz-seed: <+1030>-10:30<+11>-11,M10.1.0,M4.1.0
// fuzz-seed: EST5EDT,0/0,J365/25
// fuzz-seed: XXX0YYY,J60/-1,300/30
// fuzz-seed-file: /usr/share/zoneinfo/Europe/Berlin
// fuzz-seed-file: /usr/share/zoneinfo/Australia/Lord_Howe
// fuzz-seed-file: /usr/share/zoneinfo/America/Sao_Paulo
// fuzz-seed-file: /usr/share/zoneinfo/Asia/Kolkata

#include "hg_core.h"

#include "hg_cron.h"
#include "hg_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_instant(const hg_tz_t *tz, int64_t t, hg_cron_t *const *crons,
              size_t ncrons)
{
    hg_tz_span_t sp;
    struct tm tm;
    int64_t occ[2], next;
    char buf[64];
    int n, i;
    size_t k;

    hg_tz_span(tz, t, &sp);
    if (sp.start > t || sp.end <= t || sp.abbr == NULL) {
        abort();
    }
    if (hg_tz_offset(tz, t) != sp.offset) {
        abort();
    }
    hg_tz_localtime(tz, t, &tm);
    if (tm.tm_gmtoff != sp.offset) {
        abort();
    }
    n = hg_tz_from_wall(tz, t + sp.offset, occ);
    for (i = 0; i < n; i++) {
        if (occ[i] + hg_tz_offset(tz, occ[i]) != t + sp.offset) {
            abort();
        }
    }
    if (n == 2 && occ[0] >= occ[1]) {
        abort();
    }
    (void) hg_tz_resolve_wall(tz, t + sp.offset);
    (void) hg_tz_format_rfc3339(tz, t, buf, sizeof(buf));
    for (k = 0; k < ncrons; k++) {
        if (hg_cron_next(crons[k], tz, t, &next) == HG_OK && next <= t) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hg_cron_t *crons[3];
    static const int64_t starts[] = {
        -2208988800LL, 0, 1774738800, 1792884600, 2145916800, 4107456000LL,
        13569465600LL,
    };
    char spec[512], err[256];
    hg_tz_t *tz;
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    if (crons[0] == NULL) {
        crons[0] = hg_cron_parse("*/7 * * * *", err, sizeof(err));
        crons[1] = hg_cron_parse("30 2 * * *", err, sizeof(err));
        crons[2] = hg_cron_parse("0,30 0-3 * * *", err, sizeof(err));
    }

    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        tz = hg_tz_from_tzif("fuzz", data, size, err, sizeof(err));
    } else {
        if (size >= sizeof(spec)) {
            return 0;
        }
        memcpy(spec, data, size);
        spec[size] = '\0';
        tz = hg_tz_from_posix(spec, err, sizeof(err));
    }
    if (tz == NULL) {
        if (err[0] == '\0') {
            abort();
        }
        return 0;
    }

    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 1099511628211ULL;
    }
    for (i = 0; i < HG_NELEMS(starts); i++) {
        check_instant(tz, starts[i], crons, HG_NELEMS(crons));
    }
    check_instant(tz, (int64_t) (h % 16000000000ULL) - 2500000000LL, crons,
                  HG_NELEMS(crons));
    hg_tz_free(tz);
    return 0;
}
