/* Test helpers for ioring: an engine with a test handler, and a small blocking HTTP client. */
#ifndef CERTPROV_TESTS_IORING_HELPERS_H
#define CERTPROV_TESTS_IORING_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "ioring/ioring.h"

#define TH_HELD_MAX 64
#define TH_THREADS_MAX 64

/* Routes of the test handler:
 *   /echo          200, body echoed, X-Method: <method>
 *   /delay?ms=N    answered from another thread after N ms: "delayed N"
 *   /hold          kept until th_release_held
 *   /client        the client address as text
 *   /hdr           the value of the X-Test header
 *   /big           a response over max_response_bytes (the client gets 500)
 *   /shared?kb=N   N KiB sent from a shared body (ioring_request_respond_body), a pattern
 *   anything else  404 */
struct th {
    struct ioring_engine *eng;
    pthread_mutex_t mu;
    struct ioring_request *held[TH_HELD_MAX];
    int num_held;
    pthread_t threads[TH_THREADS_MAX];
    int num_threads;
    atomic_int turn_ends;
    atomic_int turn_more_left; /* turn_end says "work left" this many more times */
    atomic_int handled;
    atomic_int bodies_freed; /* shared bodies of /shared the engine gave back */
};

extern struct th th;

void th_options(struct ioring_options *o);
void th_start(const struct ioring_options *o);
void th_stop(void);
/* th_start_default starts the engine with th_options' defaults (a suite's .init). */
void th_start_default(void);
/* th_sleep_ms sleeps `ms` milliseconds. */
void th_sleep_ms(unsigned ms);
int th_num_held(void);
void th_release_held(void);
uint16_t th_port(void);

struct client {
    int fd;
    size_t len;
    char buf[1 << 17];
};

struct response {
    int status;
    char headers[4096];
    char body[1 << 16];
    size_t body_len;
};

void client_open(struct client *c, int timeout_ms);
/* client_open_from connects from the local IPv4 address `src` (any of 127/8 reaches lo). */
void client_open_from(struct client *c, int timeout_ms, const char *src);
void client_close(struct client *c);
void client_send(struct client *c, const void *data, size_t len);
void client_send_str(struct client *c, const char *s);
/* client_read reads one response. Returns 0, or -1 on EOF or timeout. */
int client_read(struct client *c, struct response *r);
/* client_read_raw reads whatever arrives until `n` bytes or timeout/EOF; returns bytes read. */
size_t client_read_raw(struct client *c, char *out, size_t n);
/* client_eof is true if the server closed the connection (EOF or reset) within the timeout. */
bool client_eof(struct client *c);
/* header_has is true if the headers contain "name: value" (case-insensitive name). */
bool header_has(const struct response *r, const char *name, const char *value);
/* run_cmd runs a shell command and captures stdout. Returns the exit status. */
int run_cmd(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
