/* httpd.h - the daemon's small HTTP server: GET /metrics, /healthz, /readyz.
 *
 * libmicrohttpd with its own polling thread. /metrics renders the registry; /healthz and
 * /readyz call the daemon's check, which returns 1 (200) or 0 (503) and may write a short
 * JSON body. The check runs on the server thread: it must only read shared state. */
#ifndef KS_HTTPD_H
#define KS_HTTPD_H

#include <stddef.h>

#include <microhttpd.h>

#include "err.h"
#include "metrics.h"

/* How every libmicrohttpd server of Kasir waits for its sockets (the ingress's API and admin
 * listeners, the PSP sandbox, this one): poll() in its internal thread(s), never epoll, under
 * which libmicrohttpd 0.9.75 left some requests of a burst unread in their sockets for good
 * (tests 233, 333). poll() walks the thread's connections at each wake-up: its cost is in
 * docs/ARCHITECTURE.md (Ingress). */
#define KS_HTTPD_POLLING MHD_USE_POLL_INTERNAL_THREAD

/* How every libmicrohttpd server of Kasir decodes %HH in a path and in query arguments
 * (MHD_OPTION_UNESCAPE_CALLBACK, cls NULL): as libmicrohttpd's own decoder does, but %00
 * becomes C0 80, the overlong form of NUL. The handlers read the path and the arguments as
 * C strings, where a decoded NUL ended them early: "/v1/payments/pay_x%00y" answered for
 * pay_x. C0 80 ends nothing, is in no UTF-8 text (so in no id PostgreSQL or jansson holds,
 * and %00 never reads as an id that holds the three characters "%00"), and fails every
 * UTF-8 check: the ingress refuses a path or argument that is not UTF-8 before its handler
 * (404, or 400 naming the argument: producers/ingress/README.md), the sandbox a PSP path
 * (400). */
size_t ks_httpd_unescape(void *cls, struct MHD_Connection *c, char *s);

/* ready = 0 for /healthz (alive), 1 for /readyz (able to do work). */
typedef int (*ks_health_fn)(void *ctx, int ready, char *body, size_t len);

struct ks_httpd; /* opaque */

/* Listens on port (all interfaces). KS_EIO when the port cannot be bound. */
struct ks_httpd *ks_httpd_start(int port, struct ks_metrics *metrics, ks_health_fn health,
                                void *ctx, struct ks_err *err);
void ks_httpd_stop(struct ks_httpd *h); /* NULL ok */

#endif
