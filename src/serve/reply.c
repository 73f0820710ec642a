/* HTTP responses of `nominal serve`: headers every answer carries, JSON
 * bodies and the error format. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_internal.h"

static const int ERROR_STATUS[ERR_KIND_COUNT] = {
    [ERR_BAD_REQUEST] = 400,
    [ERR_NOT_FOUND] = 404,
    [ERR_METHOD_NOT_ALLOWED] = 405,
    [ERR_UNSUPPORTED_MEDIA_TYPE] = 415,
    [ERR_BODY_TOO_LARGE] = 413,
    [ERR_EMPTY_BODY] = 400,
    [ERR_TRUNCATED_BODY] = 400,
    [ERR_BAD_IMAGE] = 400,
    [ERR_IMAGE_TOO_LARGE] = 413,
    [ERR_UNSUPPORTED_IMAGE] = 415,
    [ERR_OVERLOADED] = 503,
    [ERR_TIMEOUT] = 503,
    [ERR_SHUTTING_DOWN] = 503,
    [ERR_INTERNAL] = 500,
};

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void reply(request *req, int status, const char *content_type, const void *body,
           size_t size, const char *extra_headers)
{
    struct mg_connection *c = req->conn;
    char length[32];
    snprintf(length, sizeof length, "%zu", size);
    req->status = status;
    /* An unread body would be taken for the next request on this
     * connection, and a stopping server wants clients to go elsewhere:
     * answer, then close it. */
    if (atomic_load(&req->s->draining) ||
        (!req->body_read && (mg_get_request_info(c)->content_length > 0 ||
                             mg_get_header(c, "Transfer-Encoding"))))
        mg_disable_connection_keep_alive(c);
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", content_type, -1);
    mg_response_header_add(c, "Content-Length", length, -1);
    mg_response_header_add(c, "Cache-Control", "no-store", -1);
    /* lets a load balancer's user see which worker answered */
    mg_response_header_add(c, "X-Nominal-Worker", req->s->name, -1);
    if (extra_headers)
        mg_response_header_add_lines(c, extra_headers);
    mg_response_header_send(c);
    if (size)
        mg_write(c, body, size);
}

void reply_json(request *req, int status, cJSON *body, const char *extra_headers)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"kind\":\"internal\",\"message\":\"out of memory\"}}";
        reply(req, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    reply(req, status, "application/json", text, strlen(text), extra_headers);
    free(text);
}

/* Length of the UTF-8 sequence at s (at most n bytes), 0 if it is not one:
 * no overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_length(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : (c & 0xf0) == 0xe0 ? 3
                                : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned cp = len == 1 ? c : c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* JSON text is UTF-8 (RFC 8259) and clients decode it strictly. Messages
 * quote the request (a path with %ff decoded, a Content-Type), and the
 * length limit may cut a character: bytes that are not UTF-8 become '?'. */
static void make_utf8(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_length((const unsigned char *)s + i, n - i);
        if (len == 0) {
            s[i] = '?';
            len = 1;
        }
        i += len;
    }
}

void reply_error(request *req, serve_error_kind kind, const char *fmt, ...)
{
    char message[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    make_utf8(message);
    if (kind < 0 || kind >= ERR_KIND_COUNT)
        kind = ERR_INTERNAL;
    const char *extra = NULL;
    if (ERROR_STATUS[kind] == 503)
        extra = "Retry-After: 1\r\n";
    else if (kind == ERR_METHOD_NOT_ALLOWED)
        extra = req->ep == EP_PREDICT ? "Allow: POST\r\n" : "Allow: GET\r\n";
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "kind", serve_error_kind_name(kind));
    cJSON_AddStringToObject(e, "message", message);
    metrics_error(req->s->metrics, kind);
    reply_json(req, ERROR_STATUS[kind], root, extra);
    cJSON_Delete(root);
}
