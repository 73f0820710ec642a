#include "eval/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "eval/report_page.h"
#include "eval/thumb.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "methods/anomaly_map.h"

/* How much of the photo shows through a heatmap overlay at full heat; as
 * `nominal predict` draws overlays. */
#define OVERLAY_ALPHA 0.6f

/* Contours go on the photo only: the heatmap ramp runs through green, and
 * magenta is rare in both photos and the ramp. */
static const uint8_t TRUTH_RGB[3] = {0, 255, 0};
static const uint8_t PREDICTED_RGB[3] = {255, 0, 255};

typedef struct entry {
    char *path, *type;
    int anomalous;
    float score;
    thumb t;
} entry;

struct report {
    char dir[4096];
    char page[4200];
    float heat_hi;
    entry *e;
    int n, cap;
};

static nm_status make_dir(const char *path, nm_error *err)
{
    if (mkdir(path, 0777) == 0 || (errno == EEXIST && path_is_dir(path) == 1))
        return NM_OK;
    return nm_fail(err, NM_ERR_IO, "%s: cannot create folder: %s", path,
                   errno == EEXIST ? "a file of that name is in the way" : strerror(errno));
}

nm_status report_open(const char *dir, float heat_hi, report **out, nm_error *err)
{
    *out = NULL;
    if (strlen(dir) > 4000)
        return nm_fail(err, NM_ERR_ARG, "%.100s...: report folder path too long", dir);
    report *r = calloc(1, sizeof *r);
    if (!r)
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->page, sizeof r->page, "%s/index.html", dir);
    r->heat_hi = heat_hi > 0.0f ? heat_hi : 1.0f;
    char img[4200];
    snprintf(img, sizeof img, "%s/img", dir);
    nm_status st = make_dir(dir, err);
    if (!st)
        st = make_dir(img, err);
    if (st)
        free(r);
    else
        *out = r;
    return st;
}

const char *report_page_path(const report *r) { return r->page; }

void report_free(report *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++) {
        free(r->e[i].path);
        free(r->e[i].type);
        thumb_free(&r->e[i].t);
    }
    free(r->e);
    free(r);
}

/* Thumbnails are written plainly, not with nm_png_write's fsync per file
 * (which costs more than encoding them): they are remade by every run, and
 * index.html, the one file that says the report is complete, is committed
 * atomically after all of them. */
static nm_status write_png(const char *path, const uint8_t *rgb, int w, int h, nm_error *err)
{
    uint8_t *png = NULL;
    size_t size = 0;
    nm_status st = nm_png_encode(rgb, w, h, 3, 8, &png, &size, err);
    if (st)
        return st;
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(png, 1, size, f) == size;
    int saved = errno;
    if (f && fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    free(png);
    return ok ? NM_OK : nm_fail(err, NM_ERR_IO, "%s: cannot write: %s", path, strerror(saved));
}

/* Writes REPORT_HEAT_FMT for entry i: its pooled map over its photo. */
static nm_status write_heat(const report *r, int i, nm_error *err)
{
    const thumb *t = &r->e[i].t;
    uint8_t *rgb = malloc(3 * (size_t)t->photo.width * (size_t)t->photo.height);
    if (!rgb)
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
    map_overlay(&t->photo, t->map_max, 0.0f, r->heat_hi, OVERLAY_ALPHA, rgb);
    char path[4400];
    snprintf(path, sizeof path, "%s/" REPORT_HEAT_FMT, r->dir, i);
    nm_status st = write_png(path, rgb, t->photo.width, t->photo.height, err);
    free(rgb);
    return st;
}

nm_status report_add(report *r, const char *path, const char *type, int anomalous,
                     float score, const nm_image *img, const float *map,
                     const uint8_t *mask, nm_error *err)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        entry *p = realloc(r->e, sizeof *p * (size_t)cap);
        if (!p)
            return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
        r->e = p;
        r->cap = cap;
    }
    entry *e = &r->e[r->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    e->type = strdup(type);
    e->anomalous = anomalous;
    e->score = score;
    r->n++; /* report_free owns it from here */
    if (!e->path || !e->type)
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
    nm_status st = thumb_make(img, map, mask, &e->t, err);
    return st ? st : write_heat(r, r->n - 1, err);
}

/* The photo with the ground-truth contour and, over it, the predicted one
 * (map >= pixel_threshold; none when that is NaN). */
static nm_status write_photo(const report *r, int i, double pixel_threshold, nm_error *err)
{
    const thumb *t = &r->e[i].t;
    int w = t->photo.width, h = t->photo.height;
    size_t n = (size_t)w * (size_t)h;
    uint8_t *rgb = malloc(3 * n), *predicted = malloc(n);
    if (!rgb || !predicted) {
        free(rgb);
        free(predicted);
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
    }
    memcpy(rgb, t->photo.pixels, 3 * n);
    if (t->mask_max)
        thumb_draw_contour(rgb, w, h, t->mask_max, TRUTH_RGB);
    if (!isnan(pixel_threshold)) {
        for (size_t k = 0; k < n; k++)
            predicted[k] = t->map_max[k] >= pixel_threshold;
        thumb_draw_contour(rgb, w, h, predicted, PREDICTED_RGB);
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/" REPORT_PHOTO_FMT, r->dir, i);
    nm_status st = write_png(path, rgb, w, h, err);
    free(rgb);
    free(predicted);
    return st;
}

/* Worst first: by margin, descending; equal margins keep the scoring
 * order (the index breaks ties, so the order is the same on every run). */
static int worst_first(const void *a, const void *b)
{
    const page_item *x = a, *y = b;
    if (x->margin != y->margin)
        return x->margin > y->margin ? -1 : 1;
    return (x->file > y->file) - (x->file < y->file);
}

static nm_status write_page(const report *r, const eval_summary *s, page_item *items,
                            double pixel_threshold, nm_error *err)
{
    atomic_file af;
    nm_status st = atomic_file_open(&af, r->page, err);
    if (st)
        return st;
    report_page_write(af.f, s, items, r->n, s->image.f1_threshold, pixel_threshold,
                      r->heat_hi);
    if (ferror(af.f)) {
        atomic_file_abort(&af);
        return nm_fail(err, NM_ERR_IO, "%s: write failed", r->page);
    }
    return atomic_file_commit(&af, err);
}

nm_status report_write(report *r, const eval_summary *s, nm_error *err)
{
    double t_image = s->image.f1_threshold;
    double t_pixel = s->have_pixel ? s->pixel.f1_threshold : NAN;
    page_item *items = calloc((size_t)(r->n ? r->n : 1), sizeof *items);
    if (!items)
        return nm_fail(err, NM_ERR_NOMEM, "report: out of memory");
    nm_status st = NM_OK;
    for (int i = 0; i < r->n && !st; i++) {
        const entry *e = &r->e[i];
        /* how far the score is on the wrong side of the image threshold */
        double margin = e->anomalous ? t_image - e->score : e->score - t_image;
        items[i] = (page_item){e->path, e->type, e->anomalous, e->score, margin, i,
                               e->t.photo.width, e->t.photo.height};
        st = write_photo(r, i, t_pixel, err);
    }
    if (!st) {
        qsort(items, (size_t)r->n, sizeof *items, worst_first);
        st = write_page(r, s, items, t_pixel, err);
    }
    free(items);
    return st;
}
