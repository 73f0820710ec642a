/* `nominal` — command-line entry point: dispatches to one file per command. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_usage(FILE *f)
{
    fprintf(f,
            "nominal %s — industrial visual anomaly detection\n"
            "\n"
            "usage: nominal COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  fit                        learn a model from good images\n"
            "  predict MODEL IMAGE...     score images, write anomaly maps and overlays\n"
            "  calibrate MODEL --good DIR choose a threshold with a stated false-alarm rate\n"
            "  eval MODEL DATASET         image/pixel AUROC and AU-PRO on a labelled test set\n"
            "  serve MODEL...             HTTP inspection service (JSON API, metrics, page)\n"
            "  info FILE                  describe a model file or an ONNX backbone\n"
            "  features MODEL.onnx ...    run a backbone on images, print/write feature taps\n"
            "  bench backbone MODEL.onnx  time a backbone forward pass (ms/image)\n"
            "\n"
            "  --version                  print the version\n"
            "  --help                     this text; `nominal COMMAND --help` for a command\n"
            "\n"
            "exit codes: 0 ok, 1 runtime failure, 2 usage, 3 file I/O, 4 corrupt/invalid\n"
            "input, 5 unsupported input\n",
            nm_version());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("nominal %s\n", nm_version());
        return EXIT_OK;
    }
    if (cli_is_help(cmd) || strcmp(cmd, "help") == 0) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "features") == 0)
        return cmd_features(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "fit") == 0)
        return cmd_fit(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "calibrate") == 0)
        return cmd_calibrate(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "nominal: unknown command '%s' (see `nominal --help`)\n", cmd);
    return EXIT_USAGE;
}
