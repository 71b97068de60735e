/*
 * Unit tests for hg_log: a text line escapes every control character in
 * every part (so no module or job text can end a line or forge one), a
 * JSON line keeps the text exactly, and the log file is created 0640 and
 * never opened through a symbolic link.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "hg_log.h"

/* Everything a hostile text may hold: a newline and a carriage return
 * that would start a forged line, a tab, an ANSI colour escape, DEL and
 * another C0 byte. */
#define HOSTILE  "one\ntwo [error] master 1: forged\r\tx\x1b[31mred\x7f\x01"

typedef struct {
    char dir[64];
    char path[96];
} log_fixture_t;

static int
setup(void **state)
{
    log_fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hg-test-log-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/hourglass.log", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    log_fixture_t *f = *state;
    char link[128];

    hg_log_close();
    snprintf(link, sizeof(link), "%s/link.log", f->dir);
    unlink(link);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The whole file, NUL-terminated (malloc'd). */
static char *
slurp(const char *path)
{
    char *buf = calloc(1, 65536);
    FILE *fp = fopen(path, "rb");
    size_t n;

    assert_non_null(buf);
    assert_non_null(fp);
    n = fread(buf, 1, 65535, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static void
assert_one_clean_line(const char *text)
{
    size_t len = strlen(text), i;

    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    for (i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c < ' ' || c == 0x7f) {
            fail_msg("raw control byte 0x%02x at %zu in: %s", c, i, text);
        }
    }
}

static void
test_text_message_escapes_control_characters(void **state)
{
    log_fixture_t *f = *state;
    char *text;

    assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    hg_log(HG_LOG_ERROR, "%s", HOSTILE);
    hg_log_close();
    text = slurp(f->path);
    assert_one_clean_line(text);
    assert_non_null(strstr(text, " one\\ntwo [error] master 1: forged"
                                 "\\r\\tx\\x1b[31mred\\x7f\\x01\n"));
    free(text);
}

static void
test_text_fields_escape_control_characters(void **state)
{
    log_fixture_t *f = *state;
    hg_log_field_t fields[] = {
        HG_LOG_STR("error", HOSTILE),
        HG_LOG_STR("k\nforged", "v"),
        HG_LOG_STR("del", "a\x7f"),
    };
    char *text;

    assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    hg_log_event(HG_LOG_INFO, "ev\nent", "job\n1", "exec\r2", fields,
                 HG_NELEMS(fields), "%s", "message\x1b");
    hg_log_close();
    text = slurp(f->path);
    assert_one_clean_line(text);
    assert_non_null(strstr(text, " event=\"ev\\nent\" job=\"job\\n1\" "
                                 "exec=\"exec\\r2\" "));
    assert_non_null(strstr(text, " error=\"one\\ntwo [error] master 1: "
                                 "forged\\r\\tx\\x1b[31mred\\x7f\\x01\""));
    assert_non_null(strstr(text, " k\\nforged=v "));
    assert_non_null(strstr(text, " del=\"a\\x7f\" "));
    assert_non_null(strstr(text, " message\\x1b\n"));
    free(text);
}

static void
test_json_line_keeps_the_text(void **state)
{
    log_fixture_t *f = *state;
    hg_log_field_t fields[] = { HG_LOG_STR("error", HOSTILE) };
    json_error_t jerr;
    json_t *line;
    char *text;

    assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG, HG_LOG_FORMAT_JSON),
                     HG_OK);
    hg_log_event(HG_LOG_INFO, "finish", "job", NULL, fields, 1, "%s",
                 HOSTILE);
    hg_log_close();
    text = slurp(f->path);
    /* jansson escapes C0 bytes; DEL is a printable byte in JSON text */
    assert_int_equal(strchr(text, '\n') - text + 1, (long) strlen(text));
    line = json_loads(text, 0, &jerr);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "message")),
                        HOSTILE);
    assert_string_equal(json_string_value(json_object_get(line, "error")),
                        HOSTILE);
    json_decref(line);
    free(text);
}

static void
test_log_file_is_created_0640(void **state)
{
    log_fixture_t *f = *state;
    struct stat st;
    mode_t old = umask(022);

    assert_int_equal(hg_log_open(f->path, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    umask(old);
    hg_log_close();
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

static void
test_log_file_symlink_is_refused(void **state)
{
    log_fixture_t *f = *state;
    char link[128];
    char *text;
    FILE *fp;

    fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("precious\n", fp);
    fclose(fp);
    snprintf(link, sizeof(link), "%s/link.log", f->dir);
    assert_int_equal(symlink(f->path, link), 0);
    assert_int_equal(hg_log_open(link, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_ERROR);
    assert_non_null(strstr(hg_log_open_error(), link));
    assert_non_null(strstr(hg_log_open_error(), "is a symbolic link"));
    text = slurp(f->path);
    assert_string_equal(text, "precious\n");
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_text_message_escapes_control_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_text_fields_escape_control_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line_keeps_the_text,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_file_is_created_0640,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_file_symlink_is_refused,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
