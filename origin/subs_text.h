/* Names, language tags and cue text for subtitle tracks (subs_text.c). */
#ifndef PC_ORIGIN_SUBS_TEXT_H
#define PC_ORIGIN_SUBS_TEXT_H

#include <stddef.h>

#define PC_SUBS_NAME_MAX 64        /* bytes of a track's NAME in the master playlist */
#define PC_SUBS_CUE_TEXT_MAX 4096  /* bytes of one cue's WebVTT text; longer text is cut between characters */

/* The length of the UTF-8 character at |p| (a shortest form, not a surrogate, at most U+10FFFF), or 0. */
size_t pc_subs_utf8_char(const unsigned char *p);
/* Why a subtitle file's |len| bytes cannot be taken whole, or NULL: FFmpeg's text readers drop every
 * event that is not UTF-8 and stop at a NUL byte, so such a file would publish only part of its cues. A
 * UTF-16 file with its byte order mark is fine (FFmpeg converts it); a UTF-8 one may have its mark. */
const char *pc_subs_body_problem(const void *body, size_t len);
/* A track name from |in| (NUL-terminated) into |out| (|cap| > 0): no control character, '"', '<', '>', '&'
 * or '=', whole UTF-8 characters only (invalid ones skipped), at most PC_SUBS_NAME_MAX bytes, no trailing
 * space; possibly "". */
void pc_subs_clean_name(const char *in, char *out, size_t cap);
/* A BCP 47 language tag for |in| (NULL: none) into |out|: letters then subtags of letters, digits and '-';
 * a three-letter ISO 639-2 code becomes its two-letter ISO 639-1 code where there is one (Debian's
 * iso-codes table); "" for none, "und" or anything else. The language's English name into |name| when
 * known, else "". |cap| and |ncap| > 0. */
void pc_subs_clean_language(const char *in, char *out, size_t cap, char *name, size_t ncap);
/* WebVTT cue text from FFmpeg's WebVTT encoder output |s| (|len| bytes): '&' and a '<' that does not begin
 * one of its tags (<b> <i> <u> and their ends) escaped, "-->" broken up, no blank line, no control character
 * but newline and tab (no CR, no NUL), no leading or trailing newline, at most PC_SUBS_CUE_TEXT_MAX bytes cut between characters and never inside a tag.
 * malloc'd and NUL-terminated; NULL when nothing is left (or out of memory). */
char *pc_subs_vtt_text(const char *s, size_t len);

#endif
