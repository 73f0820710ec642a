/*
 * Example: fit a PatchCore model from good images and score one image,
 * using only the public API (nominal.h), no CLI.
 *
 *   cc patchcore.c $(pkg-config --cflags --libs nominal) -o patchcore
 *   ./patchcore BACKBONE.onnx TAP1,TAP2 MODEL_OUT TEST_IMAGE GOOD_IMAGE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nominal.h>

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s BACKBONE.onnx TAP1,TAP2 MODEL_OUT TEST_IMAGE GOOD_IMAGE...\n",
                argv[0]);
        return 2;
    }
    /* split "stage2,stage3" */
    char *taps_arg = argv[2];
    const char *taps[2] = {taps_arg, NULL};
    char *comma = strchr(taps_arg, ',');
    if (comma) {
        *comma = '\0';
        taps[1] = comma + 1;
    }
    nm_fit_options opts;
    nm_fit_options_default(&opts);
    opts.backbone = argv[1];
    opts.taps = taps;
    opts.n_taps = comma ? 2 : 1;
    nm_param params[] = {{"coreset", "0.1"}};
    opts.params = params;
    opts.n_params = 1;

    nm_error err = {0};
    nm_model *model = NULL, *loaded = NULL;
    nm_image img = {0};
    nm_result res = {0};
    int rc = 1;
    if (nm_model_fit(&opts, (const char *const *)argv + 5, argc - 5, &model, &err) ||
        nm_model_save(model, argv[3], &err) || nm_model_load(argv[3], 0, &loaded, &err) ||
        nm_image_load(argv[4], 0, &img, &err) || nm_model_score(loaded, &img, 1, &res, &err))
        goto done;
    float peak = 0;
    for (size_t i = 0; i < (size_t)res.width * (size_t)res.height; i++)
        if (res.map[i] > peak)
            peak = res.map[i];
    printf("%s: score %.4f, map %dx%d, map peak %.4f\n", argv[4], res.score, res.width,
           res.height, peak);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "error: %s\n", err.msg);
    nm_result_free(&res);
    nm_image_free(&img);
    nm_model_close(loaded);
    nm_model_close(model);
    return rc;
}
