#include "io/dataset.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

int path_is_dir(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return S_ISDIR(st.st_mode) ? 1 : 0;
}

static int has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
           strcasecmp(dot, ".jpeg") == 0;
}

/* Natural order: runs of digits compare by value, so x_2 < x_10. */
static int natural_compare(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0')
                a++;
            while (*b == '0')
                b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la]))
                la++;
            while (isdigit((unsigned char)b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b)
                return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static int compare_paths(const void *x, const void *y)
{
    return natural_compare(*(char *const *)x, *(char *const *)y);
}

nm_status path_list_add(path_list *l, const char *path, nm_error *err)
{
    char **p = realloc(l->paths, sizeof(char *) * (size_t)(l->count + 1));
    if (!p)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory listing images");
    l->paths = p;
    l->paths[l->count] = strdup(path);
    if (!l->paths[l->count])
        return nm_fail(err, NM_ERR_NOMEM, "out of memory listing images");
    l->count++;
    return NM_OK;
}

void path_list_free(path_list *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
    l->paths = NULL;
    l->count = 0;
}

/* The entries of dir as "dir/name" paths in natural order: its folders
 * (folders != 0) or its image files; hidden names are skipped. */
static nm_status list_entries(const char *dir, int folders, path_list *out, nm_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return nm_fail(err, NM_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    nm_status st = NM_OK;
    char path[4096];
    /* "test/good/" and "test/good" give the same paths: no "//" */
    int dir_len = (int)strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (!folders && !has_image_extension(e->d_name)))
            continue;
        snprintf(path, sizeof path, "%.*s/%s", dir_len, dir, e->d_name);
        if (path_is_dir(path) == (folders ? 1 : 0))
            st = path_list_add(out, path, err);
    }
    closedir(d);
    if (st)
        path_list_free(out);
    else if (out->count > 1) /* an empty list has no array to sort */
        qsort(out->paths, (size_t)out->count, sizeof(char *), compare_paths);
    return st;
}

nm_status dataset_list_images(const char *dir, path_list *out, nm_error *err)
{
    nm_status st = list_entries(dir, 0, out, err);
    if (!st && out->count == 0)
        st = nm_fail(err, NM_ERR_ARG, "%s: no images (.png, .jpg, .jpeg) in this folder", dir);
    return st;
}

nm_status dataset_list_train(const char *dir, path_list *out, nm_error *err)
{
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/train/good", dir);
    if (path_is_dir(sub) == 1)
        return dataset_list_images(sub, out, err);
    if (path_is_dir(dir) != 1) {
        memset(out, 0, sizeof *out);
        return nm_fail(err, NM_ERR_IO, "%s: not a folder", dir);
    }
    return dataset_list_images(dir, out, err);
}

/* ------------------------------------------------ labelled test sets */

void labelled_set_free(labelled_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->count; i++) {
        free(s->items[i].path);
        free(s->items[i].type);
        free(s->items[i].mask_path);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

void dataset_mask_path(const char *mask_dir, const char *image_path, char *out, size_t n)
{
    const char *base = strrchr(image_path, '/');
    base = base ? base + 1 : image_path;
    const char *dot = strrchr(base, '.');
    int stem_len = dot ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, n, "%s/%.*s_mask.png", mask_dir, stem_len, base);
}

/* Appends every image of dir, with this type, and its mask from mask_dir
 * (NULL: none). */
static nm_status add_folder(labelled_set *s, const char *dir, const char *type,
                            const char *mask_dir, nm_error *err)
{
    path_list l = {0};
    nm_status st = dataset_list_images(dir, &l, err);
    if (st)
        return st;
    labelled_image *p = realloc(s->items, sizeof *p * (size_t)(s->count + l.count));
    if (!p) {
        path_list_free(&l);
        return nm_fail(err, NM_ERR_NOMEM, "out of memory listing %s", dir);
    }
    s->items = p;
    for (int i = 0; i < l.count && !st; i++) {
        labelled_image *it = &s->items[s->count];
        memset(it, 0, sizeof *it);
        it->path = strdup(l.paths[i]);
        it->type = strdup(type);
        s->count++; /* from here on labelled_set_free owns it */
        if (!it->path || !it->type) {
            st = nm_fail(err, NM_ERR_NOMEM, "out of memory listing %s", dir);
            break;
        }
        if (!mask_dir)
            continue;
        char mp[8192];
        dataset_mask_path(mask_dir, l.paths[i], mp, sizeof mp);
        if (path_is_dir(mp) != 0)
            st = nm_fail(err, NM_ERR_IO,
                         "%s: no mask %s for this defective image (an all-black "
                         "mask says it has no defect pixels)", l.paths[i], mp);
        else if (!(it->mask_path = strdup(mp)))
            st = nm_fail(err, NM_ERR_NOMEM, "out of memory listing %s", dir);
    }
    path_list_free(&l);
    return st;
}

nm_status dataset_load_mvtec_test(const char *root, labelled_set *out, nm_error *err)
{
    memset(out, 0, sizeof *out);
    char test[4096], gt[4096];
    snprintf(test, sizeof test, "%.4000s/test", root);
    snprintf(gt, sizeof gt, "%.4000s/ground_truth", root);
    if (path_is_dir(test) != 1)
        return nm_fail(err, NM_ERR_IO, "%s: no test/ folder (expected an MVTec AD category)",
                       root);
    path_list types;
    nm_status st = list_entries(test, 1, &types, err);
    if (st)
        return st;
    if (types.count == 0)
        st = nm_fail(err, NM_ERR_ARG, "%s: test/ has no folders", root);
    out->have_masks = path_is_dir(gt) == 1;
    for (int i = 0; i < types.count && !st; i++) {
        const char *type = strrchr(types.paths[i], '/') + 1;
        char mask_dir[8192];
        snprintf(mask_dir, sizeof mask_dir, "%s/%s", gt, type);
        int normal = strcmp(type, "good") == 0;
        st = add_folder(out, types.paths[i], type, out->have_masks && !normal ? mask_dir : NULL,
                        err);
    }
    path_list_free(&types);
    if (st)
        labelled_set_free(out);
    return st;
}

nm_status dataset_load_labelled(const char *good, const char *bad, const char *mask_dir,
                                labelled_set *out, nm_error *err)
{
    memset(out, 0, sizeof *out);
    out->have_masks = mask_dir != NULL;
    if (mask_dir && path_is_dir(mask_dir) != 1)
        return nm_fail(err, NM_ERR_IO, "%s: masks folder not found", mask_dir);
    nm_status st = add_folder(out, good, "good", NULL, err);
    if (!st)
        st = add_folder(out, bad, "bad", mask_dir, err);
    if (st)
        labelled_set_free(out);
    return st;
}

/* PIL's nearest-neighbour source index for each of n destination samples
 * from a source of size src: the centre of destination pixel i maps to
 * (i + 0.5) * src / n, which PIL accumulates in double one step at a time
 * (so 7.0 may come out as 6.999...: computing it by multiplication instead
 * picks a different pixel in about one resize in five). */
static void nearest_index(int n, int src, int *idx)
{
    double step = (double)src / (double)n, pos = step * 0.5;
    for (int i = 0; i < n; i++) {
        int k = (int)pos;
        idx[i] = k < src ? k : src - 1;
        pos += step;
    }
}

nm_status dataset_load_mask(const char *path, int width, int height, uint8_t **out,
                            nm_error *err)
{
    *out = NULL;
    if (width <= 0 || height <= 0)
        return nm_fail(err, NM_ERR_ARG, "mask size %dx%d", width, height);
    uint8_t *m = calloc((size_t)width * (size_t)height, 1);
    if (!m)
        return nm_fail(err, NM_ERR_NOMEM, "out of memory for a %dx%d mask", width, height);
    if (!path) {
        *out = m;
        return NM_OK;
    }
    nm_image g = {0};
    int *xs = malloc(sizeof(int) * (size_t)width), *ys = malloc(sizeof(int) * (size_t)height);
    nm_status st = xs && ys ? nm_image_load(path, 0, &g, err)
                            : nm_fail(err, NM_ERR_NOMEM, "%s: out of memory", path);
    if (!st) {
        nearest_index(width, g.width, xs);
        nearest_index(height, g.height, ys);
        size_t ch = (size_t)g.channels;
        for (int y = 0; y < height; y++) {
            const uint8_t *row = g.pixels + (size_t)ys[y] * (size_t)g.width * ch;
            for (int x = 0; x < width; x++) {
                const uint8_t *px = row + (size_t)xs[x] * ch;
                uint8_t any = 0;
                for (size_t c = 0; c < ch; c++)
                    any |= px[c];
                m[(size_t)y * (size_t)width + (size_t)x] = any != 0;
            }
        }
    }
    nm_image_free(&g);
    free(xs);
    free(ys);
    if (st)
        free(m);
    else
        *out = m;
    return st;
}
