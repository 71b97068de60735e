/*
 * hg_uuid.c: UUIDv7 and the process's fast random source (xorshift64*).
 */

#include "hg_core.h"

#include <sys/random.h>

#include "hg_uuid.h"

static uint64_t hg_random_state;
static int64_t hg_uuid_last_ms;
static uint16_t hg_uuid_counter;

void
hg_random_reseed(void)
{
    uint64_t seed = 0;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid() << 32);
    }
    hg_random_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

uint64_t
hg_random(void)
{
    uint64_t x;

    if (hg_random_state == 0) {
        hg_random_reseed();
    }
    x = hg_random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    hg_random_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void
hg_uuid_v7(char out[HG_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    struct timespec ts;
    int64_t ms;
    uint64_t r;
    size_t i, o;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ms <= hg_uuid_last_ms) {
        /* Same millisecond (or the clock went back): count up within the
         * last one so ids stay ordered. */
        ms = hg_uuid_last_ms;
        hg_uuid_counter++;
        if (hg_uuid_counter > 0x0fff) {
            ms++;
            hg_uuid_counter = 0;
        }
    } else {
        hg_uuid_counter = 0;
    }
    hg_uuid_last_ms = ms;

    for (i = 0; i < 6; i++) {
        b[i] = (uint8_t) ((uint64_t) ms >> (40 - 8 * i));
    }
    b[6] = (uint8_t) (0x70 | ((hg_uuid_counter >> 8) & 0x0f));
    b[7] = (uint8_t) (hg_uuid_counter & 0xff);
    r = hg_random();
    for (i = 8; i < 16; i++) {
        b[i] = (uint8_t) (r >> (8 * (i - 8)));
    }
    b[8] = (uint8_t) (0x80 | (b[8] & 0x3f));

    for (i = 0, o = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}
