#include "io/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ZIP record signatures and fixed sizes (APPNOTE 4.3).
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define LEN_LOCAL 30
#define LEN_CENTRAL 46
#define LEN_EOCD 22
#define LEN_EOCD64 56
#define LEN_EOCD64_LOC 20
// Deflate cannot expand data by more than about 1032:1; a larger claimed ratio is a lie (or a bomb).
#define MAX_DEFLATE_RATIO 1032u
#define MAX_ENTRIES (1u << 24)

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

// True when [off, off+n) lies inside a buffer of len bytes (no overflow).
static int in_bounds(uint64_t off, uint64_t n, uint64_t len) { return off <= len && n <= len - off; }

int mm_zip_sniff(const uint8_t *data, size_t len) {
    return len >= 4 && data[0] == 'P' && data[1] == 'K' &&
           ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6));
}

// Names from the file (members, keys, globals) may hold control bytes; an error stays one printable line.
static mm_status one_line(mm_err *e, mm_status st) {
    if (st != MM_OK && e)
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    return st;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const mm_zip_entry *)a)->name, ((const mm_zip_entry *)b)->name);
}

void mm_zip_close(mm_zip *z) {
    if (!z)
        return;
    for (int i = 0; i < z->n; i++)
        free(z->entries[i].name);
    free(z->entries);
    if (z->owns_map)
        mm_map_close(&z->map);
    free(z->label);
    memset(z, 0, sizeof *z);
}

// Locates the end of central directory (and its ZIP64 form): the entry count and central directory range.
static mm_status find_directory(const mm_zip *z, uint64_t *n_entries, uint64_t *cd_off, uint64_t *cd_size,
                                mm_err *e) {
    const uint8_t *d = z->map.data;
    uint64_t len = z->map.len;
    if (len < LEN_EOCD)
        return mm_errf(e, MM_ERR_FORMAT, "%s: truncated zip archive (%llu bytes, no end of central directory)",
                       z->label, (unsigned long long)len);
    uint64_t stop = len - LEN_EOCD > 0xffff ? len - LEN_EOCD - 0xffff : 0;
    uint64_t eocd = UINT64_MAX;
    for (uint64_t off = len - LEN_EOCD + 1; off-- > stop;) {
        if (rd32(d + off) == SIG_EOCD && off + LEN_EOCD + rd16(d + off + 20) <= len) {
            eocd = off;
            break;
        }
    }
    if (eocd == UINT64_MAX)
        return mm_errf(e, MM_ERR_FORMAT,
                       "%s: no zip end-of-central-directory record (file truncated or not a zip archive)", z->label);
    const uint8_t *p = d + eocd;
    if (rd16(p + 4) != 0 || rd16(p + 6) != 0)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->label);
    *n_entries = rd16(p + 10);
    *cd_size = rd32(p + 12);
    *cd_off = rd32(p + 16);
    if (eocd >= LEN_EOCD64_LOC && rd32(d + eocd - LEN_EOCD64_LOC) == SIG_EOCD64_LOC) {
        const uint8_t *loc = d + eocd - LEN_EOCD64_LOC;
        uint64_t off64 = rd64(loc + 8);
        if (!in_bounds(off64, LEN_EOCD64, eocd) || rd32(d + off64) != SIG_EOCD64)
            return mm_errf(e, MM_ERR_FORMAT, "%s: ZIP64 end-of-central-directory locator points outside the file "
                           "(offset %llu)", z->label, (unsigned long long)off64);
        const uint8_t *q = d + off64;
        if (rd32(q + 16) != 0 || rd32(q + 20) != 0)
            return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->label);
        *n_entries = rd64(q + 32);
        *cd_size = rd64(q + 40);
        *cd_off = rd64(q + 48);
    }
    if (!in_bounds(*cd_off, *cd_size, len))
        return mm_errf(e, MM_ERR_FORMAT, "%s: central directory (offset %llu, %llu bytes) lies outside the %llu-byte "
                       "file (truncated?)", z->label, (unsigned long long)*cd_off, (unsigned long long)*cd_size,
                       (unsigned long long)len);
    if (*n_entries > *cd_size / LEN_CENTRAL || *n_entries > MAX_ENTRIES)
        return mm_errf(e, MM_ERR_FORMAT, "%s: central directory claims %llu entries in %llu bytes", z->label,
                       (unsigned long long)*n_entries, (unsigned long long)*cd_size);
    return MM_OK;
}

// Replaces 0xffffffff sizes/offset with their values from the ZIP64 extra field (id 1), in APPNOTE order.
static mm_status apply_zip64_extra(const mm_zip *z, const uint8_t *ex, uint32_t ex_len, mm_zip_entry *en,
                                   uint32_t usize32, uint32_t csize32, uint32_t loff32, mm_err *e) {
    uint32_t i = 0;
    while (i + 4 <= ex_len) {
        uint16_t id = rd16(ex + i), sz = rd16(ex + i + 2);
        if (sz > ex_len - i - 4)
            break; // a malformed trailing extra field; the checks below still catch a missing ZIP64 value
        if (id == 1) {
            const uint8_t *f = ex + i + 4;
            uint32_t k = 0;
            if (usize32 == 0xffffffffu) {
                if (k + 8 > sz)
                    goto bad;
                en->size = rd64(f + k);
                k += 8;
            }
            if (csize32 == 0xffffffffu) {
                if (k + 8 > sz)
                    goto bad;
                en->comp_size = rd64(f + k);
                k += 8;
            }
            if (loff32 == 0xffffffffu) {
                if (k + 8 > sz)
                    goto bad;
                en->local_off = rd64(f + k);
                k += 8;
            }
            return MM_OK;
        }
        i += 4u + sz;
    }
    if (usize32 == 0xffffffffu || csize32 == 0xffffffffu || loff32 == 0xffffffffu)
        goto bad;
    return MM_OK;
bad:
    return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s' needs a ZIP64 extra field that is missing or short", z->label,
                   en->name);
}

static mm_status read_directory(mm_zip *z, mm_err *e) {
    uint64_t n = 0, cd_off = 0, cd_size = 0;
    MM_TRY(find_directory(z, &n, &cd_off, &cd_size, e));
    const uint8_t *d = z->map.data;
    uint64_t len = z->map.len;
    z->entries = mm_calloc(e, (size_t)(n ? n : 1) * sizeof *z->entries);
    if (!z->entries)
        return MM_ERR_NOMEM;
    uint64_t pos = cd_off, end = cd_off + cd_size;
    for (uint64_t k = 0; k < n; k++) {
        if (!in_bounds(pos, LEN_CENTRAL, end) || rd32(d + pos) != SIG_CENTRAL)
            return mm_errf(e, MM_ERR_FORMAT, "%s: central directory entry %llu at offset %llu is malformed", z->label,
                           (unsigned long long)k, (unsigned long long)pos);
        const uint8_t *c = d + pos;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint32_t name_len = rd16(c + 28), ex_len = rd16(c + 30), com_len = rd16(c + 32);
        if (!in_bounds(pos + LEN_CENTRAL, (uint64_t)name_len + ex_len + com_len, end))
            return mm_errf(e, MM_ERR_FORMAT, "%s: central directory entry %llu at offset %llu overruns the directory",
                           z->label, (unsigned long long)k, (unsigned long long)pos);
        mm_zip_entry *en = &z->entries[z->n];
        en->name = mm_alloc(e, name_len + 1);
        if (!en->name)
            return MM_ERR_NOMEM;
        memcpy(en->name, c + LEN_CENTRAL, name_len);
        en->name[name_len] = 0;
        z->n++;
        if (name_len == 0 || memchr(c + LEN_CENTRAL, 0, name_len))
            return mm_errf(e, MM_ERR_FORMAT, "%s: central directory entry %llu has an empty or NUL-containing name",
                           z->label, (unsigned long long)k);
        if (flags & 1)
            return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: member '%s' is encrypted", z->label, en->name);
        if (method != 0 && method != 8)
            return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: member '%s' uses compression method %u (only stored and "
                           "deflated are supported)", z->label, en->name, method);
        en->method = method;
        en->crc = rd32(c + 16);
        uint32_t csize32 = rd32(c + 20), usize32 = rd32(c + 24), loff32 = rd32(c + 42);
        en->comp_size = csize32;
        en->size = usize32;
        en->local_off = loff32;
        MM_TRY(apply_zip64_extra(z, c + LEN_CENTRAL + name_len, ex_len, en, usize32, csize32, loff32, e));
        // The local header may carry different extra bytes (torch pads it to align data), so data starts
        // after the local header's own name and extra fields.
        if (!in_bounds(en->local_off, LEN_LOCAL, len) || rd32(d + en->local_off) != SIG_LOCAL)
            return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s': no local header at offset %llu (file truncated?)",
                           z->label, en->name, (unsigned long long)en->local_off);
        const uint8_t *l = d + en->local_off;
        uint32_t lname = rd16(l + 26), lex = rd16(l + 28);
        if (lname != name_len || !in_bounds(en->local_off + LEN_LOCAL, lname, len) ||
            memcmp(l + LEN_LOCAL, en->name, name_len) != 0)
            return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s': local header name differs from the central directory",
                           z->label, en->name);
        en->data_off = en->local_off + LEN_LOCAL + lname + lex;
        if (!in_bounds(en->data_off, en->comp_size, len))
            return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s': %llu bytes at offset %llu run past the end of the "
                           "%llu-byte file (truncated or oversized length field)", z->label, en->name,
                           (unsigned long long)en->comp_size, (unsigned long long)en->data_off,
                           (unsigned long long)len);
        if (method == 0 && en->size != en->comp_size)
            return mm_errf(e, MM_ERR_FORMAT, "%s: stored member '%s' has size %llu but %llu bytes in the archive",
                           z->label, en->name, (unsigned long long)en->size, (unsigned long long)en->comp_size);
        if (method == 8 && en->size / MAX_DEFLATE_RATIO > en->comp_size + 1)
            return mm_errf(e, MM_ERR_FORMAT, "%s: deflated member '%s' claims %llu bytes from %llu compressed "
                           "(impossible ratio)", z->label, en->name, (unsigned long long)en->size,
                           (unsigned long long)en->comp_size);
        if (en->size > SIZE_MAX / 2)
            return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s' size %llu is too large", z->label, en->name,
                           (unsigned long long)en->size);
        pos += LEN_CENTRAL + (uint64_t)name_len + ex_len + com_len;
    }
    qsort(z->entries, (size_t)z->n, sizeof *z->entries, cmp_entry);
    for (int i = 1; i < z->n; i++)
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0)
            return mm_errf(e, MM_ERR_FORMAT, "%s: member name '%s' appears twice", z->label, z->entries[i].name);
    return MM_OK;
}

static mm_status open_common(mm_zip *z, const char *label, mm_err *e) {
    z->label = strdup(label ? label : "<memory>");
    if (!z->label) {
        mm_zip_close(z);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    mm_status st = read_directory(z, e);
    if (st != MM_OK)
        mm_zip_close(z);
    return one_line(e, st);
}

mm_status mm_zip_open(mm_zip *z, const char *path, mm_err *e) {
    memset(z, 0, sizeof *z);
    MM_TRY(mm_map_open(&z->map, path, e));
    z->owns_map = 1;
    return open_common(z, path, e);
}

mm_status mm_zip_open_mem(mm_zip *z, const uint8_t *data, size_t len, const char *label, mm_err *e) {
    memset(z, 0, sizeof *z);
    z->map.data = data;
    z->map.len = len;
    return open_common(z, label, e);
}

const mm_zip_entry *mm_zip_find(const mm_zip *z, const char *name) {
    int lo = 0, hi = z->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static mm_status inflate_member(const mm_zip *z, const mm_zip_entry *en, uint8_t *out, mm_err *e) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return mm_errf(e, MM_ERR_NOMEM, "%s: zlib init failed", z->label);
    const uint8_t *in = z->map.data + en->data_off;
    uint64_t in_left = en->comp_size, out_left = en->size;
    const uint64_t chunk = 1u << 30; // zlib counts in 32-bit units
    uint8_t scratch;
    const char *why = NULL;
    s.next_out = out;
    for (;;) {
        if (s.avail_in == 0 && in_left) {
            uInt k = (uInt)(in_left < chunk ? in_left : chunk);
            s.next_in = (Bytef *)in;
            s.avail_in = k;
            in += k;
            in_left -= k;
        }
        if (s.avail_out == 0 && out_left) {
            uInt k = (uInt)(out_left < chunk ? out_left : chunk);
            s.avail_out = k;
            out_left -= k;
        }
        // Once the declared size is used up, a one-byte scratch output tells "stream ends here" (fine)
        // from "stream has more" (the header lied).
        int past_end = s.avail_out == 0;
        if (past_end) {
            s.next_out = &scratch;
            s.avail_out = 1;
        }
        int rc = inflate(&s, Z_NO_FLUSH);
        if (past_end) {
            if (s.avail_out == 0) {
                why = "inflates past its declared size";
                break;
            }
            s.avail_out = 0;
        }
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_BUF_ERROR && s.avail_in == 0 && in_left == 0) {
            why = "deflate stream is truncated";
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && past_end)) {
            why = s.msg ? s.msg : "corrupt deflate data";
            break;
        }
    }
    uint64_t produced = (uint64_t)s.total_out;
    char msg[128];
    if (why)
        snprintf(msg, sizeof msg, "%s", why);
    inflateEnd(&s);
    if (why)
        return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s': %s", z->label, en->name, msg);
    if (produced != en->size)
        return mm_errf(e, MM_ERR_FORMAT, "%s: member '%s' inflates to %llu bytes, header says %llu", z->label,
                       en->name, (unsigned long long)produced, (unsigned long long)en->size);
    return MM_OK;
}

static int crc_ok(const uint8_t *p, uint64_t n, uint32_t want) {
    return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), p, (z_size_t)n) == want;
}

mm_status mm_zip_read(const mm_zip *z, const mm_zip_entry *en, int verify_crc, const uint8_t **data,
                      uint8_t **owned, mm_err *e) {
    *data = NULL;
    *owned = NULL;
    if (en->method == 0) {
        const uint8_t *p = z->map.data + en->data_off;
        if (verify_crc && !crc_ok(p, en->size, en->crc))
            return one_line(e, mm_errf(e, MM_ERR_FORMAT, "%s: member '%s' fails its CRC-32 check (corrupt file)",
                                       z->label, en->name));
        *data = p;
        return MM_OK;
    }
    uint8_t *buf = mm_alloc(e, (size_t)en->size);
    if (!buf)
        return MM_ERR_NOMEM;
    mm_status st = inflate_member(z, en, buf, e);
    if (st == MM_OK && !crc_ok(buf, en->size, en->crc))
        st = mm_errf(e, MM_ERR_FORMAT, "%s: member '%s' fails its CRC-32 check (corrupt file)", z->label, en->name);
    if (st != MM_OK) {
        free(buf);
        return one_line(e, st);
    }
    *data = buf;
    *owned = buf;
    return MM_OK;
}
