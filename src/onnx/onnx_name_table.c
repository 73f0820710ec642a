#include "onnx/onnx_name_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a, 64 bit: tensor names are short and often share long prefixes
 * ("/m/stage3/..."), which FNV spreads well enough for linear probing. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 14695981039346656037u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return h;
}

int onnx_name_table_init(onnx_name_table *t, size_t expected)
{
    memset(t, 0, sizeof *t);
    /* At most half full keeps probe sequences short. */
    if (expected > SIZE_MAX / 4 / sizeof(const char *))
        return -1;
    size_t slots = 16;
    while (slots < expected * 2)
        slots *= 2;
    t->keys = calloc(slots, sizeof *t->keys);
    t->values = calloc(slots, sizeof *t->values);
    if (!t->keys || !t->values) {
        onnx_name_table_free(t);
        return -1;
    }
    t->mask = slots - 1;
    t->max_count = expected;
    return 0;
}

void onnx_name_table_free(onnx_name_table *t)
{
    if (!t)
        return;
    free(t->keys);
    free(t->values);
    memset(t, 0, sizeof *t);
}

/* Slot holding key, or the empty slot where it would go. */
static size_t find_slot(const onnx_name_table *t, const char *key)
{
    size_t i = (size_t)hash_name(key) & t->mask;
    while (t->keys[i] && strcmp(t->keys[i], key) != 0)
        i = (i + 1) & t->mask;
    return i;
}

int onnx_name_table_find(const onnx_name_table *t, const char *key)
{
    if (!t->keys)
        return -1;
    size_t i = find_slot(t, key);
    return t->keys[i] ? t->values[i] : -1;
}

int onnx_name_table_add(onnx_name_table *t, const char *key, int value,
                        int *existing)
{
    if (!t->keys)
        return -1;
    size_t i = find_slot(t, key);
    if (t->keys[i]) {
        if (existing)
            *existing = t->values[i];
        return 0;
    }
    /* Refusing beyond `expected` keeps the table at most half full, so
     * find_slot always meets an empty slot and terminates. */
    if (t->count >= t->max_count)
        return -1;
    t->keys[i] = key;
    t->values[i] = value;
    t->count++;
    return 1;
}
