/* test_webhook.c - the four verification schemes with known vectors. */
#include <string.h>

#include "lib/webhook.h"
#include "tests/unit/ktest.h"

KT_TEST(standard_webhooks_spec_vector)
{
    /* the example of the Standard Webhooks specification */
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *body = "{\"test\": 2432232314}";
    const char *sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    struct ks_err e = {0};
    char out[KS_WEBHOOK_SIG_LEN];

    KT_INTEQ(ks_webhook_verify_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body,
                                        strlen(body), secret, 1614265330, 300, &e), KS_OK);
    /* rotated keys: any listed signature may match */
    KT_INTEQ(ks_webhook_verify_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
                                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                        body, strlen(body), secret, 1614265330, 300, &e), KS_OK);
    KT_INTEQ(ks_webhook_verify_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body,
                                        strlen(body), secret, 1614265330 + 301, 300, &e), KS_ERANGE);
    KT_INTEQ(ks_webhook_verify_standard("msg_other", "1614265330", sig, body, strlen(body),
                                        secret, 1614265330, 300, &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_standard("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig,
                                        "{\"test\": 2432232315}", strlen(body), secret,
                                        1614265330, 300, &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_sign_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                                      strlen(body), out), 0);
    KT_STREQ(out, sig);
}

KT_TEST(stripe_vector)
{
    /* HMAC-SHA256("whsec_test_secret", "1700000000.{\"id\":\"evt_1\"}"), computed with Python */
    const char *body = "{\"id\":\"evt_1\"}";
    const char *good = "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";
    struct ks_err e = {0};
    char out[KS_WEBHOOK_SIG_LEN];

    KT_INTEQ(ks_webhook_verify_stripe(good, body, strlen(body), "whsec_test_secret", 1700000100,
                                      300, &e), KS_OK);
    KT_INTEQ(ks_webhook_verify_stripe("t=1700000000,v0=00,v1=00,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a",
                                      body, strlen(body), "whsec_test_secret", 1700000000, 300, &e), KS_OK);
    KT_INTEQ(ks_webhook_verify_stripe(good, body, strlen(body), "whsec_test_secret", 1700000301,
                                      300, &e), KS_ERANGE);
    KT_INTEQ(ks_webhook_verify_stripe(good, body, strlen(body), "whsec_other", 1700000000, 300,
                                      &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_stripe("v1=248a", body, strlen(body), "whsec_test_secret",
                                      1700000000, 300, &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_stripe(NULL, body, strlen(body), "whsec_test_secret", 1700000000,
                                      300, &e), KS_EAUTH);
    ks_webhook_sign_stripe("whsec_test_secret", 1700000000, body, strlen(body), out);
    KT_STREQ(out, good);
}

KT_TEST(xendit_token)
{
    struct ks_err e = {0};

    KT_INTEQ(ks_webhook_verify_xendit("tok123", "tok123", &e), KS_OK);
    KT_INTEQ(ks_webhook_verify_xendit("tok124", "tok123", &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_xendit("tok12", "tok123", &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_xendit(NULL, "tok123", &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_xendit("x", "", &e), KS_EAUTH);
}

KT_TEST(midtrans_vector)
{
    /* SHA-512("order-1" "200" "150000.00" "SB-Mid-server-key"), computed with Python */
    const char *sig = "ee79126801cda22e8d038358c139c4f02b8d5acb68dc4e62c608528308a708a887b245ea90e02170c6c8d52cd383f2a45f8397af27a72086c8960be2dd635703";
    char body[512], ev[128], out[129];
    struct ks_err e = {0};

    ks_webhook_midtrans_signature("order-1", "200", "150000.00", "SB-Mid-server-key", out);
    KT_STREQ(out, sig);
    snprintf(body, sizeof(body), "{\"order_id\":\"order-1\",\"status_code\":\"200\","
             "\"gross_amount\":\"150000.00\",\"transaction_status\":\"settlement\","
             "\"transaction_id\":\"t-1\",\"signature_key\":\"%s\"}", sig);
    KT_INTEQ(ks_webhook_verify_midtrans(body, strlen(body), "SB-Mid-server-key", ev, sizeof(ev),
                                        &e), KS_OK);
    KT_STREQ(ev, "t-1:settlement");
    KT_INTEQ(ks_webhook_verify_midtrans(body, strlen(body), "other", ev, sizeof(ev), &e), KS_EAUTH);
    KT_INTEQ(ks_webhook_verify_midtrans("[]", 2, "k", ev, sizeof(ev), &e), KS_EAUTH);
}

KT_MAIN(standard_webhooks_spec_vector, stripe_vector, xendit_token, midtrans_vector)
