// What the public API's files share: the handles' layouts and the translation of internal errors.
#ifndef MM_API_INTERNAL_H
#define MM_API_INTERNAL_H

#include "base/err.h"
#include "mmgpt.h"
#include "model/flamingo.h"

// The public codes are the internal ones by value (checked in mmgpt_api.c), so a status crosses unchanged.
static inline mmgpt_status api_status(mm_status s) { return (mmgpt_status)s; }

// Copies an internal error into the caller's (if any) and returns its code.
mmgpt_status api_fail(mmgpt_error *err, const mm_err *e);
// Fills the caller's error for a failure found by the API itself.
mmgpt_status api_errf(mmgpt_error *err, mmgpt_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Clears the caller's error on success and returns MMGPT_OK.
mmgpt_status api_ok(mmgpt_error *err);

// Opens the backend a device string names and sets the frozen matrices' type the precision string implies
// (the same rule as `mmgpt --device/--precision`: bf16 on a GPU unless f32 is asked for, the file's types on
// the CPU unless a precision is given); desc receives the device's one-line description.
mm_status api_device_open(const char *device, const char *precision, const mm_ops **ops, mm_load_opts *lo,
                          char *desc, size_t desc_len, mm_err *e);

#endif
