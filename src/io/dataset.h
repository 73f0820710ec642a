/* Finding images on disk: plain folders and MVTec AD-style categories,
 * training sets and labelled test sets with their masks. */
#ifndef NM_IO_DATASET_H
#define NM_IO_DATASET_H

#include <stdint.h>

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

/* ------------------------------------------------ labelled test sets */

typedef struct labelled_image {
    char *path;
    char *type;      /* "good" for normal images, else the defect type */
    char *mask_path; /* NULL: no mask (a normal image, or no masks given) */
} labelled_image;

typedef struct labelled_set {
    labelled_image *items;
    int count;
    int have_masks; /* masks were given: every defective image has one */
} labelled_set;

/* An MVTec AD category: ROOT/test/<type>/ (type "good" = normal), types in
 * natural order, and, if ROOT/ground_truth exists, the mask of
 * test/<type>/x_10.jpg is ground_truth/<type>/x_10_mask.png: paired by file
 * name, never by position (sorted lists of x_1, x_10, x_2 and x_10_mask,
 * x_1_mask, x_2_mask do not line up). A defective image without its mask is
 * an error naming both: a missing mask is far more often a naming mistake
 * than an image without defect pixels, which an all-black mask says. */
nm_status dataset_load_mvtec_test(const char *root, labelled_set *out, nm_error *err);

/* Plain folders: normal images in good, defective ones (type "bad") in bad,
 * their masks, if mask_dir is not NULL, paired by name as above. */
nm_status dataset_load_labelled(const char *good, const char *bad, const char *mask_dir,
                                labelled_set *out, nm_error *err);
void labelled_set_free(labelled_set *s);

/* The defect mask for an image of width x height as *out (malloc'ed, 1 =
 * defect): a pixel is a defect where any channel of the mask file is
 * non-zero (gray or RGB, any bit depth); a mask of another size is resized
 * nearest-neighbour exactly as PIL's Image.resize(NEAREST) does. path NULL
 * gives an all-zero mask. */
/* The MVTec AD naming: "dir/x_10.jpg" -> "MASK_DIR/x_10_mask.png". */
void dataset_mask_path(const char *mask_dir, const char *image_path, char *out, size_t n);

nm_status dataset_load_mask(const char *path, int width, int height, uint8_t **out,
                            nm_error *err);

#endif
