// Load test of mmgpt serve: N concurrent clients on loopback send chat completions (one short user message,
// greedy, a few new tokens) until the total is reached; prints requests/s, p50/p99 latency, generated tokens/s,
// errors by status, and the server's resident memory after a warm-up and at the end (growth means a leak).
// usage: bench/serve PORT SERVER_PID [clients 64] [requests 10000] [max_tokens 8] [warm-up requests 200]
// With as many clients as --parallel slots and a model whose decoding is memory-bound, generated tokens/s
// against the clients shows what continuous batching gains (bench/serve.sh STREAMS="1 2 4 8").
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, max_tokens = 8;
static long total, next_req, errors, non200, tokens;
static double *lat;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// One request on a fresh connection; returns the HTTP status (0 on a transport error) and the completion tokens.
static int one(long i, long *completion) {
    char body[512], req[1024], resp[16384];
    int n = snprintf(body, sizeof body, "{\"max_tokens\": %d, \"temperature\": 0, \"messages\": [{\"role\": \"user\", "
                                        "\"content\": \"Question number %ld: what is in the picture?\"}]}", max_tokens, i % 97);
    int k = snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", n, body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, (size_t)k) != k) {
        close(fd);
        return 0;
    }
    size_t len = 0;
    ssize_t r;
    while (len < sizeof resp - 1 && (r = read(fd, resp + len, sizeof resp - 1 - len)) > 0)
        len += (size_t)r;
    resp[len] = 0;
    close(fd);
    int status = 0;
    sscanf(resp, "HTTP/1.%*d %d", &status);
    char *u = strstr(resp, "\"completion_tokens\":");
    *completion = u ? atol(u + 20) : 0;
    return status;
}

static void *client(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        long i = next_req < total ? next_req++ : -1;
        pthread_mutex_unlock(&mu);
        if (i < 0)
            return NULL;
        double t0 = now();
        long c = 0;
        int st = one(i, &c);
        double dt = now() - t0;
        pthread_mutex_lock(&mu);
        lat[i] = dt;
        if (st == 0)
            errors++;
        else if (st != 200)
            non200++;
        tokens += c;
        pthread_mutex_unlock(&mu);
    }
}

static long rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(int clients, long n) {
    total = n, next_req = 0, errors = non200 = tokens = 0;
    lat = calloc((size_t)n, sizeof *lat);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, client, NULL);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    free(th);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench/serve PORT SERVER_PID [clients] [requests] [max_tokens] [warm-up]\n");
        return 2;
    }
    port = atoi(argv[1]);
    int pid = atoi(argv[2]), clients = argc > 3 ? atoi(argv[3]) : 64;
    long n = argc > 4 ? atol(argv[4]) : 10000;
    max_tokens = argc > 5 ? atoi(argv[5]) : 8;
    long warm = argc > 6 ? atol(argv[6]) : 200;
    run(clients, warm); // warm-up: slots, caches, allocator
    free(lat);
    long rss0 = rss_kb(pid), rss_q[4];
    // Four quarters, each measured, so a plateau (caches, thread stacks) tells from steady growth (a leak).
    double *all = calloc((size_t)n, sizeof *all), wall = 0, t0;
    long tok_sum = 0, err_sum = 0, bad_sum = 0;
    for (int q = 0; q < 4; q++) {
        long part = n / 4 + (q == 3 ? n % 4 : 0);
        t0 = now();
        run(clients, part);
        wall += now() - t0;
        memcpy(all + q * (n / 4), lat, sizeof(double) * (size_t)part);
        free(lat);
        tok_sum += tokens, err_sum += errors, bad_sum += non200;
        rss_q[q] = rss_kb(pid);
    }
    lat = all, tokens = tok_sum, errors = err_sum, non200 = bad_sum;
    long rss1 = rss_q[3];
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("clients %d requests %ld max_tokens %d\n", clients, n, max_tokens);
    printf("requests_per_s %.1f\n", (double)n / wall);
    printf("latency_p50_ms %.1f\nlatency_p99_ms %.1f\n", 1e3 * lat[n / 2], 1e3 * lat[(long)(n * 0.99)]);
    printf("generated_tokens_per_s %.1f\n", (double)tokens / wall);
    printf("transport_errors %ld\nnon_200 %ld\n", errors, non200);
    printf("server_rss_kb_after_warmup %ld\nserver_rss_kb_per_quarter %ld %ld %ld %ld\nrss_growth_kb %ld "
           "(last half: %ld)\n", rss0, rss_q[0], rss_q[1], rss_q[2], rss_q[3], rss1 - rss0, rss_q[3] - rss_q[1]);
    free(lat);
    return errors || non200 ? 1 : 0;
}
