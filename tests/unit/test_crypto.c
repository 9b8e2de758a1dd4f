/* test_crypto.c - digests, HMAC (RFC 4231), encodings (RFC 4648), compares, RNG.
 * The vectors are typed from the RFCs and FIPS 180-2, not computed by the code under test. */
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "tests/unit/ktest.h"

static void hex(const uint8_t *in, size_t len, char *out)
{
    ks_hex_encode(in, len, out);
}

KT_TEST(test_sha_abc)
{
    uint8_t d256[KS_SHA256_LEN], d512[KS_SHA512_LEN];
    char h[2 * KS_SHA512_LEN + 1];

    ks_sha256("abc", 3, d256);
    hex(d256, sizeof(d256), h);
    KT_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ks_sha512("abc", 3, d512);
    hex(d512, sizeof(d512), h);
    KT_STREQ(h, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    ks_sha256("", 0, d256);
    hex(d256, sizeof(d256), h);
    KT_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* RFC 4231 section 4; test case 5 (truncated output) does not apply to our API */
struct hmac_case {
    int id;
    uint8_t key[131];
    size_t klen;
    uint8_t data[160];
    size_t dlen;
    const char *sha256, *sha512;
};

static void fill(uint8_t *p, uint8_t b, size_t n)
{
    memset(p, b, n);
}

KT_TEST(test_hmac_rfc4231)
{
    static struct hmac_case c[6];
    static const char d7[] = "This is a test using a larger than block-size key and a larger "
                             "than block-size data. The key needs to be hashed before being "
                             "used by the HMAC algorithm.";
    static const char d6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

    /* 1 */
    c[0].id = 1;
    fill(c[0].key, 0x0b, 20);
    c[0].klen = 20;
    memcpy(c[0].data, "Hi There", 8);
    c[0].dlen = 8;
    c[0].sha256 = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
    c[0].sha512 = "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                  "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854";
    /* 2 */
    c[1].id = 2;
    memcpy(c[1].key, "Jefe", 4);
    c[1].klen = 4;
    memcpy(c[1].data, "what do ya want for nothing?", 28);
    c[1].dlen = 28;
    c[1].sha256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    c[1].sha512 = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                  "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
    /* 3 */
    c[2].id = 3;
    fill(c[2].key, 0xaa, 20);
    c[2].klen = 20;
    fill(c[2].data, 0xdd, 50);
    c[2].dlen = 50;
    c[2].sha256 = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
    c[2].sha512 = "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
                  "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb";
    /* 4 */
    c[3].id = 4;
    for (int i = 0; i < 25; i++)
        c[3].key[i] = (uint8_t)(i + 1);
    c[3].klen = 25;
    fill(c[3].data, 0xcd, 50);
    c[3].dlen = 50;
    c[3].sha256 = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
    c[3].sha512 = "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
                  "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd";
    /* 6 */
    c[4].id = 6;
    fill(c[4].key, 0xaa, 131);
    c[4].klen = 131;
    memcpy(c[4].data, d6, sizeof(d6) - 1);
    c[4].dlen = sizeof(d6) - 1;
    c[4].sha256 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
    c[4].sha512 = "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
                  "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598";
    /* 7 */
    c[5].id = 7;
    fill(c[5].key, 0xaa, 131);
    c[5].klen = 131;
    memcpy(c[5].data, d7, sizeof(d7) - 1);
    c[5].dlen = sizeof(d7) - 1;
    c[5].sha256 = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
    c[5].sha512 = "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
                  "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58";

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        uint8_t m256[KS_SHA256_LEN], m512[KS_SHA512_LEN];
        char h[2 * KS_SHA512_LEN + 1];
        ks_hmac_sha256(c[i].key, c[i].klen, c[i].data, c[i].dlen, m256);
        hex(m256, sizeof(m256), h);
        KT_CHECK_MSG(strcmp(h, c[i].sha256) == 0, "case %d sha256 %s", c[i].id, h);
        ks_hmac_sha512(c[i].key, c[i].klen, c[i].data, c[i].dlen, m512);
        hex(m512, sizeof(m512), h);
        KT_CHECK_MSG(strcmp(h, c[i].sha512) == 0, "case %d sha512 %s", c[i].id, h);
    }
}

KT_TEST(test_hmac_empty_key_and_data)
{
    uint8_t m[KS_SHA256_LEN];
    char h[2 * KS_SHA256_LEN + 1];

    /* HMAC-SHA256("", "") as published in many test suites (and by Python's hmac) */
    ks_hmac_sha256("", 0, "", 0, m);
    hex(m, sizeof(m), h);
    KT_STREQ(h, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

KT_TEST(test_ct_equal)
{
    uint8_t a[32], b[32];

    memset(a, 7, sizeof(a));
    memset(b, 7, sizeof(b));
    KT_INTEQ(ks_ct_equal(a, b, sizeof(a)), 1);
    b[31] ^= 1;
    KT_INTEQ(ks_ct_equal(a, b, sizeof(a)), 0);
    b[31] ^= 1;
    b[0] ^= 0x80;
    KT_INTEQ(ks_ct_equal(a, b, sizeof(a)), 0);
    KT_INTEQ(ks_ct_equal(a, b, 0), 1);

    KT_INTEQ(ks_ct_streq("whsec_abc", "whsec_abc"), 1);
    KT_INTEQ(ks_ct_streq("whsec_abc", "whsec_abd"), 0);
    KT_INTEQ(ks_ct_streq("abc", "abcd"), 0);
    KT_INTEQ(ks_ct_streq("abcd", "abc"), 0);
    KT_INTEQ(ks_ct_streq("", ""), 1);
    KT_INTEQ(ks_ct_streq("", "a"), 0);
    KT_INTEQ(ks_ct_streq("a", ""), 0);
    KT_INTEQ(ks_ct_streq(NULL, "a"), 0);
    KT_INTEQ(ks_ct_streq("a", NULL), 0);
}

KT_TEST(test_hex)
{
    static const uint8_t bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char h[2 * sizeof(bin) + 1];
    uint8_t out[16];

    ks_hex_encode(bin, sizeof(bin), h);
    KT_STREQ(h, "00017f80abff");
    KT_INTEQ(ks_hex_decode(h, strlen(h), out, sizeof(out)), sizeof(bin));
    KT_CHECK(memcmp(out, bin, sizeof(bin)) == 0);
    /* RFC 4648 section 10, base16 (upper case there) */
    KT_INTEQ(ks_hex_decode("666F6F626172", 12, out, sizeof(out)), 6);
    KT_CHECK(memcmp(out, "foobar", 6) == 0);
    ks_hex_encode((const uint8_t *)"foobar", 6, h);
    KT_STREQ(h, "666f6f626172");
    ks_hex_encode(bin, 0, h);
    KT_STREQ(h, "");
    KT_INTEQ(ks_hex_decode("", 0, out, sizeof(out)), 0);

    KT_INTEQ(ks_hex_decode("abc", 3, out, sizeof(out)), -1);     /* odd */
    KT_INTEQ(ks_hex_decode("zz", 2, out, sizeof(out)), -1);      /* not hex */
    KT_INTEQ(ks_hex_decode("0g", 2, out, sizeof(out)), -1);
    KT_INTEQ(ks_hex_decode("00112233", 8, out, 3), -1);          /* too small */
    KT_INTEQ(ks_hex_decode("00112233", 8, out, 4), 4);
}

KT_TEST(test_b64_rfc4648)
{
    static const struct {
        const char *plain, *b64;
    } v[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char enc[16];
        uint8_t dec[16];
        size_t pl = strlen(v[i].plain);
        KT_INTEQ(ks_b64_enclen(pl), strlen(v[i].b64));
        ks_b64_encode((const uint8_t *)v[i].plain, pl, enc);
        KT_STREQ(enc, v[i].b64);
        KT_INTEQ(ks_b64_decode(enc, strlen(enc), dec, sizeof(dec)), pl);
        KT_CHECK(memcmp(dec, v[i].plain, pl) == 0);
        /* unpadded (base64url style) decodes to the same */
        size_t unpadded = strcspn(v[i].b64, "=");
        KT_INTEQ(ks_b64_decode(v[i].b64, unpadded, dec, sizeof(dec)), pl);
        ks_b64url_encode((const uint8_t *)v[i].plain, pl, enc);
        KT_INTEQ(strlen(enc), unpadded);
    }
}

KT_TEST(test_b64url)
{
    /* 0xfb 0xff 0xbf encodes to "+/+/" in standard, "-_-_" in url */
    static const uint8_t bin[] = {0xfb, 0xff, 0xbf, 0xfb, 0xff};
    char enc[16];
    uint8_t dec[16];

    ks_b64_encode(bin, sizeof(bin), enc);
    KT_STREQ(enc, "+/+/+/8=");
    ks_b64url_encode(bin, sizeof(bin), enc);
    KT_STREQ(enc, "-_-_-_8");
    KT_INTEQ(ks_b64_decode("-_-_-_8", 7, dec, sizeof(dec)), sizeof(bin));
    KT_CHECK(memcmp(dec, bin, sizeof(bin)) == 0);
    KT_INTEQ(ks_b64_decode("+/+/+/8=", 8, dec, sizeof(dec)), sizeof(bin));
    KT_CHECK(memcmp(dec, bin, sizeof(bin)) == 0);
}

KT_TEST(test_b64_round_trip_all_lengths)
{
    uint8_t bin[70], dec[70];
    char enc[100];

    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(bin); len++) {
        ks_b64_encode(bin, len, enc);
        KT_INTEQ(strlen(enc), ks_b64_enclen(len));
        KT_INTEQ(ks_b64_decode(enc, strlen(enc), dec, sizeof(dec)), len);
        KT_CHECK(memcmp(dec, bin, len) == 0);
        ks_b64url_encode(bin, len, enc);
        KT_INTEQ(ks_b64_decode(enc, strlen(enc), dec, sizeof(dec)), len);
        KT_CHECK(memcmp(dec, bin, len) == 0);
        /* a buffer one byte short is refused */
        if (len > 0)
            KT_INTEQ(ks_b64_decode(enc, strlen(enc), dec, len - 1), -1);
    }
}

KT_TEST(test_b64_rejects)
{
    uint8_t dec[16];
    static const char *const bad[] = {
        "Z",        /* one character cannot be a byte */
        "Zg=",      /* padding must fill the quantum */
        "Zg===",    /* too much padding */
        "Z===",
        "Zm9v====",
        "Zh==",     /* non-zero unused bits: not the canonical "Zg==" */
        "Zm9=",
        "Zm 9v",    /* whitespace */
        "Zm9v\n",
        "Zg==Zg==", /* padding in the middle */
        "Zm9*",
        "=",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        KT_CHECK_MSG(ks_b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)) == -1, "\"%s\"",
                     bad[i]);
}

KT_TEST(test_random)
{
    uint8_t a[32], b[32], zero[32] = {0};
    struct ks_err err;

    memset(&err, 0x5a, sizeof(err));
    KT_INTEQ(ks_random_bytes(a, sizeof(a), &err), KS_OK);
    KT_INTEQ(ks_random_bytes(b, sizeof(b), &err), KS_OK);
    KT_CHECK(memcmp(a, b, sizeof(a)) != 0);
    KT_CHECK(memcmp(a, zero, sizeof(a)) != 0);
    KT_INTEQ(err.code, 0x5a5a5a5a); /* untouched */
    KT_INTEQ(ks_random_bytes(a, 0, &err), KS_OK);
}

/* Small draws come from a per-thread pool: across several refills no two 16-byte draws
 * repeat, and a large draw (straight from RAND_bytes) works too. */
KT_TEST(test_random_pool)
{
    static uint8_t d[1000][16];
    uint8_t big[5000];
    int dup = 0;

    for (int i = 0; i < 1000; i++)
        KT_INTEQ(ks_random_bytes(d[i], 16, NULL), KS_OK);
    for (int i = 0; i < 1000 && !dup; i++)
        for (int j = i + 1; j < 1000; j++)
            if (memcmp(d[i], d[j], 16) == 0) {
                dup = 1;
                break;
            }
    KT_CHECK(!dup);
    KT_INTEQ(ks_random_bytes(big, sizeof(big), NULL), KS_OK);
    KT_CHECK(memcmp(big, big + 2500, 16) != 0);
}

/* A forked child must not hand out the bytes its parent hands out next: the pool the
 * child inherited is discarded. */
KT_TEST(test_random_fork)
{
    uint8_t warm[8], mine[16], theirs[16] = {0};
    int fds[2];
    pid_t pid;

    KT_INTEQ(ks_random_bytes(warm, sizeof(warm), NULL), KS_OK); /* the pool is filled */
    KT_INTEQ(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        uint8_t c[16];
        close(fds[0]);
        if (ks_random_bytes(c, sizeof(c), NULL) == KS_OK && write(fds[1], c, sizeof(c)) == 16)
            _exit(0);
        _exit(1);
    }
    close(fds[1]);
    KT_INTEQ(ks_random_bytes(mine, sizeof(mine), NULL), KS_OK);
    KT_INTEQ(read(fds[0], theirs, sizeof(theirs)), 16);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    KT_CHECK(memcmp(mine, theirs, sizeof(mine)) != 0);
}

KT_MAIN(test_sha_abc, test_hmac_rfc4231, test_hmac_empty_key_and_data, test_ct_equal,
        test_hex, test_b64_rfc4648, test_b64url, test_b64_round_trip_all_lengths,
        test_b64_rejects, test_random, test_random_pool, test_random_fork)
