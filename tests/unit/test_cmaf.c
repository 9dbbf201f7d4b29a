/* cmaf: avcC from Annex B, Annex B to length-prefixed samples, init and media segment boxes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmaf.h"

#define BUF_MAX (1u << 20)

static const uint8_t sps[] = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00,
                              0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60};
static const uint8_t pps[] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};

/* ---- helpers ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Appends bytes to a fixed test buffer. */
typedef struct bytes {
    uint8_t d[512];
    size_t n;
} bytes;

static void add(bytes *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof(b->d));
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void start_code(bytes *b, int four)
{
    static const uint8_t sc4[] = {0, 0, 0, 1};
    add(b, four ? sc4 : sc4 + 1, four ? 4 : 3);
}

/* A child box of |parent| (whose header, incl. any version/flags and fixed fields, is |skip| bytes). */
static const uint8_t *child(const uint8_t *parent, size_t skip, const char *type, size_t *len)
{
    size_t plen = be32(parent);
    assert_true(plen >= skip);
    const uint8_t *c = pc_mp4_find_box(parent + skip, plen - skip, type, len);
    assert_non_null(c);
    return c;
}

/* Finds |needle| anywhere in |hay|. */
static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

static void make_avcc(pc_buf *avcc)
{
    bytes in = {.n = 0};
    start_code(&in, 1);
    add(&in, sps, sizeof(sps));
    start_code(&in, 0);
    add(&in, pps, sizeof(pps));
    char codecs[32];
    pc_buf_init(avcc, 4096);
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, avcc, codecs), 0);
}

static pc_cmaf_track video_track(const pc_buf *avcc)
{
    pc_cmaf_track t;
    memset(&t, 0, sizeof(t));
    t.video = 1;
    t.timescale = 90000;
    t.width = 1280;
    t.height = 720;
    t.config = (const uint8_t *)avcc->data;
    t.config_len = avcc->len;
    t.max_bitrate = 4500000;
    t.avg_bitrate = 3000000;
    t.buffer_size = 6000000;
    return t;
}

static const uint8_t asc[] = {0x11, 0x90}; /* AAC-LC, 48 kHz, stereo */

static pc_cmaf_track audio_track(uint32_t priming)
{
    pc_cmaf_track t;
    memset(&t, 0, sizeof(t));
    t.video = 0;
    t.timescale = 48000;
    t.channels = 2;
    t.sample_rate = 48000;
    t.priming = priming;
    t.config = asc;
    t.config_len = sizeof(asc);
    t.max_bitrate = 160000;
    t.avg_bitrate = 128000;
    t.buffer_size = 6144;
    return t;
}

/* ---- avcC ---- */

static void avcc_layout_and_codecs_string(void **state)
{
    (void)state;
    bytes in = {.n = 0};
    start_code(&in, 1);
    add(&in, sps, sizeof(sps));
    start_code(&in, 0);
    add(&in, pps, sizeof(pps));
    pc_buf avcc;
    pc_buf_init(&avcc, 4096);
    char codecs[32];
    memset(codecs, 'x', sizeof(codecs));
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, &avcc, codecs), 0);
    assert_string_equal(codecs, "avc1.64001f");

    const uint8_t *a = (const uint8_t *)avcc.data;
    size_t want_len = 6 + 2 + sizeof(sps) + 1 + 2 + sizeof(pps) + 4; /* + High profile extension */
    assert_int_equal(avcc.len, want_len);
    assert_int_equal(a[0], 1);    /* configurationVersion */
    assert_int_equal(a[1], 0x64); /* profile */
    assert_int_equal(a[2], 0x00); /* compatibility */
    assert_int_equal(a[3], 0x1f); /* level */
    assert_int_equal(a[4], 0xff); /* 4-byte NAL lengths */
    assert_int_equal(a[5], 0xe1); /* one SPS */
    assert_int_equal(a[6] << 8 | a[7], sizeof(sps));
    assert_memory_equal(a + 8, sps, sizeof(sps));
    const uint8_t *p = a + 8 + sizeof(sps);
    assert_int_equal(p[0], 1); /* one PPS */
    assert_int_equal(p[1] << 8 | p[2], sizeof(pps));
    assert_memory_equal(p + 3, pps, sizeof(pps));
    p += 3 + sizeof(pps);
    assert_int_equal(p[0], 0xfd); /* chroma_format 4:2:0 */
    assert_int_equal(p[1], 0xf8); /* 8-bit luma */
    assert_int_equal(p[2], 0xf8); /* 8-bit chroma */
    assert_int_equal(p[3], 0);    /* no SPS extensions */
    pc_buf_clear(&avcc);
}

static void avcc_baseline_has_no_high_profile_extension(void **state)
{
    (void)state;
    static const uint8_t sps_base[] = {0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0};
    bytes in = {.n = 0};
    start_code(&in, 0);
    add(&in, sps_base, sizeof(sps_base));
    start_code(&in, 1);
    add(&in, pps, sizeof(pps));
    pc_buf avcc;
    pc_buf_init(&avcc, 4096);
    char codecs[32];
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, &avcc, codecs), 0);
    assert_string_equal(codecs, "avc1.42c01e");
    assert_int_equal(avcc.len, 6 + 2 + sizeof(sps_base) + 1 + 2 + sizeof(pps));
    pc_buf_clear(&avcc);
}

static void avcc_needs_sps_and_pps(void **state)
{
    (void)state;
    pc_buf avcc;
    pc_buf_init(&avcc, 4096);
    char codecs[32];
    bytes in = {.n = 0};
    start_code(&in, 1);
    add(&in, sps, sizeof(sps));
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, &avcc, codecs), PC_EPARSE); /* no PPS */
    in.n = 0;
    start_code(&in, 1);
    add(&in, pps, sizeof(pps));
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, &avcc, codecs), PC_EPARSE); /* no SPS */
    in.n = 0;
    static const uint8_t short_sps[] = {0x67, 0x64, 0x00};
    start_code(&in, 1);
    add(&in, short_sps, sizeof(short_sps));
    start_code(&in, 1);
    add(&in, pps, sizeof(pps));
    assert_int_equal(pc_avcc_from_annexb(in.d, in.n, &avcc, codecs), PC_EPARSE); /* SPS too short */
    assert_int_equal(pc_avcc_from_annexb(in.d, 0, &avcc, codecs), PC_EPARSE);
    /* no start codes at all */
    assert_int_equal(pc_avcc_from_annexb(sps, sizeof(sps), &avcc, codecs), PC_EPARSE);
    assert_int_equal(avcc.len, 0);
    pc_buf_clear(&avcc);
}

/* ---- Annex B to length-prefixed ---- */

static void annexb_to_lp_drops_parameter_sets_and_aud(void **state)
{
    (void)state;
    static const uint8_t aud[] = {0x09, 0xf0};
    static const uint8_t idr[] = {0x65, 0x88, 0x84, 0x00, 0xff};
    static const uint8_t sei[] = {0x06, 0x05, 0x02, 0xaa, 0xbb, 0x80};
    static const uint8_t slice[] = {0x41, 0x9a, 0x02};
    bytes in = {.n = 0};
    start_code(&in, 1);
    add(&in, aud, sizeof(aud));
    start_code(&in, 1);
    add(&in, sps, sizeof(sps));
    start_code(&in, 1);
    add(&in, pps, sizeof(pps));
    start_code(&in, 0); /* 3-byte start code */
    add(&in, idr, sizeof(idr));
    start_code(&in, 1);
    add(&in, sei, sizeof(sei));
    start_code(&in, 0);
    add(&in, slice, sizeof(slice));

    bytes want = {.n = 0};
    const uint8_t *units[] = {idr, sei, slice};
    const size_t lens[] = {sizeof(idr), sizeof(sei), sizeof(slice)};
    for (int i = 0; i < 3; i++) {
        uint8_t l[4] = {0, 0, 0, (uint8_t)lens[i]};
        add(&want, l, 4);
        add(&want, units[i], lens[i]);
    }
    pc_buf out;
    pc_buf_init(&out, 4096);
    assert_int_equal(pc_annexb_to_lp(in.d, in.n, &out), 0);
    assert_int_equal(out.len, want.n);
    assert_memory_equal(out.data, want.d, want.n);
    pc_buf_clear(&out);
}

static void annexb_to_lp_long_unit_and_trailing_zeros(void **state)
{
    (void)state;
    /* a 300-byte unit: the length needs two bytes; trailing zero bytes before the next start code are dropped */
    bytes in = {.n = 0};
    start_code(&in, 1);
    uint8_t big[300];
    big[0] = 0x65;
    for (size_t i = 1; i < sizeof(big); i++)
        big[i] = (uint8_t)(i % 251 + 1); /* never zero */
    add(&in, big, sizeof(big));
    static const uint8_t zeros[] = {0, 0};
    add(&in, zeros, sizeof(zeros)); /* trailing_zero_8bits */
    start_code(&in, 1);
    static const uint8_t slice[] = {0x41, 0x01};
    add(&in, slice, sizeof(slice));

    pc_buf out;
    pc_buf_init(&out, 4096);
    assert_int_equal(pc_annexb_to_lp(in.d, in.n, &out), 0);
    const uint8_t *o = (const uint8_t *)out.data;
    assert_int_equal(out.len, 4 + 300 + 4 + 2);
    assert_int_equal(be32(o), 300);
    assert_memory_equal(o + 4, big, 300);
    assert_int_equal(be32(o + 304), 2);
    assert_memory_equal(o + 308, slice, 2);
    pc_buf_clear(&out);

    /* nothing but parameter sets: nothing out */
    in.n = 0;
    start_code(&in, 1);
    add(&in, sps, sizeof(sps));
    pc_buf_init(&out, 4096);
    assert_int_equal(pc_annexb_to_lp(in.d, in.n, &out), 0);
    assert_int_equal(out.len, 0);
    pc_buf_clear(&out);
}

/* ---- init segments ---- */

static void init_video_has_ftyp_then_moov(void **state)
{
    (void)state;
    pc_buf avcc, out;
    make_avcc(&avcc);
    pc_cmaf_track t = video_track(&avcc);
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    const uint8_t *d = (const uint8_t *)out.data;
    assert_memory_equal(d + 4, "ftyp", 4);
    size_t ftyp_len = 0, moov_len = 0;
    assert_ptr_equal(pc_mp4_find_box(d, out.len, "ftyp", &ftyp_len), d);
    const uint8_t *moov = pc_mp4_find_box(d, out.len, "moov", &moov_len);
    assert_ptr_equal(moov, d + ftyp_len);
    assert_int_equal(ftyp_len + moov_len, out.len); /* nothing else at the top level */
    assert_null(pc_mp4_find_box(d, out.len, "moof", &moov_len));
    assert_non_null(find_bytes(d, ftyp_len, "cmfc"));
    assert_non_null(find_bytes(d, ftyp_len, "avc1"));

    size_t len;
    const uint8_t *trak = child(moov, 8, "trak", &len);
    const uint8_t *tkhd = child(trak, 8, "tkhd", &len);
    assert_int_equal(be32(tkhd + 12 + 8), 1);             /* track id */
    assert_int_equal(be32(tkhd + len - 8), 1280u << 16);  /* width 16.16 */
    assert_int_equal(be32(tkhd + len - 4), 720u << 16);   /* height 16.16 */
    const uint8_t *mdia = child(trak, 8, "mdia", &len);
    const uint8_t *mdhd = child(mdia, 8, "mdhd", &len);
    assert_int_equal(be32(mdhd + 20), 90000); /* timescale */
    const uint8_t *hdlr = child(mdia, 8, "hdlr", &len);
    assert_memory_equal(hdlr + 16, "vide", 4);
    const uint8_t *minf = child(mdia, 8, "minf", &len);
    child(minf, 8, "vmhd", &len);
    const uint8_t *stbl = child(minf, 8, "stbl", &len);
    const uint8_t *stsd = child(stbl, 8, "stsd", &len);
    assert_int_equal(be32(stsd + 12), 1); /* one sample entry */
    const uint8_t *avc1 = child(stsd, 16, "avc1", &len);
    assert_int_equal(avc1[32] << 8 | avc1[33], 1280);
    assert_int_equal(avc1[34] << 8 | avc1[35], 720);
    const uint8_t *avcc_box = child(avc1, 86, "avcC", &len);
    assert_int_equal(len, 8 + avcc.len);
    assert_memory_equal(avcc_box + 8, avcc.data, avcc.len);
    child(avc1, 86, "btrt", &len);
    const uint8_t *mvex = child(moov, 8, "mvex", &len);
    const uint8_t *trex = child(mvex, 8, "trex", &len);
    assert_int_equal(be32(trex + 12), 1);
    /* video has no edit list */
    assert_null(find_bytes(d, out.len, "elst"));
    pc_buf_clear(&out);
    pc_buf_clear(&avcc);
}

static void init_audio_with_priming_has_edit_list(void **state)
{
    (void)state;
    pc_cmaf_track t = audio_track(1024);
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    const uint8_t *d = (const uint8_t *)out.data;
    size_t ftyp_len = 0, moov_len = 0;
    assert_non_null(pc_mp4_find_box(d, out.len, "ftyp", &ftyp_len));
    assert_non_null(pc_mp4_find_box(d, out.len, "moov", &moov_len));
    assert_int_equal(ftyp_len + moov_len, out.len);
    assert_null(find_bytes(d, ftyp_len, "avc1"));

    const uint8_t *type = find_bytes(d, out.len, "elst");
    assert_non_null(type);
    const uint8_t *elst = type - 4;
    assert_int_equal(be32(elst), 28);
    assert_int_equal(be32(elst + 12), 1);    /* one entry */
    assert_int_equal(be32(elst + 20), 1024); /* media_time skips the priming samples */
    assert_int_equal(elst[24] << 8 | elst[25], 1);

    size_t len;
    const uint8_t *moov = d + ftyp_len;
    const uint8_t *trak = child(moov, 8, "trak", &len);
    const uint8_t *edts = child(trak, 8, "edts", &len);
    assert_ptr_equal(child(edts, 8, "elst", &len), elst);
    const uint8_t *mdia = child(trak, 8, "mdia", &len);
    assert_int_equal(be32(child(mdia, 8, "mdhd", &len) + 20), 48000);
    assert_memory_equal(child(mdia, 8, "hdlr", &len) + 16, "soun", 4);
    /* the AudioSpecificConfig is in the esds */
    const uint8_t *esds = find_bytes(d, out.len, "esds");
    assert_non_null(esds);
    static const uint8_t dsi[] = {0x05, 0x02, 0x11, 0x90};
    assert_non_null(memmem(esds, out.len - (size_t)(esds - d), dsi, sizeof(dsi)));
    pc_buf_clear(&out);

    /* no priming: no edit list */
    t = audio_track(0);
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    assert_null(find_bytes((const uint8_t *)out.data, out.len, "elst"));
    assert_null(find_bytes((const uint8_t *)out.data, out.len, "edts"));
    pc_buf_clear(&out);
}

static void init_rejects_bad_tracks(void **state)
{
    (void)state;
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    pc_cmaf_track t = audio_track(0);
    t.timescale = 0;
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_EINVAL);
    t = audio_track(0);
    t.config = NULL;
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_EINVAL);
    t = audio_track(0);
    t.config_len = 0;
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_EINVAL);
    uint8_t big[4097];
    memset(big, 0, sizeof(big));
    t = audio_track(0);
    t.config = big;
    t.config_len = 65; /* audio config limit is 64 */
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_EINVAL);
    t.config_len = 64;
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    pc_buf_reset(&out);
    t.video = 1;
    t.width = 16;
    t.height = 16;
    t.config_len = 4097; /* video config limit is 4096 */
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_EINVAL);
    assert_int_equal(out.len, 0);
    pc_buf_clear(&out);
}

static void init_respects_the_buffer_limit(void **state)
{
    (void)state;
    pc_cmaf_track t = audio_track(0);
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    size_t need = out.len;
    pc_buf_clear(&out);
    pc_buf_init(&out, need);
    assert_int_equal(pc_cmaf_write_init(&out, &t), 0);
    pc_buf_clear(&out);
    pc_buf_init(&out, need - 1);
    assert_int_equal(pc_cmaf_write_init(&out, &t), PC_ETOOBIG);
    pc_buf_clear(&out);
}

/* ---- media segments ---- */

typedef struct parsed_seg {
    const uint8_t *moof, *mdat, *trun, *tfhd;
    size_t moof_len, mdat_len;
    uint32_t seq;
    uint64_t tfdt;
} parsed_seg;

static void parse_segment(const uint8_t *d, size_t n, parsed_seg *p)
{
    size_t styp_len = 0, len;
    const uint8_t *styp = pc_mp4_find_box(d, n, "styp", &styp_len);
    assert_ptr_equal(styp, d);
    p->moof = pc_mp4_find_box(d, n, "moof", &p->moof_len);
    p->mdat = pc_mp4_find_box(d, n, "mdat", &p->mdat_len);
    assert_ptr_equal(p->moof, d + styp_len);
    assert_ptr_equal(p->mdat, p->moof + p->moof_len);
    assert_int_equal(styp_len + p->moof_len + p->mdat_len, n);
    const uint8_t *mfhd = child(p->moof, 8, "mfhd", &len);
    p->seq = be32(mfhd + 12);
    const uint8_t *traf = child(p->moof, 8, "traf", &len);
    p->tfhd = child(traf, 8, "tfhd", &len);
    assert_int_equal(be32(p->tfhd + 12), 1); /* track id */
    const uint8_t *tfdt = child(traf, 8, "tfdt", &len);
    assert_int_equal(len, 20);
    assert_int_equal(tfdt[8], 1); /* version 1: 64-bit */
    p->tfdt = be64(tfdt + 12);
    p->trun = child(traf, 8, "trun", &len);
}

static void segment_video_trun_and_data_offset(void **state)
{
    (void)state;
    const pc_cmaf_sample s[] = {
        {3000, 5, 3000, 1},  /* I, shown one frame late */
        {3000, 3, 6000, 0},  /* P */
        {3000, 4, -3000, 0}, /* B: shown before its decode time slot */
        {3000, 2, 0, 0},
    };
    const uint8_t data[] = {1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4};
    const uint64_t tfdt = (UINT64_C(1) << 32) + 5; /* needs 64 bits */
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 7, tfdt, s, 4, data, sizeof(data)), 0);
    const uint8_t *d = (const uint8_t *)out.data;
    parsed_seg p;
    parse_segment(d, out.len, &p);
    assert_int_equal(p.seq, 7);
    assert_true(p.tfdt == tfdt);

    const uint8_t *trun = p.trun;
    assert_int_equal(trun[8], 1); /* version 1: signed composition offsets */
    uint32_t flags = be32(trun + 8) & 0xffffff;
    assert_int_equal(flags, 0x000f01);
    assert_int_equal(be32(trun + 12), 4); /* sample count */
    int32_t data_offset = (int32_t)be32(trun + 16);
    assert_ptr_equal(p.moof + data_offset, p.mdat + 8); /* first byte of mdat's payload */
    assert_int_equal(be32(trun), 20 + 4 * 16);
    for (int i = 0; i < 4; i++) {
        const uint8_t *e = trun + 20 + 16 * i;
        assert_int_equal(be32(e), s[i].duration);
        assert_int_equal(be32(e + 4), s[i].size);
        assert_int_equal(be32(e + 8), s[i].sync ? 0x02000000u : 0x01010000u);
        assert_int_equal((int32_t)be32(e + 12), s[i].cto);
    }
    assert_int_equal((int32_t)be32(trun + 20 + 16 * 2 + 12), -3000);
    assert_int_equal(p.mdat_len, 8 + sizeof(data));
    assert_memory_equal(p.mdat + 8, data, sizeof(data));
    pc_buf_clear(&out);
}

static void segment_data_offset_is_relative_to_moof_in_a_used_buffer(void **state)
{
    (void)state;
    /* something already in the buffer before the segment must not shift the offset */
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_buf_append(&out, "0123456789abc", 13), 0);
    const pc_cmaf_sample s[] = {{1024, 6, 0, 1}, {1024, 7, 0, 1}};
    const uint8_t data[] = {10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 26};
    assert_int_equal(pc_cmaf_write_segment(&out, 0, 1, 0, s, 2, data, sizeof(data)), 0);
    const uint8_t *d = (const uint8_t *)out.data + 13;
    parsed_seg p;
    parse_segment(d, out.len - 13, &p);
    assert_int_equal(p.seq, 1);
    assert_true(p.tfdt == 0);
    /* audio: default sample flags in tfhd (sync), trun has durations and sizes only */
    assert_int_equal(be32(p.tfhd + 8) & 0xffffff, 0x020020);
    assert_int_equal(be32(p.tfhd + 16), 0x02000000u);
    const uint8_t *trun = p.trun;
    assert_int_equal(trun[8], 1);
    assert_int_equal(be32(trun + 8) & 0xffffff, 0x000301);
    assert_int_equal(be32(trun + 12), 2);
    assert_int_equal(be32(trun), 20 + 2 * 8);
    assert_ptr_equal(p.moof + (int32_t)be32(trun + 16), p.mdat + 8);
    assert_int_equal(be32(trun + 20), 1024);
    assert_int_equal(be32(trun + 24), 6);
    assert_int_equal(be32(trun + 28), 1024);
    assert_int_equal(be32(trun + 32), 7);
    assert_memory_equal(p.mdat + 8, data, sizeof(data));
    pc_buf_clear(&out);
}

static void segment_rejects_bad_arguments(void **state)
{
    (void)state;
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    const pc_cmaf_sample s[] = {{3000, 4, 0, 1}, {3000, 4, 0, 0}};
    const uint8_t data[9] = {0};
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 0, data, 0), PC_EINVAL);             /* no samples */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 2, data, 7), PC_EINVAL);             /* short */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 2, data, 9), PC_EINVAL);             /* long */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 0, 0, s, 2, data, 8), PC_EINVAL);             /* seq 0 */
    assert_int_equal(out.len, 0);                                                                 /* nothing written */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 2, data, 8), 0);
    pc_buf_clear(&out);
}

static void segment_respects_the_buffer_limit(void **state)
{
    (void)state;
    const pc_cmaf_sample s[] = {{3000, 100, 0, 1}};
    uint8_t data[100];
    memset(data, 0x42, sizeof(data));
    pc_buf out;
    pc_buf_init(&out, BUF_MAX);
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 1, data, sizeof(data)), 0);
    size_t need = out.len;
    pc_buf_clear(&out);
    pc_buf_init(&out, need);
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 1, data, sizeof(data)), 0);
    pc_buf_clear(&out);
    pc_buf_init(&out, need - 1); /* the mdat payload does not fit */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 1, data, sizeof(data)), PC_ETOOBIG);
    pc_buf_clear(&out);
    pc_buf_init(&out, 40); /* the moof does not fit */
    assert_int_equal(pc_cmaf_write_segment(&out, 1, 1, 0, s, 1, data, sizeof(data)), PC_ETOOBIG);
    pc_buf_clear(&out);
}

/* ---- box reader ---- */

static void find_box_stops_at_malformed_sizes(void **state)
{
    (void)state;
    uint8_t d[24] = {0, 0, 0, 8, 'f', 'r', 'e', 'e', 0, 0, 0, 16, 'm', 'd', 'a', 't'};
    size_t len = 0;
    assert_ptr_equal(pc_mp4_find_box(d, 24, "mdat", &len), d + 8);
    assert_int_equal(len, 16);
    assert_null(pc_mp4_find_box(d, 23, "mdat", &len)); /* runs past the end */
    assert_null(pc_mp4_find_box(d, 24, "moov", &len));
    d[3] = 7; /* a size below the header */
    assert_null(pc_mp4_find_box(d, 24, "mdat", &len));
    d[3] = 0; /* size 0 must not loop forever */
    assert_null(pc_mp4_find_box(d, 24, "mdat", &len));
    assert_null(pc_mp4_find_box(d, 7, "free", &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(avcc_layout_and_codecs_string),
        cmocka_unit_test(avcc_baseline_has_no_high_profile_extension),
        cmocka_unit_test(avcc_needs_sps_and_pps),
        cmocka_unit_test(annexb_to_lp_drops_parameter_sets_and_aud),
        cmocka_unit_test(annexb_to_lp_long_unit_and_trailing_zeros),
        cmocka_unit_test(init_video_has_ftyp_then_moov),
        cmocka_unit_test(init_audio_with_priming_has_edit_list),
        cmocka_unit_test(init_rejects_bad_tracks),
        cmocka_unit_test(init_respects_the_buffer_limit),
        cmocka_unit_test(segment_video_trun_and_data_offset),
        cmocka_unit_test(segment_data_offset_is_relative_to_moof_in_a_used_buffer),
        cmocka_unit_test(segment_rejects_bad_arguments),
        cmocka_unit_test(segment_respects_the_buffer_limit),
        cmocka_unit_test(find_box_stops_at_malformed_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
