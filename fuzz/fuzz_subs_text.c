/* Fuzzes the subtitle text helpers (subs_text.h) and checks what they promise: a name with none of the
 * characters a playlist reader could misread, valid UTF-8 within its limit; a language tag of letters,
 * digits and '-'; cue text within its limit with no blank line, no "-->" and no control character but
 * newline and tab, valid UTF-8 whenever the input was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subs_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = pc_subs_utf8_char((const unsigned char *)s + i);
        if (k == 0 || i + k > n)
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * PC_SUBS_CUE_TEXT_MAX)
        return 0;
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char name[PC_SUBS_NAME_MAX + 8];
    pc_subs_clean_name(in, name, sizeof(name));
    size_t nl = strlen(name);
    if (nl > PC_SUBS_NAME_MAX || strpbrk(name, "\"<>&=\x7f") != NULL || !valid_utf8(name, nl) ||
        (nl > 0 && name[nl - 1] == ' '))
        abort();
    for (size_t i = 0; i < nl; i++)
        if ((unsigned char)name[i] < 0x20)
            abort();
    char lang[32], lname[PC_SUBS_NAME_MAX + 1];
    pc_subs_clean_language(in, lang, sizeof(lang), lname, sizeof(lname));
    if (strspn(lang, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != strlen(lang))
        abort();
    char *t = pc_subs_vtt_text(in, size);
    if (t != NULL) {
        size_t tl = strlen(t);
        if (tl == 0 || tl > PC_SUBS_CUE_TEXT_MAX || strstr(t, "\n\n") != NULL || strstr(t, "-->") != NULL ||
            strchr(t, '\r') != NULL || t[0] == '\n' || t[tl - 1] == '\n')
            abort();
        for (size_t i = 0; i < tl; i++)
            if ((unsigned char)t[i] < 0x20 && t[i] != '\n' && t[i] != '\t')
                abort();
        if (valid_utf8(in, size) && !valid_utf8(t, tl))
            abort();
        free(t);
    }
    free(in);
    return 0;
}
