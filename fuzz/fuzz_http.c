/*
 * libFuzzer target: what `nominal serve` does with untrusted request bytes.
 *
 * The real server (serve_start: civetweb, routing, the worker pool) is
 * started once on a loopback port with two tiny models ("tiny", and
 * "tiny_cal", calibrated) and a demo folder; each input is sent as the raw
 * bytes of one connection (any number of pipelined requests), the sending
 * side is then closed, and the answers are read to the end. So every part
 * of our request handling runs as in production: routing and the model
 * name in the path, the demo file name check, ?map=, Content-Type,
 * Content-Length / chunked bodies and their limits, Expect, the image
 * decoders and a score, the JSON answers and the error format. civetweb
 * itself is a system library (not instrumented): its own parsing is not
 * the target, only what reaches our handler.
 *
 * Besides crashes and sanitizer reports, a broken promise aborts:
 *   - no answer within ANSWER_TIMEOUT_S (a hang: bad input must be answered
 *     or the connection dropped, quickly);
 *   - a 5xx from our handler (every request here is served alone, so
 *     503 "busy" cannot happen: a 5xx means bad input taken for a bug);
 *   - one of our error answers that is not a JSON object {"error": {"kind",
 *     "message"}}, or a JSON answer that is not valid UTF-8;
 *   - a success answer carrying the bytes of a file outside the demo
 *     folder (path traversal).
 * Our answers are told from civetweb's own by the X-Nominal-Worker header.
 *
 * The model files come from NOMINAL_FUZZ_TEMPLATE and
 * NOMINAL_FUZZ_CALIBRATED (fuzz/run.sh sets them to the seeds' copies).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "serve/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ANSWER_TIMEOUT_S 5
/* What is kept of the answers to check them (an input of 64 KiB of
 * pipelined GET / gets megabytes back: read, but only this much checked). */
#define MAX_KEPT (4u << 20)
#define WORKER_NAME "fuzz"
/* Content of a file next to the demo folder: never to be served. */
static const char SECRET[] = "NOMINAL-FUZZ-SECRET-0b5e7f";

static serve *server;
static int port;
static char dir[64];  /* temporary: models (as links), demo/, the secret */

/* ---------------------------------------------------------------- setup */

/* civetweb (Debian's build) gives its request threads 100 KiB stacks.
 * That is plenty for nominal's handlers as built for production (every
 * seed here is answered with 24 KiB stacks), but ASan's redzones make
 * frames several times larger and overflow it in glibc's printf. This
 * definition takes precedence over libc's for civetweb's call: stacks
 * asked for are at least STACK_UNDER_ASAN. */
#define STACK_UNDER_ASAN ((size_t)1 << 20)
int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    static int (*libc_version)(pthread_attr_t *, size_t);
    if (!libc_version)
        libc_version = (int (*)(pthread_attr_t *, size_t))dlsym(
            RTLD_NEXT, "pthread_attr_setstacksize");
    if (!libc_version)
        abort();
    return libc_version(attr, size < STACK_UNDER_ASAN ? STACK_UNDER_ASAN : size);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    exit(1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write into the temporary folder");
}

static void remove_dir(void)
{
    static const char *const names[] = {"demo/ok.png", "demo/ok.jpg", "demo/folder.png",
                                        "demo", "secret.png", "tiny.nmm", "tiny_cal.nmm"};
    char path[128];
    if (server)
        serve_stop(server);
    server = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
    rmdir(dir);
}

/* Served under the names the seeds use, whatever the files are called. */
static void link_model(const char *env, const char *name)
{
    const char *target = getenv(env);
    char path[128], *abs = target ? realpath(target, NULL) : NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!abs || symlink(abs, path) != 0) {
        fprintf(stderr, "fuzz_http: set %s to a small model file (make fuzz makes one)\n",
                env);
        exit(1);
    }
    free(abs);
}

static void make_files(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/nominal-fuzz-http.XXXXXX",
             tmp && strlen(tmp) < 30 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("cannot make a temporary folder");
    atexit(remove_dir);
    char path[128];
    snprintf(path, sizeof path, "%s/demo", dir);
    if (mkdir(path, 0700) != 0)
        die("cannot make the demo folder");
    snprintf(path, sizeof path, "%s/demo/folder.png", dir);
    if (mkdir(path, 0700) != 0)
        die("cannot make the demo folder");
    snprintf(path, sizeof path, "%s/demo/ok.png", dir);
    write_file(path, "demo image bytes");
    snprintf(path, sizeof path, "%s/demo/ok.jpg", dir);
    write_file(path, "demo jpeg bytes");
    snprintf(path, sizeof path, "%s/secret.png", dir);
    write_file(path, SECRET);
    link_model("NOMINAL_FUZZ_TEMPLATE", "tiny.nmm");
    link_model("NOMINAL_FUZZ_CALIBRATED", "tiny_cal.nmm");
}

/* civetweb cannot bind port 0: try ports until one is free. */
static void start_server(void)
{
    static char models[2][128], demo[128], address[32];
    static const char *paths[2] = {models[0], models[1]};
    snprintf(models[0], sizeof models[0], "%s/tiny.nmm", dir);
    snprintf(models[1], sizeof models[1], "%s/tiny_cal.nmm", dir);
    snprintf(demo, sizeof demo, "%s/demo", dir);
    serve_options o;
    serve_options_default(&o);
    o.model_paths = paths;
    o.n_models = 2;
    o.workers = 1;
    o.threads = 1;
    o.max_body = 16384;  /* under -max_len: the limit is reachable */
    o.max_pixels = 4096; /* small: the tiny model resizes to short side 32 */
    o.timeout_s = 2;
    o.name = WORKER_NAME;
    o.demo_dir = demo;
    o.listen = address;
    unsigned seed = (unsigned)getpid();
    for (int attempt = 0; attempt < 40; attempt++) {
        port = 20000 + (int)((seed * 2654435761u + (unsigned)attempt * 7919u) % 40000u);
        snprintf(address, sizeof address, "127.0.0.1:%d", port);
        nm_error err = {0};
        nm_status st = serve_start(&o, &server, &err);
        if (st == NM_OK)
            return;
        if (st != NM_ERR_IO) {
            fprintf(stderr, "fuzz_http: %s\n", err.msg);
            exit(1);
        }
    }
    die("no free loopback port found");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_limit_memory();
    signal(SIGPIPE, SIG_IGN); /* the server may close before all is sent */
    make_files();
    start_server();
    return 0;
}

/* ------------------------------------------------------------ one input */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void connect_failed(int error)
{
    fprintf(stderr, "fuzz_http: connect to the server: %s\n", strerror(error));
    abort(); /* the server stopped listening: a broken promise too */
}

/* Non-blocking from the start: libFuzzer's timer signal may interrupt a
 * connect, which then completes in the background. */
static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        die("no socket");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR)
        connect_failed(errno);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int ready;
    do
        ready = poll(&p, 1, ANSWER_TIMEOUT_S * 1000);
    while (ready < 0 && errno == EINTR);
    int error = ready == 1 ? 0 : ETIMEDOUT;
    socklen_t len = sizeof error;
    if (ready == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        error = errno;
    if (error)
        connect_failed(error);
    return fd;
}

typedef struct answer {
    char *bytes;
    size_t len, cap;
} answer;

static void keep(answer *a, const char *p, size_t n)
{
    if (a->len + n > MAX_KEPT)
        n = MAX_KEPT - a->len;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 65536;
        while (cap < a->len + n)
            cap *= 2;
        char *b = realloc(a->bytes, cap);
        if (!b)
            die("out of memory");
        a->bytes = b;
        a->cap = cap;
    }
    memcpy(a->bytes + a->len, p, n);
    a->len += n;
}

/* Send everything, close the sending side, read until the server closes. */
static void exchange(const uint8_t *data, size_t size, answer *a)
{
    int fd = connect_server();
    size_t sent = 0;
    int sending = 1;
    if (size == 0) {
        shutdown(fd, SHUT_WR);
        sending = 0;
    }
    double deadline = now_s() + ANSWER_TIMEOUT_S;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "fuzz oracle: no answer within %d s (%zu of %zu bytes sent)\n",
                    ANSWER_TIMEOUT_S, sent, size);
            abort();
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | (sending ? POLLOUT : 0)};
        if (poll(&p, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
            die("poll failed");
        if (sending && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || sent == size) {
                shutdown(fd, SHUT_WR); /* the server sees the end of the input */
                sending = 0;
            }
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            char buf[16384];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0)
                keep(a, buf, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                break; /* closed, or reset: a dropped connection is fine */
        }
    }
    close(fd);
}

/* ------------------------------------------------------------- checking */

static void broken(const char *promise, int status, const char *body, size_t n)
{
    fprintf(stderr, "fuzz oracle: %s (HTTP %d): %.*s\n", promise, status,
            (int)(n > 300 ? 300 : n), body);
    abort();
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
            return 0;
        unsigned cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* The value of header `name` within the head [h, end), or NULL. */
static const char *header(const char *h, const char *end, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *line = h; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v) - (eol > v && eol[-1] == '\r');
            return v;
        }
        line = eol + 1;
    }
    return NULL;
}

/* {"error": {"kind": "...", "message": "..."}} */
static int error_format(const char *body, size_t n)
{
    cJSON *o = cJSON_ParseWithLength(body, n);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    int ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "kind")) &&
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"));
    cJSON_Delete(o);
    return ok;
}

static void check_one(int status, const char *head, const char *head_end, const char *body,
                      size_t n, int complete)
{
    size_t len;
    int ours = header(head, head_end, "X-Nominal-Worker", &len) != NULL;
    const char *type = header(head, head_end, "Content-Type", &len);
    int json = type && len >= 16 && strncmp(type, "application/json", 16) == 0;
    if (ours && status >= 500)
        broken("our handler answered bad input with a server error", status, body, n);
    if (status >= 200 && status < 300 && memmem(body, n, SECRET, sizeof SECRET - 1))
        broken("a file outside the demo folder was served", status, body, n);
    if (!ours || !complete)
        return;
    if (json && !valid_utf8((const unsigned char *)body, n))
        broken("a JSON answer is not valid UTF-8", status, body, n);
    if (status >= 400 && !(json && error_format(body, n)))
        broken("an error answer is not {\"error\": {\"kind\", \"message\"}}", status, body, n);
}

/* Walk the answers (status line, head, Content-Length body) and check each;
 * stop where they cannot be followed (a cut connection, a HEAD answer). */
static void check_answers(const char *b, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        const char *s = b + pos;
        size_t left = n - pos;
        const char *end = memmem(s, left, "\r\n\r\n", 4);
        if (!end || left < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
            return;
        int status = atoi(s + 9);
        if (status < 100 || status > 599)
            broken("no valid status code", status, s, left);
        const char *body = end + 4;
        size_t avail = left - (size_t)(body - s), len, want = avail;
        const char *cl = header(s, end, "Content-Length", &len);
        if (status < 200)
            want = 0;
        else if (cl)
            want = strtoull(cl, NULL, 10);
        int complete = want <= avail;
        check_one(status, s, end, body, complete ? want : avail, complete);
        if (!complete)
            return;
        pos = (size_t)(body - b) + want;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    answer a = {0};
    exchange(data, size, &a);
    check_answers(a.bytes, a.len);
    free(a.bytes);
    return 0;
}
