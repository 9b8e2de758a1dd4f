/* http.h - the sandbox's HTTP server (http.c). */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <jansson.h>

/* Listens on bind:port with a pool of threads (poll() each). 0, or -1 when it cannot. */
int sb_http_start(const char *bind, int port, int threads);
/* Answers every delayed request at once, then stops the server. */
void sb_http_stop(void);
/* Counters since start: requests, injected errors, timeouts and declines, delayed answers. */
json_t *sb_http_stats(void);

#endif
