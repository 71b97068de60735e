/*
 * hg_api_access.c: who may use the admin API: the `allow` list (IPv4 and
 * IPv6 networks), checked before anything else, then bearer tokens with
 * their roles.
 *
 * Tokens are compared in a time that does not depend on where they
 * differ, and every configured token is compared, whichever matches.
 * It never logs a token.
 */

#include "hg_core.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "hg_api_http.h"

const char *const hg_api_role_names[HG_ROLE_ADMIN + 1] = {
    "none", "read", "execute", "write", "admin"
};

/* Whether ADDR is in CIDR ("10.0.0.0/8", "::1/128"; no prefix: the host). */
bool
hg_api_cidr_has(const char *cidr, const struct sockaddr *addr)
{
    unsigned char net[16], host[16];
    char text[64];
    const char *slash = strchr(cidr, '/');
    size_t len = slash != NULL ? (size_t) (slash - cidr) : strlen(cidr);
    int family, bits, width, i;

    if (len >= sizeof(text)) {
        return false;
    }
    memcpy(text, cidr, len);
    text[len] = '\0';
    family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
    width = family == AF_INET6 ? 128 : 32;
    bits = slash != NULL ? (int) strtol(slash + 1, NULL, 10) : width;
    if (inet_pton(family, text, net) != 1 || bits < 0 || bits > width) {
        return false;
    }
    if (addr->sa_family == AF_INET && family == AF_INET) {
        memcpy(host, &((const struct sockaddr_in *) addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6 && family == AF_INET6) {
        memcpy(host, &((const struct sockaddr_in6 *) addr)->sin6_addr, 16);
    } else if (addr->sa_family == AF_INET6 && family == AF_INET
               && IN6_IS_ADDR_V4MAPPED(
                   &((const struct sockaddr_in6 *) addr)->sin6_addr))
    {
        memcpy(host, ((const struct sockaddr_in6 *) addr)->sin6_addr.s6_addr
                     + 12, 4);
    } else {
        return false;
    }
    for (i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff
                                       : (unsigned char) (0xff << (8 - bits));
        if ((net[i] & mask) != (host[i] & mask)) {
            return false;
        }
    }
    return true;
}

bool
hg_api_allowed(const hg_conf_t *conf, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info;
    size_t i;

    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL) {
        return false;
    }
    for (i = 0; i < conf->api.nallow; i++) {
        if (hg_api_cidr_has(conf->api.allow[i], info->client_addr)) {
            return true;
        }
    }
    return false;
}

/* Equal, in a time that depends on the lengths only, not on where the two
 * first differ. */
static bool
hg_api_same(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t i;

    for (i = 0; i < alen && i < blen; i++) {
        diff |= (unsigned char) (a[i] ^ b[i]);
    }
    return diff == 0;
}

static hg_api_role_t
hg_api_role_of(const char *name)
{
    size_t i;

    for (i = 1; i < HG_NELEMS(hg_api_role_names); i++) {
        if (strcmp(hg_api_role_names[i], name) == 0) {
            return (hg_api_role_t) i;
        }
    }
    return HG_ROLE_NONE;
}

/* The role of the request's bearer token (its name into REQ), or NONE:
 * every token is compared, whichever matches. */
hg_api_role_t
hg_api_token_role(const hg_conf_t *conf, struct MHD_Connection *conn,
                  hg_api_req_t *req)
{
    const char *auth, *given;
    hg_api_role_t role = HG_ROLE_NONE;
    size_t i, len;

    auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return HG_ROLE_NONE;
    }
    given = auth + 7;
    len = strlen(given);
    for (i = 0; i < conf->api.ntokens; i++) {
        const hg_api_token_t *t = &conf->api.tokens[i];
        if (hg_api_same(given, len, t->token, strlen(t->token))) {
            role = hg_api_role_of(t->role);
            snprintf(req->token_name, sizeof(req->token_name), "%s",
                     t->name);
        }
    }
    return role;
}
