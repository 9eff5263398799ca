// Synthetic vision-language instruction data for the bundled demo model (issue: a model that works out
// of the box). Scenes of coloured shapes (circle, square, triangle, diamond) of two sizes on plain or
// textured backgrounds, some with a short word or number rendered in a 5x7 bitmap font; for each scene,
// conversations in mmgpt's JSONL format (text/conversation.h): a detailed caption, counting, colour,
// position and text-reading questions, multi-turn follow-ups. Plus a language-only instruction set:
// arithmetic, simple facts, rewriting, lists. Held-out scenes and arithmetic pairs go to eval.jsonl
// for `mmgpt eval`.
//
//   synth OUT_DIR [--train N] [--eval N] [--lang N] [--seed S] [--size PX] [--grid P]
// --grid P: each training turn is, with probability P, "List what is in each cell." answered cell by cell
// (an experiment in denser shape supervision, MODEL_CARD.md; off by default).
// writes OUT_DIR/images/*.png, vision.jsonl, language.jsonl, eval.jsonl, corpus.txt (all text, for
// spm_train) and data.json (an `mmgpt train` data config over the two JSONL files).
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------- randomness (splitmix64)
static uint64_t rng_state;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int rnd(int n) { return (int)(next_u64() % (uint64_t)n); }
static double unif(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }

// ---------------------------------------------------------------- scenes
enum { CIRCLE, SQUARE, TRIANGLE, DIAMOND, N_SHAPES };
static const char *shape_name[N_SHAPES] = {"circle", "square", "triangle", "diamond"};
static const char *shape_plural[N_SHAPES] = {"circles", "squares", "triangles", "diamonds"};
#define N_COLORS 6
static const char *color_name[N_COLORS] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const uint8_t color_rgb[N_COLORS][3] = {{220, 30, 30}, {30, 190, 50}, {40, 80, 230},
                                               {235, 220, 40}, {150, 50, 200}, {245, 140, 20}};
#define N_BGS 3
static const char *bg_name[N_BGS] = {"black", "gray", "white"};
static const uint8_t bg_rgb[N_BGS][3] = {{10, 10, 10}, {110, 110, 110}, {235, 235, 235}};
static const char *words[] = {"CAT", "DOG", "SUN", "RED", "BOX", "MAP", "HAT", "CUP", "KEY", "PEN", "TOP", "ZIP"};
#define N_WORDS (int)(sizeof words / sizeof words[0])

typedef struct {
    int shape, color, big, cx, cy; // centre in pixels
} object;

typedef struct {
    int size, bg, textured, n;
    int count_shape; // the shape the counting question asks about: its count is uniform over 0..5
    object obj[6];
    char text[8]; // "" for none
    uint8_t *rgb;
} scene;

// A 5x7 font for A-Z and 0-9: each glyph is 7 rows of 5 bits (MSB = left column).
static const uint8_t font[36][7] = {
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, // A B
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, {0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e}, // C D
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, // E F
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, // G H
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, // I J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, // K L
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11}, // M N
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, // O P
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, // Q R
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, // S T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, // U V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, // W X
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, // Y Z
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, // 0 1
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, // 2 3
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, // 4 5
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, // 6 7
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, // 8 9
};

static void put_px(scene *s, int x, int y, const uint8_t *c) {
    if (x < 0 || y < 0 || x >= s->size || y >= s->size)
        return;
    memcpy(s->rgb + ((size_t)y * s->size + x) * 3, c, 3);
}

static int inside(const object *o, int x, int y, int r) {
    int dx = x - o->cx, dy = y - o->cy, adx = dx < 0 ? -dx : dx, ady = dy < 0 ? -dy : dy;
    switch (o->shape) {
    case CIRCLE: return dx * dx + dy * dy <= r * r;
    case SQUARE: return adx <= r * 4 / 5 && ady <= r * 4 / 5;
    case TRIANGLE: return dy >= -r && dy <= r * 3 / 4 && adx * 2 <= (dy + r); // apex up
    default: return adx + ady <= r;                                          // diamond
    }
}

// The text's glyphs fill the bottom row's cells from this one on, one glyph per cell, centred as a group.
static int text_first_cell(const scene *s) { return (3 - (int)strlen(s->text)) / 2; }

static void render(scene *s) {
    int S = s->size;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t c[3];
            for (int k = 0; k < 3; k++) {
                int v = bg_rgb[s->bg][k];
                if (s->textured) // stripes plus a little noise
                    v += ((x + y) / 4 % 2 ? 18 : -18) + rnd(13) - 6;
                c[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            put_px(s, x, y, c);
        }
    int cell = S / 3;
    for (int i = 0; i < s->n; i++) {
        const object *o = &s->obj[i];
        int r = o->big ? cell * 7 / 16 : cell * 5 / 16;
        for (int y = o->cy - r - 1; y <= o->cy + r + 1; y++)
            for (int x = o->cx - r - 1; x <= o->cx + r + 1; x++)
                if (inside(o, x, y, r))
                    put_px(s, x, y, color_rgb[o->color]);
    }
    if (s->text[0]) { // one glyph per bottom-row cell, centred, in the colour that contrasts with the background
        int len = (int)strlen(s->text), sc = cell >= 16 ? cell / 8 : 1, first = text_first_cell(s);
        const uint8_t ink[3] = {s->bg == 2 ? 0 : 255, s->bg == 2 ? 0 : 255, s->bg == 2 ? 0 : 255};
        for (int i = 0; i < len; i++) {
            char ch = s->text[i];
            const uint8_t *g = font[ch >= 'A' && ch <= 'Z' ? ch - 'A' : 26 + ch - '0'];
            for (int ry = 0; ry < 7; ry++)
                for (int rx = 0; rx < 5; rx++)
                    if (g[ry] & (0x10 >> rx))
                        for (int yy = 0; yy < sc; yy++)
                            for (int xx = 0; xx < sc; xx++)
                                put_px(s, (first + i) * cell + (cell - 5 * sc) / 2 + rx * sc + xx,
                                       2 * cell + (cell - 7 * sc) / 2 + ry * sc + yy, ink);
        }
    }
}

static void make_scene(scene *s, int size) {
    memset(s, 0, sizeof *s);
    s->size = size;
    s->bg = rnd(N_BGS);
    s->textured = unif() < 0.3;
    if (unif() < 0.35) {
        if (unif() < 0.5)
            snprintf(s->text, sizeof s->text, "%s", words[rnd(N_WORDS)]);
        else
            snprintf(s->text, sizeof s->text, "%d", rnd(1000));
    }
    // One object per cell of a 3x3 grid, centred (the bottom row is kept for text when there is some). With
    // the demo's patch size equal to the cell, every object and every glyph is one vision token: a model
    // this small, trained from scratch in minutes, can then see objects instead of only the background.
    int rows = s->text[0] ? 2 : 3, cells[9], nc = 0;
    for (int i = 0; i < rows * 3; i++)
        cells[nc++] = i;
    for (int i = nc - 1; i > 0; i--) {
        int j = rnd(i + 1), t = cells[i];
        cells[i] = cells[j], cells[j] = t;
    }
    // The counted shape appears k times, k uniform over 0..5 (a model must look to answer), with up to
    // 5 - k objects of other shapes (at least one object in all).
    int k = rnd(6), others = k == 0 ? 1 + rnd(5) : rnd(6 - k), main_color = rnd(N_COLORS);
    s->count_shape = rnd(N_SHAPES);
    s->n = k + others;
    for (int i = 0; i < s->n; i++) {
        object *o = &s->obj[i];
        if (i < k)
            o->shape = s->count_shape;
        else
            do
                o->shape = rnd(N_SHAPES);
            while (o->shape == s->count_shape);
        o->color = unif() < 0.5 ? main_color : rnd(N_COLORS);
        o->big = unif() < 0.5;
        int cell = cells[i], cw = size / 3;
        o->cx = (cell % 3) * cw + cw / 2;
        o->cy = (cell / 3) * cw + cw / 2;
    }
    s->rgb = malloc((size_t)size * size * 3);
    render(s);
}

static int write_png(const char *path, const scene *s) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)s->size;
    im.height = (png_uint_32)s->size;
    im.format = PNG_FORMAT_RGB;
    return png_image_write_to_file(&im, path, 0, s->rgb, 0, NULL) ? 0 : -1;
}

// ---------------------------------------------------------------- language about scenes
static int count_shape(const scene *s, int shape) {
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->obj[i].shape == shape;
    return n;
}

// The grid cell (0..8, reading order) an object sits in.
static int cell_of(const scene *s, const object *o) {
    int third = s->size / 3, cx = o->cx / third, cy = o->cy / third;
    return (cy > 2 ? 2 : cy) * 3 + (cx > 2 ? 2 : cx);
}

static const char *where(const scene *s, const object *o) {
    static const char *names[3][3] = {{"top left", "top", "top right"},
                                      {"left", "center", "right"},
                                      {"bottom left", "bottom", "bottom right"}};
    int c = cell_of(s, o);
    return names[c / 3][c % 3];
}

static const char *num_word(int n) {
    static const char *w[] = {"no", "one", "two", "three", "four", "five", "six"};
    return w[n];
}

// "big red circle": one object's size, colour and shape.
static int object_phrase(const object *o, char *out, size_t cap) {
    return snprintf(out, cap, "%s %s %s", o->big ? "big" : "small", color_name[o->color], shape_name[o->shape]);
}

// "two red circles, a big blue square and one small green triangle" style, grouped by shape and colour.
static void describe(const scene *s, char *out, size_t cap) {
    int used[6] = {0}, groups = 0, first_single = 0;
    char parts[6][64];
    for (int i = 0; i < s->n; i++) {
        if (used[i])
            continue;
        int k = 0;
        for (int j = i; j < s->n; j++)
            if (!used[j] && s->obj[j].shape == s->obj[i].shape && s->obj[j].color == s->obj[i].color)
                used[j] = 1, k++;
        if (groups == 0)
            first_single = k == 1;
        if (k == 1) {
            snprintf(parts[groups], 64, "a ");
            object_phrase(&s->obj[i], parts[groups++] + 2, 62);
        } else
            snprintf(parts[groups++], 64, "%s %s %s", num_word(k), color_name[s->obj[i].color],
                     shape_plural[s->obj[i].shape]);
    }
    size_t o = (size_t)snprintf(out, cap, "There %s ", first_single ? "is" : "are");
    for (int g = 0; g < groups; g++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", g == 0 ? "" : g == groups - 1 ? " and " : ", ", parts[g]);
    o += (size_t)snprintf(out + o, cap - o, " on a %s%s background.", s->textured ? "striped " : "", bg_name[s->bg]);
    if (s->text[0])
        snprintf(out + o, cap - o, " The text says %s.", s->text);
}

typedef struct {
    char q[128], a[512];
    const char *kind;
} qa;

// Question kinds about a scene; the first N_ASKED are drawn for conversations and asked in eval.
enum { Q_CAPTION, Q_COUNT, Q_COLOR, Q_WHERE, Q_OCR, N_ASKED, Q_GRID = N_ASKED };

// One question about the scene of the given kind, if the scene allows it; returns 0 when not.
static int ask(const scene *s, int kind, int counted_shape, qa *out) {
    switch (kind) {
    case Q_CAPTION:
        snprintf(out->q, sizeof out->q, "%s", unif() < 0.5 ? "Describe the image in detail." : "What is in this image?");
        describe(s, out->a, sizeof out->a);
        out->kind = "caption";
        return 1;
    case Q_COUNT:
        snprintf(out->q, sizeof out->q, "How many %s are there?", shape_plural[counted_shape]);
        snprintf(out->a, sizeof out->a, "%d", count_shape(s, counted_shape));
        out->kind = "count";
        return 1;
    case Q_COLOR: {
        const object *o = &s->obj[rnd(s->n)];
        if (count_shape(s, o->shape) != 1)
            return 0;
        snprintf(out->q, sizeof out->q, "What color is the %s?", shape_name[o->shape]);
        snprintf(out->a, sizeof out->a, "%s", color_name[o->color]);
        out->kind = "color";
        return 1;
    }
    case Q_WHERE: {
        const object *o = &s->obj[rnd(s->n)];
        if (count_shape(s, o->shape) != 1)
            return 0;
        snprintf(out->q, sizeof out->q, "Where is the %s?", shape_name[o->shape]);
        snprintf(out->a, sizeof out->a, "%s", where(s, o));
        out->kind = "where";
        return 1;
    }
    case Q_GRID: { // every cell in reading order: dense, position-routed supervision of each object's shape
        snprintf(out->q, sizeof out->q, "List what is in each cell.");
        size_t o = 0;
        for (int c = 0; c < 9; c++) {
            const object *hit = NULL;
            for (int i = 0; i < s->n; i++)
                if (cell_of(s, &s->obj[i]) == c)
                    hit = &s->obj[i];
            o += (size_t)snprintf(out->a + o, sizeof out->a - o, "%s", c ? ", " : "");
            if (hit)
                o += (size_t)object_phrase(hit, out->a + o, sizeof out->a - o);
            else {
                int g = c - 6 - text_first_cell(s);
                o += (size_t)snprintf(out->a + o, sizeof out->a - o, "%s",
                                      g >= 0 && g < (int)strlen(s->text) ? "text" : "nothing");
            }
        }
        out->kind = "grid";
        return 1;
    }
    default: // Q_OCR
        if (!s->text[0])
            return 0;
        snprintf(out->q, sizeof out->q, "What does the text say?");
        snprintf(out->a, sizeof out->a, "%s", s->text);
        out->kind = "ocr";
        return 1;
    }
}

// ---------------------------------------------------------------- language-only instructions
static const char *facts[][2] = {
    {"What color is the sky?", "blue"},         {"What color is grass?", "green"},
    {"What color is snow?", "white"},           {"How many legs does a cat have?", "4"},
    {"How many days are in a week?", "7"},      {"How many sides does a square have?", "4"},
    {"How many sides does a triangle have?", "3"}, {"What animal says meow?", "a cat"},
    {"What animal says woof?", "a dog"},        {"What do bees make?", "honey"},
    {"What is the opposite of hot?", "cold"},   {"What is the opposite of big?", "small"},
    {"What is the opposite of up?", "down"},    {"What shape is a ball?", "a circle"},
    {"What color is a banana?", "yellow"},      {"What color is a tomato?", "red"},
};
#define N_FACTS (int)(sizeof facts / sizeof facts[0])
static const char *nouns[] = {"cat", "dog", "sun", "box", "map", "hat", "cup", "key", "pen", "star", "tree", "book"};
#define N_NOUNS (int)(sizeof nouns / sizeof nouns[0])

static int arith_is_eval(int a, int b) { return (a * 7 + b * 13) % 10 == 3; }

static void language(qa *out, int eval) {
    int k = eval ? 0 : rnd(5);
    if (k == 0) {
        int a, b, plus;
        do {
            a = rnd(21), b = rnd(21), plus = unif() < 0.5;
            if (!plus && b > a) {
                int t = a;
                a = b, b = t;
            }
        } while (arith_is_eval(a, b) != eval);
        snprintf(out->q, sizeof out->q, "What is %d %s %d?", a, plus ? "plus" : "minus", b);
        snprintf(out->a, sizeof out->a, "%d", plus ? a + b : a - b);
        out->kind = "arith";
    } else if (k == 1) {
        int f = rnd(N_FACTS);
        snprintf(out->q, sizeof out->q, "%s", facts[f][0]);
        snprintf(out->a, sizeof out->a, "%s", facts[f][1]);
        out->kind = "fact";
    } else if (k == 2) {
        const char *w = nouns[rnd(N_NOUNS)];
        char up[16];
        size_t n = strlen(w);
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)(w[i] >= 'a' && w[i] <= 'z' ? w[i] - 32 : w[i]);
        if (unif() < 0.5) {
            snprintf(out->q, sizeof out->q, "Write the word %s in capital letters.", w);
            snprintf(out->a, sizeof out->a, "%s", up);
        } else {
            snprintf(out->q, sizeof out->q, "Spell the word %s.", w);
            size_t o = 0;
            for (size_t i = 0; i < n; i++)
                o += (size_t)snprintf(out->a + o, sizeof out->a - o, "%s%c", i ? "-" : "", w[i]);
        }
        out->kind = "rewrite";
    } else if (k == 3) {
        int start = rnd(10), len = 3 + rnd(3);
        snprintf(out->q, sizeof out->q, "Count from %d to %d.", start, start + len - 1);
        size_t o = 0;
        for (int i = 0; i < len; i++)
            o += (size_t)snprintf(out->a + o, sizeof out->a - o, "%s%d", i ? ", " : "", start + i);
        out->kind = "list";
    } else {
        static const char *kinds[][2] = {{"colors", "red, green, blue"}, {"shapes", "circle, square, triangle"},
                                         {"animals", "cat, dog, bird"}};
        int i = rnd(3);
        snprintf(out->q, sizeof out->q, "List three %s.", kinds[i][0]);
        snprintf(out->a, sizeof out->a, "%s", kinds[i][1]);
        out->kind = "list";
    }
}

// ---------------------------------------------------------------- output
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_conv(FILE *f, FILE *corpus, const char *image, const qa *turns, int n) {
    fputs("{\"messages\": [", f);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", {\"role\": \"user\", \"content\": " : "{\"role\": \"user\", \"content\": ", f);
        json_str(f, turns[i].q);
        if (i == 0 && image) {
            fputs(", \"images\": [", f);
            json_str(f, image);
            fputs("]", f);
        }
        fputs("}, {\"role\": \"assistant\", \"content\": ", f);
        json_str(f, turns[i].a);
        fputs("}", f);
        fprintf(corpus, "%s\n%s\n", turns[i].q, turns[i].a);
    }
    fputs("]}\n", f);
}

static void write_eval(FILE *f, const char *image, const qa *x) {
    fputs("{\"kind\": ", f);
    json_str(f, x->kind);
    fputs(", \"image\": ", f);
    if (image)
        json_str(f, image);
    else
        fputs("null", f);
    fputs(", \"question\": ", f);
    json_str(f, x->q);
    fputs(", \"answer\": ", f);
    json_str(f, x->a);
    fputs("}\n", f);
}

// mkdir -p
static void make_dirs(const char *path) {
    char p[4200];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0755);
            *c = '/';
        }
    mkdir(p, 0755);
}

static FILE *open_out(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "synth: cannot write %s: %s\n", p, strerror(errno));
        exit(1);
    }
    return f;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: synth OUT_DIR [--train N] [--eval N] [--lang N] [--seed S] [--size PX] [--grid P]\n");
        return 2;
    }
    const char *out = argv[1];
    int n_train = 6000, n_eval = 400, n_lang = 6000, size = 48;
    double grid = 0;
    uint64_t seed = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--train"))
            n_train = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval"))
            n_eval = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--lang"))
            n_lang = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--size"))
            size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--grid"))
            grid = atof(argv[i + 1]);
        else {
            fprintf(stderr, "synth: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (size < 24 || size > 512 || size % 3 || n_train < 0 || n_eval < 0 || n_lang < 0 || !(grid >= 0 && grid <= 1)) {
        fprintf(stderr, "synth: --size must be a multiple of 3 in 24..512, counts non-negative, --grid in 0..1\n");
        return 2;
    }
    rng_state = seed;
    char path[4200];
    snprintf(path, sizeof path, "%s/images", out);
    make_dirs(path);
    FILE *vis = open_out(out, "vision.jsonl"), *lang = open_out(out, "language.jsonl");
    FILE *ev = open_out(out, "eval.jsonl"), *corpus = open_out(out, "corpus.txt");
    for (int i = 0; i < n_train + n_eval; i++) {
        int is_eval = i >= n_train;
        scene s;
        make_scene(&s, size);
        char rel[64];
        snprintf(rel, sizeof rel, "images/%s%05d.png", is_eval ? "eval" : "train", is_eval ? i - n_train : i);
        snprintf(path, sizeof path, "%s/%s", out, rel);
        if (write_png(path, &s) != 0) {
            fprintf(stderr, "synth: cannot write %s\n", path);
            return 1;
        }
        if (is_eval) { // one question of each kind the scene allows
            for (int k = 0; k < N_ASKED; k++) {
                qa x;
                for (int tries = 0; tries < 8; tries++)
                    if (ask(&s, k, s.count_shape, &x)) {
                        write_eval(ev, rel, &x);
                        break;
                    }
            }
        } else { // a conversation of one to four turns about the image as a whole or its parts
            qa turns[4];
            int n = 0, want = 1 + rnd(4), counted = 0;
            for (int tries = 0; n < want && tries < 30; tries++) {
                int kind = rnd(N_ASKED); // the first count question asks about the uniformly counted shape
                if (grid > 0 && unif() < grid) // (no draw when off: the default data stay what they were)
                    kind = Q_GRID;
                if (!ask(&s, kind, kind == Q_COUNT && counted ? rnd(N_SHAPES) : s.count_shape, &turns[n]))
                    continue;
                int repeat = 0; // the same question twice teaches nothing
                for (int k = 0; k < n; k++)
                    repeat |= !strcmp(turns[k].q, turns[n].q);
                counted |= kind == Q_COUNT && !repeat;
                n += !repeat;
            }
            write_conv(vis, corpus, rel, turns, n);
        }
        free(s.rgb);
    }
    for (int i = 0; i < n_lang; i++) {
        qa x;
        language(&x, 0);
        write_conv(lang, corpus, NULL, &x, 1);
    }
    for (int i = 0; i < n_eval / 4; i++) {
        qa x;
        language(&x, 1);
        write_eval(ev, NULL, &x);
    }
    fprintf(corpus, "Below is an instruction that describes a task. Write a response that appropriately completes the "
                    "request.\n### Image:\n### Instruction:\n### Response:\n### End.\n");
    fclose(vis), fclose(lang), fclose(ev), fclose(corpus);
    FILE *dc = open_out(out, "data.json");
    fprintf(dc, "{\"seed\": %llu, \"sources\": [\n"
                "  {\"type\": \"conversation\", \"path\": \"vision.jsonl\", \"image_root\": \".\"},\n"
                "  {\"type\": \"conversation\", \"path\": \"language.jsonl\"}]}\n",
            (unsigned long long)seed);
    fclose(dc);
    printf("synth: %d training scenes, %d eval scenes, %d language records in %s\n", n_train, n_eval, n_lang, out);
    return 0;
}
