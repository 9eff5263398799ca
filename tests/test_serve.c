// mmgpt serve over real sockets: the page, health, models, metrics; completions (plain and streamed) equal
// the chat library's reply for the same conversation; images as data: URLs and their latent cache; bad input
// (4xx with an OpenAI error object, the server keeps serving); the API key; 503 when the queue is full; a
// client that disconnects cancels its generation.
#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer/chat.h"
#include "io/file.h"
#include "model/config.h"
#include "model/flamingo.h"
#include "serve/api.h"
#include "serve/server.h"
#include "testutil.h"
#include "vision_fixture.h"

#define MODEL "models/tiny-random"

static mm_model model;
static mm_tokenizer *tok;

static int setup(void **s) {
    (void)s;
    mm_err e = {0};
    mm_config c;
    if (config_load(&c, MODEL "/config.json", &e) != MM_OK || model_load_st(&model, &c, MODEL, NULL, &e) != MM_OK ||
        tok_load(&tok, MODEL "/tokenizer.model", &e) != MM_OK) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **s) {
    (void)s;
    tok_free(tok);
    model_free(&model);
    return 0;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_request(int fd, const char *method, const char *path, const char *body, const char *extra) {
    char head[1024];
    size_t n = body ? strlen(body) : 0;
    int k = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n%s\r\n",
                     method, path, body ? "Content-Type: application/json\r\n" : "", n, extra ? extra : "");
    assert_int_equal(write(fd, head, (size_t)k), k);
    for (size_t at = 0; at < n;) {
        ssize_t w = write(fd, body + at, n - at);
        if (w <= 0)
            break; // the server may answer (413) before reading everything
        at += (size_t)w;
    }
}

// Reads the whole response; returns the status and the (de-chunked) body in a new string.
static int read_response(int fd, char **body) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    b = b ? b + 4 : buf + len;
    char *out = malloc(len + 1);
    size_t o = 0;
    if (strcasestr(buf, "Transfer-Encoding: chunked") && strcasestr(buf, "Transfer-Encoding: chunked") < b) {
        for (char *p = b; p < buf + len;) {
            unsigned long sz = strtoul(p, &p, 16);
            p = strstr(p, "\r\n");
            if (!p || sz == 0)
                break;
            p += 2;
            memcpy(out + o, p, sz), o += sz;
            p += sz + 2;
        }
    } else {
        o = (size_t)(buf + len - b);
        memcpy(out, b, o);
    }
    out[o] = 0;
    free(buf);
    *body = out;
    return status;
}

static int http(int port, const char *method, const char *path, const char *body, const char *extra, char **out) {
    int fd = connect_to(port);
    send_request(fd, method, path, body, extra);
    return read_response(fd, out);
}

static mm_server *start(const char *key, int parallel, int queue, int *port) {
    mm_serve_opts o = {.host = "127.0.0.1", .port = 0, .parallel = parallel, .queue_limit = queue,
                       .max_body_bytes = 2 << 20, .max_image_bytes = 1 << 20, .api_key = key, .model_name = "tiny"};
    o.defaults = sampling_defaults();
    o.defaults.num_beams = 1;
    mm_server *s;
    mm_err e = {0};
    assert_ok(server_start(&s, &model, tok, &o, port, &e), &e);
    return s;
}

static char *b64(const uint8_t *d, size_t n) {
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *p++ = a[v >> 18 & 63], *p++ = a[v >> 12 & 63];
        *p++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? a[v & 63] : '=';
    }
    *p = 0;
    return o;
}

static char *image_url(void) {
    uint8_t *d;
    size_t n;
    mm_err e = {0};
    assert_ok(mm_read_file("examples/shapes.png", &d, &n, &e), &e);
    char *s = b64(d, n), *url = malloc(strlen(s) + 32);
    sprintf(url, "data:image/png;base64,%s", s);
    free(s);
    free(d);
    return url;
}

// The reply of the chat library for the same conversation, greedy.
static char *library_reply(const char *q1, const char *a1, const char *q2, int with_image, int max_new) {
    mm_chat *ch;
    mm_err e = {0};
    assert_ok(chat_create(&ch, &model, tok, NULL, &e), &e);
    const char *img = "examples/shapes.png";
    assert_ok(chat_add_user(ch, q1, with_image ? &img : NULL, with_image, &e), &e);
    if (a1) {
        assert_ok(chat_add_assistant(ch, a1, &e), &e);
        assert_ok(chat_add_user(ch, q2, NULL, 0, &e), &e);
    }
    mm_sampling p = sampling_defaults();
    p.do_sample = 0, p.num_beams = 1, p.max_new_tokens = max_new;
    const char *reply;
    assert_ok(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), &e);
    char *r = strdup(reply);
    chat_free(ch);
    return r;
}

static long metric(int port, const char *name) {
    char *body;
    assert_int_equal(http(port, "GET", "/metrics", NULL, NULL, &body), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    char *p = strstr(body, key);
    long v = p ? (long)strtod(p + strlen(key), NULL) : -1;
    free(body);
    return v;
}

static void test_endpoints(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    char *body;
    assert_int_equal(http(port, "GET", "/", NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "<title>mmgpt"));
    assert_non_null(strstr(body, "/v1/chat/completions"));
    free(body);
    assert_int_equal(http(port, "GET", "/health", NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "\"status\":\"ok\""));
    free(body);
    assert_int_equal(http(port, "GET", "/v1/models", NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "\"id\": \"tiny\""));
    free(body);
    assert_int_equal(http(port, "GET", "/metrics", NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "# TYPE mmgpt_generated_tokens_total counter"));
    free(body);
    assert_int_equal(http(port, "GET", "/nowhere", NULL, NULL, &body), 404);
    free(body);
    server_stop(srv);
}

// The API's conversation is the chat format's: replies equal the library's, plain and streamed.
// One greedy question about the test image through the API; returns the parsed response (json_object_put it)
// and points *text at the reply.
// A greedy request body: the question, with the test image when url is given.
static void greedy_request(char *req, size_t cap, const char *question, const char *url, int max_tokens) {
    if (url)
        snprintf(req, cap, "{\"model\": \"tiny\", \"temperature\": 0, \"max_tokens\": %d, \"messages\": ["
                 "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"%s\"}, "
                 "{\"type\": \"image_url\", \"image_url\": {\"url\": \"%s\"}}]}]}", max_tokens, question, url);
    else
        snprintf(req, cap, "{\"model\": \"tiny\", \"temperature\": 0, \"max_tokens\": %d, \"messages\": ["
                 "{\"role\": \"user\", \"content\": \"%s\"}]}", max_tokens, question);
}

// The reply text of a parsed completion (owned by o).
static const char *reply_of(json_object *o) {
    json_object *choice = json_object_array_get_idx(json_object_object_get(o, "choices"), 0);
    return json_object_get_string(json_object_object_get(json_object_object_get(choice, "message"), "content"));
}

static json_object *ask_with_image(int port, const char *question, int max_tokens, const char **text) {
    char *url = image_url(), req[65536], *body;
    greedy_request(req, sizeof req, question, url, max_tokens);
    assert_int_equal(http(port, "POST", "/v1/chat/completions", req, NULL, &body), 200);
    json_object *o = json_tokener_parse(body);
    assert_non_null(o);
    *text = reply_of(o);
    free(body);
    free(url);
    return o;
}

static void test_completions(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    const char *text;
    json_object *o = ask_with_image(port, "What is in the image?", 12, &text);
    char *url = image_url(), req[65536], *body;
    char *want = library_reply("What is in the image?", NULL, NULL, 1, 12);
    printf("mmgpt-test: API reply '%s', library '%s'\n", text, want);
    assert_string_equal(text, want);
    json_object *usage = json_object_object_get(o, "usage");
    assert_int_equal(json_object_get_int(json_object_object_get(usage, "completion_tokens")), 12);
    json_object_put(o);
    free(want);
    long encoded = metric(port, "mmgpt_images_encoded_total");
    assert_int_equal(encoded, 1);
    // Streamed, two turns, the same image again: deltas add up to the library's reply; no new encoding.
    snprintf(req, sizeof req, "{\"temperature\": 0, \"max_tokens\": 10, \"stream\": true, \"stream_options\": "
             "{\"include_usage\": true}, \"messages\": [{\"role\": \"system\", \"content\": \"%s\"}, "
             "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is in the image?\"}, "
             "{\"type\": \"image_url\", \"image_url\": {\"url\": \"%s\"}}]}, {\"role\": \"assistant\", \"content\": "
             "\"Shapes.\"}, {\"role\": \"user\", \"content\": \"How many?\"}]}",
             "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
             url);
    assert_int_equal(http(port, "POST", "/v1/chat/completions", req, NULL, &body), 200);
    char got[4096] = "";
    int chunks = 0, done = 0, has_usage = 0;
    for (char *p = body; (p = strstr(p, "data: ")); p += 6) {
        if (!strncmp(p + 6, "[DONE]", 6)) {
            done = 1;
            continue;
        }
        json_object *c = json_tokener_parse(p + 6);
        assert_non_null(c);
        json_object *ch = json_object_array_get_idx(json_object_object_get(c, "choices"), 0), *d, *t;
        if (ch && json_object_object_get_ex(ch, "delta", &d) && json_object_object_get_ex(d, "content", &t))
            strncat(got, json_object_get_string(t), sizeof got - strlen(got) - 1);
        has_usage |= json_object_object_get(c, "usage") != NULL;
        chunks++;
        json_object_put(c);
    }
    want = library_reply("What is in the image?", "Shapes.", "How many?", 1, 10);
    printf("mmgpt-test: streamed '%s' in %d chunks, library '%s'\n", got, chunks, want);
    assert_string_equal(got, want);
    assert_true(done && has_usage && chunks >= 3);
    free(want);
    free(body);
    assert_int_equal(metric(port, "mmgpt_images_encoded_total"), encoded); // the slot kept the image's latents
    free(url);
    server_stop(srv);
}

// The data: URL of a file.
static char *file_url(const char *path, const char *mime) {
    uint8_t *d;
    size_t n;
    mm_err e = {0};
    assert_ok(mm_read_file(path, &d, &n, &e), &e);
    char *s = b64(d, n), *url = malloc(strlen(s) + 64);
    sprintf(url, "data:%s;base64,%s", mime, s);
    free(s);
    free(d);
    return url;
}

// The library's greedy reply to one question about PIL's pixels of an image (tests/ref/preprocess_ref.py).
static char *pixels_reply(const char *q, const char *expected_u8z, int max_new) {
    int S = model.w.cfg.vis_image_size;
    float *px = malloc(sizeof(float) * 3 * S * S);
    vision_fixture_tensor(expected_u8z, S, px);
    mm_chat *ch;
    mm_err e = {0};
    assert_ok(chat_create(&ch, &model, tok, NULL, &e), &e);
    const char *name = "image";
    assert_ok(chat_add_user_pixels(ch, q, px, 1, &name, &e), &e);
    mm_sampling p = sampling_defaults();
    p.do_sample = 0, p.num_beams = 1, p.max_new_tokens = max_new;
    const char *reply;
    assert_ok(chat_reply(ch, &p, NULL, 0, NULL, NULL, &reply, &e), &e);
    char *r = strdup(reply);
    chat_free(ch);
    free(px);
    return r;
}

// A palette PNG, a WebP and (with "exif_orientation": true, as the page sends) a sideways JPEG through the API
// give the replies of PIL's pixels; the same bytes with and without the switch are two images to the cache.
static void test_image_formats(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    static const struct {
        const char *file, *mime, *expected, *exif;
    } cases[] = {{VISION_DIR "/green_palette.png", "image/png", VISION_DIR "/green_palette.s224.u8z", ""},
                 {VISION_DIR "/lossy40x30.webp", "image/webp", VISION_DIR "/lossy40x30.s224.u8z", ""},
                 {VISION_DIR "/exif_o6_40x30.jpg", "image/jpeg", VISION_DIR "/exif_o6_40x30.s224.exif.u8z",
                  "\"exif_orientation\": true, "},
                 {VISION_DIR "/exif_o6_40x30.jpg", "image/jpeg", VISION_DIR "/exif_o6_40x30.s224.u8z",
                  "\"exif_orientation\": false, "}};
    static char req[65536];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        long encoded = metric(port, "mmgpt_images_encoded_total");
        char *url = file_url(cases[k].file, cases[k].mime), *body;
        snprintf(req, sizeof req, "{%s\"temperature\": 0, \"max_tokens\": 8, \"messages\": [{\"role\": \"user\", "
                 "\"content\": [{\"type\": \"text\", \"text\": \"Describe it.\"}, {\"type\": \"image_url\", "
                 "\"image_url\": {\"url\": \"%s\"}}]}]}", cases[k].exif, url);
        // The request parser hands the model PIL's tensor bit for bit.
        api_limits lim = {.prep = config_clip_prep(&model.w.cfg), .max_image_bytes = 1 << 20, .max_images = 8,
                          .defaults = sampling_defaults()};
        api_request r;
        int status;
        char param[160];
        mm_err e = {0};
        assert_ok(api_parse_chat(req, strlen(req), &lim, &r, &status, param, sizeof param, &e), &e);
        assert_int_equal(r.n_msgs, 1);
        assert_int_equal(r.msgs[0].n_images, 1);
        size_t per = (size_t)3 * lim.prep.size * lim.prep.size;
        float *px = malloc(sizeof(float) * per);
        vision_fixture_tensor(cases[k].expected, lim.prep.size, px);
        assert_true(compare_f32(cases[k].file, r.msgs[0].pixels, px, per, 0, 0));
        free(px);
        api_request_free(&r);
        assert_int_equal(http(port, "POST", "/v1/chat/completions", req, NULL, &body), 200);
        json_object *o = json_tokener_parse(body);
        json_object *choice = json_object_array_get_idx(json_object_object_get(o, "choices"), 0);
        const char *text = json_object_get_string(json_object_object_get(json_object_object_get(choice, "message"), "content"));
        char *want = pixels_reply("Describe it.", cases[k].expected, 8);
        printf("mmgpt-test: %s %s: API '%s', PIL's pixels '%s'\n", cases[k].file, cases[k].exif, text, want);
        assert_string_equal(text, want);
        assert_int_equal(metric(port, "mmgpt_images_encoded_total"), encoded + 1);
        json_object_put(o);
        free(want);
        free(body);
        free(url);
    }
    server_stop(srv);
}

static void test_bad_input(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    const struct {
        const char *body;
        int status;
        const char *msg;
    } cases[] = {
        {"{", 400, "malformed JSON"},
        {"[1,2]", 400, "expected a JSON object"},
        {"{\"messages\": []}", 400, "non-empty list"},
        {"{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", 400, "unknown role"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "content must be a string"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": \"hot\"}", 400, "temperature"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 3}", 400, "n: must be"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": "
         "\"https://example.com/a.png\"}}]}]}", 400, "only data: URLs"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": "
         "\"data:image/png;base64,!!!!\"}}]}]}", 400, "broken base64"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": "
         "\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA\"}}]}]}", 400, "PNG"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"exif_orientation\": \"yes\"}", 400,
         "exif_orientation: must be true or false"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"audio\"}]}]}", 400, "unsupported content part"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}", 400,
         "last message must be the user's"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *body;
        int st = http(port, "POST", "/v1/chat/completions", cases[i].body, NULL, &body);
        json_object *o = json_tokener_parse(body), *err;
        if (st != cases[i].status || !o || !json_object_object_get_ex(o, "error", &err) ||
            !strstr(json_object_get_string(json_object_object_get(err, "message")), cases[i].msg))
            fail_msg("%s -> %d %s", cases[i].body, st, body);
        json_object_put(o);
        free(body);
    }
    // Too long a prompt, too big a body.
    size_t n = 3 << 20;
    char *big = malloc(n + 64), *body;
    strcpy(big, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
    size_t at = strlen(big);
    memset(big + at, 'a', n - at - 8);
    strcpy(big + n - 8, "\"}]}");
    assert_int_equal(http(port, "POST", "/v1/chat/completions", big, NULL, &body), 413);
    assert_non_null(strstr(body, "over the 2 MB limit"));
    free(body);
    strcpy(big, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
    at = strlen(big);
    for (int i = 0; i < 3000; i++, at += 5)
        memcpy(big + at, "word ", 5);
    strcpy(big + at, "\"}]}");
    assert_int_equal(http(port, "POST", "/v1/chat/completions", big, NULL, &body), 400);
    assert_non_null(strstr(body, "context_length_exceeded"));
    free(body);
    free(big);
    // Still serving.
    assert_int_equal(http(port, "POST", "/v1/chat/completions",
                          "{\"max_tokens\": 3, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", NULL, &body), 200);
    free(body);
    assert_int_equal(http(port, "GET", "/v1/chat/completions", NULL, NULL, &body), 405);
    free(body);
    server_stop(srv);
}

static void test_api_key(void **s) {
    (void)s;
    int port;
    mm_server *srv = start("sekrit", 1, 4, &port);
    char *body;
    const char *req = "{\"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    assert_int_equal(http(port, "POST", "/v1/chat/completions", req, NULL, &body), 401);
    assert_non_null(strstr(body, "invalid_api_key"));
    free(body);
    assert_int_equal(http(port, "POST", "/v1/chat/completions", req, "Authorization: Bearer wrong\r\n", &body), 401);
    free(body);
    assert_int_equal(http(port, "POST", "/v1/chat/completions", req, "Authorization: Bearer sekrit\r\n", &body), 200);
    free(body);
    assert_int_equal(http(port, "GET", "/health", NULL, NULL, &body), 200); // open: for load balancers
    free(body);
    server_stop(srv);
}

// With one slot and no queue, a second request while a long streamed one runs gets 503 + Retry-After; the
// long one, abandoned by its client, is cancelled and frees the slot.
static void test_queue_and_disconnect(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 1, 0, &port);
    // A long generation: the whole context of the tiny model, sampled, with 4 beams.
    const char *longreq = "{\"stream\": true, \"max_tokens\": 400, \"num_beams\": 4, \"messages\": [{\"role\": \"user\", "
                          "\"content\": \"Tell me everything.\"}]}";
    int fd = connect_to(port);
    send_request(fd, "POST", "/v1/chat/completions", longreq, NULL);
    char buf[512];
    assert_true(read(fd, buf, sizeof buf) > 0); // headers and the first event: the slot is taken
    char *body;
    int fd2 = connect_to(port);
    send_request(fd2, "POST", "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", NULL);
    int st = read_response(fd2, &body);
    int busy_then = metric(port, "mmgpt_slots_busy") == 1;
    free(body);
    close(fd); // the client goes away
    // Noticed at the next token written; a loaded 2-core machine can take seconds to get there.
    for (int i = 0; i < 1500 && metric(port, "mmgpt_slots_busy") != 0; i++)
        usleep(20000);
    assert_int_equal(metric(port, "mmgpt_slots_busy"), 0);
    if (busy_then) { // the long request was still running when the second came: it must have been refused
        assert_int_equal(st, 503);
        assert_true(metric(port, "mmgpt_requests_rejected_total") == 1);
    } else {
        printf("mmgpt-test: the long request ended before the second arrived; 503 not observed\n");
    }
    assert_int_equal(http(port, "POST", "/v1/chat/completions",
                          "{\"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", NULL, &body), 200);
    free(body);
    server_stop(srv);
}

// Runs a Node script from tests/web against a fresh server (skipped, with a note, without node, its
// packages or chromium; the setup step installs them).
static void run_node(const char *script, const char *args_fmt, int need_chromium) {
    if (system("command -v node >/dev/null 2>&1") != 0 || access("tests/web/node_modules", F_OK) != 0 ||
        (need_chromium && access("/usr/bin/chromium", X_OK) != 0)) {
        printf("mmgpt-test: node, tests/web/node_modules or chromium missing: %s skipped\n", script);
        return;
    }
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    char args[512], cmd[1024];
    snprintf(args, sizeof args, args_fmt, port);
    snprintf(cmd, sizeof cmd, "node tests/web/%s %s 2>&1", script, args);
    FILE *p = popen(cmd, "r");
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    printf("%s", out);
    server_stop(srv);
    assert_int_equal(WIFEXITED(st) ? WEXITSTATUS(st) : 255, 0);
}

static void test_openai_client(void **s) {
    (void)s;
    run_node("openai_client.mjs", "http://127.0.0.1:%d examples/shapes.png", 0);
}

static void test_browser(void **s) {
    (void)s;
    mkdir("build", 0755);
    run_node("page_test.mjs", "http://127.0.0.1:%d/ build/page_test.png examples/shapes.png", 1);
}

// The server on a quantized model (the demo, Q4_0): the API's greedy reply is the library's on the
// same file, which test_quant holds to the f32 model's answers.
static void test_quantized_model(void **s) {
    (void)s;
    const char *bin = getenv("MMGPT") ? getenv("MMGPT") : "build/mmgpt";
    char cmd[512], out[4096], q4[64];
    snprintf(q4, sizeof q4, "/tmp/mmgpt-test-serve-q4-%d.gguf", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s quantize models/demo.gguf %s --type q4_0 2>&1", bin, q4);
    assert_int_equal(run_command(out, sizeof out, cmd), 0);
    mm_model keep_model = model;
    mm_tokenizer *keep_tok = tok;
    mm_err e = {0};
    assert_ok(model_load(&model, q4, NULL, &e), &e);
    assert_ok(tok_load(&tok, q4, &e), &e);
    int port;
    mm_server *srv = start(NULL, 1, 4, &port);
    const char *text;
    json_object *o = ask_with_image(port, "Describe the image in detail.", 48, &text);
    char *want = library_reply("Describe the image in detail.", NULL, NULL, 1, 48);
    printf("mmgpt-test: Q4_0 API reply '%s', library '%s'\n", text, want);
    assert_string_equal(text, want);
    assert_non_null(strstr(text, "background")); // a caption, not noise
    json_object_put(o);
    free(want);
    server_stop(srv);
    tok_free(tok);
    model_free(&model);
    model = keep_model, tok = keep_tok;
    assert_int_equal(remove(q4), 0);
}

static void test_cli(void **s) {
    (void)s;
    const char *bin = getenv("MMGPT") ? getenv("MMGPT") : "build/mmgpt";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s serve -m " MODEL " --port 99999 2>&1", bin);
    FILE *p = popen(cmd, "r");
    char out[512] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    assert_int_equal(WEXITSTATUS(pclose(p)), 2);
    assert_non_null(strstr(out, "--port takes 0..65535"));
}

// Parallel requests decode in shared steps (continuous batching): three at once, each its own reply as
// the chat library gives it alone, and the server's metrics show steps that held several requests.
typedef struct {
    int port, with_image;
    const char *question;
    char *text;
} parallel_ask;

static void *ask_thread(void *arg) {
    parallel_ask *a = arg;
    char req[65536], *body = NULL;
    char *url = a->with_image ? image_url() : NULL;
    greedy_request(req, sizeof req, a->question, url, 40);
    if (http(a->port, "POST", "/v1/chat/completions", req, NULL, &body) == 200) {
        json_object *o = json_tokener_parse(body);
        a->text = o ? strdup(reply_of(o)) : NULL;
        json_object_put(o);
    }
    free(body);
    free(url);
    return NULL;
}

static void test_continuous_batching(void **s) {
    (void)s;
    int port;
    mm_server *srv = start(NULL, 3, 4, &port);
    parallel_ask a[3] = {{port, 1, "What is in the image?", NULL}, {port, 0, "Tell me a story.", NULL},
                         {port, 1, "Count the shapes.", NULL}};
    char *want[3];
    for (int i = 0; i < 3; i++)
        want[i] = library_reply(a[i].question, NULL, NULL, a[i].with_image, 40);
    // Requests that happen not to overlap (a loaded machine) are retried a few times.
    for (int round = 0; round < 5 && metric(port, "mmgpt_batch_widest") < 2; round++) {
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, ask_thread, &a[i]), 0);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 3; i++) {
            assert_non_null(a[i].text);
            assert_string_equal(a[i].text, want[i]);
            free(a[i].text);
            a[i].text = NULL;
        }
    }
    long steps = metric(port, "mmgpt_batch_steps_total"), tokens = metric(port, "mmgpt_batch_tokens_total");
    printf("mmgpt-test: %ld steps decoded %ld tokens, widest %ld\n", steps, tokens, metric(port, "mmgpt_batch_widest"));
    assert_true(metric(port, "mmgpt_batch_widest") >= 2);
    assert_true(tokens > steps);
    for (int i = 0; i < 3; i++)
        free(want[i]);
    server_stop(srv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints), cmocka_unit_test(test_completions), cmocka_unit_test(test_image_formats),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_api_key),   cmocka_unit_test(test_queue_and_disconnect), cmocka_unit_test(test_openai_client),
        cmocka_unit_test(test_continuous_batching),
        cmocka_unit_test(test_browser),   cmocka_unit_test(test_quantized_model), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
