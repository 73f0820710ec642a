/*
 * Example: use libnominal from your own program.
 *
 *   cc features.c $(pkg-config --cflags --libs nominal) -o features
 *   ./features resnet50v2_trunk.onnx stage3 image.png
 *
 * Decodes the image, applies the standard preprocessing (resize 256, center
 * crop 224, ImageNet normalization), runs the backbone up to the tap and
 * prints the tap's shape and mean.
 */
#include <stdio.h>
#include <stdlib.h>

#include <nominal.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.onnx TAP IMAGE\n", argv[0]);
        return 2;
    }
    nm_error err = {0};
    nm_image img = {0};
    nm_preprocess pre;
    nm_geometry geom;
    nm_net *net = NULL;
    float *input = NULL;
    int rc = 1;

    nm_preprocess_default(&pre);
    if (nm_image_load(argv[3], 0, &img, &err) ||
        nm_preprocess_geometry(&pre, img.width, img.height, &geom, &err))
        goto done;
    input = malloc(sizeof(float) * 3 * (size_t)geom.out_width * (size_t)geom.out_height);
    if (!input)
        goto done;
    nm_net_options opts = {.threads = 0};
    const char *tap = argv[2];
    nm_tensor out;
    if (nm_preprocess_image(&pre, &img, input, &geom, &err) ||
        nm_net_open(argv[1], &opts, &net, &err) || nm_net_set_taps(net, &tap, 1, &err) ||
        nm_net_run(net, input, 1, geom.out_height, geom.out_width, &out, &err))
        goto done;

    size_t n = 1;
    printf("%s: %s shape", argv[3], tap);
    for (int d = 0; d < out.rank; d++) {
        printf("%s%lld", d ? "x" : " ", (long long)out.dims[d]);
        n *= (size_t)out.dims[d];
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += out.data[i];
    printf(" mean %.6f (nominal %s)\n", sum / (double)n, nm_version());
    rc = 0;
done:
    if (rc && err.code)
        fprintf(stderr, "error: %s\n", err.msg);
    nm_net_close(net);
    free(input);
    nm_image_free(&img);
    return rc;
}
