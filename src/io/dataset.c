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

nm_status dataset_list_images(const char *dir, path_list *out, nm_error *err)
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
        if (e->d_name[0] == '.' || !has_image_extension(e->d_name))
            continue;
        snprintf(path, sizeof path, "%.*s/%s", dir_len, dir, e->d_name);
        if (path_is_dir(path) == 0)
            st = path_list_add(out, path, err);
    }
    closedir(d);
    if (!st && out->count == 0)
        st = nm_fail(err, NM_ERR_ARG, "%s: no images (.png, .jpg, .jpeg) in this folder", dir);
    if (st) {
        path_list_free(out);
        return st;
    }
    qsort(out->paths, (size_t)out->count, sizeof(char *), compare_paths);
    return NM_OK;
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
