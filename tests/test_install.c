// `make install` into a temporary DESTDIR: the files land where a C user expects them, the example
// program compiles against the installed header and shared library with pkg-config alone (and against
// libmmgpt.a with `pkg-config --static`) and answers as the in-tree build does, the library exports only
// the API under its soname, `man -l` renders the page (generated from the --help texts), bash completes
// commands and options, and `make uninstall` removes every file again. Uses the build the binary under test came from ($MMGPT's directory).
#include <unistd.h>

#include "testutil.h"

// Not /usr: pkg-config leaves out -I/usr/include and -L/usr/lib as system paths, which the sysroot would need.
#define PREFIX "/opt/mmgpt"
#define ASK "What color is the background?"

static char dest[64];

static void test_install(void **s) {
    (void)s;
    static char out[1 << 16], ref[1 << 14];
    strcpy(dest, "/tmp/mmgpt-test-install-XXXXXX");
    assert_non_null(mkdtemp(dest));
    // MAKEFLAGS from an enclosing `make test` (e.g. NVCC=) reach this make too, so it sees the same build.
    int rc = run(out, sizeof out, "make --no-print-directory -s install BUILD=%s DESTDIR=%s PREFIX=" PREFIX,
                 build_dir(), dest);
    if (rc)
        printf("%s", out);
    assert_int_equal(rc, 0);
    static const char *files[] = {"bin/mmgpt", "lib/libmmgpt.so", "lib/libmmgpt.so.0", "lib/libmmgpt.a",
                                  "include/mmgpt.h", "lib/pkgconfig/mmgpt.pc", "share/man/man1/mmgpt.1",
                                  "share/bash-completion/completions/mmgpt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s" PREFIX "/%s", dest, files[i]);
        if (access(p, R_OK) != 0)
            fail_msg("not installed: %s", p);
    }
    // The installed binary runs and says its version.
    assert_int_equal(run(out, sizeof out, "%s" PREFIX "/bin/mmgpt --version", dest), 0);
    assert_non_null(strstr(out, "mmgpt 0."));
    // The soname, and nothing but the API exported.
    assert_int_equal(run(out, sizeof out, "readelf -d %s" PREFIX "/lib/libmmgpt.so | grep SONAME", dest), 0);
    assert_non_null(strstr(out, "[libmmgpt.so.0]"));
    assert_int_equal(run(out, sizeof out,
                         "nm -D --defined-only %s" PREFIX "/lib/libmmgpt.so | awk '$2 == \"T\" {print $3}' | "
                         "grep -v '^mmgpt_' | wc -l",
                         dest),
                     0);
    assert_string_equal(out, "0\n");
    // The example, compiled with what pkg-config says (the sysroot maps the .pc's prefix into DESTDIR).
    rc = run(out, sizeof out,
             "cc -std=c17 -Wall -Wextra -Werror -o %s/chat_image examples/chat_image.c "
             "$(PKG_CONFIG_PATH=%s" PREFIX "/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=%s pkg-config --cflags --libs mmgpt)",
             dest, dest, dest);
    if (rc)
        printf("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(run(out, sizeof out, "ldd %s/chat_image | grep libmmgpt", dest), 0);
    assert_non_null(strstr(out, "libmmgpt.so.0 => "));
    assert_int_equal(run(out, sizeof out, "LD_LIBRARY_PATH=%s" PREFIX "/lib %s/chat_image models/demo.gguf "
                                          "examples/demo.png '" ASK "' 2>&1",
                         dest, dest),
                     0);
    assert_int_equal(run(ref, sizeof ref, "%s/examples/chat_image models/demo.gguf examples/demo.png '" ASK "' | head -2",
                         build_dir()),
                     0);
    const char *reply = out + strlen("you> " ASK "\nmmgpt> ");
    printf("mmgpt-test: installed example: %.*s\n", (int)strcspn(reply, "\n"), reply);
    assert_memory_equal(out, ref, strlen(ref)); // the question and the reply, as the static build answers
    // Linked statically against the installed libmmgpt.a: what `pkg-config --static` adds (Libs.private: BLAS,
    // the image decoders, microhttpd, json-c, OpenMP; the CUDA libraries' own -L in a CUDA build) is all the
    // program needs besides it. The .pc's prefix and libdir are moved into DESTDIR by name here: a sysroot
    // would also move Libs.private's system -L paths (/usr/local/cuda-*/lib64) into it.
    rc = run(out, sizeof out,
             "cc -std=c17 -Wall -Wextra -Werror -o %s/chat_image_static examples/chat_image.c $(PKG_CONFIG_PATH=%s" PREFIX
             "/lib/pkgconfig pkg-config --define-variable=prefix=%s" PREFIX " --define-variable=libdir=%s" PREFIX
             "/lib --static --cflags --libs mmgpt | sed 's/-lmmgpt /-l:libmmgpt.a /') && "
             "! ldd %s/chat_image_static | grep -q libmmgpt",
             dest, dest, dest, dest, dest);
    if (rc)
        printf("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(run(out, sizeof out, "%s/chat_image_static models/demo.gguf examples/demo.png '" ASK "' 2>&1",
                         dest),
                     0);
    assert_memory_equal(out, ref, strlen(ref));
    // The man page renders, with every command's section.
    rc = run(out, sizeof out, "MANWIDTH=100 man -l -P cat %s" PREFIX "/share/man/man1/mmgpt.1 2>&1", dest);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "chat about images with Multimodal-GPT models"));
    assert_non_null(strstr(out, "usage: mmgpt generate"));
    assert_non_null(strstr(out, "EXIT STATUS"));
    assert_non_null(strstr(out, "--device cpu|cuda[:N]|auto")); // the model commands' shared options
    assert_non_null(strstr(out, "usage: mmgpt eval --task"));  // and the benchmark mode's
    assert_null(strstr(out, "troff:")); // no roff errors or warnings
    // Bash completion: commands after `mmgpt`, a command's own options after it.
    rc = run(out, sizeof out,
             "bash -c 'source %s" PREFIX "/share/bash-completion/completions/mmgpt; "
             "COMP_WORDS=(mmgpt gen); COMP_CWORD=1; _mmgpt; echo \"${COMPREPLY[@]}\"; "
             "COMP_WORDS=(mmgpt generate --max-n); COMP_CWORD=2; _mmgpt; echo \"${COMPREPLY[@]}\"; "
             "COMP_WORDS=(mmgpt eval --sho); COMP_CWORD=2; _mmgpt; echo \"${COMPREPLY[@]}\"'",
             dest);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "generate\n--max-new-tokens\n--shots\n");
    // Uninstall leaves no file behind (the directories make install created stay).
    rc = run(out, sizeof out, "make --no-print-directory -s uninstall BUILD=%s DESTDIR=%s PREFIX=" PREFIX
                              " && find %s -type f -o -type l | grep -v '/chat_image\\(_static\\)\\?$' | wc -l",
             build_dir(), dest, dest);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "0\n");
    snprintf(out, sizeof out, "rm -rf %s", dest);
    assert_int_equal(system(out), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_install)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
