/* httpd.c - see httpd.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "crypto.h"
#include "httpd.h"
#include "banned.h"

struct ks_httpd {
    struct MHD_Daemon *d;
    struct ks_metrics *metrics;
    ks_health_fn health;
    void *ctx;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_len, void **state)
{
    struct ks_httpd *h = cls;
    char *body;
    size_t len = 0;

    (void)version;
    (void)upload;
    (void)upload_len;
    (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        body = strdup("method not allowed\n");
        return body ? reply(c, 405, body, strlen(body), "text/plain") : MHD_NO;
    }
    if (strcmp(url, "/metrics") == 0) {
        body = ks_metrics_render(h->metrics, &len);
        return body ? reply(c, 200, body, len, "text/plain; version=0.0.4") : MHD_NO;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0) {
        int ok;
        if (!(body = calloc(1, 512)))
            return MHD_NO;
        ok = h->health ? h->health(h->ctx, url[1] == 'r', body, 512) : 1;
        if (!*body)
            snprintf(body, 512, "{\"status\":\"%s\"}", ok ? "ok" : "unavailable");
        return reply(c, ok ? 200 : 503, body, strlen(body), "application/json");
    }
    body = strdup("not found\n");
    return body ? reply(c, 404, body, strlen(body), "text/plain") : MHD_NO;
}

size_t ks_httpd_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *w = s;

    (void)cls;
    (void)c;
    for (const char *r = s; *r;) {
        uint8_t byte;
        if (r[0] != '%' || !r[1] || !r[2] || ks_hex_decode(r + 1, 2, &byte, 1) != 1) {
            *w++ = *r++; /* not an escape, or a malformed one: as it came */
        } else if (byte) {
            *w++ = (char)byte;
            r += 3;
        } else {
            *w++ = (char)0xc0; /* %00: two bytes for three, see httpd.h */
            *w++ = (char)0x80;
            r += 3;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

struct ks_httpd *ks_httpd_start(int port, struct ks_metrics *metrics, ks_health_fn health,
                                void *ctx, struct ks_err *err)
{
    struct ks_httpd *h = calloc(1, sizeof(*h));

    if (!h) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    h->metrics = metrics;
    h->health = health;
    h->ctx = ctx;
    h->d = MHD_start_daemon(KS_HTTPD_POLLING | MHD_USE_ERROR_LOG,
                            (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                            MHD_OPTION_UNESCAPE_CALLBACK, ks_httpd_unescape, NULL, MHD_OPTION_END);
    if (!h->d) {
        ks_err_set(err, KS_EIO, 0, "http.port", "could not listen on port %d", port);
        free(h);
        return NULL;
    }
    return h;
}

void ks_httpd_stop(struct ks_httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
