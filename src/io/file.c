#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

mm_status mm_read_file(const char *path, uint8_t **data, size_t *len, mm_err *e) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mm_errf(e, MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = mm_alloc(e, cap + 1);
    if (!buf) {
        fclose(f);
        return MM_ERR_NOMEM;
    }
    for (;;) {
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory reading file", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mm_errf(e, MM_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return MM_OK;
}

int mm_file_exists(const char *path, int regular_only) {
    struct stat st;
    return stat(path, &st) == 0 && (!regular_only || S_ISREG(st.st_mode));
}

mm_status mm_map_open(mm_map *m, const char *path, mm_err *e) {
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return mm_errf(e, MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mm_errf(e, MM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return mm_errf(e, MM_ERR_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return mm_errf(e, MM_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return MM_OK;
}

void mm_map_close(mm_map *m) {
    if (m->data)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

struct mm_atomic_file {
    FILE *f;
    char *path, *tmp;
};

mm_status mm_atomic_open(mm_atomic_file **out, const char *path, mm_err *e) {
    *out = NULL;
    mm_atomic_file *a = mm_calloc(e, sizeof *a);
    if (!a)
        return MM_ERR_NOMEM;
    size_t n = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        free(a->path);
        free(a->tmp);
        free(a);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        mm_errf(e, MM_ERR_IO, "%s: cannot create: %s", a->tmp, strerror(errno));
        free(a->path);
        free(a->tmp);
        free(a);
        return MM_ERR_IO;
    }
    *out = a;
    return MM_OK;
}

mm_status mm_atomic_write(mm_atomic_file *a, const void *data, size_t len, mm_err *e) {
    if (len && fwrite(data, 1, len, a->f) != len)
        return mm_errf(e, MM_ERR_IO, "%s: write failed: %s", a->tmp, strerror(errno));
    return MM_OK;
}

static void atomic_free(mm_atomic_file *a) {
    free(a->path);
    free(a->tmp);
    free(a);
}

void mm_atomic_abort(mm_atomic_file *a) {
    if (!a)
        return;
    if (a->f)
        fclose(a->f);
    unlink(a->tmp);
    atomic_free(a);
}

mm_status mm_atomic_commit(mm_atomic_file *a, mm_err *e) {
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
        mm_errf(e, MM_ERR_IO, "%s: flush failed: %s", a->tmp, strerror(errno));
        mm_atomic_abort(a);
        return MM_ERR_IO;
    }
    int rc = fclose(a->f);
    a->f = NULL;
    if (rc != 0 || rename(a->tmp, a->path) != 0) {
        mm_errf(e, MM_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
        mm_atomic_abort(a);
        return MM_ERR_IO;
    }
    // Make the rename itself durable.
    char *dir = strdup(a->path);
    if (dir) {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    atomic_free(a);
    return MM_OK;
}

mm_status mm_write_file_atomic(const char *path, const void *data, size_t len, mm_err *e) {
    mm_atomic_file *a;
    MM_TRY(mm_atomic_open(&a, path, e));
    if (mm_atomic_write(a, data, len, e) != MM_OK) {
        mm_atomic_abort(a);
        return e ? e->code : MM_ERR_IO;
    }
    return mm_atomic_commit(a, e);
}
