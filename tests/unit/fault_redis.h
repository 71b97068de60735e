/*
 * fault_redis.h: Redis errors on demand for the unit tests, the way
 * fault_pg.h fails PostgreSQL's statements: the Nth reply the store reads
 * (redisGetReply, every thread's counted) fails, once: an odd N as a
 * connection that broke (REDIS_ERR), an even N as the server's error
 * reply to that command (the real reply is read first, so that the
 * pipeline stays in step, and replaced).
 *
 * How: the test binary is linked with -Wl,--wrap=redisGetReply.
 */

#ifndef FAULT_REDIS_H
#define FAULT_REDIS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "fault_count.h"

static fault_count_t fault_redis_count;
static pthread_mutex_t fault_redis_lock = PTHREAD_MUTEX_INITIALIZER;

int __real_redisGetReply(redisContext *c, void **reply);
int __wrap_redisGetReply(redisContext *c, void **reply);

/* An error reply as hiredis makes one (freeReplyObject frees it). */
static redisReply *
fault_redis_error_reply(void)
{
    static const char text[] = "ERR injected by the test";
    redisReply *r = calloc(1, sizeof(*r));

    if (r != NULL) {
        r->type = REDIS_REPLY_ERROR;
        r->str = strdup(text);
        r->len = sizeof(text) - 1;
        if (r->str == NULL) {
            free(r);
            r = NULL;
        }
    }
    return r;
}

int
__wrap_redisGetReply(redisContext *c, void **reply)
{
    unsigned long target;
    bool hit;
    int rc;

    pthread_mutex_lock(&fault_redis_lock);
    hit = fault_count_hit(&fault_redis_count);
    target = fault_redis_count.target;
    pthread_mutex_unlock(&fault_redis_lock);
    if (hit && target % 2 == 1) {
        *reply = NULL;
        return REDIS_ERR;
    }
    rc = __real_redisGetReply(c, reply);
    if (hit && rc == REDIS_OK && *reply != NULL) {
        freeReplyObject(*reply);
        *reply = fault_redis_error_reply();
    }
    return rc;
}

/* Fail the Nth reply read, of any thread, from now on (N >= 1). */
static inline void
fault_redis_arm(unsigned long n)
{
    pthread_mutex_lock(&fault_redis_lock);
    fault_count_arm(&fault_redis_count, n);
    pthread_mutex_unlock(&fault_redis_lock);
}

/* Stop counting; whether a reply was failed since the arming. */
static inline bool
fault_redis_disarm(void)
{
    bool fired;

    pthread_mutex_lock(&fault_redis_lock);
    fired = fault_count_disarm(&fault_redis_count);
    pthread_mutex_unlock(&fault_redis_lock);
    return fired;
}

#endif /* FAULT_REDIS_H */
