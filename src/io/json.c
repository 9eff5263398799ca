#include "io/json.h"

#include <stdlib.h>

#include "io/file.h"

mm_status json_parse_any(const char *text, size_t len, const char *where, json_object **out, mm_err *e) {
    *out = NULL;
    json_tokener *tk = json_tokener_new();
    if (!tk)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    json_object *o = json_tokener_parse_ex(tk, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    size_t at = json_tokener_get_parse_end(tk);
    json_tokener_free(tk);
    if (jerr == json_tokener_continue || (!o && jerr == json_tokener_success)) {
        if (o)
            json_object_put(o);
        return mm_errf(e, MM_ERR_FORMAT, "%s: malformed JSON: unexpected end of input", where);
    }
    if (!o || jerr != json_tokener_success) {
        if (o)
            json_object_put(o);
        return mm_errf(e, MM_ERR_FORMAT, "%s: malformed JSON at byte %zu: %s", where, at, json_tokener_error_desc(jerr));
    }
    if (!o)
        return mm_errf(e, MM_ERR_FORMAT, "%s: the JSON document is null", where);
    *out = o;
    return MM_OK;
}

mm_status json_parse_object(const char *text, size_t len, const char *where, json_object **out, mm_err *e) {
    MM_TRY(json_parse_any(text, len, where, out, e));
    if (!json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        return mm_errf(e, MM_ERR_FORMAT, "%s: expected a JSON object", where);
    }
    return MM_OK;
}

mm_status json_read_object(const char *path, json_object **out, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    mm_status s = json_parse_object((const char *)buf, len, path, out, e);
    free(buf);
    return s;
}
