/* request.c - a request's accessors and its answer: its headers and client address, the
 * response it will send (JSON, problem+json, an answer stored by the idempotency record),
 * and the suspend/resume of its connection. Every file that answers a request calls these;
 * they call nothing of the ingress's but the problem catalogue, so the server (http.c), the
 * handlers, the accept path and the readers never call each other in a circle. The
 * response is sent by http.c once the request's state says S_DONE. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/crypto.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

const char *ing_header(struct ing_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int ing_media_is(struct ing_req *r, const char *want, struct ing_problem *p)
{
    const char *ct = ing_header(r, "Content-Type");
    size_t n = strlen(want);

    if (ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
        return 1;
    ing_problem(p, "unsupported_media_type", "Content-Type", "send Content-Type: %s", want);
    return 0;
}

_Atomic long ing_live; /* requests handed to a handler or suspended, not yet completed */
_Atomic long ing_inflight; /* suspended requests */

void ing_req_count_live(struct ing_req *r)
{
    if (!r->counted) {
        r->counted = 1;
        ing_live++;
    }
}

static void set_response(struct ing_req *r, int status, char *body, size_t len,
                         const char *ctype)
{
    free(r->resp);
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    r->ctype = ctype;
}

int ing_respond_stored(struct ing_req *r, json_t *res)
{
    const char *b64 = json_string_value(json_object_get(res, "body"));
    size_t cap = b64 ? strlen(b64) : 0;
    char *body = b64 ? malloc(cap + 1) : NULL;
    long n = body ? ks_b64_decode(b64, cap, (uint8_t *)body, cap + 1) : -1;

    if (n < 0) {
        free(body);
        return -1;
    }
    set_response(r, (int)json_integer_value(json_object_get(res, "status")), body, (size_t)n,
                 "application/json");
    return 0;
}

void ing_respond_text(struct ing_req *r, int status, char *json, size_t len)
{
    if (!json) {
        struct ing_problem p;
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p);
        return;
    }
    set_response(r, status, json, len, "application/json");
    atomic_store(&r->state, S_DONE);
}

void ing_respond_json(struct ing_req *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    ing_respond_text(r, status, s, s ? strlen(s) : 0);
}

char *ing_problem_body(const struct ing_req *r, const struct ing_problem *p, json_t *extra,
                       size_t *len)
{
    json_t *o = json_object();
    const char *title = "Error";
    char type[128];
    char *s;
    size_t i;

    for (i = 0; i < ing_codes_count; i++)
        if (strcmp(ing_codes[i].code, p->code) == 0)
            title = ing_codes[i].title;
    snprintf(type, sizeof(type), "https://kasir.dev/problems/%s", p->code);
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(title));
    json_object_set_new(o, "status", json_integer(p->status));
    json_object_set_new(o, "detail", json_string(p->detail));
    json_object_set_new(o, "code", json_string(p->code));
    if (p->field[0])
        json_object_set_new(o, "field", json_string(p->field));
    json_object_set_new(o, "trace_id", json_string(r->trace_id));
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

void ing_respond_problem_x(struct ing_req *r, const struct ing_problem *p, json_t *extra)
{
    size_t len;
    char *s = ing_problem_body(r, p, extra, &len);

    set_response(r, p->status, s, len, "application/problem+json");
    r->code = p->code;
    if (p->status == 503 && !r->retry_after)
        r->retry_after = 2;
    if (p->status == 409 && !r->retry_after && strcmp(p->code, "request_in_progress") == 0)
        r->retry_after = 1;
    atomic_store(&r->state, S_DONE);
}

void ing_respond_problem(struct ing_req *r, const struct ing_problem *p)
{
    ing_respond_problem_x(r, p, NULL);
}

void ing_suspend(struct ing_req *r)
{
    ing_req_count_live(r);
    ing_inflight++;
    atomic_store(&r->state, S_SUSPENDED);
    r->sent = -1; /* marker for on_request: the handler suspended */
    MHD_suspend_connection(r->conn);
}

void ing_req_done(struct ing_req *r)
{
    /* the response is complete before the state says so; MHD then calls on_request. r
     * may be gone as soon as the connection is resumed: nothing of it is touched after */
    struct MHD_Connection *c = r->conn;

    atomic_store(&r->state, S_DONE);
    ing_inflight--;
    MHD_resume_connection(c);
}

void ing_auth_resume(struct ing_req *r)
{
    struct MHD_Connection *c = r->conn;

    r->sent = 0;
    atomic_store(&r->state, S_NEW);
    ing_inflight--;
    MHD_resume_connection(c);
}

const char *ing_client_ip(struct ing_req *r)
{
    if (!r->ip[0]) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        if (sa && sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->ip, sizeof(r->ip));
        else if (sa && sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->ip,
                      sizeof(r->ip));
        if (!r->ip[0])
            snprintf(r->ip, sizeof(r->ip), "?");
    }
    return r->ip;
}
