# C declarations from Linux headers (docs/conventions.md §1): AF_PACKET TPACKET_V3 ring layouts and statuses,
# the socket options the rings are set up with, and the GCC atomics used to hand ring blocks and frames
# between the kernel and user space.  Layouts and numbers come from the system's headers, so the compiler,
# not us, knows them; fmipfast/_linux.py is the Python side's copy of the numbers, which
# tests/test_core_consts.py checks against these through _core._linux_consts().

from libc.stdint cimport uint16_t, uint32_t, uint64_t

cdef extern from "<sys/socket.h>" nogil:
    enum:
        SOL_PACKET
        SO_ATTACH_FILTER
        SO_TIMESTAMPNS
        SCM_TIMESTAMPNS

cdef extern from "<linux/if_ether.h>" nogil:
    enum:
        ETH_P_ALL

cdef extern from "<linux/if_packet.h>" nogil:
    enum:
        PACKET_OUTGOING
        PACKET_RX_RING
        PACKET_STATISTICS
        PACKET_AUXDATA
        PACKET_VERSION
        PACKET_TX_RING
        PACKET_LOSS
        PACKET_FANOUT
        PACKET_QDISC_BYPASS
        PACKET_IGNORE_OUTGOING
        PACKET_FANOUT_HASH
        PACKET_FANOUT_LB
        PACKET_FANOUT_CPU
        PACKET_FANOUT_ROLLOVER
        PACKET_FANOUT_RND
        PACKET_FANOUT_QM
        PACKET_FANOUT_FLAG_DEFRAG
        TPACKET_V2
        TPACKET_V3
        TP_FT_REQ_FILL_RXHASH
        TP_STATUS_KERNEL
        TP_STATUS_USER
        TP_STATUS_COPY
        TP_STATUS_LOSING
        TP_STATUS_CSUMNOTREADY
        TP_STATUS_VLAN_VALID
        TP_STATUS_BLK_TMO
        TP_STATUS_VLAN_TPID_VALID
        TP_STATUS_CSUM_VALID
        TP_STATUS_AVAILABLE
        TP_STATUS_SEND_REQUEST
        TP_STATUS_SENDING
        TP_STATUS_WRONG_FORMAT
        TPACKET_ALIGNMENT
        TPACKET3_HDRLEN

    struct tpacket2_hdr:
        uint32_t tp_status
        uint32_t tp_len
        uint32_t tp_snaplen
        uint16_t tp_mac
        uint16_t tp_net
        uint32_t tp_sec
        uint32_t tp_nsec
        uint16_t tp_vlan_tci
        uint16_t tp_vlan_tpid

    struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
        uint32_t tp_vlan_tci
        uint16_t tp_vlan_tpid

    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net
        tpacket_hdr_variant1 hv1   # inside an anonymous union in the header

    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
        uint32_t blk_len
        uint64_t seq_num

    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1

    struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr

cdef extern from "<linux/if_packet.h>" nogil:
    """
    #include <sys/socket.h>
    #include <linux/if_packet.h>
    /* TX data offset of a TPACKET_V3 frame: the aligned header, as the kernel's tpacket_fill_skb expects
       when PACKET_TX_HAS_OFF is not set (TPACKET3_HDRLEN minus the sockaddr_ll it reserves). */
    #define FMIPFAST_TX_DATA_OFF (TPACKET_ALIGN(sizeof(struct tpacket3_hdr)))
    static inline uint32_t fmipfast_load_acquire_u32(const uint32_t *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void fmipfast_store_release_u32(uint32_t *p, uint32_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    """
    enum: FMIPFAST_TX_DATA_OFF
    uint32_t fmipfast_load_acquire_u32(const uint32_t* p)
    void fmipfast_store_release_u32(uint32_t* p, uint32_t v)
