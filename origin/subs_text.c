/* Text helpers of the subtitles task (subs_text.h): names, language tags and cue text made safe for
 * HLS, DASH and WebVTT. No FFmpeg here, so the unit tests and the fuzzer take them alone. */
#include "subs_text.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pc_log.h"

/* The length of the UTF-8 character at |p| (a shortest form, not a surrogate, at most U+10FFFF), or 0. */
size_t pc_subs_utf8_char(const unsigned char *p)
{
    size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
    uint32_t c = n == 1 ? *p : n == 2 ? *p & 0x1fu : n == 3 ? *p & 0x0fu : *p & 0x07u;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[k] & 0x3fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (n == 0 || c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

const char *pc_subs_body_problem(const void *body, size_t len)
{
    const unsigned char *p = body;
    if (len >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
        return NULL;
    for (size_t i = 0; i < len;) {
        if (p[i] == 0)
            return "it holds a NUL byte (a binary file, or UTF-16 without its byte order mark)";
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        unsigned char c[5] = {0}; /* the character's bytes, NUL-padded: never read past the body */
        memcpy(c, p + i, len - i < 4 ? len - i : 4);
        size_t n = pc_subs_utf8_char(c);
        if (n == 0)
            return "it is not UTF-8 (a Latin-1 or Windows-1252 file?): save it as UTF-8 and send it again";
        i += n;
    }
    return NULL;
}

/* Copies what of |in| can stand in a quoted HLS attribute and an XML attribute, and cannot be taken for
 * an attribute by a reader looking for "URI=" (origin/media.c's signed rewriting, the peer's endpoint):
 * no control character, no '"', '<', '>', '&' or '=', whole UTF-8 characters only (invalid ones
 * skipped), at most PC_SUBS_NAME_MAX. */
void pc_subs_clean_name(const char *in, char *out, size_t cap)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0';) {
        size_t n = pc_subs_utf8_char(p);
        if (n == 0) { /* not UTF-8: skipped */
            p++;
            continue;
        }
        if (w + n >= cap || w + n > PC_SUBS_NAME_MAX)
            break;
        if (!(n == 1 && (*p < 0x20 || *p == 0x7f || strchr("\"<>&=", *p) != NULL))) {
            memcpy(out + w, p, n);
            w += n;
        }
        p += n;
    }
    while (w > 0 && out[w - 1] == ' ')
        w--;
    out[w] = '\0';
}

/* ISO 639-2 codes (Matroska's and MP4's language tags, terminological and bibliographic) → the ISO 639-1
 * code BCP 47 wants where there is one, and the language's English name, from the iso-codes package
 * (Debian's, as ISO_639_2 names it); without the file, tags are kept as they are. */
#define ISO_639_2 "/usr/share/iso-codes/json/iso_639-2.json"
static json_t *iso639; /* "fre", "fra", "fr" → ["fr", "French"]; for the process's life */
static pthread_once_t iso639_once = PTHREAD_ONCE_INIT;

static void iso639_load(void)
{
    json_t *doc = json_load_file(ISO_639_2, 0, NULL), *e;
    size_t i;
    iso639 = json_object();
    json_array_foreach(json_object_get(doc, "639-2"), i, e)
    {
        const char *a2 = json_string_value(json_object_get(e, "alpha_2")), *nm = json_string_value(json_object_get(e, "name"));
        const char *keys[] = {json_string_value(json_object_get(e, "alpha_3")), json_string_value(json_object_get(e, "bibliographic")),
                              a2};
        char name[PC_SUBS_NAME_MAX + 1] = "";
        if (nm != NULL) /* "Spanish; Castilian": the first */
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, ";"), nm);
        for (size_t k = 0; k < 3; k++)
            if (keys[k] != NULL)
                json_object_set_new(iso639, keys[k], json_pack("[s,s]", a2 != NULL ? a2 : keys[k], name));
    }
    if (doc == NULL)
        PC_LOGW("subtitles", "%s cannot be read (Debian's iso-codes): language tags are kept as they are", ISO_639_2);
    json_decref(doc);
}

/* A BCP 47 language tag for |in| (letters, then subtags of letters and digits; a three-letter ISO 639-2
 * code as its two-letter ISO 639-1 code where there is one), or "" for none or "und"; the language's
 * English name into |name| when known (else ""). */
void pc_subs_clean_language(const char *in, char *out, size_t cap, char *name, size_t ncap)
{
    out[0] = name[0] = '\0';
    size_t n = in != NULL ? strlen(in) : 0, first = 0;
    while (first < n && ((in[first] | 0x20) >= 'a' && (in[first] | 0x20) <= 'z'))
        first++;
    if (n == 0 || n >= cap || first < 2 || first > 8 || strcmp(in, "und") == 0)
        return;
    for (size_t i = first; i < n; i++)
        if (!(in[i] == '-' || (in[i] >= '0' && in[i] <= '9') || ((in[i] | 0x20) >= 'a' && (in[i] | 0x20) <= 'z')))
            return;
    for (size_t i = 0; i <= n; i++)
        out[i] = i < first ? (char)(in[i] | 0x20) : in[i];
    if (first > 3)
        return;
    pthread_once(&iso639_once, iso639_load);
    char key[4] = {out[0], out[1], first == 3 ? out[2] : '\0', '\0'};
    json_t *hit = json_object_get(iso639, key);
    const char *a2 = json_string_value(json_array_get(hit, 0)), *nm = json_string_value(json_array_get(hit, 1));
    if (first == 3 && a2 != NULL && strlen(a2) == 2) {
        memmove(out + 2, out + 3, n - 2); /* "fre-CA" → "fr-CA" (the NUL too) */
        out[0] = a2[0];
        out[1] = a2[1];
    }
    if (nm != NULL)
        snprintf(name, ncap, "%s", nm);
}

/* WebVTT text: the encoder's output with '&' and a '<' that does not begin its own tags escaped, "-->"
 * broken up (a cue's text must not contain it), no blank line (it would end the cue), at most
 * PC_SUBS_CUE_TEXT_MAX bytes, cut between characters. NULL when nothing is left. */
char *pc_subs_vtt_text(const char *s, size_t len)
{
    static const char *const tags[] = {"<b>", "</b>", "<i>", "</i>", "<u>", "</u>"};
    char *out = malloc(PC_SUBS_CUE_TEXT_MAX + 8);
    if (out == NULL)
        return NULL;
    size_t w = 0, whole = 0; /* |whole|: the output up to the last character written in full */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((c & 0xc0) != 0x80)
            whole = w; /* a character starts: everything before it is whole */
        const char *put = NULL;
        /* no control character but newline and tab (a NUL would cut the C string) */
        if ((unsigned char)c < 0x20 && c != '\n' && c != '\t')
            continue;
        if (c == '\n' && (w == 0 || out[w - 1] == '\n'))
            continue;
        const char *tag = NULL; /* one of the encoder's own tags: written whole or not at all */
        for (size_t t = 0; c == '<' && tag == NULL && t < sizeof(tags) / sizeof(tags[0]); t++)
            if (len - i >= strlen(tags[t]) && memcmp(s + i, tags[t], strlen(tags[t])) == 0)
                tag = tags[t];
        if (tag != NULL)
            put = tag;
        else if (c == '&')
            put = "&amp;";
        else if (c == '<')
            put = "&lt;";
        else if (c == '>' && w >= 2 && out[w - 1] == '-' && out[w - 2] == '-')
            put = "&gt;";
        size_t n = put != NULL ? strlen(put) : 1;
        if (w + n > PC_SUBS_CUE_TEXT_MAX) {
            w = whole;
            break;
        }
        memcpy(out + w, put != NULL ? put : &c, n);
        w += n;
        if (tag != NULL)
            i += n - 1;
    }
    while (w > 0 && out[w - 1] == '\n')
        w--;
    if (w == 0) {
        free(out);
        return NULL;
    }
    out[w] = '\0';
    return out;
}

