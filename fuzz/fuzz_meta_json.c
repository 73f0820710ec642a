/*
 * libFuzzer target: the JSON readers. The input is a model's META section
 * (the JSON description: method, preprocessing, backbone taps, PatchCore
 * settings); the harness wraps it, with valid checksums, around the other
 * sections of a real tiny model (the template, made by fuzz/make_corpus.sh
 * and named by NOMINAL_FUZZ_TEMPLATE) and loads the result with
 * nm_model_load, then scores a small image if the model loads. The
 * calibration JSON (CALI) has its own target, fuzz_calibration_json.c.
 */
#include "model_container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mc_memfile memfile;
static model_file *template_model;
static size_t template_bytes; /* the template's sections other than META */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_limit_memory();
    const char *path = getenv("NOMINAL_FUZZ_TEMPLATE");
    nm_error err = {0};
    if (!path || model_file_read(path, &template_model, &err) != NM_OK) {
        fprintf(stderr, "fuzz_meta_json: set NOMINAL_FUZZ_TEMPLATE to a small "
                        "model file (make fuzz makes one): %s\n",
                path ? err.msg : "not set");
        exit(1);
    }
    for (int i = 0; i < template_model->n_sections; i++)
        template_bytes += MC_ALIGN + mc_padded(template_model->sections[i].size);
    mc_memfile_open(&memfile);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = MC_ALIGN + MC_ALIGN + mc_padded(size) + template_bytes + MC_TRAILER;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return 0;
    size_t len = MC_ALIGN;
    uint32_t n = 1;
    mc_add_section(buf, &len, "META", data, size);
    for (int i = 0; i < template_model->n_sections; i++) {
        const model_section *s = &template_model->sections[i];
        if (strcmp(s->tag, "META") != 0) {
            mc_add_section(buf, &len, s->tag, s->data, s->size);
            n++;
        }
    }
    mc_finish(buf, &len, n);
    mc_memfile_set(&memfile, buf, len);
    free(buf);
    nm_image img = mc_test_image();
    mc_load_and_score(&memfile, &img);
    return 0;
}
