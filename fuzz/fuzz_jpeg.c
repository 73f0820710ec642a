/* libFuzzer target: JPEG decoding from memory (seeds: fuzz/make_corpus.sh). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decode(data, size, "fuzz.jpg");
}
