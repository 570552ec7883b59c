/* The c-forward row of bench/bench_forward.py: a plain C TPACKET_V3 forwarder, no Python.
 *
 * The cheapest forwarding that uses the engine's kernel interface: one AF_PACKET socket per interface set up
 * exactly as fmipfast.rings.PacketRing does it (TPACKET_V3; RX ring of 16 blocks of 256 KiB, 2048-octet
 * frame hint, retire timeout 2 ms, TP_FT_REQ_FILL_RXHASH; TX ring in the same mapping: 4096-octet blocks
 * of two 2048-octet frames, 512 frames; PACKET_IGNORE_OUTGOING; bound to ETH_P_ALL; non-blocking), then
 * for every frame of every RX block on RX_IF: IPv6 ethertype checked, hop limit > 1 checked (else dropped),
 * the frame copied into the next free TX slot of TX_IF with the MAC rewritten (destination = DST_MAC,
 * source = TX_IF's own) and the hop limit decremented; one send(2) (MSG_DONTWAIT) per RX block, as the
 * engine kicks its TX ring once per block.  No route lookup, no neighbor cache, no classification: what is
 * left is the ring traffic and the kernel's TX path, the floor under any forwarder built on these rings.
 *
 *   limit_forward RX_IF TX_IF DST_MAC [options]
 *     -q          PACKET_QDISC_BYPASS on the TX socket (packet_direct_xmit, no qdisc, no taps)
 *     -t N        TX ring frames (default 512, the engine's [router.ring] tx_frames)
 *     -s N        send(2) every N queued frames instead of once per RX block (0 = per block)
 *     -w          a blocking send(2) (waits until the kernel sent the ring) instead of MSG_DONTWAIT
 *     -m          no TX ring: the frames are rewritten in place in the RX ring and handed to sendmmsg(2) in
 *                 batches of up to 1024 (or -s N), each message pointing into the RX block; the kernel
 *                 copies each into a linear skb (packet_snd) instead of page fragments of the TX ring
 *     -c CPU      pin to CPU
 *     -e OCTETS   the minimum frame (default 14 + 40)
 *     -T MS       the RX rings' block retire timeout (default 2, the engine's [router.ring] timeout_ms)
 *
 * A TX slot the kernel still owns counts as tx_ring_full and the frame is dropped, after one send(2) to
 * kick the kernel and one more look (the engine's PacketRing.send stops the same way).  Control on stdin,
 * one command per line, as the engine worker of bench_forward.py: "snap" prints one JSON line (frames
 * received, forwarded, dropped by reason, RX ring PACKET_STATISTICS accumulated, user and system CPU seconds
 * from getrusage); "quit" exits.  Prints "READY" once both sockets are bound.
 *
 * Compiled at bench time (cc -O2) into a temp dir; never committed as a binary.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

#define RX_BLOCK_SIZE (1u << 18)
#define RX_BLOCK_NR 16u
#define RX_FRAME 2048u
#define RX_TIMEOUT_MS 2u
#define TX_FRAME 2048u
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) /* rings.pxi FMIPFAST_TX_DATA_OFF */

struct ring {
    int fd;
    uint8_t *map, *rx, *tx;
    size_t map_len;
    unsigned rx_next, tx_head, tx_slots;
    uint8_t mac[6];
    uint64_t kernel_packets, kernel_drops;
};

static void die(const char *what) {
    fprintf(stderr, "limit_forward: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int parse_mac(const char *s, uint8_t *out) {
    unsigned b[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return -1;
    for (int i = 0; i < 6; i++) out[i] = (uint8_t)b[i];
    return 0;
}

/* PacketRing._setup, option by option */
static void ring_open(struct ring *r, const char *ifname, unsigned tx_frames, int qdisc_bypass, int tx_ring,
                      unsigned timeout_ms) {
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (r->fd < 0) die("socket");
    int v = TPACKET_V3;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) die("PACKET_VERSION");
    struct tpacket_req3 rx = {RX_BLOCK_SIZE, RX_BLOCK_NR, RX_FRAME, RX_BLOCK_SIZE / RX_FRAME * RX_BLOCK_NR,
                              timeout_ms, 0, TP_FT_REQ_FILL_RXHASH};
    if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) < 0) die("PACKET_RX_RING");
    unsigned page = (unsigned)sysconf(_SC_PAGESIZE);
    unsigned tx_block = page > TX_FRAME ? page : TX_FRAME;
    unsigned per_block = tx_block / TX_FRAME;
    unsigned tx_blocks = (tx_frames + per_block - 1) / per_block;
    r->tx_slots = tx_blocks * per_block;
    struct tpacket_req3 tx = {tx_block, tx_blocks, TX_FRAME, r->tx_slots, 0, 0, 0};
    /* (a socket with a TX ring sends only from it: none in the sendmmsg mode) */
    if (tx_ring && setsockopt(r->fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) < 0) die("PACKET_TX_RING");
    size_t rx_len = (size_t)RX_BLOCK_SIZE * RX_BLOCK_NR;
    r->map_len = rx_len + (tx_ring ? (size_t)tx_block * tx_blocks : 0);
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->map == MAP_FAILED) die("mmap");
    r->rx = r->map;
    r->tx = r->map + rx_len;
    int one = 1;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) die("PACKET_IGNORE_OUTGOING");
    if (qdisc_bypass && setsockopt(r->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
        die("PACKET_QDISC_BYPASS");
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (!sll.sll_ifindex) die(ifname);
    if (bind(r->fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
    socklen_t sl = sizeof sll;
    if (getsockname(r->fd, (struct sockaddr *)&sll, &sl) < 0 || sll.sll_halen != 6) die("getsockname");
    memcpy(r->mac, sll.sll_addr, 6);
    struct tpacket_stats_v3 st;
    sl = sizeof st;
    getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl); /* resets on read: start at zero */
}

static void ring_stats(struct ring *r) {
    struct tpacket_stats_v3 st;
    socklen_t sl = sizeof st;
    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) {
        r->kernel_packets += st.tp_packets;
        r->kernel_drops += st.tp_drops;
    }
}

static uint64_t received, forwarded, not_ipv6, hop_limit, tx_ring_full, sends, send_errors, rx_blocks, kicks;

static void kick(struct ring *t, int flags) {
    sends++;
    if (send(t->fd, NULL, 0, flags) < 0 && errno != EAGAIN && errno != ENOBUFS) send_errors++;
}

/* sendmmsg(2) until every message went or the kernel refuses one (counted as tx_ring_full: no room) */
static void flush_mmsg(struct ring *t, struct mmsghdr *msgs, unsigned n, int flags) {
    unsigned done = 0;
    while (done < n) {
        sends++;
        int r = sendmmsg(t->fd, msgs + done, n - done, flags);
        if (r <= 0) {
            if (r < 0 && errno != EAGAIN && errno != ENOBUFS) send_errors++;
            tx_ring_full += n - done;
            return;
        }
        forwarded += (unsigned)r;
        done += (unsigned)r;
    }
}

static int tx_slot_free(struct ring *t) {
    struct tpacket3_hdr *h = (struct tpacket3_hdr *)(t->tx + (size_t)t->tx_head * TX_FRAME);
    return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) == TP_STATUS_AVAILABLE;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s RX_IF TX_IF DST_MAC [-q] [-t tx_frames] [-s send_every] [-w] [-c cpu] "
                "[-T timeout_ms]\n", argv[0]);
        return 2;
    }
    uint8_t dmac[6];
    if (parse_mac(argv[3], dmac)) { fprintf(stderr, "limit_forward: bad MAC\n"); return 2; }
    int qdisc_bypass = 0, cpu = -1, flags = MSG_DONTWAIT, mmsg = 0;
    unsigned tx_frames = 512, send_every = 0, min_len = 14 + 40, timeout_ms = RX_TIMEOUT_MS;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "-q")) qdisc_bypass = 1;
        else if (!strcmp(a, "-w")) flags = 0;
        else if (!strcmp(a, "-m")) mmsg = 1;
        else if (!strcmp(a, "-t")) { tx_frames = (unsigned)atoi(val); i++; }
        else if (!strcmp(a, "-s")) { send_every = (unsigned)atoi(val); i++; }
        else if (!strcmp(a, "-c")) { cpu = atoi(val); i++; }
        else if (!strcmp(a, "-e")) { min_len = (unsigned)atoi(val); i++; }
        else if (!strcmp(a, "-T")) { timeout_ms = (unsigned)atoi(val); i++; }
        else { fprintf(stderr, "limit_forward: unknown option %s\n", a); return 2; }
    }
    if (tx_frames < 1) tx_frames = 1;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
    }
    struct ring in, out;
    if (timeout_ms < 1) timeout_ms = 1;
    ring_open(&in, argv[1], tx_frames, qdisc_bypass, 1, timeout_ms);
    ring_open(&out, argv[2], tx_frames, qdisc_bypass, !mmsg, timeout_ms);
    enum { MMSG_MAX = 1024 };
    static struct mmsghdr msgs[MMSG_MAX];
    static struct iovec iov[MMSG_MAX];
    for (unsigned i = 0; i < MMSG_MAX; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned mmsg_batch = send_every && send_every < MMSG_MAX ? send_every : MMSG_MAX;
    printf("READY\n");
    fflush(stdout);

    struct pollfd pfd[3] = {{.fd = in.fd, .events = POLLIN | POLLERR},
                            {.fd = out.fd, .events = POLLIN | POLLERR},
                            {.fd = 0, .events = POLLIN | POLLHUP}};
    char cmd[4096];
    size_t cmd_len = 0;
    int running = 1;
    const size_t room = TX_FRAME - TX_DATA_OFF;
    while (running) {
        poll(pfd, 3, 5);
        /* every RX block the kernel handed over, on both interfaces (the engine polls both); only RX_IF's
           frames are forwarded, what arrives on TX_IF is handed back (nothing does in the benchmark) */
        for (;;) {
            struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(in.rx + (size_t)in.rx_next * RX_BLOCK_SIZE);
            if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
            uint32_t n = bd->hdr.bh1.num_pkts;
            const uint8_t *h8 = (const uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
            unsigned queued = 0;
            for (uint32_t i = 0; i < n; i++) {
                const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)h8;
                const uint8_t *eth = h8 + h->tp_mac;
                uint32_t len = h->tp_snaplen;
                received++;
                h8 += h->tp_next_offset;
                if (len < min_len || eth[12] != 0x86 || eth[13] != 0xdd || len > room) { not_ipv6++; continue; }
                if (eth[14 + 7] <= 1) { hop_limit++; continue; }
                if (mmsg) {
                    uint8_t *w = (uint8_t *)eth; /* the RX ring is mapped writable: rewrite in place */
                    memcpy(w, dmac, 6);
                    memcpy(w + 6, out.mac, 6);
                    w[14 + 7]--;
                    iov[queued].iov_base = w;
                    iov[queued].iov_len = len;
                    if (++queued == mmsg_batch) { flush_mmsg(&out, msgs, queued, flags); queued = 0; }
                    continue;
                }
                if (!tx_slot_free(&out)) {
                    if (queued) { kick(&out, flags); queued = 0; kicks++; }
                    if (!tx_slot_free(&out)) { tx_ring_full++; continue; }
                }
                struct tpacket3_hdr *t = (struct tpacket3_hdr *)(out.tx + (size_t)out.tx_head * TX_FRAME);
                uint8_t *d = (uint8_t *)t + TX_DATA_OFF;
                memcpy(d, dmac, 6);
                memcpy(d + 6, out.mac, 6);
                memcpy(d + 12, eth + 12, len - 12);
                d[14 + 7] = (uint8_t)(eth[14 + 7] - 1);
                t->tp_len = len;
                t->tp_snaplen = len;
                t->tp_next_offset = 0;
                __atomic_store_n(&t->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
                out.tx_head = (out.tx_head + 1) % out.tx_slots;
                forwarded++;
                if (++queued == send_every) { kick(&out, flags); queued = 0; }
            }
            if (mmsg && queued) flush_mmsg(&out, msgs, queued, flags);
            else if (queued) kick(&out, flags);
            __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
            in.rx_next = (in.rx_next + 1) % RX_BLOCK_NR;
            rx_blocks++;
        }
        for (;;) {
            struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(out.rx + (size_t)out.rx_next * RX_BLOCK_SIZE);
            if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
            __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
            out.rx_next = (out.rx_next + 1) % RX_BLOCK_NR;
        }
        if (!(pfd[2].revents & (POLLIN | POLLHUP))) continue;
        ssize_t got = read(0, cmd + cmd_len, sizeof cmd - 1 - cmd_len);
        if (got <= 0) break;
        cmd_len += (size_t)got;
        char *nl;
        while ((nl = memchr(cmd, '\n', cmd_len)) != NULL) {
            *nl = 0;
            if (!strcmp(cmd, "quit")) running = 0;
            else if (!strcmp(cmd, "snap")) {
                ring_stats(&in);
                ring_stats(&out);
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                printf("{\"received\": %llu, \"forwarded\": %llu, \"dropped\": %llu, \"not_ipv6\": %llu, "
                       "\"hop_limit\": %llu, \"tx_ring_full\": %llu, \"ring_drops\": %llu, "
                       "\"ra_kernel_packets\": %llu, \"ra_kernel_drops\": %llu, \"rx_blocks\": %llu, "
                       "\"sends\": %llu, \"send_errors\": %llu, \"kicks\": %llu, \"cpu_user_s\": %.6f, "
                       "\"cpu_sys_s\": %.6f, \"cpu_s\": %.6f}\n",
                       (unsigned long long)received, (unsigned long long)forwarded,
                       (unsigned long long)(not_ipv6 + hop_limit + tx_ring_full), (unsigned long long)not_ipv6,
                       (unsigned long long)hop_limit, (unsigned long long)tx_ring_full,
                       (unsigned long long)(in.kernel_drops + out.kernel_drops),
                       (unsigned long long)in.kernel_packets, (unsigned long long)in.kernel_drops,
                       (unsigned long long)rx_blocks, (unsigned long long)sends, (unsigned long long)send_errors,
                       (unsigned long long)kicks, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
                       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
                fflush(stdout);
            }
            size_t used = (size_t)(nl - cmd) + 1;
            memmove(cmd, nl + 1, cmd_len - used);
            cmd_len -= used;
        }
        if (cmd_len >= sizeof cmd - 1) cmd_len = 0;
    }
    munmap(in.map, in.map_len);
    munmap(out.map, out.map_len);
    close(in.fd);
    close(out.fd);
    return 0;
}
