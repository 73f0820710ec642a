/* Finding images on disk: plain folders and MVTec AD-style categories. */
#ifndef NM_IO_DATASET_H
#define NM_IO_DATASET_H

#include "nominal.h"

typedef struct path_list {
    char **paths;
    int count;
} path_list;

/* Image files (.png .jpg .jpeg, any case) directly inside dir, sorted by
 * name in natural order (x_2 before x_10). An empty folder is an error
 * naming it. */
nm_status dataset_list_images(const char *dir, path_list *out, nm_error *err);

/* Training images from DIR: DIR/train/good when DIR is an MVTec-style
 * category root, else DIR itself. */
nm_status dataset_list_train(const char *dir, path_list *out, nm_error *err);

/* Append one path (copied). */
nm_status path_list_add(path_list *l, const char *path, nm_error *err);
void path_list_free(path_list *l);

/* 1 if path is a directory, 0 if something else, -1 if it does not exist. */
int path_is_dir(const char *path);

#endif
