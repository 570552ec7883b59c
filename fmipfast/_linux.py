"""Linux ABI numbers for AF_PACKET sockets and TPACKET_V3 rings: their one home on the Python side.

The values are those of the Linux UAPI headers named beside each (x86-64 and every other architecture the
kernel's asm-generic socket numbers serve).  The compiled core does not restate them: it takes the same
names from the system headers through ``includes/linux.pxd``, and tests/test_core_consts.py checks every
number here against what the compiler saw (``fmipfast._core._linux_consts()``).  ``rings``, ``engine`` and
``reference`` import them from here.

Imports nothing from fmipfast.
"""

from __future__ import annotations

__all__ = [
    "SOL_PACKET",
    "SO_ATTACH_FILTER",
    "SO_TIMESTAMPNS",
    "SCM_TIMESTAMPNS",
    "ETH_P_ALL",
    "PACKET_OUTGOING",
    "PACKET_RX_RING",
    "PACKET_STATISTICS",
    "PACKET_AUXDATA",
    "PACKET_VERSION",
    "PACKET_TX_RING",
    "PACKET_FANOUT",
    "PACKET_QDISC_BYPASS",
    "PACKET_IGNORE_OUTGOING",
    "PACKET_LOSS",
    "PACKET_FANOUT_HASH",
    "PACKET_FANOUT_LB",
    "PACKET_FANOUT_CPU",
    "PACKET_FANOUT_ROLLOVER",
    "PACKET_FANOUT_RND",
    "PACKET_FANOUT_QM",
    "PACKET_FANOUT_FLAG_DEFRAG",
    "TPACKET_V2",
    "TPACKET_V3",
    "TPACKET_ALIGNMENT",
    "TP_FT_REQ_FILL_RXHASH",
    "TP_STATUS_KERNEL",
    "TP_STATUS_USER",
    "TP_STATUS_LOSING",
    "TP_STATUS_CSUMNOTREADY",
    "TP_STATUS_VLAN_VALID",
    "TP_STATUS_AVAILABLE",
    "TP_STATUS_SEND_REQUEST",
    "BLOCK_DESC_LEN",
    "TPACKET3_HDR_LEN",
    "TPACKET2_HDR_LEN",
    "TX_DATA_OFF",
]

# <sys/socket.h>, <asm-generic/socket.h>, <linux/if_ether.h>
SOL_PACKET = 263
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: where time_t is the kernel's long (every 64-bit ABI)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
ETH_P_ALL = 0x0003

# <linux/if_packet.h>: socket options of level SOL_PACKET, and sll_pkttype
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14  # a TX ring slot the kernel refuses (longer than the MTU, malformed) is skipped, not a wedge
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_LB = 1
PACKET_FANOUT_CPU = 2
PACKET_FANOUT_ROLLOVER = 3
PACKET_FANOUT_RND = 4
PACKET_FANOUT_QM = 5
PACKET_FANOUT_FLAG_DEFRAG = 0x8000

# <linux/if_packet.h>: TPACKET_V3 rings
TPACKET_V2 = 1  # enum tpacket_versions: frame by frame (the engine's per-frame RX ring)
TPACKET_V3 = 2  # blocks
TPACKET_ALIGNMENT = 16
TP_FT_REQ_FILL_RXHASH = 0x1
TP_STATUS_KERNEL = 0  # RX: the block belongs to the kernel
TP_STATUS_USER = 1 << 0  # RX: the block belongs to user space
TP_STATUS_LOSING = 1 << 2
TP_STATUS_CSUMNOTREADY = 1 << 3  # the sending kernel left the transport checksum to the device
TP_STATUS_VLAN_VALID = 1 << 4  # tp_vlan_tci is valid
TP_STATUS_AVAILABLE = 0  # TX: the slot is free
TP_STATUS_SEND_REQUEST = 1 << 0  # TX: the slot holds a frame for the next send()

# Sizes of the <linux/if_packet.h> structures a TPACKET_V3 ring is made of
BLOCK_DESC_LEN = 48  # sizeof(struct tpacket_block_desc)
TPACKET3_HDR_LEN = 48  # sizeof(struct tpacket3_hdr)
TPACKET2_HDR_LEN = 32  # sizeof(struct tpacket2_hdr): status, len, snaplen, mac, net, sec, nsec, vlan tci, tpid, pad
TX_DATA_OFF = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where a TX frame's data starts
