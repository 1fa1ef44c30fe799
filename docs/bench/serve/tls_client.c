/* Client for docs/bench/serve/compare.py, in C on OpenSSL so that the client costs the
 * servers under test as little CPU as possible (Python's ssl costs about 1.8 ms per handshake).
 *
 *   tls_client hold PORT N MSG CAFILE|-   open N connections one after another (handshake,
 *       MSG bytes echoed once), print "ready <ok> <errors> <seconds>", wait for a line on
 *       stdin, then close them all cleanly and print "closed <ok> <errors> <seconds>".
 *   tls_client loop PORT SECONDS MSG CAFILE|-   for SECONDS: connect, handshake, echo MSG
 *       bytes, close cleanly; print "done <connections> <errors> <seconds> <version> <suite>
 *       <group>".
 *
 * CAFILE "-" means plain TCP (no TLS). With TLS: TLS 1.3 only, server name "localhost" sent
 * and verified against CAFILE, a fresh SSL object and no session cache per connection (full
 * handshakes, never resumption). A clean close is close_notify each way (SSL_shutdown, then
 * read until the server's close_notify), or with plain TCP a half-close and reading to the
 * end. Every socket has 10 s send and receive timeouts, so no wait is unbounded. The first
 * error of each kind is printed on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx; /* NULL: plain TCP */
static int port;
static char msg[65536], back[65536];
static int errors_shown;

struct conn { int fd; SSL *ssl; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(const char *what) {
    if (errors_shown++ < 5) {
        unsigned long e = ERR_get_error();
        char b[256] = "";
        if (e) ERR_error_string_n(e, b, sizeof b);
        fprintf(stderr, "tls_client: %s failed: %s %s\n", what, b, e ? "" : strerror(errno));
    }
    ERR_clear_error();
}

static void release(struct conn *c) {
    if (c->ssl) SSL_free(c->ssl);
    if (c->fd >= 0) close(c->fd);
    c->ssl = NULL; c->fd = -1;
}

static int xwrite(struct conn *c, const char *p, int n) {
    while (n > 0) {
        int w = c->ssl ? SSL_write(c->ssl, p, n) : (int)send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w; n -= w;
    }
    return 0;
}

static int xread(struct conn *c, char *p, int n) {
    while (n > 0) {
        int r = c->ssl ? SSL_read(c->ssl, p, n) : (int)recv(c->fd, p, n, 0);
        if (r <= 0) return -1;
        p += r; n -= r;
    }
    return 0;
}

/* Connects, handshakes and echoes len bytes once; 0 on success. */
static int open_conn(struct conn *c, int len) {
    c->ssl = NULL;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) { fail("socket"); return -1; }
    struct timeval tv = { .tv_sec = 10 };
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) { fail("connect"); release(c); return -1; }
    if (ctx) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        SSL_set1_host(c->ssl, "localhost");
        if (SSL_connect(c->ssl) != 1) { fail("handshake"); release(c); return -1; }
    }
    if (len && (xwrite(c, msg, len) || xread(c, back, len) || memcmp(msg, back, len))) {
        fail("echo"); release(c); return -1;
    }
    return 0;
}

/* Sends our close (close_notify or FIN). */
static int close_send(struct conn *c) {
    if (c->ssl) return SSL_shutdown(c->ssl) < 0 ? -1 : 0;
    return shutdown(c->fd, SHUT_WR);
}

/* Waits for the server's close (close_notify or FIN), then frees; 0 when it was clean. */
static int close_wait(struct conn *c) {
    int ok = -1;
    if (c->ssl) {
        for (;;) { /* reads until the server's close_notify */
            int r = SSL_read(c->ssl, back, sizeof back);
            if (r > 0) continue;
            if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) ok = 0;
            break;
        }
    } else {
        for (;;) {
            ssize_t r = recv(c->fd, back, sizeof back, 0);
            if (r == 0) { ok = 0; break; }
            if (r < 0) break;
        }
    }
    if (ok) fail("clean close");
    release(c);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 6 || (strcmp(argv[1], "hold") && strcmp(argv[1], "loop"))) {
        fprintf(stderr, "usage: %s hold PORT N MSG CAFILE|- | loop PORT SECONDS MSG CAFILE|-\n", argv[0]);
        return 2;
    }
    port = atoi(argv[2]);
    double amount = atof(argv[3]);
    int len = atoi(argv[4]);
    if (len > (int)sizeof msg) len = sizeof msg;
    for (int i = 0; i < len; i++) msg[i] = 'a' + i % 26;
    if (strcmp(argv[5], "-")) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
        if (SSL_CTX_load_verify_locations(ctx, argv[5], NULL) != 1) { fail("loading the CA"); return 1; }
    }
    double t0 = now();
    if (!strcmp(argv[1], "loop")) {
        long done = 0, errs = 0;
        char version[32] = "-", suite[64] = "-", group[32] = "-";
        while (now() - t0 < amount) {
            struct conn c;
            if (open_conn(&c, len)) { errs++; usleep(1000); continue; }
            if (c.ssl && !done) {
                snprintf(version, sizeof version, "%s", SSL_get_version(c.ssl));
                snprintf(suite, sizeof suite, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(c.ssl)));
                int nid = SSL_get_negotiated_group(c.ssl);
                snprintf(group, sizeof group, "%s", nid ? OBJ_nid2sn(nid & ~TLSEXT_nid_unknown) : "-");
            }
            if (close_send(&c) || close_wait(&c)) errs++; else done++;
        }
        printf("done %ld %ld %.6f %s %s %s\n", done, errs, now() - t0, version, suite, group);
        return 0;
    }
    int n = (int)amount, ok = 0, errs = 0;
    struct conn *cs = calloc(n, sizeof *cs);
    for (int i = 0; i < n; i++) {
        if (open_conn(&cs[i], len)) { errs++; cs[i].fd = -1; } else ok++;
    }
    printf("ready %d %d %.6f\n", ok, errs, now() - t0);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) { /* the harness went away: just exit */ }
    double t1 = now();
    int closed = 0, cerrs = 0;
    for (int i = 0; i < n; i++) if (cs[i].fd >= 0 && close_send(&cs[i])) cerrs++;
    for (int i = 0; i < n; i++) if (cs[i].fd >= 0) { if (close_wait(&cs[i])) cerrs++; else closed++; }
    printf("closed %d %d %.6f\n", closed, cerrs, now() - t1);
    return 0;
}
