/*
 * The -T dump of a configuration as a string, for the unit tests that
 * compare configurations by their dump (test_conf, test_cycle). Include
 * after cmocka.h and hg_conf.h.
 */

#ifndef TEST_DUMP_H
#define TEST_DUMP_H

static char *
dump_text(const hg_conf_t *conf)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);

    assert_non_null(m);
    assert_int_equal(hg_conf_dump(conf, m), HG_OK);
    assert_int_equal(fclose(m), 0);
    return text;
}

#endif /* TEST_DUMP_H */
