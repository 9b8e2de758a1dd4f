/* test_sandbox_form.c - the PSP sandbox's request helpers (deploy/psp-sandbox/util.c is
 * compiled into this test: form decoding as Stripe encodes it, credentials from the
 * Authorization header, request fingerprints). */
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/util.c"
#include "tests/unit/ktest.h"

struct fcase {
    const char *body;
    const char *json; /* sorted compact JSON, NULL: refused */
};

static const struct fcase forms[] = {
    {"", "{}"},
    {"amount=2000&currency=usd", "{\"amount\":\"2000\",\"currency\":\"usd\"}"},
    {"metadata[order_id]=ord_1&metadata[note]=a+b%21",
     "{\"metadata\":{\"note\":\"a b!\",\"order_id\":\"ord_1\"}}"},
    {"payment_method_types[]=card&payment_method_types[]=sepa",
     "{\"payment_method_types\":[\"card\",\"sepa\"]}"},
    {"expand[0]=latest_charge&expand[1]=customer",
     "{\"expand\":[\"latest_charge\",\"customer\"]}"},
    {"automatic_payment_methods[enabled]=true",
     "{\"automatic_payment_methods\":{\"enabled\":\"true\"}}"},
    {"a[b][c]=1", "{\"a\":{\"b\":{\"c\":\"1\"}}}"},
    {"flag", "{\"flag\":\"\"}"},
    {"x=1&&y=2", "{\"x\":\"1\",\"y\":\"2\"}"},
    {"a=%zz", NULL},            /* bad escape */
    {"a=%4", NULL},             /* truncated escape */
    {"=1", NULL},               /* empty name */
    {"a[b=1", NULL},            /* unclosed bracket */
    {"a[b]x=1", NULL},          /* text after a bracket */
    {"a=1&a[b]=2", NULL},       /* a value, then an object */
    {"a[5]=1", NULL},           /* array index past the end */
    {"a=%ff", NULL},            /* a value that is not UTF-8 */
    {"%c3=1", NULL},            /* a name that is not UTF-8 */
    {"a=ab%00%ff", NULL},       /* a NUL byte would cut the value (and hide the %ff) */
    {"\xff=1", NULL},           /* a raw byte in a name, named in the message as %FF */
    {"a=%c3%a9", "{\"a\":\"\u00e9\"}"},
};

KT_TEST(test_form)
{
    size_t i;
    char msg[200];

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        json_t *j = sb_form_parse(forms[i].body, strlen(forms[i].body), msg, sizeof(msg));
        if (!forms[i].json) {
            KT_CHECK_MSG(j == NULL, "accepted %s", forms[i].body);
            KT_CHECK(strstr(msg, "could not decode") != NULL);
            /* the message goes into a JSON answer: it must be UTF-8 whatever the name was */
            json_t *m = json_string(msg);
            KT_CHECK_MSG(m != NULL, "message of %s not UTF-8", forms[i].body);
            json_decref(m);
        } else {
            char *s = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
            KT_CHECK_MSG(s && strcmp(s, forms[i].json) == 0, "%s -> %s", forms[i].body,
                         s ? s : "(refused)");
            free(s);
        }
        json_decref(j);
    }
}

KT_TEST(test_auth_user)
{
    char out[64];

    sb_auth_user("Basic c2tfdGVzdF9hYmM6", out, sizeof(out)); /* "sk_test_abc:" */
    KT_STREQ(out, "sk_test_abc");
    sb_auth_user("basic c2tfdGVzdF9hYmM=", out, sizeof(out)); /* no colon: all of it */
    KT_STREQ(out, "sk_test_abc");
    sb_auth_user("Bearer sk_test_xyz", out, sizeof(out));
    KT_STREQ(out, "sk_test_xyz");
    sb_auth_user("Basic !!!", out, sizeof(out));
    KT_STREQ(out, "");
    sb_auth_user("Digest abc", out, sizeof(out));
    KT_STREQ(out, "");
    sb_auth_user(NULL, out, sizeof(out));
    KT_STREQ(out, "");
}

KT_TEST(test_fingerprint_and_tag)
{
    char a[65], b[65], c[65], t1[17], t2[17];

    sb_fingerprint("POST", "/v1/payment_intents", "{\"amount\":\"1\"}", a);
    sb_fingerprint("POST", "/v1/payment_intents", "{\"amount\":\"1\"}", b);
    sb_fingerprint("POST", "/v1/refunds", "{\"amount\":\"1\"}", c);
    KT_STREQ(a, b);
    KT_CHECK(strcmp(a, c) != 0);
    KT_INTEQ(strlen(a), 64);
    sb_cred_tag("sk_test_one", t1);
    sb_cred_tag("sk_test_two", t2);
    KT_INTEQ(strlen(t1), 16);
    KT_CHECK(strcmp(t1, t2) != 0);
    KT_CHECK(strstr(t1, "sk_") == NULL);
}

/* a path matches whole: prefix, an id that fits and holds no '/', suffix */
KT_TEST(test_path_id)
{
    char id[8];

    KT_CHECK(sb_path_id("/v2/ord-1/status", "/v2/", "/status", id, sizeof(id)));
    KT_CHECK(strcmp(id, "ord-1") == 0);
    KT_CHECK(sb_path_id("/v1/refunds/re_1", "/v1/refunds/", "", id, sizeof(id)));
    KT_CHECK(strcmp(id, "re_1") == 0);
    KT_CHECK(sb_path_id("/v1/refunds/1234567", "/v1/refunds/", "", id, sizeof(id))); /* 7 fit */
    KT_CHECK(!sb_path_id("/v1/refunds/12345678", "/v1/refunds/", "", id, sizeof(id))); /* not cut */
    KT_CHECK(!sb_path_id("/v1/refunds/re_1/x", "/v1/refunds/", "", id, sizeof(id)));
    KT_CHECK(!sb_path_id("/v2/o/x/status", "/v2/", "/status", id, sizeof(id)));
    KT_CHECK(!sb_path_id("/v2/o/statusx", "/v2/", "/status", id, sizeof(id)));
    KT_CHECK(!sb_path_id("/v2//status", "/v2/", "/status", id, sizeof(id))); /* no id */
    KT_CHECK(!sb_path_id("/v2/status", "/v2/", "/status", id, sizeof(id)));
    KT_CHECK(!sb_path_id("/v3/o/status", "/v2/", "/status", id, sizeof(id)));
    KT_CHECK(!sb_path_id("/v1/refunds/", "/v1/refunds/", "", id, sizeof(id)));
}

KT_MAIN(test_form, test_auth_user, test_fingerprint_and_tag, test_path_id)
