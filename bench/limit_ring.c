/* The limit row of bench/bench_forward.py: a plain C TPACKET_V3 RX-ring reader.
 *
 * Opens an AF_PACKET socket on IFNAME with the engine's ring geometry (fmipfast.rings.PacketRing and
 * config.RingConfig defaults: blocks of 256 KiB, 16 blocks, 2048-octet frame hint, retire timeout 2 ms,
 * PACKET_IGNORE_OUTGOING), polls, walks every block it owns and counts the IPv6/UDP frames in it (and all
 * frames), then hands the block back.  Nothing else: no copy, no parsing beyond the ethertype and next
 * header.  It is the receive-rate limit on the rt ingress veth (and, with --sink ring, the counter at the
 * sink behind the router).
 *
 *   limit_ring IFNAME SECONDS [block_size block_nr timeout_ms [fanout_group]]
 *
 * Prints "READY" once bound, counts for SECONDS (or until 0.5 s with no frame after the first one), then
 * one line of JSON: frames, udp6 frames, octets, the kernel timestamps of the first and last counted
 * frame, and the ring's PACKET_STATISTICS (packets, drops).
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "limit_ring: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s IFNAME SECONDS [block_size block_nr timeout_ms [fanout_group]]\n", argv[0]);
        return 2;
    }
    const char *ifname = argv[1];
    double seconds = atof(argv[2]);
    unsigned block_size = argc > 3 ? (unsigned)atoi(argv[3]) : 1u << 18;
    unsigned block_nr = argc > 4 ? (unsigned)atoi(argv[4]) : 16;
    unsigned timeout_ms = argc > 5 ? (unsigned)atoi(argv[5]) : 2;
    int fanout_group = argc > 6 ? atoi(argv[6]) : 0;

    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) die("socket");
    int v = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) die("PACKET_VERSION");
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = block_size / 2048 * block_nr;
    req.tp_retire_blk_tov = timeout_ms;
    req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) die("PACKET_RX_RING");
    size_t map_len = (size_t)block_size * block_nr;
    uint8_t *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    if (map == MAP_FAILED) map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("mmap");
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (!sll.sll_ifindex) die(ifname);
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
    if (fanout_group > 0) {
        int arg = (fanout_group & 0xffff) | (PACKET_FANOUT_HASH << 16);
        if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) die("PACKET_FANOUT");
    }
    /* statistics reset on read: drop what arrived before READY */
    struct tpacket_stats_v3 st;
    socklen_t sl = sizeof st;
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    printf("READY\n");
    fflush(stdout);

    uint64_t frames = 0, udp6 = 0, octets = 0, first_ts = 0, last_ts = 0, blocks = 0;
    uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9), last_seen = 0;
    unsigned cur = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLERR};
    for (;;) {
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(map + (size_t)cur * block_size);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            uint64_t t = now_ns();
            if (t >= deadline) break;
            if (last_seen && t - last_seen > 500000000ull) break;
            poll(&pfd, 1, 20);
            continue;
        }
        uint32_t n = bd->hdr.bh1.num_pkts;
        struct tpacket3_hdr *h = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *eth = (const uint8_t *)h + h->tp_mac;
            uint64_t ts = (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec;
            frames++;
            octets += h->tp_len;
            if (h->tp_snaplen >= 14 + 40 && eth[12] == 0x86 && eth[13] == 0xdd && eth[14 + 6] == 17) {
                udp6++;
                if (!first_ts) first_ts = ts;
                last_ts = ts;
            }
            h = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
        }
        blocks++;
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        cur = (cur + 1) % block_nr;
        if (udp6) last_seen = now_ns();
        if (last_seen >= deadline) break;
    }
    sl = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) < 0) die("PACKET_STATISTICS");
    printf("{\"frames\": %llu, \"udp6\": %llu, \"octets\": %llu, \"blocks\": %llu, \"first_ts_ns\": %llu, "
           "\"last_ts_ns\": %llu, \"wall_ns\": %llu, \"kernel_packets\": %u, \"kernel_drops\": %u}\n",
           (unsigned long long)frames, (unsigned long long)udp6, (unsigned long long)octets,
           (unsigned long long)blocks, (unsigned long long)first_ts, (unsigned long long)last_ts,
           (unsigned long long)(now_ns() - start), st.tp_packets, st.tp_drops);
    fflush(stdout);
    munmap(map, map_len);
    close(fd);
    return 0;
}
