/*
 * hg_trace.c owns an execution's trace context (W3C Trace Context,
 * `traceparent`): the trace id is the run's id (a UUIDv7: 128 bits, the
 * same for every attempt of a run), the span id the execution's own last
 * 64 bits (random in a UUIDv7). The master computes it for each dispatch;
 * modules read it with hg_exec_traceparent (the shell job's TRACEPARENT,
 * the http job's traceparent header).
 *
 * It must never allocate or log: it runs for every dispatch.
 */

#include "hg_core.h"

#include <ctype.h>

#include "hg_trace.h"

/* The 32 hex digits of a UUID's text (8-4-4-4-12), lower case, into HEX;
 * HG_ERROR when ID is not one, or is all zeros (an invalid trace id). */
static int
hg_trace_uuid_hex(const char *id, char hex[33])
{
    size_t i, n = 0;
    bool zero = true;

    for (i = 0; id[i] != '\0'; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-') {
                return HG_ERROR;
            }
            continue;
        }
        if (n == 32 || !isxdigit((unsigned char) id[i])) {
            return HG_ERROR;
        }
        hex[n] = (char) tolower((unsigned char) id[i]);
        zero &= hex[n] == '0';
        n++;
    }
    hex[n] = '\0';
    return n == 32 && !zero ? HG_OK : HG_ERROR;
}

int
hg_trace_context(const char *run_id, const char *exec_id, char *out,
                 size_t len)
{
    char trace[33], span[33];

    if (run_id == NULL || exec_id == NULL || len < HG_TRACEPARENT_LEN
        || hg_trace_uuid_hex(run_id, trace) != HG_OK
        || hg_trace_uuid_hex(exec_id, span) != HG_OK
        || strcmp(span + 16, "0000000000000000") == 0)
    {
        return HG_ERROR;
    }
    snprintf(out, len, "00-%s-%s-01", trace, span + 16);
    return HG_OK;
}
