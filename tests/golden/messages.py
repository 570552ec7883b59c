"""Golden ICMPv6 messages, written octet by octet from the draft's figures and docs/design.md §2 — not produced
by fmipfast's encoder.  The checksum octets were computed by scapy's independent ``in6_chksum`` over the
pseudo-header of the addresses given with each vector and pasted here as literals.

Each entry: name -> (src, dst, hex).  Spaces and newlines in the hex are for reading only.
"""

LINK_SRC, LINK_DST = "fe80::1", "fe80::2"  # PAR/MN link-local addresses for over-the-air messages
PAR, NAR = "2001:db8:1::1", "2001:db8:2::1"  # router-to-router messages (HI, HE)

VECTORS = {
    # draft §5, defaults: Prefix Size 64, no M/C/S, Access Router IPv6 Address, no options
    "hrd_default": (LINK_SRC, LINK_DST, """
        c8 01 ccea
        40 00 0000
        20010db8000200000000000000000001
    """),
    # draft §5 with M, C, S: MAC (EUI-64 of 02:00:5e:10:00:02), NCoA, principal "nar1"@"B.EXAMPLE",
    # identifier 0x1234
    "hrd_values": (LINK_SRC, LINK_DST, """
        c8 01 c400
        40 e0 0000
        20010db8000200000000000000000001
        02005efffe100002
        20010db800020000021b63fffe8445e6
        01 10 04 6e617231 422e4558414d504c45
        06 06 1234 0000
    """),
    # draft §6.1 shape: Reserved (4), Length = 10 (whole message), no options
    "hra_default": (LINK_SRC, LINK_DST, """
        c8 02 3aaa
        00000000
        000a
    """),
    # HRA with an 8-octet LKB PDU and identifier 0x1234: Length = 10 + 10 + 6 = 26
    "hra_values": (LINK_SRC, LINK_DST, """
        c8 02 1032
        00000000
        001a
        02 0a 0102030405060708
        06 06 1234 0000
    """),
    # draft §6, defaults: Prefix Size 64, no M, NCoA
    "hi_default": (PAR, NAR, """
        c8 03 c3f1
        40 00 0000
        20010db800020000021b63fffe8445e6
    """),
    # draft §6 with M: MN MAC, LKB (4 octets), handover control (U, 32 packets, 2000 ms),
    # PCoA address sub-option, identifier 0x1234
    "hi_values": (PAR, NAR, """
        c8 03 7a10
        40 80 0000
        20010db800020000021b63fffe8445e6
        001b63fffe8445e6
        02 06 deadbeef
        03 09 80 0020 000007d0
        04 14 01 00 20010db800010000021b63fffe8445e6
        06 06 1234 0000
    """),
    # Authenticated-MN: LKB AP-REP (3 octets) + MAC (16 octets of 0xaa): Length = 10 + 5 + 18 = 33
    "amn_values": (NAR, "2001:db8:2:0:21b:63ff:fe84:45e6", """
        c8 04 837d
        00000000
        0021
        02 05 a1a2a3
        07 12 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    """),
    # Attach: link-layer address sub-option + MAC; Length = 10 + 10 + 18 = 38
    "attach_values": ("2001:db8:2:0:21b:63ff:fe84:45e6", "fe80::2", """
        c8 05 a80e
        00000000
        0026
        09 0a 001b63fffe8445e6
        07 12 00000000000000000000000000000000
    """),
    # draft §7: Reserved (4), NCoA; Status 1 (NCoA in use), identifier 0x1234
    "he_values": (NAR, PAR, """
        c8 06 c0ca
        00000000
        20010db800020000021b63fffe8445e6
        08 03 01
        06 06 1234 0000
    """),
    # Forwarding Disable: identifier only; Length = 16
    "fd_values": (LINK_SRC, LINK_DST, """
        c8 07 225f
        00000000
        0010
        06 06 1234 0000
    """),
    # RFC 4861 §4.1 RS with ND option 253 sub-type 1 (one 8-octet unit, zero padding)
    "rs_realms": ("fe80::1", "ff02::2", """
        85 00 7f2c
        00000000
        fd 01 01 0000000000
    """),
    # RFC 4861 §4.2 RA with option 253 sub-type 2 listing "A.EX" and "C.EX": 2+1+5+5 = 13 -> 16 octets
    "ra_realms": ("fe80::2", "ff02::1", """
        86 00 2500
        40 00 0708 00000000 00000000
        fd 02 02 04 412e4558 04 432e4558 000000
    """),
}
