/* The speed limit of fmipfast's classify: a plain C port of the same per-frame checks, in the same order,
 * writing the same outputs (fmipfast/_kernels/parse.pxi; oracle fmipfast/reference/wire.py).
 *
 * bench/bench_classify.py compiles this with `cc -O3 -march=native -shared -fPIC` at bench time and calls
 * limit_classify() once per batch through ctypes, on the arena the compiled core classifies; it checks
 * once that every output array is identical before timing.  Not part of the package.
 *
 * limit_lean() at the end of this file is the other reference: the leanest parse (no validation), the speed
 * limit of any classifier on the same frames.
 *
 * out[] holds the row-0 pointers of the Batch arrays in this order (the order of classify_out):
 *   0 verdict, 1 drop_reason, 2 checksum_ok, 3 icmp_type, 4 icmp_code, 5 fmip_code, 6 next_header,
 *   7 hop_limit, 8 has_ah, 9 l3_offset (u32), 10 l4_offset (u32), 11 l4_length (u32), 12 src [16],
 *   13 dst [16], 14 ncoa [16], 15 target [16], 16 eth_src [6], 17 eth_dst [6], 18 lladdr [6],
 *   19 has_lladdr, 20 identifier (i32), 21 drop_counts (u64 [n_reasons])
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

enum { V_DROP = 0, V_FORWARD = 1, V_DECAP = 3, V_CONTROL = 5 };
enum {
    D_ETH_TRUNCATED = 1, D_NOT_IPV6, D_TOO_MANY_VLANS, D_IP6_TRUNCATED, D_IP6_BAD_VERSION,
    D_IP6_BAD_PAYLOAD_LENGTH, D_IP6_BAD_SOURCE, D_IP6_BAD_DESTINATION, D_EXT_TRUNCATED,
    D_EXT_CHAIN_TOO_LONG, D_HBH_NOT_FIRST, D_ICMP6_TRUNCATED, D_ICMP6_BAD_CHECKSUM,
    D_ICMP6_BAD_HOP_LIMIT, D_ICMP6_BAD_CODE, D_ND_BAD_OPTION, D_ND_INVALID, D_FMIP_BAD_SUBOPTION,
    D_FMIP_BAD_LENGTH, D_FMIP_NO_AH
};

typedef struct {
    uint8_t *verdict, *drop_reason, *checksum_ok, *icmp_type, *icmp_code, *fmip_code, *next_header,
        *hop_limit, *has_ah;
    uint32_t *l3_offset, *l4_offset, *l4_length;
    uint8_t *src, *dst, *ncoa, *target, *eth_src, *eth_dst, *lladdr, *has_lladdr;
    int32_t *identifier;
    uint64_t *drop_counts;
} out_t;

static uint8_t ND_MIN_LEN[256], ND_LLA_OPT[256];
static const uint8_t FMIP_FIXED_LEN[8] = {10, 24, 10, 24, 10, 10, 24, 10};
static const uint8_t FMIP_HAS_LEN_FIELD[8] = {1, 0, 1, 0, 1, 1, 0, 1};
static const uint8_t FMIP_HOP255[8] = {1, 1, 1, 0, 1, 1, 0, 1};
static const uint8_t FMIP_NEEDS_AH[8] = {0, 0, 0, 1, 0, 0, 1, 0};

static inline uint16_t be16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return ntohs(v); }
static inline uint32_t be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static inline int drop(int r) { return V_DROP | (r << 8); }
static inline int is_zero16(const uint8_t *a) { uint64_t x, y; memcpy(&x, a, 8); memcpy(&y, a + 8, 8); return (x | y) == 0; }
static inline int is_loopback(const uint8_t *a) { uint64_t x; memcpy(&x, a, 8); return x == 0 && be32(a + 8) == 0 && be32(a + 12) == 1; }
static inline int pass(int v, const uint8_t *dst) { return (v == V_FORWARD && dst[0] == 0xFF && (dst[1] & 0x0F) <= 2) ? V_CONTROL : v; }

/* RFC 1071 with 32-bit native words into a 64-bit accumulator, as _kernels/cksum.pxi. */
static int cksum_ok(const uint8_t *src, const uint8_t *dst, const uint8_t *m, size_t n) {
    uint64_t acc = 0;
    uint32_t w;
    size_t i;
    for (i = 0; i < 16; i += 4) { memcpy(&w, src + i, 4); acc += w; memcpy(&w, dst + i, 4); acc += w; }
    acc += htonl((uint32_t)n);
    acc += htonl(58);
    for (i = 0; i + 4 <= n; i += 4) { memcpy(&w, m + i, 4); acc += w; }
    if (i < n) { w = 0; memcpy(&w, m + i, n - i); acc += w; }
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc = (acc & 0xFFFF) + (acc >> 16);
    return ntohs((uint16_t)acc) == 0xFFFF;
}

static inline int eui_lla(const uint8_t *e, out_t *o, int64_t i) {
    if (e[3] != 0xFF || e[4] != 0xFE) return 0;
    memcpy(o->lladdr + 6 * i, e, 3);
    memcpy(o->lladdr + 6 * i + 3, e + 5, 3);
    o->has_lladdr[i] = 1;
    return 1;
}

static int nd(const uint8_t *m, int64_t mlen, const uint8_t *src, const uint8_t *dst, int hl, int frag,
              out_t *o, int64_t i) {
    int t = m[0], lla = ND_LLA_OPT[t], saw_slla = 0, got = 0;
    int64_t start = ND_MIN_LEN[t], pos, units;
    if (m[1] != 0) return drop(D_ICMP6_BAD_CODE);
    if (mlen < start) return drop(D_ICMP6_TRUNCATED);
    if (hl != 255) return drop(D_ICMP6_BAD_HOP_LIMIT);
    if (!cksum_ok(src, dst, m, (size_t)mlen)) { o->checksum_ok[i] = 0; return drop(D_ICMP6_BAD_CHECKSUM); }
    if (t == 135 || t == 136 || t == 137) memcpy(o->target + 16 * i, m + 8, 16);
    for (pos = start; pos < mlen; pos += units * 8) {
        if (mlen - pos < 2) return drop(D_ND_BAD_OPTION);
        units = m[pos + 1];
        if (units == 0 || units * 8 > mlen - pos) return drop(D_ND_BAD_OPTION);
        if (m[pos] == 1) saw_slla = 1;
        if (m[pos] == lla && !got) {
            got = 1;
            if (units == 1) { memcpy(o->lladdr + 6 * i, m + pos + 2, 6); o->has_lladdr[i] = 1; }
        }
    }
    if (frag) return drop(D_ND_INVALID);
    if ((t == 135 || t == 136) && m[8] == 0xFF) return drop(D_ND_INVALID);
    if (t == 135 && is_zero16(src)) {
        int sol = be32(dst) == 0xFF020000u && be32(dst + 4) == 0 && be32(dst + 8) == 1 && dst[12] == 0xFF;
        if (!sol || saw_slla) return drop(D_ND_INVALID);
    }
    if (t == 136 && (m[4] & 0x40) && dst[0] == 0xFF) return drop(D_ND_INVALID);
    if (t == 133 && saw_slla && is_zero16(src)) return drop(D_ND_INVALID);
    if ((t == 134 || t == 137) && !(src[0] == 0xFE && (src[1] & 0xC0) == 0x80)) return drop(D_ND_INVALID);
    return V_CONTROL;
}

static int fmip(const uint8_t *m, int64_t mlen, const uint8_t *src, const uint8_t *dst, int hl,
                const uint8_t *code_map, out_t *o, int64_t i) {
    int code = code_map[m[1]], flags = 0, got = 0, saw_id = 0, saw_lla = 0, olen;
    int64_t start, pos, mac_at = -1;
    if (code == 0) return drop(D_ICMP6_BAD_CODE);
    o->fmip_code[i] = (uint8_t)code;
    start = FMIP_FIXED_LEN[code];
    if (mlen < start) return drop(D_FMIP_BAD_LENGTH);
    if (FMIP_HAS_LEN_FIELD[code]) {
        if (be16(m + 8) != mlen) return drop(D_FMIP_BAD_LENGTH);
    } else {
        flags = m[5];
        if (code == 1) {
            if (flags & 0x80) { mac_at = start; start += 8; }
            if (flags & 0x40) start += 16;
        } else if (code == 3 && (flags & 0x80)) { mac_at = start; start += 8; }
        if (mlen < start) return drop(D_FMIP_BAD_LENGTH);
    }
    if (FMIP_HOP255[code] && hl != 255) return drop(D_ICMP6_BAD_HOP_LIMIT);
    if (!cksum_ok(src, dst, m, (size_t)mlen)) { o->checksum_ok[i] = 0; return drop(D_ICMP6_BAD_CHECKSUM); }
    if (code == 1) { if (flags & 0x40) memcpy(o->ncoa + 16 * i, m + start - 16, 16); }
    else if (code == 3 || code == 6) memcpy(o->ncoa + 16 * i, m + 8, 16);
    if (mac_at >= 0) got = eui_lla(m + mac_at, o, i);
    for (pos = start; pos < mlen; pos += olen) {
        if (mlen - pos < 2) return drop(D_FMIP_BAD_SUBOPTION);
        olen = m[pos + 1];
        if (olen < 2 || olen > mlen - pos) return drop(D_FMIP_BAD_SUBOPTION);
        if (m[pos] == 6 && !saw_id) { saw_id = 1; if (olen == 6) o->identifier[i] = be16(m + pos + 2); }
        else if (m[pos] == 9 && !saw_lla) { saw_lla = 1; if (olen == 10 && !got) got = eui_lla(m + pos + 2, o, i); }
    }
    if (FMIP_NEEDS_AH[code] && !o->has_ah[i]) return drop(D_FMIP_NO_AH);
    return V_CONTROL;
}

static int frame(const uint8_t *f, int64_t len, uint8_t fmip_type, const uint8_t *code_map, out_t *o, int64_t i) {
    int64_t pos, l3, end, size, walked = 0, mlen;
    uint32_t et;
    int tags = 0, nh, nxt, hl, offm, t, frag = 0;
    const uint8_t *src, *dst, *m;
    if (len < 14) return drop(D_ETH_TRUNCATED);
    memcpy(o->eth_dst + 6 * i, f, 6);
    memcpy(o->eth_src + 6 * i, f + 6, 6);
    pos = 12;
    et = be16(f + 12);
    while (et == 0x8100 || et == 0x88A8) {
        if (++tags > 2) return drop(D_TOO_MANY_VLANS);
        if (len < pos + 6) return drop(D_ETH_TRUNCATED);
        et = be16(f + pos + 4);
        pos += 4;
    }
    if (et != 0x86DD) return drop(D_NOT_IPV6);
    l3 = pos + 2;
    if (len - l3 < 40) return drop(D_IP6_TRUNCATED);
    if ((f[l3] >> 4) != 6) return drop(D_IP6_BAD_VERSION);
    nh = f[l3 + 6];
    hl = f[l3 + 7];
    src = f + l3 + 8;
    dst = f + l3 + 24;
    o->l3_offset[i] = (uint32_t)l3;
    o->hop_limit[i] = (uint8_t)hl;
    o->next_header[i] = (uint8_t)nh;
    memcpy(o->src + 16 * i, src, 16);
    memcpy(o->dst + 16 * i, dst, 16);
    end = l3 + 40 + be16(f + l3 + 4);
    if (end > len) return drop(D_IP6_BAD_PAYLOAD_LENGTH);
    if (src[0] == 0xFF || is_loopback(src)) return drop(D_IP6_BAD_SOURCE);
    if (is_zero16(dst) || is_loopback(dst)) return drop(D_IP6_BAD_DESTINATION);
    pos = l3 + 40;
    while (nh == 0 || nh == 60 || nh == 43 || nh == 44 || nh == 51) {
        if (walked >= 16) return drop(D_EXT_CHAIN_TOO_LONG);
        if (nh == 0 && walked != 0) return drop(D_HBH_NOT_FIRST);
        if (end - pos < 8) return drop(D_EXT_TRUNCATED);
        walked++;
        nxt = f[pos];
        if (nh == 44) {
            offm = be16(f + pos + 2);
            frag = 1;
            if ((offm >> 3) != 0 || (offm & 1)) {
                o->next_header[i] = (uint8_t)nxt;
                o->l4_offset[i] = (uint32_t)(pos + 8);
                o->l4_length[i] = (uint32_t)(end - pos - 8);
                if (nxt == 58 && (offm >> 3) == 0 && end - pos > 8 && ND_MIN_LEN[f[pos + 8]]) return drop(D_ND_INVALID);
                return pass(V_FORWARD, dst);
            }
            size = 8;
        } else if (nh == 51) {
            size = ((int64_t)f[pos + 1] + 2) * 4;
            o->has_ah[i] = 1;
        } else {
            size = ((int64_t)f[pos + 1] + 1) * 8;
        }
        if (size > end - pos) return drop(D_EXT_TRUNCATED);
        pos += size;
        nh = nxt;
    }
    o->next_header[i] = (uint8_t)nh;
    o->l4_offset[i] = (uint32_t)pos;
    o->l4_length[i] = (uint32_t)(end - pos);
    m = f + pos;
    mlen = end - pos;
    if (nh == 58) {
        if (mlen < 4) return drop(D_ICMP6_TRUNCATED);
        t = m[0];
        o->icmp_type[i] = (uint8_t)t;
        o->icmp_code[i] = m[1];
        if (ND_MIN_LEN[t]) return nd(m, mlen, src, dst, hl, frag, o, i);
        if (t == fmip_type) return fmip(m, mlen, src, dst, hl, code_map, o, i);
        if (!cksum_ok(src, dst, m, (size_t)mlen)) o->checksum_ok[i] = 0;
        return pass(V_FORWARD, dst);
    }
    if (nh == 41) {
        if (mlen < 40) return drop(D_IP6_TRUNCATED);
        if ((m[0] >> 4) != 6) return drop(D_IP6_BAD_VERSION);
        return pass(V_DECAP, dst);
    }
    return pass(V_FORWARD, dst);
}

void limit_classify(const uint8_t *arena, const int64_t *offsets, const uint32_t *lengths, int64_t n,
                    uint8_t fmip_type, const uint8_t *code_map, void **outp, int64_t n_reasons) {
    out_t o;
    int64_t i;
    memcpy(&o, outp, sizeof o);
    if (!ND_MIN_LEN[133]) {
        ND_MIN_LEN[133] = 8; ND_MIN_LEN[134] = 16; ND_MIN_LEN[135] = 24; ND_MIN_LEN[136] = 24; ND_MIN_LEN[137] = 40;
        ND_LLA_OPT[133] = 1; ND_LLA_OPT[134] = 1; ND_LLA_OPT[135] = 1; ND_LLA_OPT[136] = 2; ND_LLA_OPT[137] = 2;
    }
    memset(o.checksum_ok, 1, n);
    memset(o.icmp_type, 0, n); memset(o.icmp_code, 0, n); memset(o.fmip_code, 0, n);
    memset(o.next_header, 0, n); memset(o.hop_limit, 0, n); memset(o.has_ah, 0, n);
    memset(o.l3_offset, 0, 4 * n); memset(o.l4_offset, 0, 4 * n); memset(o.l4_length, 0, 4 * n);
    memset(o.src, 0, 16 * n); memset(o.dst, 0, 16 * n); memset(o.ncoa, 0, 16 * n); memset(o.target, 0, 16 * n);
    memset(o.eth_src, 0, 6 * n); memset(o.eth_dst, 0, 6 * n); memset(o.lladdr, 0, 6 * n);
    memset(o.has_lladdr, 0, n);
    memset(o.identifier, 0xFF, 4 * n);
    memset(o.drop_counts, 0, 8 * n_reasons);
    for (i = 0; i < n; i++) {
        int r = frame(arena + offsets[i], lengths[i], fmip_type, code_map, &o, i);
        o.verdict[i] = (uint8_t)(r & 0xFF);
        o.drop_reason[i] = (uint8_t)(r >> 8);
        o.drop_counts[r >> 8] += (r & 0xFF) == V_DROP;
    }
}

/* ---- The lean limit ------------------------------------------------------------------------------
 * The least a classifier must do per frame, with none of fmipfast's validation: the Ethernet type (no
 * VLAN tags), the IPv6 version and payload length (the bound the checksum needs), the addresses copied
 * out, the next header (no extension-header walk), the ICMPv6 type and code, and the RFC 4443 checksum
 * verified for every ICMPv6 message.  Each output row is written once, directly (no batch-wide memset).
 * Outputs, n rows each: verdict (1 = IPv6 parsed, 0 = not), next_header, icmp_type, icmp_code,
 * checksum_ok, src [16], dst [16]. */
void limit_lean(const uint8_t *arena, const int64_t *offsets, const uint32_t *lengths, int64_t n,
                uint8_t *verdict, uint8_t *next_header, uint8_t *icmp_type, uint8_t *icmp_code,
                uint8_t *checksum_ok, uint8_t *src, uint8_t *dst) {
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *f = arena + offsets[i];
        int64_t len = lengths[i], end;
        int nh = 0, t = 0, c = 0, ok = 1, v = 0;
        if (len >= 54 && be16(f + 12) == 0x86DD && (f[14] >> 4) == 6 &&
            (end = 54 + (int64_t)be16(f + 18)) <= len) {
            v = 1;
            nh = f[20];
            memcpy(src + 16 * i, f + 22, 16);
            memcpy(dst + 16 * i, f + 38, 16);
            if (nh == 58 && end - 54 >= 4) {
                t = f[54];
                c = f[55];
                ok = cksum_ok(f + 22, f + 38, f + 54, (size_t)(end - 54));
            }
        } else {
            memset(src + 16 * i, 0, 16);
            memset(dst + 16 * i, 0, 16);
        }
        verdict[i] = (uint8_t)v;
        next_header[i] = (uint8_t)nh;
        icmp_type[i] = (uint8_t)t;
        icmp_code[i] = (uint8_t)c;
        checksum_ok[i] = (uint8_t)ok;
    }
}

/* ---- The checks alone ----------------------------------------------------------------------------
 * limit_classify()'s per-frame checks with no Batch rows behind them: every frame's fields go to row 0
 * (a scratch row, so the compiler keeps the work) and only verdict and drop_reason get a row each; no
 * memset.  What the validation costs by itself, the ceiling of any kernel that does it, whatever it writes.
 * out[] as for limit_classify(), each array of at least one row (verdict and drop_reason: n rows). */
void limit_checks_only(const uint8_t *arena, const int64_t *offsets, const uint32_t *lengths, int64_t n,
                       uint8_t fmip_type, const uint8_t *code_map, void **outp) {
    out_t o;
    memcpy(&o, outp, sizeof o);
    if (!ND_MIN_LEN[133]) {
        ND_MIN_LEN[133] = 8; ND_MIN_LEN[134] = 16; ND_MIN_LEN[135] = 24; ND_MIN_LEN[136] = 24; ND_MIN_LEN[137] = 40;
        ND_LLA_OPT[133] = 1; ND_LLA_OPT[134] = 1; ND_LLA_OPT[135] = 1; ND_LLA_OPT[136] = 2; ND_LLA_OPT[137] = 2;
    }
    for (int64_t i = 0; i < n; i++) {
        o.has_ah[0] = 0;
        int r = frame(arena + offsets[i], lengths[i], fmip_type, code_map, &o, 0);
        o.verdict[i] = (uint8_t)(r & 0xFF);
        o.drop_reason[i] = (uint8_t)(r >> 8);
    }
}
