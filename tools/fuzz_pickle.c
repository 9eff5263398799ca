// libFuzzer target for the restricted unpickler and the torch checkpoint reader (make fuzz-pickle).
// Inputs starting with "PK" are opened as whole checkpoints; anything else is taken as a data.pkl stream:
// it is unpickled directly, then wrapped in a small stored zip with four data/<key> storages and opened
// through pt_open_mem, so flattening, storage binding and view materialisation see fuzzed pickles too.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/pickle.h"
#include "io/torch_pt.h"
#include "io/zip.h"

static const char *const k_prefixes[] = {"mmengine.config.config.", "evil.", NULL};
static const char *const k_paths[] = {"tuning_config", "x", NULL};

static void check_err(const mm_err *e) {
    // Errors are one NUL-terminated line.
    size_t n = strnlen(e->msg, sizeof e->msg);
    if (n == sizeof e->msg || memchr(e->msg, '\n', n))
        abort();
}

static void exercise(const mm_pt *pt) {
    for (int i = 0; i < pt->n_tensors; i++) {
        const mm_pt_tensor *t = &pt->tensors[i];
        if (pt_find(pt, t->name) != t)
            abort();
        if (t->numel > (1 << 20))
            continue;
        size_t es = mm_dtype_size(t->dtype);
        float *f = malloc((size_t)t->numel * sizeof *f + 1);
        uint8_t *raw = malloc((size_t)t->numel * es + 1);
        mm_err e;
        if (f && raw) {
            pt_to_f32(pt, t, f, &e);
            pt_copy_contiguous(pt, t, raw, &e);
        }
        free(f);
        free(raw);
    }
    for (int i = 0; i < pt->n_meta; i++)
        pt_get(pt, pt->meta[i].name);
    pk_find_key(pt->doc.root, "lora_r", 16);
}

static void put16(uint8_t **p, uint16_t v) { (*p)[0] = (uint8_t)v; (*p)[1] = (uint8_t)(v >> 8); *p += 2; }
static void put32(uint8_t **p, uint32_t v) { put16(p, (uint16_t)v); put16(p, (uint16_t)(v >> 16)); }

// Writes a stored zip of the given members into buf (large enough); returns its length.
static size_t make_zip(uint8_t *buf, const char **names, const uint8_t **datas, const size_t *lens, int n) {
    uint8_t *p = buf;
    uint32_t offs[8];
    for (int i = 0; i < n; i++) {
        offs[i] = (uint32_t)(p - buf);
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]);
        put32(&p, 0x04034b50u); put16(&p, 20); put16(&p, 0); put16(&p, 0); put32(&p, 0);
        put32(&p, crc); put32(&p, (uint32_t)lens[i]); put32(&p, (uint32_t)lens[i]);
        put16(&p, (uint16_t)strlen(names[i])); put16(&p, 0);
        memcpy(p, names[i], strlen(names[i])); p += strlen(names[i]);
        memcpy(p, datas[i], lens[i]); p += lens[i];
    }
    uint32_t cd = (uint32_t)(p - buf);
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]);
        put32(&p, 0x02014b50u); put16(&p, 20); put16(&p, 20); put16(&p, 0); put16(&p, 0); put32(&p, 0);
        put32(&p, crc); put32(&p, (uint32_t)lens[i]); put32(&p, (uint32_t)lens[i]);
        put16(&p, (uint16_t)strlen(names[i])); put16(&p, 0); put16(&p, 0); put16(&p, 0); put16(&p, 0);
        put32(&p, 0); put32(&p, offs[i]);
        memcpy(p, names[i], strlen(names[i])); p += strlen(names[i]);
    }
    uint32_t cd_size = (uint32_t)(p - buf) - cd;
    put32(&p, 0x06054b50u); put16(&p, 0); put16(&p, 0); put16(&p, (uint16_t)n); put16(&p, (uint16_t)n);
    put32(&p, cd_size); put32(&p, cd); put16(&p, 0);
    return (size_t)(p - buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mm_err e;
    mm_pt_options opt = {.opaque_globals = k_prefixes, .opaque_paths = k_paths, .verify_crc = size & 1};
    mm_pt pt;
    if (mm_zip_sniff(data, size)) {
        if (pt_open_mem(&pt, data, size, "fuzz", &opt, &e) == MM_OK) {
            exercise(&pt);
            pt_close(&pt);
        } else
            check_err(&e);
        return 0;
    }
    mm_pk_doc doc;
    mm_pk_options po = {.opaque_globals = size & 2 ? k_prefixes : NULL};
    if (pk_load(&doc, data, size, &po, &e) == MM_OK) {
        pk_find_key(doc.root, "lora_r", 64);
        pk_dict_get(doc.root, "a");
        pk_free(&doc);
    } else {
        check_err(&e);
        return 0;
    }
    if (size > (1 << 16))
        return 0;
    static uint8_t storage[4][96];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 96; i++)
            storage[k][i] = (uint8_t)(i * 37 + k);
    const char *names[] = {"archive/data.pkl", "archive/data/0", "archive/data/1", "archive/data/2",
                           "archive/data/3"};
    const uint8_t *datas[] = {data, storage[0], storage[1], storage[2], storage[3]};
    size_t lens[] = {size, 96, 64, 32, 8};
    uint8_t *zip = malloc(size + 2048);
    if (!zip)
        return 0;
    size_t zlen = make_zip(zip, names, datas, lens, 5);
    if (pt_open_mem(&pt, zip, zlen, "fuzz.pt", &opt, &e) == MM_OK) {
        exercise(&pt);
        pt_close(&pt);
    } else
        check_err(&e);
    free(zip);
    return 0;
}
