/* Locality table: longest prefix wins, IPv4 and IPv6, bad lines named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "announce.h"
#include "locality.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/pc_locality_%d.txt", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void longest_prefix_wins(void **state)
{
    (void)state;
    const char *path = write_tmp("# region table\n"
                                 "10.0.0.0/8 corp\n"
                                 "10.1.0.0/16 eu-west 64500\n"
                                 "10.1.2.0/24 eu-west-1a 64501\n"
                                 "\n"
                                 "2001:db8::/32 v6land 64999\n");
    pc_locality *l;
    char err[128];
    assert_int_equal(pc_locality_load(path, &l, err, sizeof(err)), 0);
    const char *region;
    uint32_t asn;
    uint8_t a[16];
    assert_int_equal(pc_addr_parse("10.1.2.9", a), 0);
    assert_int_equal(pc_locality_lookup(l, a, &region, &asn), 0);
    assert_string_equal(region, "eu-west-1a");
    assert_int_equal(asn, 64501);
    assert_int_equal(pc_addr_parse("10.1.3.9", a), 0);
    assert_int_equal(pc_locality_lookup(l, a, &region, &asn), 0);
    assert_string_equal(region, "eu-west");
    assert_int_equal(pc_addr_parse("10.200.0.1", a), 0);
    assert_int_equal(pc_locality_lookup(l, a, &region, &asn), 0);
    assert_string_equal(region, "corp");
    assert_int_equal(asn, 0);
    assert_int_equal(pc_addr_parse("2001:db8:5::1", a), 0);
    assert_int_equal(pc_locality_lookup(l, a, &region, &asn), 0);
    assert_string_equal(region, "v6land");
    assert_int_equal(pc_addr_parse("192.0.2.1", a), 0);
    assert_int_equal(pc_locality_lookup(l, a, &region, &asn), PC_ENOENT);
    pc_locality_free(l);
    unlink(path);
}

static void bad_lines_are_named(void **state)
{
    (void)state;
    /* each with the part to blame (a bad ASN was reported as the REGION's fault) */
    const char *bad[][2] = {{"10.0.0.0 x\n", "(CIDR:"}, {"10.0.0.0/33 x\n", "(CIDR:"}, {"nope/8 x\n", "(CIDR:"},
                            {"10.0.0.0/8\n", "(CIDR and REGION"}, {"1.0.0.0/8 x 99999999999\n", "(ASN:"},
                            {"10.0.0.0/8 eu\"west\n", "(REGION:"}, {"10.0.0.0/8 eu\\west\n", "(REGION:"},
                            {"10.0.0.0/8 x AS64500\n", "(ASN:"}, {"10.0.0.0/8 x 12x\n", "(ASN:"}, {"10.0.0.0/8 x -1\n", "(ASN:"},
                            {"10.0.0.0/8 x 123456789012345678901\n", "(ASN:"},
                            {"10.0.0.0/8 x 0000000000000000000000000000000000000000000000000000000000000000000064500\n", "(ASN:"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path = write_tmp(bad[i][0]);
        pc_locality *l = NULL;
        char err[256];
        assert_int_equal(pc_locality_load(path, &l, err, sizeof(err)), PC_EPARSE);
        assert_non_null(strstr(err, ":1:"));
        if (strstr(err, bad[i][1]) == NULL)
            fail_msg("%s: %s", bad[i][0], err);
        unlink(path);
    }
    pc_locality *l;
    char err[256];
    assert_int_equal(pc_locality_load("/nonexistent/x", &l, err, sizeof(err)), PC_EIO);
}

static void networks_group_neighbours(void **state)
{
    (void)state;
    uint8_t a[16], b[16], c[16];
    assert_int_equal(pc_addr_parse("198.51.100.1", a), 0);
    assert_int_equal(pc_addr_parse("198.51.100.200", b), 0);
    assert_int_equal(pc_addr_parse("198.51.101.1", c), 0);
    assert_int_equal(pc_locality_net(a), pc_locality_net(b));
    assert_int_not_equal(pc_locality_net(a), pc_locality_net(c));
    assert_int_equal(pc_addr_parse("2001:db8:1:2::1", a), 0);
    assert_int_equal(pc_addr_parse("2001:db8:1:3::1", b), 0);
    assert_int_equal(pc_addr_parse("2001:db8:2::1", c), 0);
    assert_int_equal(pc_locality_net(a), pc_locality_net(b)); /* same /48 */
    assert_int_not_equal(pc_locality_net(a), pc_locality_net(c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(longest_prefix_wins),
        cmocka_unit_test(bad_lines_are_named),
        cmocka_unit_test(networks_group_neighbours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
