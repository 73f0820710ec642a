/*
 * A small HTTP load client for bench/serve_load.sh (wrk is not packaged
 * on every machine we run on): N threads, each with one keep-alive
 * connection, POST the same body in a loop for a fixed time and record
 * each request's latency. Prints throughput, latency percentiles and
 * errors. Not a general HTTP client: it expects Content-Length answers,
 * which is what `nominal serve` sends.
 *
 *   serve_load HOST PORT PATH BODY_FILE CONTENT_TYPE THREADS SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct load_config {
    struct sockaddr_in addr;
    char *head;        /* request line and headers */
    size_t head_len;
    char *body;
    size_t body_len;
    double stop_at;    /* monotonic seconds */
} load_config;

typedef struct load_thread {
    const load_config *cfg;
    pthread_t tid;
    double *lat_ms;    /* successful requests */
    size_t n, cap;
    long errors, reconnects;
    long by_status[600];
} load_thread;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int connect_to(const load_config *c)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read one response; returns its status, or -1 if the connection broke.
 * *keep is 0 when the server will close the connection. */
static int read_response(int fd, int *keep)
{
    char buf[65536];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == sizeof buf - 1)
            return -1; /* headers too long */
        ssize_t k = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        have += (size_t)k;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    long long length = -1;
    *keep = 1;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            length = atoll(line + 17);
        else if (strncasecmp(line + 2, "Connection: close", 17) == 0)
            *keep = 0;
    }
    if (length < 0)
        return -1;
    long long left = length - (long long)(have - (size_t)(end + 4 - buf));
    while (left > 0) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        left -= k;
    }
    return status;
}

static void *run(void *arg)
{
    load_thread *t = arg;
    const load_config *c = t->cfg;
    int fd = -1;
    while (now_s() < c->stop_at) {
        if (fd < 0 && (fd = connect_to(c)) < 0) {
            t->errors++;
            usleep(100000);
            continue;
        }
        double t0 = now_s();
        int keep = 0;
        int status = send_all(fd, c->head, c->head_len) || send_all(fd, c->body, c->body_len)
                         ? -1
                         : read_response(fd, &keep);
        double ms = (now_s() - t0) * 1e3;
        if (status == 200) {
            if (t->n == t->cap) {
                size_t cap = t->cap ? 2 * t->cap : 1024;
                double *p = realloc(t->lat_ms, cap * sizeof *p);
                if (!p)
                    break;
                t->lat_ms = p;
                t->cap = cap;
            }
            t->lat_ms[t->n++] = ms;
        } else {
            t->errors++;
        }
        if (status > 0 && status < 600)
            t->by_status[status]++;
        if (status < 0 || !keep) {
            close(fd);
            fd = -1;
            t->reconnects++;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        rewind(f);
        buf = size > 0 ? malloc((size_t)size) : NULL;
        if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        *n = buf ? (size_t)size : 0;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: serve_load HOST PORT PATH BODY_FILE CONTENT_TYPE THREADS SECONDS\n");
        return 2;
    }
    load_config c;
    memset(&c, 0, sizeof c);
    c.addr.sin_family = AF_INET;
    c.addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &c.addr.sin_addr) != 1) {
        fprintf(stderr, "serve_load: %s: not an IPv4 address\n", argv[1]);
        return 2;
    }
    if (!(c.body = read_file(argv[4], &c.body_len))) {
        fprintf(stderr, "serve_load: %s: cannot read\n", argv[4]);
        return 2;
    }
    int n_threads = atoi(argv[6]);
    double seconds = atof(argv[7]);
    if (n_threads < 1 || n_threads > 256 || !(seconds > 0)) {
        fprintf(stderr, "serve_load: bad THREADS or SECONDS\n");
        return 2;
    }
    char head[1024];
    int len = snprintf(head, sizeof head,
                       "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
                       "Content-Length: %zu\r\n\r\n", argv[3], argv[1], argv[2], argv[5],
                       c.body_len);
    c.head = head;
    c.head_len = (size_t)len;
    load_thread *t = calloc((size_t)n_threads, sizeof *t);
    if (!t)
        return 1;
    double start = now_s();
    c.stop_at = start + seconds;
    for (int i = 0; i < n_threads; i++) {
        t[i].cfg = &c;
        pthread_create(&t[i].tid, NULL, run, &t[i]);
    }
    size_t total = 0;
    long errors = 0, reconnects = 0, by_status[600] = {0};
    for (int i = 0; i < n_threads; i++) {
        pthread_join(t[i].tid, NULL);
        total += t[i].n;
        errors += t[i].errors;
        reconnects += t[i].reconnects;
        for (int s = 0; s < 600; s++)
            by_status[s] += t[i].by_status[s];
    }
    double elapsed = now_s() - start;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < n_threads; i++) {
        if (all && t[i].n)
            memcpy(all + k, t[i].lat_ms, t[i].n * sizeof *all);
        k += t[i].n;
        free(t[i].lat_ms);
    }
    if (!all)
        return 1;
    qsort(all, total, sizeof *all, cmp_double);
#define PCT(p) (total ? all[(size_t)((p) / 100.0 * (double)(total - 1) + 0.5)] : 0.0)
    printf("requests %zu ok, %ld errors, %ld reconnects in %.1f s, %d connections\n", total,
           errors, reconnects, elapsed, n_threads);
    printf("throughput %.2f images/s\n", (double)total / elapsed);
    printf("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", PCT(50), PCT(90), PCT(99),
           total ? all[total - 1] : 0.0);
    for (int s = 0; s < 600; s++)
        if (by_status[s] && s != 200)
            printf("status %d: %ld\n", s, by_status[s]);
    free(all);
    free(t);
    free(c.body);
    return errors ? 1 : 0;
}
