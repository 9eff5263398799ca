// Chat about an image through the public API: chat_image MODEL IMAGE [QUESTION...]
// Build: cc chat_image.c $(pkg-config --cflags --libs mmgpt)
// Streams the greedy reply to each question (default: "Describe the image in detail.") and prints its speed.
#include <stdio.h>

#include <mmgpt.h>

static int print_piece(const char *piece, void *user) {
    (void)user;
    fputs(piece, stdout);
    fflush(stdout);
    return 0; // non-zero would stop the reply here
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IMAGE [QUESTION...]\n", argv[0]);
        return 2;
    }
    mmgpt_error err;
    mmgpt_model *model = NULL;
    mmgpt_chat *chat = NULL;
    if (mmgpt_model_load(argv[1], NULL, &model, &err) != MMGPT_OK ||
        mmgpt_chat_open(model, NULL, &chat, &err) != MMGPT_OK ||
        mmgpt_chat_add_image_file(chat, argv[2], &err) != MMGPT_OK) {
        fprintf(stderr, "chat_image: %s\n", err.message);
        mmgpt_model_free(model);
        return 1;
    }
    mmgpt_gen_params params = mmgpt_gen_params_greedy();
    const char *fallback[] = {"Describe the image in detail."};
    char **questions = argc > 3 ? argv + 3 : (char **)fallback;
    int n = argc > 3 ? argc - 3 : 1, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        printf("you> %s\nmmgpt> ", questions[i]);
        if (mmgpt_chat_add_text(chat, questions[i], &err) != MMGPT_OK ||
            mmgpt_chat_generate(chat, &params, print_piece, NULL, NULL, &err) != MMGPT_OK) {
            fprintf(stderr, "\nchat_image: %s\n", err.message);
            rc = 1;
            break;
        }
        mmgpt_timings t = mmgpt_chat_timings(chat);
        printf("\n[%ld prompt tokens, %ld generated, %.1f tokens/s]\n", t.prompt_tokens, t.generated_tokens,
               t.tokens_per_s);
    }
    mmgpt_chat_free(chat);
    mmgpt_model_free(model);
    return rc;
}
