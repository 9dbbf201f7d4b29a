/* CMAF box writer; see cmaf.h. Box layouts follow ISO/IEC 14496-12 and -14/-15, CMAF (23000-19). */
#include "cmaf.h"

#include <string.h>

#include "pc_error.h"

typedef struct w {
    pc_buf *b;
    int err;
} w_t;

static void put(w_t *w, const void *p, size_t n)
{
    if (w->err == 0)
        w->err = pc_buf_append(w->b, p, n);
}

static void u8(w_t *w, uint8_t v)
{
    put(w, &v, 1);
}

static void u16(w_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void u24(w_t *w, uint32_t v)
{
    uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 3);
}

static void u32(w_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void u64(w_t *w, uint64_t v)
{
    u32(w, (uint32_t)(v >> 32));
    u32(w, (uint32_t)v);
}

static void zeros(w_t *w, size_t n)
{
    static const uint8_t z[64];
    while (n > 0) {
        size_t k = n > sizeof(z) ? sizeof(z) : n;
        put(w, z, k);
        n -= k;
    }
}

static void fourcc(w_t *w, const char *t)
{
    put(w, t, 4);
}

/* Opens a box; returns its offset for box_end. */
static size_t box(w_t *w, const char *type)
{
    size_t at = w->b->len;
    u32(w, 0);
    fourcc(w, type);
    return at;
}

static size_t fullbox(w_t *w, const char *type, uint8_t version, uint32_t flags)
{
    size_t at = box(w, type);
    u8(w, version);
    u24(w, flags);
    return at;
}

/* Overwrites the 32-bit big-endian value at |at| (space already written). */
static void patch32(w_t *w, size_t at, uint32_t v)
{
    if (w->err != 0)
        return;
    uint8_t *p = (uint8_t *)w->b->data + at;
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void box_end(w_t *w, size_t at)
{
    patch32(w, at, (uint32_t)(w->b->len - at));
}

static void matrix(w_t *w)
{
    static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++)
        u32(w, m[i]);
}

/* MPEG-4 descriptor header with a one-byte length (all ours are < 128 bytes). */
static void desc(w_t *w, uint8_t tag, size_t len)
{
    u8(w, tag);
    u8(w, (uint8_t)len);
}

static void write_esds(w_t *w, const pc_cmaf_track *t)
{
    size_t at = fullbox(w, "esds", 0, 0);
    size_t dsi = 2 + t->config_len;
    size_t dcd = 2 + 13 + dsi;
    size_t es = 2 + 3 + dcd + 3;
    desc(w, 0x03, es - 2);
    u16(w, 1); /* ES_ID */
    u8(w, 0);  /* flags */
    desc(w, 0x04, dcd - 2);
    u8(w, 0x40);        /* objectTypeIndication: MPEG-4 Audio */
    u8(w, 0x05 << 2 | 1); /* streamType audio, upStream 0, reserved 1 */
    u24(w, t->buffer_size);
    u32(w, t->max_bitrate);
    u32(w, t->avg_bitrate);
    desc(w, 0x05, t->config_len);
    put(w, t->config, t->config_len);
    desc(w, 0x06, 1);
    u8(w, 0x02); /* SLConfig predefined: MP4 */
    box_end(w, at);
}

static void write_btrt(w_t *w, const pc_cmaf_track *t)
{
    size_t at = box(w, "btrt");
    u32(w, t->buffer_size);
    u32(w, t->max_bitrate);
    u32(w, t->avg_bitrate);
    box_end(w, at);
}

int pc_cmaf_write_init(pc_buf *out, const pc_cmaf_track *t)
{
    if (t->timescale == 0 || t->config == NULL || t->config_len == 0 || t->config_len > (t->video ? 4096u : 64u))
        return PC_EINVAL;
    w_t w = {out, 0};
    size_t at = box(&w, "ftyp");
    fourcc(&w, "iso6");
    u32(&w, 0);
    fourcc(&w, "iso6");
    fourcc(&w, "cmfc");
    fourcc(&w, "mp41");
    if (t->video)
        fourcc(&w, "avc1");
    box_end(&w, at);

    size_t moov = box(&w, "moov");
    at = fullbox(&w, "mvhd", 0, 0);
    u32(&w, 0);    /* creation */
    u32(&w, 0);    /* modification */
    u32(&w, 1000); /* timescale */
    u32(&w, 0);    /* duration: fragmented */
    u32(&w, 0x00010000);
    u16(&w, 0x0100);
    zeros(&w, 10);
    matrix(&w);
    zeros(&w, 24);
    u32(&w, 2); /* next track id */
    box_end(&w, at);

    size_t trak = box(&w, "trak");
    at = fullbox(&w, "tkhd", 0, 3); /* enabled, in movie */
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, 1); /* track id */
    u32(&w, 0);
    u32(&w, 0); /* duration */
    zeros(&w, 8);
    u16(&w, 0); /* layer */
    u16(&w, 0); /* alternate group */
    u16(&w, t->video ? 0 : 0x0100);
    u16(&w, 0);
    matrix(&w);
    u32(&w, t->video ? (uint32_t)t->width << 16 : 0);
    u32(&w, t->video ? (uint32_t)t->height << 16 : 0);
    box_end(&w, at);

    if (!t->video && t->priming > 0) {
        /* edit list: skip the encoder's priming samples */
        size_t edts = box(&w, "edts");
        at = fullbox(&w, "elst", 0, 0);
        u32(&w, 1);
        u32(&w, 0); /* segment duration: the whole (fragmented) track */
        u32(&w, t->priming);
        u16(&w, 1);
        u16(&w, 0);
        box_end(&w, at);
        box_end(&w, edts);
    }

    size_t mdia = box(&w, "mdia");
    at = fullbox(&w, "mdhd", 0, 0);
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, t->timescale);
    u32(&w, 0);
    u16(&w, 0x55c4); /* "und" */
    u16(&w, 0);
    box_end(&w, at);
    at = fullbox(&w, "hdlr", 0, 0);
    u32(&w, 0);
    fourcc(&w, t->video ? "vide" : "soun");
    zeros(&w, 12);
    const char *name = t->video ? "peercdn video" : "peercdn audio";
    put(&w, name, strlen(name) + 1);
    box_end(&w, at);

    size_t minf = box(&w, "minf");
    if (t->video) {
        at = fullbox(&w, "vmhd", 0, 1);
        zeros(&w, 8);
    } else {
        at = fullbox(&w, "smhd", 0, 0);
        zeros(&w, 4);
    }
    box_end(&w, at);
    size_t dinf = box(&w, "dinf");
    size_t dref = fullbox(&w, "dref", 0, 0);
    u32(&w, 1);
    at = fullbox(&w, "url ", 0, 1);
    box_end(&w, at);
    box_end(&w, dref);
    box_end(&w, dinf);

    size_t stbl = box(&w, "stbl");
    size_t stsd = fullbox(&w, "stsd", 0, 0);
    u32(&w, 1);
    if (t->video) {
        size_t avc1 = box(&w, "avc1");
        zeros(&w, 6);
        u16(&w, 1); /* data reference index */
        zeros(&w, 16);
        u16(&w, t->width);
        u16(&w, t->height);
        u32(&w, 0x00480000);
        u32(&w, 0x00480000);
        u32(&w, 0);
        u16(&w, 1); /* frame count */
        zeros(&w, 32); /* compressor name */
        u16(&w, 0x0018);
        u16(&w, 0xffff);
        at = box(&w, "avcC");
        put(&w, t->config, t->config_len);
        box_end(&w, at);
        at = box(&w, "pasp");
        u32(&w, 1);
        u32(&w, 1);
        box_end(&w, at);
        write_btrt(&w, t);
        box_end(&w, avc1);
    } else {
        size_t mp4a = box(&w, "mp4a");
        zeros(&w, 6);
        u16(&w, 1);
        zeros(&w, 8);
        u16(&w, t->channels);
        u16(&w, 16);
        u16(&w, 0);
        u16(&w, 0);
        u32(&w, t->sample_rate << 16);
        write_esds(&w, t);
        write_btrt(&w, t);
        box_end(&w, mp4a);
    }
    box_end(&w, stsd);
    static const char *const empty[] = {"stts", "stsc", "stco"};
    for (int i = 0; i < 3; i++) {
        at = fullbox(&w, empty[i], 0, 0);
        u32(&w, 0);
        box_end(&w, at);
    }
    at = fullbox(&w, "stsz", 0, 0);
    u32(&w, 0);
    u32(&w, 0);
    box_end(&w, at);
    box_end(&w, stbl);
    box_end(&w, minf);
    box_end(&w, mdia);
    box_end(&w, trak);

    size_t mvex = box(&w, "mvex");
    at = fullbox(&w, "trex", 0, 0);
    u32(&w, 1); /* track id */
    u32(&w, 1); /* sample description index */
    u32(&w, 0);
    u32(&w, 0);
    u32(&w, 0);
    box_end(&w, at);
    box_end(&w, mvex);
    box_end(&w, moov);
    return w.err;
}

#define SAMPLE_SYNC 0x02000000u     /* sample_depends_on = 2 (I frame) */
#define SAMPLE_NON_SYNC 0x01010000u /* depends_on = 1, is_non_sync_sample */

int pc_cmaf_write_segment(pc_buf *out, int video, uint32_t seq, uint64_t tfdt, const pc_cmaf_sample *s, size_t n,
                          const uint8_t *data, size_t len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += s[i].size;
    if (n == 0 || total != len || seq == 0)
        return PC_EINVAL;
    w_t w = {out, 0};
    size_t at = box(&w, "styp");
    fourcc(&w, "msdh");
    u32(&w, 0);
    fourcc(&w, "msdh");
    fourcc(&w, "cmfs");
    fourcc(&w, "cmff");
    fourcc(&w, "cmfc");
    box_end(&w, at);

    size_t moof = box(&w, "moof");
    at = fullbox(&w, "mfhd", 0, 0);
    u32(&w, seq);
    box_end(&w, at);
    size_t traf = box(&w, "traf");
    /* default-base-is-moof; audio: every sample is a sync sample */
    at = fullbox(&w, "tfhd", 0, video ? 0x020000 : 0x020020);
    u32(&w, 1);
    if (!video)
        u32(&w, SAMPLE_SYNC);
    box_end(&w, at);
    at = fullbox(&w, "tfdt", 1, 0);
    u64(&w, tfdt);
    box_end(&w, at);
    uint32_t flags = 0x000001 | 0x000100 | 0x000200; /* data offset, durations, sizes */
    if (video)
        flags |= 0x000400 | 0x000800; /* flags, composition offsets */
    size_t trun = fullbox(&w, "trun", 1, flags);
    u32(&w, (uint32_t)n);
    size_t data_offset_at = out->len;
    u32(&w, 0);
    for (size_t i = 0; i < n; i++) {
        u32(&w, s[i].duration);
        u32(&w, s[i].size);
        if (video) {
            u32(&w, s[i].sync ? SAMPLE_SYNC : SAMPLE_NON_SYNC);
            u32(&w, (uint32_t)s[i].cto);
        }
    }
    box_end(&w, trun);
    box_end(&w, traf);
    box_end(&w, moof);
    if (w.err != 0)
        return w.err;
    /* data offset is relative to the moof's first byte */
    size_t moof_start = moof, moof_len = out->len - moof_start;
    patch32(&w, data_offset_at, (uint32_t)(moof_len + 8));
    at = box(&w, "mdat");
    put(&w, data, len);
    box_end(&w, at);
    return w.err;
}

/* Iterates Annex B NAL units: returns the next unit in [*p, end) or NULL. */
static const uint8_t *next_nal(const uint8_t **p, const uint8_t *end, size_t *nlen)
{
    const uint8_t *s = *p;
    /* find a start code */
    while (s + 3 <= end && !(s[0] == 0 && s[1] == 0 && (s[2] == 1 || (s + 4 <= end && s[2] == 0 && s[3] == 1))))
        s++;
    if (s + 3 > end)
        return NULL;
    s += s[2] == 1 ? 3 : 4;
    const uint8_t *e = s;
    while (e + 3 <= end && !(e[0] == 0 && e[1] == 0 && (e[2] == 1 || (e + 4 <= end && e[2] == 0 && e[3] == 1))))
        e++;
    if (e + 3 > end)
        e = end;
    *nlen = (size_t)(e - s);
    *p = e;
    return s;
}

int pc_avcc_from_annexb(const uint8_t *in, size_t len, pc_buf *avcc, char codecs[32])
{
    const uint8_t *p = in, *end = in + len, *nal, *sps = NULL, *pps = NULL;
    size_t n, sps_len = 0, pps_len = 0;
    while ((nal = next_nal(&p, end, &n)) != NULL) {
        if (n == 0)
            continue;
        int type = nal[0] & 0x1f;
        if (type == 7 && sps == NULL) {
            sps = nal;
            sps_len = n;
        } else if (type == 8 && pps == NULL) {
            pps = nal;
            pps_len = n;
        }
    }
    if (sps == NULL || pps == NULL || sps_len < 4)
        return PC_EPARSE;
    w_t w = {avcc, 0};
    u8(&w, 1);
    u8(&w, sps[1]);
    u8(&w, sps[2]);
    u8(&w, sps[3]);
    u8(&w, 0xff); /* 4-byte lengths */
    u8(&w, 0xe1); /* one SPS */
    u16(&w, (uint16_t)sps_len);
    put(&w, sps, sps_len);
    u8(&w, 1);
    u16(&w, (uint16_t)pps_len);
    put(&w, pps, pps_len);
    if (sps[1] == 100 || sps[1] == 110 || sps[1] == 122 || sps[1] == 244) {
        /* High profiles: our encoder output is 4:2:0, 8 bits */
        u8(&w, 0xfc | 1);
        u8(&w, 0xf8 | 0);
        u8(&w, 0xf8 | 0);
        u8(&w, 0);
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(codecs, "avc1.", 5);
    for (int i = 0; i < 3; i++) {
        codecs[5 + 2 * i] = hex[sps[1 + i] >> 4];
        codecs[6 + 2 * i] = hex[sps[1 + i] & 15];
    }
    codecs[11] = '\0';
    return w.err;
}

int pc_annexb_to_lp(const uint8_t *in, size_t len, pc_buf *out)
{
    const uint8_t *p = in, *end = in + len, *nal;
    size_t n;
    w_t w = {out, 0};
    while ((nal = next_nal(&p, end, &n)) != NULL) {
        if (n == 0)
            continue;
        int type = nal[0] & 0x1f;
        if (type == 9 || type == 7 || type == 8)
            continue;
        /* trailing zero bytes belong to the next start code, not to this unit */
        while (n > 1 && nal[n - 1] == 0)
            n--;
        u32(&w, (uint32_t)n);
        put(&w, nal, n);
    }
    return w.err;
}

const uint8_t *pc_mp4_find_box(const uint8_t *data, size_t len, const char type[4], size_t *box_len)
{
    size_t off = 0;
    while (off + 8 <= len) {
        uint32_t size = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 | (uint32_t)data[off + 2] << 8 | data[off + 3];
        if (size < 8 || size > len - off)
            return NULL;
        if (memcmp(data + off + 4, type, 4) == 0) {
            *box_len = size;
            return data + off;
        }
        off += size;
    }
    return NULL;
}
