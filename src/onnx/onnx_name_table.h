/*
 * A fixed-capacity hash table from borrowed C strings to ints, used by the
 * ONNX loader so that name lookups while validating a graph stay O(1) per
 * name instead of O(number of values).
 *
 * Keys are not copied: the strings must outlive the table. The capacity is
 * fixed at creation (the loader knows how many names a graph can define), so
 * there is no rehashing and inserting never allocates.
 */
#ifndef NM_ONNX_NAME_TABLE_H
#define NM_ONNX_NAME_TABLE_H

#include <stddef.h>

typedef struct onnx_name_table {
    const char **keys; /* NULL marks an empty slot */
    int *values;
    size_t mask;       /* slot count - 1 (slot count is a power of two) */
    size_t count;
    size_t max_count;  /* the `expected` given at creation */
} onnx_name_table;

/* Room for up to `expected` keys. Returns 0, or -1 when out of memory (or
 * `expected` is absurdly large). */
int onnx_name_table_init(onnx_name_table *t, size_t expected);
void onnx_name_table_free(onnx_name_table *t);

/* Value stored for key, or -1 when absent (so store values >= -1 only if
 * you never need to tell -1 from "absent"). */
int onnx_name_table_find(const onnx_name_table *t, const char *key);

/* Adds key -> value unless key is present. Returns 1 when added, 0 when the
 * key was already there (*existing, if non-NULL, gets its value), -1 when
 * the table is full (more keys than `expected`). */
int onnx_name_table_add(onnx_name_table *t, const char *key, int value,
                        int *existing);

#endif
