/*
 * The admin HTTP API, /healthz and /metrics, served from the master's
 * loop: hg_api.c.
 *
 * Its life is in two steps around the master's: hg_api_close before
 * hg_master_destroy (the socket, libmicrohttpd, the loop's event and
 * timer go, while the loop is alive), hg_api_free after it (what still
 * waited for the master's reply, which the master gives as it goes).
 */

#ifndef HG_API_H
#define HG_API_H

#include "hg_core.h"

#include <sys/socket.h>

#include "hg_event.h"
#include "hg_master.h"

typedef struct hg_api_s hg_api_t;

/* Listen on the configuration's api.listen and serve from LOOP (the
 * master's). NULL with the reason in err. */
hg_api_t *hg_api_open(hg_master_t *master, hg_event_loop_t *loop, char *err,
                      size_t errlen);
void hg_api_close(hg_api_t *api);
/* api.tls's files can be read and look like PEM (`hourglass -t`); the
 * pair itself is checked when the server starts. */
int hg_api_check_tls(const hg_conf_t *conf, char *err, size_t errlen);
/* Whether the routes served and api/openapi.json (built in) say the same:
 * every route described with its method and minimum role, and nothing
 * described that is not served; HG_ERROR with the first difference. */
int hg_api_check_description(char *err, size_t errlen);
/* The same for an OpenAPI document TEXT (tests hold bad ones to it). */
int hg_api_check_description_of(const char *text, char *err,
                                size_t errlen);
/* LISTEN ("HOST:PORT", "[V6]:PORT") as a bound, listening, non-blocking
 * socket; -1 with the reason in err. */
int hg_api_listen(const char *listen, char *err, size_t errlen);
/* Whether ADDR is in CIDR ("10.0.0.0/8", "::1/128"; no prefix: the host
 * alone); a v4-mapped IPv6 address is in an IPv4 network. */
bool hg_api_cidr_has(const char *cidr, const struct sockaddr *addr);
void hg_api_free(hg_api_t *api);

#endif /* HG_API_H */
