/* Plain TCP baseline and backend for docs/bench/serve/compare.py: one process, one thread,
 * epoll, non-blocking sockets. `tcp_echo echo PORT` sends back what each read returns;
 * `tcp_echo sink PORT` reads and discards, and at each end of stream prints
 * "received <bytes> <CLOCK_MONOTONIC seconds>" on stdout. PORT 0 picks a free port; the
 * bound one is printed as "listening on 127.0.0.1:<port>". An idle connection holds no
 * buffer: only a slot of the per-descriptor table (24 bytes). A partial write keeps the
 * rest in a buffer of its own and stops reading that connection until it is sent. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn { char *pend; unsigned len, off; unsigned long long bytes; };
static struct conn *conns;
static size_t nconns;
static int ep, sink;
static char buf[256 * 1024];

static struct conn *slot(int fd) {
    if ((size_t)fd >= nconns) {
        size_t n = nconns ? nconns : 1024;
        while (n <= (size_t)fd) n *= 2;
        conns = realloc(conns, n * sizeof *conns);
        if (!conns) { perror("realloc"); exit(1); }
        memset(conns + nconns, 0, (n - nconns) * sizeof *conns);
        nconns = n;
    }
    return &conns[fd];
}

static void drop(int fd) {
    struct conn *c = slot(fd);
    if (sink) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        printf("received %llu %.6f\n", c->bytes, t.tv_sec + t.tv_nsec / 1e9);
        fflush(stdout);
    }
    free(c->pend);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

static void watch(int fd, unsigned events, int op) {
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(ep, op, fd, &ev) < 0) perror("epoll_ctl");
}

/* Sends what is pending; 1 when all of it went, 0 when the socket is full, -1 on error. */
static int flush_pending(int fd, struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = send(fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN ? 0 : (errno == EINTR ? flush_pending(fd, c) : -1);
        c->off += n;
    }
    free(c->pend); c->pend = NULL; c->len = c->off = 0;
    return 1;
}

static void readable(int fd) {
    struct conn *c = slot(fd);
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) { drop(fd); return; }
        if (n < 0) { if (errno == EAGAIN) return; if (errno == EINTR) continue; drop(fd); return; }
        c->bytes += n;
        if (sink) continue;
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) { drop(fd); return; }
        if (w < 0) w = 0;
        if (w < n) { /* keep the rest; wait for room before reading more */
            c->pend = malloc(n - w);
            if (!c->pend) { drop(fd); return; }
            memcpy(c->pend, buf + w, n - w); c->len = n - w; c->off = 0;
            watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
            return;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "echo") && strcmp(argv[1], "sink"))) {
        fprintf(stderr, "usage: %s echo|sink PORT\n", argv[0]);
        return 2;
    }
    sink = !strcmp(argv[1], "sink");
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) { perror("listen"); return 1; }
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    watch(ls, EPOLLIN, EPOLL_CTL_ADD);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
                    slot(c);
                    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
                }
                if (errno == EMFILE || errno == ENFILE) { perror("accept"); usleep(10000); }
            } else if (evs[i].events & EPOLLOUT) {
                int r = flush_pending(fd, slot(fd));
                if (r < 0) drop(fd);
                else if (r > 0) watch(fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
            } else {
                readable(fd);
            }
        }
    }
}
