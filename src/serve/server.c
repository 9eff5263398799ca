#include "serve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "infer/batcher.h"
#include "infer/chat.h"
#include "serve/api.h"

__asm__(".section .rodata\n.global mm_web_index\n.type mm_web_index, @object\nmm_web_index:\n"
        ".incbin \"web/index.html\"\n.byte 0\n.previous\n");

typedef struct {
    mm_chat *chat;
    int busy;
    uint64_t key; // identifies the conversation it last served (first user text and image)
} slot;

struct mm_server {
    const mm_model *m;
    const mm_tokenizer *tok;
    mm_serve_opts o;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting, stopping;
    long next_ticket, serving; // first come, first served: a waiting request takes a slot in arrival order
    long next_id;
    // metrics
    long requests, errors, rejected, prompt_tokens, gen_tokens, images_encoded;
    double gen_s, last_tps;
    struct MHD_Daemon *d;
    mm_batcher *batcher;
};

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
} request_ctx;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *text,
                                 const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(mm_server *s, struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *param, const char *code) {
    const char *type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error";
    char *js = api_error_json(msg, type, param, code);
    pthread_mutex_lock(&s->mu);
    s->errors++;
    if (status == 503)
        s->rejected++;
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result r = send_text(c, status, "application/json", js ? js : "{}", status == 503 ? "1" : NULL);
    free(js);
    return r;
}

// A slot for a conversation: a free one that served the same conversation before if any (its caches apply).
static slot *acquire(mm_server *s, uint64_t key) {
    pthread_mutex_lock(&s->mu);
    int any_free = 0;
    for (int i = 0; i < s->o.parallel; i++)
        any_free |= !s->slots[i].busy;
    if (!any_free && s->waiting >= s->o.queue_limit) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    s->waiting++;
    long ticket = s->next_ticket++;
    slot *got = NULL;
    while (!got && !s->stopping) {
        for (int i = 0; ticket == s->serving && i < s->o.parallel; i++)
            if (!s->slots[i].busy && (!got || s->slots[i].key == key))
                got = &s->slots[i];
        if (!got)
            pthread_cond_wait(&s->cv, &s->mu);
    }
    s->serving++;
    pthread_cond_broadcast(&s->cv); // the next in line may take another free slot
    s->waiting--;
    if (got)
        got->busy = 1, got->key = key;
    pthread_mutex_unlock(&s->mu);
    return got;
}

static void release(mm_server *s, slot *sl, const mm_chat_stats *st) {
    pthread_mutex_lock(&s->mu);
    sl->busy = 0;
    if (st) {
        s->prompt_tokens += st->prompt_tokens;
        s->gen_tokens += st->generated_tokens;
        s->gen_s += st->gen_s;
        s->images_encoded += st->encoded_images;
        if (st->gen_s > 0)
            s->last_tps = (double)st->generated_tokens / st->gen_s;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

// Loads the request's conversation into the slot's chat (its caches survive: a common prefix is re-used).
static mm_status load_conversation(slot *sl, const api_request *r, mm_err *e) {
    chat_clear(sl->chat);
    MM_TRY(chat_set_system(sl->chat, r->system, e));
    for (int i = 0; i < r->n_msgs; i++) {
        const api_message *m = &r->msgs[i];
        if (m->role == MM_ROLE_USER)
            MM_TRY(chat_add_user_pixels(sl->chat, m->text, m->pixels, m->n_images, NULL, e));
        else
            MM_TRY(chat_add_assistant(sl->chat, m->text, e));
    }
    return MM_OK;
}

static uint64_t conversation_key(const api_request *r) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = r->msgs[0].text; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ^ (r->msgs[0].n_images ? r->msgs[0].hashes[0] : 0);
}

static const char *finish_reason(mm_stop_reason why) { return why == MM_STOP_LENGTH || why == MM_STOP_CONTEXT ? "length" : "stop"; }

// Watches the client's socket while a reply is generated and cancels it when the client goes away.
typedef struct {
    int fd;
    mm_chat *chat;
    int done, cancelled;
    pthread_mutex_t mu;
    pthread_cond_t cv; // signalled when the reply is done, so the watcher never delays the response
} watcher;

static int peer_closed(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void *watch(void *arg) {
    watcher *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 50000000;
        if (t.tv_nsec >= 1000000000)
            t.tv_sec++, t.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&w->cv, &w->mu, &t);
        if (!w->done && w->fd >= 0 && peer_closed(w->fd)) {
            w->cancelled = 1;
            chat_cancel(w->chat);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

// ---- streaming: a generation thread fills a buffer of server-sent events that MHD's reader drains ----

typedef struct {
    mm_server *s;
    slot *sl;
    api_request req;
    char id[48];
    long created;
    char *buf;
    size_t len, cap, off;
    int done, cancelled;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    mm_chat_stats st;
} stream_state;

static void push_event(stream_state *ss, char *json) {
    if (!json)
        return;
    size_t n = strlen(json) + 8;
    pthread_mutex_lock(&ss->mu);
    if (ss->len + n + 1 > ss->cap) {
        size_t cap = (ss->len + n + 1) * 2;
        char *b = realloc(ss->buf, cap);
        if (b)
            ss->buf = b, ss->cap = cap;
    }
    if (ss->len + n + 1 <= ss->cap)
        ss->len += (size_t)snprintf(ss->buf + ss->len, ss->cap - ss->len, "data: %s\n\n", json);
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    free(json);
}

static int on_stream_piece(const char *piece, void *user) {
    stream_state *ss = user;
    push_event(ss, api_chunk_json(ss->id, ss->created, ss->s->o.model_name, NULL, piece, NULL, -1, 0));
    return ss->cancelled;
}

static void *stream_main(void *arg) {
    stream_state *ss = arg;
    push_event(ss, api_chunk_json(ss->id, ss->created, ss->s->o.model_name, "assistant", "", NULL, -1, 0));
    mm_err e = {0};
    const char *reply;
    mm_status st = chat_reply(ss->sl->chat, &ss->req.p, (const char *const *)ss->req.stops, ss->req.n_stops,
                              on_stream_piece, ss, &reply, &e);
    ss->st = chat_stats(ss->sl->chat);
    if (st != MM_OK) {
        char *err = api_error_json(e.msg, "server_error", NULL, NULL);
        push_event(ss, err);
    } else {
        push_event(ss, api_chunk_json(ss->id, ss->created, ss->s->o.model_name, NULL, NULL, finish_reason(ss->st.stop),
                                      -1, 0));
        if (ss->req.include_usage)
            push_event(ss, api_chunk_json(ss->id, ss->created, ss->s->o.model_name, NULL, NULL, NULL,
                                          ss->st.prompt_tokens, ss->st.generated_tokens));
    }
    pthread_mutex_lock(&ss->mu);
    const char *end = "data: [DONE]\n\n";
    if (ss->len + strlen(end) + 1 > ss->cap) {
        char *b = realloc(ss->buf, ss->len + strlen(end) + 1);
        if (b)
            ss->buf = b, ss->cap = ss->len + strlen(end) + 1;
    }
    if (ss->len + strlen(end) + 1 <= ss->cap)
        memcpy(ss->buf + ss->len, end, strlen(end) + 1), ss->len += strlen(end);
    ss->done = 1;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    stream_state *ss = cls;
    pthread_mutex_lock(&ss->mu);
    while (ss->off == ss->len && !ss->done)
        pthread_cond_wait(&ss->cv, &ss->mu);
    size_t n = ss->len - ss->off;
    if (n > max)
        n = max;
    memcpy(out, ss->buf + ss->off, n);
    ss->off += n;
    int end = ss->done && ss->off == ss->len;
    pthread_mutex_unlock(&ss->mu);
    return n ? (ssize_t)n : end ? MHD_CONTENT_READER_END_OF_STREAM : 0;
}

// Called when the response is done or the client went away: stop the generation, give the slot back.
static void stream_free(void *cls) {
    stream_state *ss = cls;
    ss->cancelled = 1;
    chat_cancel(ss->sl->chat);
    pthread_join(ss->th, NULL);
    release(ss->s, ss->sl, &ss->st);
    api_request_free(&ss->req);
    pthread_mutex_destroy(&ss->mu);
    pthread_cond_destroy(&ss->cv);
    free(ss->buf);
    free(ss);
}

static enum MHD_Result chat_completions(mm_server *s, struct MHD_Connection *c, request_ctx *rc) {
    if (rc->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is over the %zu MB limit", s->o.max_body_bytes >> 20);
        return send_error(s, c, 413, msg, NULL, "request_too_large");
    }
    api_limits lim = {.prep = config_clip_prep(&s->m->w.cfg), .max_image_bytes = s->o.max_image_bytes,
                      .max_images = 8, .defaults = s->o.defaults};
    api_request req;
    int status;
    char param[160];
    mm_err e = {0};
    if (api_parse_chat(rc->body ? rc->body : "", rc->len, &lim, &req, &status, param, sizeof param, &e) != MM_OK)
        return send_error(s, c, (unsigned)status, e.msg, param, NULL);
    slot *sl = acquire(s, conversation_key(&req));
    if (!sl) {
        api_request_free(&req);
        return send_error(s, c, 503, "all model slots are busy and the queue is full; retry shortly", NULL, "overloaded");
    }
    if (load_conversation(sl, &req, &e) != MM_OK) {
        release(s, sl, NULL);
        api_request_free(&req);
        return send_error(s, c, 400, e.msg, "messages", NULL);
    }
    char id[48];
    pthread_mutex_lock(&s->mu);
    snprintf(id, sizeof id, "chatcmpl-mmgpt-%ld", ++s->next_id);
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    long created = (long)time(NULL);
    if (req.stream) {
        stream_state *ss = calloc(1, sizeof *ss);
        if (!ss) {
            release(s, sl, NULL);
            api_request_free(&req);
            return send_error(s, c, 500, "out of memory", NULL, NULL);
        }
        ss->s = s, ss->sl = sl, ss->req = req, ss->created = created;
        snprintf(ss->id, sizeof ss->id, "%s", id);
        pthread_mutex_init(&ss->mu, NULL);
        pthread_cond_init(&ss->cv, NULL);
        if (pthread_create(&ss->th, NULL, stream_main, ss) != 0) {
            release(s, sl, NULL);
            api_request_free(&ss->req);
            free(ss);
            return send_error(s, c, 500, "cannot start the generation", NULL, NULL);
        }
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, ss, stream_free);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    watcher w = {.fd = conn_fd(c), .chat = sl->chat};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t wt;
    int watching = pthread_create(&wt, NULL, watch, &w) == 0;
    const char *reply = NULL;
    mm_status st = chat_reply(sl->chat, &req.p, (const char *const *)req.stops, req.n_stops, NULL, NULL, &reply, &e);
    pthread_mutex_lock(&w.mu);
    w.done = 1;
    pthread_cond_signal(&w.cv);
    pthread_mutex_unlock(&w.mu);
    if (watching)
        pthread_join(wt, NULL);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    mm_chat_stats stats = chat_stats(sl->chat);
    char *body = st == MM_OK ? api_completion_json(id, created, s->o.model_name, reply, finish_reason(stats.stop),
                                                   stats.prompt_tokens, stats.generated_tokens)
                             : NULL;
    release(s, sl, &stats);
    api_request_free(&req);
    if (st != MM_OK) {
        int ctx = strstr(e.msg, "context") != NULL || strstr(e.msg, "too long") != NULL;
        return send_error(s, c, ctx ? 400 : 500, e.msg, ctx ? "messages" : NULL, ctx ? "context_length_exceeded" : NULL);
    }
    enum MHD_Result ret = send_text(c, 200, "application/json", body ? body : "{}", NULL);
    free(body);
    return ret;
}

static enum MHD_Result send_metrics(mm_server *s, struct MHD_Connection *c) {
    char buf[5120];
    mm_batcher_stats bs = batcher_stats(s->batcher);
    pthread_mutex_lock(&s->mu);
    int busy = 0;
    for (int i = 0; i < s->o.parallel; i++)
        busy += s->slots[i].busy;
    snprintf(buf, sizeof buf,
             "# HELP mmgpt_requests_total Chat completion requests accepted.\n# TYPE mmgpt_requests_total counter\n"
             "mmgpt_requests_total %ld\n"
             "# HELP mmgpt_request_errors_total Requests answered with an error status.\n"
             "# TYPE mmgpt_request_errors_total counter\nmmgpt_request_errors_total %ld\n"
             "# HELP mmgpt_requests_rejected_total Requests refused with 503 (queue full).\n"
             "# TYPE mmgpt_requests_rejected_total counter\nmmgpt_requests_rejected_total %ld\n"
             "# HELP mmgpt_prompt_tokens_total Prompt tokens of finished requests.\n"
             "# TYPE mmgpt_prompt_tokens_total counter\nmmgpt_prompt_tokens_total %ld\n"
             "# HELP mmgpt_generated_tokens_total Generated tokens.\n# TYPE mmgpt_generated_tokens_total counter\n"
             "mmgpt_generated_tokens_total %ld\n"
             "# HELP mmgpt_generation_seconds_total Time spent generating.\n"
             "# TYPE mmgpt_generation_seconds_total counter\nmmgpt_generation_seconds_total %.6f\n"
             "# HELP mmgpt_images_encoded_total Images run through the vision encoder (latent cache misses).\n"
             "# TYPE mmgpt_images_encoded_total counter\nmmgpt_images_encoded_total %ld\n"
             "# HELP mmgpt_tokens_per_second Generation speed of the last finished request.\n"
             "# TYPE mmgpt_tokens_per_second gauge\nmmgpt_tokens_per_second %.3f\n"
             "# HELP mmgpt_queue_length Requests waiting for a model slot.\n# TYPE mmgpt_queue_length gauge\n"
             "mmgpt_queue_length %d\n"
             "# HELP mmgpt_slots_busy Model slots generating.\n# TYPE mmgpt_slots_busy gauge\nmmgpt_slots_busy %d\n"
             "# HELP mmgpt_slots Model slots.\n# TYPE mmgpt_slots gauge\nmmgpt_slots %d\n"
             "# HELP mmgpt_batch_steps_total Decoding steps (each computes the next token of every generating request).\n"
             "# TYPE mmgpt_batch_steps_total counter\nmmgpt_batch_steps_total %ld\n"
             "# HELP mmgpt_batch_tokens_total Tokens computed by decoding steps (over steps: the mean batch).\n"
             "# TYPE mmgpt_batch_tokens_total counter\nmmgpt_batch_tokens_total %ld\n"
             "# HELP mmgpt_batch_widest Most requests decoded in one step.\n# TYPE mmgpt_batch_widest gauge\n"
             "mmgpt_batch_widest %d\n",
             s->requests, s->errors, s->rejected, s->prompt_tokens, s->gen_tokens, s->gen_s, s->images_encoded,
             s->last_tps, s->waiting, busy, s->o.parallel, bs.steps, bs.stepped_tokens, bs.widest);
    pthread_mutex_unlock(&s->mu);
    return send_text(c, 200, "text/plain; version=0.0.4", buf, NULL);
}

static int authorized(mm_server *s, struct MHD_Connection *c) {
    if (!s->o.api_key || !s->o.api_key[0])
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return 0;
    const char *k = h + 7, *want = s->o.api_key;
    size_t n = strlen(want), m = strlen(k);
    unsigned diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++) // constant time in the key's length
        diff |= (unsigned)(want[i] ^ (i < m ? k[i] : 0));
    return diff == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    mm_server *s = cls;
    request_ctx *rc = *con_cls;
    if (!rc) {
        if (!(rc = calloc(1, sizeof *rc)))
            return MHD_NO;
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rc->too_big && rc->len + *upload_size <= s->o.max_body_bytes) {
            if (rc->len + *upload_size + 1 > rc->cap) {
                size_t cap = (rc->len + *upload_size + 1) * 2;
                if (cap > s->o.max_body_bytes + 1)
                    cap = s->o.max_body_bytes + 1;
                char *b = realloc(rc->body, cap);
                if (!b)
                    rc->too_big = 1;
                else
                    rc->body = b, rc->cap = cap;
            }
            if (!rc->too_big) {
                memcpy(rc->body + rc->len, upload, *upload_size);
                rc->len += *upload_size;
                rc->body[rc->len] = 0;
            }
        } else {
            rc->too_big = 1; // keep reading (and dropping) so the client gets the 413
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
        return get ? send_text(c, 200, "text/html; charset=utf-8", mm_web_index, NULL)
                   : send_error(s, c, 405, "use GET", NULL, NULL);
    if (!strcmp(url, "/health")) {
        char buf[256];
        pthread_mutex_lock(&s->mu);
        int busy = 0;
        for (int i = 0; i < s->o.parallel; i++)
            busy += s->slots[i].busy;
        snprintf(buf, sizeof buf, "{\"status\":\"ok\",\"slots\":%d,\"busy\":%d,\"queue\":%d}", s->o.parallel, busy,
                 s->waiting);
        pthread_mutex_unlock(&s->mu);
        return send_text(c, 200, "application/json", buf, NULL);
    }
    if (!strcmp(url, "/metrics"))
        return send_metrics(s, c);
    if (!strncmp(url, "/v1/", 4) && !authorized(s, c))
        return send_error(s, c, 401, "missing or wrong API key (Authorization: Bearer KEY)", NULL, "invalid_api_key");
    if (!strcmp(url, "/v1/models")) {
        json_object *o = json_object_new_object(), *list = json_object_new_array(), *m = json_object_new_object();
        json_object_object_add(m, "id", json_object_new_string(s->o.model_name));
        json_object_object_add(m, "object", json_object_new_string("model"));
        json_object_object_add(m, "created", json_object_new_int64(0));
        json_object_object_add(m, "owned_by", json_object_new_string("mmgpt"));
        json_object_array_add(list, m);
        json_object_object_add(o, "object", json_object_new_string("list"));
        json_object_object_add(o, "data", list);
        enum MHD_Result r = send_text(c, 200, "application/json", json_object_to_json_string(o), NULL);
        json_object_put(o);
        return r;
    }
    if (!strcmp(url, "/v1/chat/completions"))
        return post ? chat_completions(s, c, rc) : send_error(s, c, 405, "use POST", NULL, NULL);
    return send_error(s, c, 404, "no such endpoint", NULL, "not_found");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    request_ctx *rc = *con_cls;
    if (rc) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

mm_status server_start(mm_server **out, const mm_model *m, const mm_tokenizer *tok, const mm_serve_opts *o, int *port,
                       mm_err *e) {
    *out = NULL;
    mm_server *s = calloc(1, sizeof *s);
    if (!s)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    s->m = m, s->tok = tok, s->o = *o;
    if (s->o.parallel < 1)
        s->o.parallel = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->slots = calloc((size_t)s->o.parallel, sizeof *s->slots);
    mm_status st = s->slots ? MM_OK : mm_errf(e, MM_ERR_NOMEM, "out of memory");
    // The slots' decoding is batched: each step computes the next token of every generating request.
    if (st == MM_OK)
        st = batcher_create(&s->batcher, s->o.parallel, e);
    mm_chat_opts co = {.max_ctx = o->max_ctx, .batcher = s->batcher};
    for (int i = 0; st == MM_OK && i < s->o.parallel; i++)
        st = chat_create(&s->slots[i].chat, m, tok, &co, e);
    struct sockaddr_storage ss = {0};
    if (st == MM_OK) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, o->host, &a4->sin_addr) == 1)
            a4->sin_family = AF_INET, a4->sin_port = htons((uint16_t)o->port);
        else if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) == 1)
            a6->sin6_family = AF_INET6, a6->sin6_port = htons((uint16_t)o->port);
        else
            st = mm_errf(e, MM_ERR_ARG, "--host '%s' is not an IPv4 or IPv6 address", o->host);
    }
    if (st == MM_OK) {
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        if (ss.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)(s->o.parallel + s->o.queue_limit + 32), MHD_OPTION_END);
        if (!s->d)
            st = mm_errf(e, MM_ERR_IO, "cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
    }
    if (st != MM_OK) {
        server_stop(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : o->port;
    *out = s;
    return MM_OK;
}

void server_stop(mm_server *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (int i = 0; s->slots && i < s->o.parallel; i++)
        if (s->slots[i].chat && s->slots[i].busy)
            chat_cancel(s->slots[i].chat);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->d)
        MHD_stop_daemon(s->d);
    for (int i = 0; s->slots && i < s->o.parallel; i++)
        chat_free(s->slots[i].chat);
    free(s->slots);
    batcher_free(s->batcher);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
