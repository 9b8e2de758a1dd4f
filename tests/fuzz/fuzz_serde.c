/* fuzz_serde.c - libFuzzer target for the Avro single-object decoder (lib/serde.c), which
 * every worker runs on bytes straight off Kafka. Input: one selector byte picking a
 * catalogue schema, then the body; the target prepends the real C3 01 + fingerprint so
 * the fuzzer spends its time inside the body decoder instead of guessing 10 header bytes.
 * Properties: no crash, no leak; anything that decodes re-encodes; and encoding is stable:
 * encode(decode(encode(decode(x)))) == encode(decode(x)) byte for byte. (Bytes, not
 * json_equal: jansson's json_equal looks keys up with strlen, so a map key holding a NUL,
 * which Avro allows and we keep, would compare unequal to itself.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/serde.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    const struct ks_schema *s, *writer = NULL;
    struct ks_err err;
    uint8_t *msg;
    uint64_t fp;
    json_t *v = NULL, *v2 = NULL;
    void *again = NULL, *again2 = NULL;
    size_t again_len = 0, again2_len = 0;

    if (!ready) {
        if (ks_serde_init(&err) != KS_OK)
            abort();
        ready = 1;
    }
    if (size < 1)
        return 0;
    s = ks_schema_at(data[0] % ks_schema_count());
    fp = ks_schema_fingerprint(s);
    msg = malloc(size - 1 + 10);
    if (!msg)
        return 0;
    msg[0] = 0xC3;
    msg[1] = 0x01;
    for (int i = 0; i < 8; i++)
        msg[2 + i] = (uint8_t)(fp >> (8 * i));
    memcpy(msg + 10, data + 1, size - 1);
    if (ks_serde_decode(msg, size - 1 + 10, &writer, &v, &err) == KS_OK) {
        if (writer != s)
            abort();
        if (ks_serde_encode(s, v, &again, &again_len, &err) != KS_OK)
            abort(); /* what we decoded, we must be able to write */
        if (ks_serde_decode(again, again_len, NULL, &v2, &err) != KS_OK ||
            ks_serde_encode(s, v2, &again2, &again2_len, &err) != KS_OK ||
            again2_len != again_len || memcmp(again, again2, again_len) != 0)
            abort();
    } else if (err.code != KS_EPOISON) {
        abort(); /* undecodable input is poison, never another class */
    }
    json_decref(v);
    json_decref(v2);
    free(again);
    free(again2);
    free(msg);
    return 0;
}
