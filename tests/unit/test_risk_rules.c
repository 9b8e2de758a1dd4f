/* test_risk_rules.c - kasir-risk's rules file and checks (consumers/risk/rules.c is compiled
 * into this test: it is pure and depends only on lib/). */
#include <string.h>

#include "consumers/risk/rules.c"
#include "tests/unit/ktest.h"

/* problems reported, as "rule|field" lines */
struct sink {
    char buf[4096];
    int n;
};

static void collect(void *ctx, const char *rule, const char *field, const char *msg)
{
    struct sink *s = ctx;
    size_t at = strlen(s->buf);
    (void)msg;
    snprintf(s->buf + at, sizeof(s->buf) - at, "%s|%s\n", rule ? rule : "-", field);
    s->n++;
}

static struct risk_rules *parse(const char *text, struct sink *s)
{
    int np = 0;
    struct risk_rules *rs;
    memset(s, 0, sizeof(*s));
    rs = risk_rules_parse(text, strlen(text), collect, s, &np);
    KT_INTEQ(np, s->n);
    return rs;
}

KT_TEST(durations)
{
    KT_INTEQ(risk_duration_us("90s"), 90000000LL);
    KT_INTEQ(risk_duration_us("10m"), 600000000LL);
    KT_INTEQ(risk_duration_us("24h"), 86400000000LL);
    KT_INTEQ(risk_duration_us("7d"), 604800000000LL);
    KT_INTEQ(risk_duration_us("250ms"), 250000LL);
    KT_INTEQ(risk_duration_us("366d"), 366LL * 86400000000LL);
    KT_INTEQ(risk_duration_us("367d"), -1);
    KT_INTEQ(risk_duration_us("0s"), -1);
    KT_INTEQ(risk_duration_us("10"), -1);
    KT_INTEQ(risk_duration_us("10 m"), -1);
    KT_INTEQ(risk_duration_us("-5s"), -1);
    KT_INTEQ(risk_duration_us(""), -1);
}

KT_TEST(example_file_is_valid)
{
    struct sink s;
    int np = 0;
    struct risk_rules *rs;

    memset(&s, 0, sizeof(s));
    rs = risk_rules_load("deploy/risk/rules.json", collect, &s, &np);
    KT_CHECK_MSG(rs != NULL, "%s", s.buf);
    if (rs) {
        KT_INTEQ(rs->n_velocity, 2);
        KT_CHECK(rs->new_buyer);
        KT_INTEQ(rs->max_window_us, 86400000000LL);
    }
    risk_rules_free(rs);
}

/* every bad rule is named, each with its field, and nothing stops at the first */
KT_TEST(every_problem_reported)
{
    struct sink s;
    struct risk_rules *rs = parse(
        "{\"rules\": ["
        "{\"id\": \"ok\", \"type\": \"amount_limit\", \"currency\": \"IDR\", \"max\": \"10.00\"},"
        "{\"id\": \"cur\", \"type\": \"amount_limit\", \"currency\": \"XYZ\", \"max\": \"10.00\"},"
        "{\"id\": \"dec\", \"type\": \"amount_limit\", \"currency\": \"JPY\", \"max\": \"10.5\"},"
        "{\"id\": \"minmax\", \"type\": \"amount_limit\", \"currency\": \"IDR\", \"min\": \"9.00\", \"max\": \"1.00\"},"
        "{\"type\": \"velocity\", \"window\": \"1h\", \"max_count\": 3},"
        "{\"id\": \"win\", \"type\": \"velocity\", \"window\": \"soon\", \"max_count\": 3},"
        "{\"id\": \"amt\", \"type\": \"velocity\", \"window\": \"1h\", \"max_amount\": \"5.00\"},"
        "{\"id\": \"typ\", \"type\": \"geo\"},"
        "{\"id\": \"ok\", \"type\": \"blocklist\", \"list\": \"buyer\", \"values\": [\"x\"]},"
        "{\"id\": \"lst\", \"type\": \"blocklist\", \"list\": \"ip\", \"values\": []},"
        "{\"id\": \"nb\", \"type\": \"new_buyer_cap\", \"currency\": \"IDR\", \"max\": \"1.00\"},"
        "{\"id\": \"act\", \"type\": \"new_buyer_cap\", \"age\": \"7d\", \"currency\": \"IDR\","
        " \"max\": \"1.00\", \"action\": \"APPROVE\"},"
        "{\"id\": \"unk\", \"type\": \"velocity\", \"window\": \"1h\", \"max_count\": 1, \"extra\": 1},"
        "{\"id\": \"bad id!\", \"type\": \"blocklist\", \"list\": \"seller\", \"values\": [\"s\"]},"
        "7]}",
        &s);

    KT_CHECK(rs == NULL);
    KT_CHECK_MSG(strstr(s.buf, "cur|rules[1].currency\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "dec|rules[2].max\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "minmax|rules[3].min\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "rules[4]|rules[4].id\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "win|rules[5].window\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "amt|rules[6].currency\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "typ|rules[7].type\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "ok|rules[8].id\n") != NULL, "%s", s.buf); /* duplicate id */
    KT_CHECK_MSG(strstr(s.buf, "lst|rules[9].list\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "lst|rules[9].values\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "nb|rules[10].age\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "act|rules[11].action\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "unk|rules[12].extra\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "rules[13]|rules[13].id\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "rules[14]|rules[14]\n") != NULL, "%s", s.buf);
    KT_CHECK_MSG(strstr(s.buf, "ok|rules[0]") == NULL, "the good rule named: %s", s.buf);
}

KT_TEST(file_level_problems)
{
    struct sink s;
    KT_CHECK(parse("{\"rules\": [", &s) == NULL);
    KT_CHECK(s.n == 1 && strstr(s.buf, "-|(file)") != NULL);
    KT_CHECK(parse("[]", &s) == NULL);
    KT_CHECK(parse("{\"rule\": []}", &s) == NULL);
    KT_INTEQ(s.n, 2); /* the unknown member, and rules missing */
    KT_CHECK(parse("{\"rules\": [], \"rules\": []}", &s) == NULL); /* duplicate member */
    struct risk_rules *rs = parse("{\"rules\": []}", &s);
    KT_CHECK(rs != NULL && rs->n == 0);
    risk_rules_free(rs);
}

static const char RULES[] =
    "{\"rules\": ["
    "{\"id\": \"card-idr\", \"type\": \"amount_limit\", \"method\": \"CARD\", \"currency\": \"IDR\","
    " \"min\": \"100.00\", \"max\": \"1000.00\"},"
    "{\"id\": \"any-usd\", \"type\": \"amount_limit\", \"currency\": \"USD\", \"max\": \"50.00\","
    " \"action\": \"REVIEW\", \"reason\": \"USD_LARGE\"},"
    "{\"id\": \"po-ew\", \"type\": \"amount_limit\", \"flow\": \"payout\", \"method\": \"EWALLET\","
    " \"currency\": \"IDR\", \"max\": \"500.00\"},"
    "{\"id\": \"bb\", \"type\": \"blocklist\", \"list\": \"buyer\", \"values\": [\"evil\", \"bad\"]},"
    "{\"id\": \"bs\", \"type\": \"blocklist\", \"list\": \"seller\", \"values\": [\"s-bad\"], \"action\": \"REVIEW\"},"
    "{\"id\": \"bc\", \"type\": \"blocklist\", \"list\": \"card\", \"values\": [\"fp1\", \"tok_bad\"]},"
    "{\"id\": \"ba\", \"type\": \"blocklist\", \"list\": \"account\", \"values\": [\"BCA:111\", \"222\"]},"
    "{\"id\": \"v10\", \"type\": \"velocity\", \"window\": \"10s\", \"max_count\": 2},"
    "{\"id\": \"vsum\", \"type\": \"velocity\", \"window\": \"1h\", \"currency\": \"IDR\","
    " \"max_amount\": \"1500.00\", \"action\": \"REJECT\"},"
    "{\"id\": \"nb\", \"type\": \"new_buyer_cap\", \"age\": \"1d\", \"currency\": \"IDR\", \"max\": \"800.00\"},"
    "{\"id\": \"only-p2\", \"type\": \"blocklist\", \"list\": \"buyer\", \"values\": [\"b1\"], \"partner\": \"p2\"}"
    "]}";

static int fired(const struct risk_verdict *v, const char *rule, const char *code)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->rule[i], rule) == 0 && strcmp(v->code[i], code) == 0)
            return 1;
    return 0;
}

KT_TEST(message_rules)
{
    struct sink s;
    struct risk_rules *rs = parse(RULES, &s);
    struct risk_order o[2] = {
        {.order_id = "o1", .seller = "s1", .currency = "IDR", .amount = 50000, .method = RM_CARD,
         .token = "tok_ok"},
        {.order_id = "o2", .seller = "s2", .currency = "USD", .amount = 4000, .method = RM_QRIS},
    };
    struct risk_payment p = {.partner = "p1", .payment_id = "pay", .buyer = "b1",
                             .checkout = "c", .orders = o, .n_orders = 2};
    struct risk_verdict v;

    KT_CHECK_MSG(rs != NULL, "%s", s.buf);
    if (!rs)
        return;
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_INTEQ(v.action, RISK_APPROVE); /* b1 is blocked for p2 only; 500.00 IDR within limits */
    o[0].amount = 9999; /* 99.99 < 100.00 */
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_INTEQ(v.action, RISK_REJECT);
    KT_CHECK(fired(&v, "card-idr", "AMOUNT_BELOW_MIN"));
    o[0].amount = 100001; /* 1000.01 */
    o[1].amount = 5001;   /* USD 50.01: the REVIEW rule with its own reason */
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_INTEQ(v.action, RISK_REJECT); /* the stronger action wins */
    KT_CHECK(fired(&v, "card-idr", "AMOUNT_ABOVE_MAX"));
    KT_CHECK(fired(&v, "any-usd", "USD_LARGE"));
    KT_INTEQ(v.n, 2);
    o[0].amount = 50000;
    o[1].amount = 100;
    o[0].method = RM_QRIS; /* the CARD limit no longer applies */
    o[0].amount = 1;
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_INTEQ(v.action, RISK_APPROVE);
    /* blocklists: buyer, seller (any order), card (token or fingerprint) */
    p.buyer = "evil";
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_CHECK(fired(&v, "bb", "BLOCKED_BUYER") && v.action == RISK_REJECT);
    p.buyer = "b1";
    o[1].seller = "s-bad";
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_CHECK(fired(&v, "bs", "BLOCKED_SELLER") && v.action == RISK_REVIEW);
    o[1].seller = "s2";
    o[0].token = "tok_bad";
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_CHECK(fired(&v, "bc", "BLOCKED_CARD"));
    o[0].token = NULL;
    p.card_fp = "fp1";
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_CHECK(fired(&v, "bc", "BLOCKED_CARD"));
    /* the partner-scoped rule */
    p.card_fp = NULL;
    p.partner = "p2";
    memset(&v, 0, sizeof(v));
    risk_check_payment(rs, &p, &v);
    KT_CHECK(fired(&v, "only-p2", "BLOCKED_BUYER"));
    risk_rules_free(rs);
}

KT_TEST(payout_rules)
{
    struct sink s;
    struct risk_rules *rs = parse(RULES, &s);
    struct risk_payout po = {.partner = "p1", .payout_id = "po", .seller = "s1", .currency = "IDR",
                             .account = "111", .bank_code = "BCA", .amount = 60000,
                             .method = RM_BANK_TRANSFER};
    struct risk_verdict v;

    if (!rs)
        return;
    memset(&v, 0, sizeof(v));
    risk_check_payout(rs, &po, &v);
    KT_CHECK(fired(&v, "ba", "BLOCKED_ACCOUNT")); /* "BCA:111" */
    KT_INTEQ(v.n, 1); /* the e-wallet limit is not for bank transfers */
    po.account = "333";
    po.bank_code = NULL;
    po.ewallet = "OVO";
    po.method = RM_EWALLET;
    memset(&v, 0, sizeof(v));
    risk_check_payout(rs, &po, &v);
    KT_CHECK(fired(&v, "po-ew", "AMOUNT_ABOVE_MAX"));
    po.account = "222";
    po.amount = 100;
    memset(&v, 0, sizeof(v));
    risk_check_payout(rs, &po, &v);
    KT_CHECK(fired(&v, "ba", "BLOCKED_ACCOUNT") && v.n == 1);
    risk_rules_free(rs);
}

/* the window is (t - window, t]: exactly one window back is out, a microsecond less is in */
KT_TEST(window_boundary)
{
    struct sink s;
    struct risk_rules *rs = parse(RULES, &s);
    const struct risk_rule *v10 = NULL, *vsum = NULL;
    struct risk_amount idr = {"IDR", 60000}, usd = {"USD", 99}, two[2] = {{"IDR", 10}, {"IDR", 5}};
    int64_t t = 1767225600000000, n = 0, sum = 0;

    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        if (strcmp(rs->rule[i].id, "v10") == 0)
            v10 = &rs->rule[i];
        if (strcmp(rs->rule[i].id, "vsum") == 0)
            vsum = &rs->rule[i];
    }
    risk_window_add(v10, t, t - 10000000, &idr, 1, &n, &sum); /* exactly 10 s before: out */
    KT_INTEQ(n, 0);
    risk_window_add(v10, t, t - 9999999, &idr, 1, &n, &sum); /* 1 us inside */
    KT_INTEQ(n, 1);
    risk_window_add(v10, t, t, &usd, 1, &n, &sum); /* no currency: every payment counts */
    KT_INTEQ(n, 2);
    risk_window_add(v10, t, t + 1, &idr, 1, &n, &sum); /* later than t: not in t's window */
    KT_INTEQ(n, 2);
    KT_INTEQ(sum, 0); /* a rule without a currency sums nothing */
    n = sum = 0;
    risk_window_add(vsum, t, t - 1, &usd, 1, &n, &sum); /* another currency: not counted */
    KT_INTEQ(n, 0);
    risk_window_add(vsum, t, t - 1, two, 2, &n, &sum); /* one payment, two IDR orders */
    KT_INTEQ(n, 1);
    KT_INTEQ(sum, 15);
    risk_rules_free(rs);
}

KT_TEST(history_rules)
{
    struct sink s;
    struct risk_rules *rs = parse(RULES, &s);
    struct risk_order o = {.order_id = "o", .seller = "s", .currency = "IDR", .amount = 80001,
                           .method = RM_QRIS};
    struct risk_payment p = {.partner = "p1", .buyer = "b", .checkout = "c", .orders = &o,
                             .n_orders = 1, .at_us = 1767225600000000};
    int64_t cnt[2] = {2, 1}, sum[2] = {0, 150000};
    struct risk_stats st = {cnt, sum, p.at_us};
    struct risk_verdict v;

    if (!rs)
        return;
    memset(&v, 0, sizeof(v));
    risk_check_history(rs, &p, &st, &v); /* at the limits; a new buyer over 800.00 */
    KT_INTEQ(v.n, 1);
    KT_CHECK(fired(&v, "nb", "NEW_BUYER_CAP") && v.action == RISK_REVIEW);
    st.first_us = p.at_us - 86400000000LL; /* first seen exactly a day ago: not new */
    cnt[0] = 3;
    sum[1] = 150001;
    memset(&v, 0, sizeof(v));
    risk_check_history(rs, &p, &st, &v);
    KT_INTEQ(v.n, 2);
    KT_CHECK(fired(&v, "v10", "VELOCITY_COUNT"));
    KT_CHECK(fired(&v, "vsum", "VELOCITY_AMOUNT"));
    KT_INTEQ(v.action, RISK_REJECT);
    KT_CHECK(risk_needs_first_seen(rs, &p)); /* 800.01 IDR is above the cap */
    o.amount = 80000;
    KT_CHECK(!risk_needs_first_seen(rs, &p)); /* at the cap: the buyer's age cannot matter */
    o.amount = 80001;
    st.first_us = p.at_us - 86400000000LL + 1; /* a microsecond short of a day: new */
    o.amount = 80000;                          /* but not over the cap */
    cnt[0] = 2;
    sum[1] = 0;
    memset(&v, 0, sizeof(v));
    risk_check_history(rs, &p, &st, &v);
    KT_INTEQ(v.action, RISK_APPROVE);
    risk_rules_free(rs);
}

KT_MAIN(durations, example_file_is_valid, every_problem_reported, file_level_problems,
        message_rules, payout_rules, window_boundary, history_rules)
