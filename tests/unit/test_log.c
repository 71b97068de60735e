/*
 * Unit tests for hg_log: a text line escapes every control character in
 * every part (so no module or job text can end a line or forge one), a
 * JSON line keeps the text exactly, and the log file is created 0640 and
 * never opened through a symbolic link, a FIFO or a directory. Fields of
 * every type, a line cut to the maximum, reopening after a rotation.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
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

/* One event "ev" with FIELDS logged in FORMAT: the file's text. */
static char *
log_fields(log_fixture_t *f, hg_log_format_t format,
           const hg_log_field_t *fields, size_t n)
{
    char *text;

    unlink(f->path);
    assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG, format), HG_OK);
    hg_log_event(HG_LOG_INFO, "ev", NULL, NULL, fields, n, NULL);
    hg_log_close();
    text = slurp(f->path);
    return text;
}

static void
test_fields_of_every_kind(void **state)
{
    log_fixture_t *f = *state;
    hg_log_field_t fields[] = {
        HG_LOG_REAL("lag", 1.5),
        HG_LOG_INT("n", -3),
        HG_LOG_STR("q", "a\"b\\c"),
        HG_LOG_STR("empty", ""),
    };
    json_error_t jerr;
    json_t *line;
    char *text;

    text = log_fields(f, HG_LOG_FORMAT_TEXT, fields, HG_NELEMS(fields));
    assert_one_clean_line(text);
    assert_non_null(strstr(text, " event=ev lag=1.500 n=-3 q=\"a\\\"b\\\\c\" "
                                 "empty=\"\"\n"));
    free(text);

    text = log_fields(f, HG_LOG_FORMAT_JSON, fields, HG_NELEMS(fields));
    line = json_loads(text, 0, &jerr);
    assert_non_null(line);
    assert_true(json_is_real(json_object_get(line, "lag")));
    assert_true(json_real_value(json_object_get(line, "lag")) == 1.5);
    assert_int_equal(json_integer_value(json_object_get(line, "n")), -3);
    assert_string_equal(json_string_value(json_object_get(line, "q")),
                        "a\"b\\c");
    json_decref(line);
    free(text);
}

/* A line longer than a log line may be is cut, and is still one line;
 * in buffered mode too (written out at close). */
static void
test_long_line_is_cut(void **state)
{
    log_fixture_t *f = *state;
    char *big = malloc(20000), *text;
    hg_log_field_t fields[1];
    int buffered;

    assert_non_null(big);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    fields[0] = (hg_log_field_t) HG_LOG_STR("big", big);
    for (buffered = 0; buffered <= 1; buffered++) {
        assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG,
                                     HG_LOG_FORMAT_TEXT), HG_OK);
        hg_log_set_buffered(buffered);
        hg_log_event(HG_LOG_INFO, "ev", NULL, NULL, fields, 1, "%s", big);
        hg_log_set_buffered(false);
        hg_log_close();
        text = slurp(f->path);
        assert_one_clean_line(text);
        assert_true(strlen(text) >= 8000 && strlen(text) <= 8192);
        assert_non_null(strstr(text, " big=xxxxxxxx"));
        free(text);
        unlink(f->path);
    }
    free(big);
}

/* Buffered lines that outgrow the buffer before the next flush are all
 * written, whole and in order: the buffer is emptied to make room, no
 * line is dropped or cut. */
static void
test_buffer_overflow_keeps_every_line(void **state)
{
    log_fixture_t *f = *state;
    char *text, *p, want[32];
    FILE *fp;
    size_t size = 0, lines = 0;
    int i;

    assert_int_equal(hg_log_open(f->path, HG_LOG_DEBUG, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    hg_log_set_buffered(true);
    for (i = 0; i < 100; i++) {
        hg_log(HG_LOG_INFO, "line %03d %4000d|", i, i);    /* 400 KB */
    }
    hg_log_set_buffered(false);
    hg_log_close();

    fp = fopen(f->path, "rb");
    assert_non_null(fp);
    text = NULL;
    assert_int_equal(getdelim(&text, &size, '\0', fp) > 400000, 1);
    fclose(fp);
    for (p = text, i = 0; (p = strstr(p, "line ")) != NULL; p++) {
        snprintf(want, sizeof(want), "line %03d ", i);
        if (strncmp(p, want, strlen(want)) != 0) {
            fail_msg("line %d out of order: %.20s", i, p);
        }
        i++;
    }
    for (p = text; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(i, 100);
    assert_int_equal(lines, 100);
    free(text);
}

/* What cannot be a log file is refused with the reason, and nothing is
 * written through it. */
static void
test_log_file_refused(void **state)
{
    log_fixture_t *f = *state;
    char want[256];
    int reader;

    /* a FIFO with a reader opens; its type refuses it */
    assert_int_equal(mkfifo(f->path, 0600), 0);
    reader = open(f->path, O_RDONLY | O_NONBLOCK);
    assert_true(reader >= 0);
    assert_int_equal(hg_log_open(f->path, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_ERROR);
    snprintf(want, sizeof(want), "log file %s is not a regular file",
             f->path);
    assert_string_equal(hg_log_open_error(), want);
    assert_int_equal(read(reader, want, sizeof(want)), 0);
    close(reader);
    assert_int_equal(unlink(f->path), 0);

    assert_int_equal(hg_log_open(f->dir, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_ERROR);
    snprintf(want, sizeof(want), "cannot open log file %s: Is a directory",
             f->dir);
    assert_string_equal(hg_log_open_error(), want);
}

/* USR1 after a rotation: the log goes on in a new file at the same path;
 * a reopen that fails keeps writing where it was. */
static void
test_reopen(void **state)
{
    log_fixture_t *f = *state;
    char rotated[128], *text;

    snprintf(rotated, sizeof(rotated), "%s/link.log", f->dir);
    assert_int_equal(hg_log_open(f->path, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    hg_log(HG_LOG_INFO, "one");
    assert_int_equal(rename(f->path, rotated), 0);
    hg_log(HG_LOG_INFO, "two");
    assert_int_equal(hg_log_reopen(), HG_OK);
    hg_log(HG_LOG_INFO, "three");

    assert_int_equal(rename(f->path, rotated), 0);   /* three replaces one */
    assert_int_equal(mkfifo(f->path, 0600), 0);
    assert_int_equal(hg_log_reopen(), HG_ERROR);
    hg_log(HG_LOG_INFO, "four");
    hg_log_close();
    unlink(f->path);

    text = slurp(rotated);
    assert_null(strstr(text, " one\n"));
    assert_null(strstr(text, " two\n"));
    assert_non_null(strstr(text, " three\n"));
    assert_non_null(strstr(text, " four\n"));
    free(text);

    /* the standard error is not reopened */
    assert_int_equal(hg_log_open("-", HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    assert_int_equal(hg_log_fd(), STDERR_FILENO);
    assert_int_equal(hg_log_reopen(), HG_OK);
    assert_int_equal(hg_log_fd(), STDERR_FILENO);
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
        cmocka_unit_test_setup_teardown(test_fields_of_every_kind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_cut,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_overflow_keeps_every_line,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_file_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
