/*
 * libFuzzer target: an ONNX backbone from memory. Decoding (protobuf),
 * graph validation (cycles, missing inputs, absurd shapes, declared tensor
 * sizes), lowering to backend layers and fusion, as net_open_memory does
 * for a model file's ONNX section. Small graphs are also run once on a
 * tiny input (shape inference + backend plan); big ones are not, so that
 * one input never means running a real backbone.
 */
#include "fuzz_common.h"
#include "nn/net.h"

#define NAME "fuzz.onnx"
#define RUN_MAX_PARAMETERS 200000
#define IN_H 17
#define IN_W 23

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_limit_memory();
    return 0;
}

static void check_taps(const nm_net *net, const nm_tensor *taps)
{
    int n = nm_net_output_count(net);
    for (int t = 0; t < n && t < 64; t++) {
        size_t count = 1;
        for (int d = 0; d < 4; d++) {
            if (taps[t].dims[d] < 1) {
                fprintf(stderr, "fuzz oracle: tap %d has dim %lld\n", t,
                        (long long)taps[t].dims[d]);
                abort();
            }
            count *= (size_t)taps[t].dims[d];
        }
        volatile float sink = taps[t].data[count - 1];
        (void)sink;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float input[3 * IN_H * IN_W];
    for (size_t i = 0; i < sizeof input / sizeof *input; i++)
        input[i] = (float)(i % 7) - 3.0f;
    nm_net *net = NULL;
    nm_error err = {0};
    nm_net_options opts = {.threads = 1};
    nm_status st = net_open_memory(data ? data : (const uint8_t *)"", size,
                                   NAME, &opts, &net, &err);
    fuzz_check_error(st, &err, NAME);
    if (st != NM_OK)
        return 0;
    if (onnx_graph_parameter_count(net_graph(net)) <= RUN_MAX_PARAMETERS) {
        nm_tensor taps[64];
        st = nm_net_run(net, input, 1, IN_H, IN_W, taps, &err);
        fuzz_check_run_error(st, &err, NAME);
        if (st == NM_OK)
            check_taps(net, taps);
    }
    nm_net_close(net);
    return 0;
}
