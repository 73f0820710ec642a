/*
 * libFuzzer target: nominal model files. Each input is tried twice:
 *  1. as it is, by the container reader (model_file_read_memory): magic,
 *     version, sizes, section table, checksums;
 *  2. with its checksums put right (model_container.h), through
 *     nm_model_load: the META JSON, the embedded ONNX backbone, PatchCore's
 *     settings and bank; a model that loads is also used to score a small
 *     image when its input size is small.
 */
#include "model_container.h"

#define NAME "fuzz.nmm"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mc_memfile memfile;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_limit_memory();
    mc_memfile_open(&memfile);
    return 0;
}

static void check_sections(const model_file *f)
{
    for (int i = 0; i < f->n_sections; i++) {
        const model_section *s = &f->sections[i];
        if (s->data < f->buffer || s->size > f->size ||
            s->data + s->size > f->buffer + f->size ||
            ((uintptr_t)s->data & 63) != 0) {
            fprintf(stderr, "fuzz oracle: section %d out of the buffer\n", i);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_file *f = NULL;
    nm_error err = {0};
    nm_status st = model_file_read_memory(data ? data : (const uint8_t *)"",
                                          size, NAME, &f, &err);
    fuzz_check_error(st, &err, NAME);
    if (st == NM_OK) {
        check_sections(f);
        model_file_free(f);
    }
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    mc_fix_checksums(copy, size);
    mc_memfile_set(&memfile, copy, size);
    free(copy);
    nm_image img = mc_test_image();
    mc_load_and_score(&memfile, &img);
    return 0;
}
