#include "cli/tok_pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "text/tokenizer.h"

mm_status cli_tok_pack_load(cli_tok_pack *p, const char *model, const char *tokenizer_path, mm_err *e) {
    memset(p, 0, sizeof *p);
    char buf[4200];
    const char *path = tokenizer_path;
    static const char *names[] = {"tokenizer.model", "tokenizer.json"};
    for (int i = 0; !path && i < 2; i++) {
        snprintf(buf, sizeof buf, "%s/%s", model, names[i]);
        if (mm_file_exists(buf, 1))
            path = buf;
    }
    if (!path && mm_file_exists(model, 1))
        path = model;
    if (!path)
        return mm_errf(e, MM_ERR_IO, "%s: no tokenizer.model or tokenizer.json (pass --tokenizer FILE)", model);
    mm_status s = tok_read_file(path, &p->bytes, &p->info.len, &p->name, e);
    if (s == MM_OK)
        s = tok_load_memory(&p->tok, p->bytes, p->info.len, path, e);
    int32_t n = s == MM_OK ? tok_vocab_size(p->tok) : 0;
    if (s == MM_OK && !(p->pieces = calloc((size_t)n + 1, sizeof *p->pieces)))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s != MM_OK) {
        cli_tok_pack_free(p);
        return s;
    }
    for (int32_t i = 0; i < n; i++)
        p->pieces[i] = tok_piece(p->tok, i) ? tok_piece(p->tok, i) : "";
    p->info = (mm_gguf_tokenizer){.file_name = p->name, .data = p->bytes, .len = p->info.len, .pieces = p->pieces,
                                  .n_pieces = (size_t)n, .bos = tok_bos_id(p->tok), .eos = tok_eos_id(p->tok),
                                  .unk = tok_unk_id(p->tok), .pad = tok_pad_id(p->tok)};
    return MM_OK;
}

void cli_tok_pack_free(cli_tok_pack *p) {
    if (p->tok)
        tok_free(p->tok);
    free(p->bytes);
    free(p->name);
    free(p->pieces);
    memset(p, 0, sizeof *p);
}
