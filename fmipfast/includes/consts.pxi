# cdef enum mirrors of the plain ints the kernels need from fmipfast/constants.py (docs/conventions.md §5).
#
# Kernels use these; the Python API uses the IntEnums.  Naming: one prefix per IntEnum class, then the
# member name (the prefixes avoid the system headers' IPPROTO_*, ETHERTYPE_*, ICMP6_*, ND_OPT_* macros):
#
#   NH_        constants.IpProto
#   ETYPE_     constants.EtherType
#   ICMP6T_    constants.Icmp6Type
#   FMIPCODE_  constants.FmipCode
#   SUBOPT_    constants.SubOptType
#   ADDRKIND_  constants.AddressKind
#   HOSTATUS_  constants.HandoverStatus
#   NDOPT_     constants.NdOptType
#   NDFMIP_    constants.NdFmipSubtype
#   MHTYPE_    constants.MhType
#   HRDFLAG_   constants.HrdFlag
#   HIFLAG_    constants.HiFlag
#   HCFLAG_    constants.HandoverControlFlag
#   ACTION_    constants.Action
#   NCFLAG_    constants.NeighborFlag
#   NCSTATE_   constants.NeighborState
#   plain names: the module-level int of the same name in constants.py
# tests/test_core_consts.py parses this file and checks every value and that every member of a
# mirrored class is here; fmipfast._core._consts() exports the same names.  Sizes (*_LEN) are in
# includes/wire.pxd.

# constants.IpProto: IPv6 next-header values (IANA protocol numbers)
cdef enum:
    NH_HOPOPTS = 0
    NH_TCP = 6
    NH_UDP = 17
    NH_IPV6 = 41
    NH_ROUTING = 43
    NH_FRAGMENT = 44
    NH_ESP = 50
    NH_AH = 51
    NH_ICMPV6 = 58
    NH_NONE = 59
    NH_DSTOPTS = 60
    NH_MH = 135

# constants.EtherType: EtherTypes
cdef enum:
    ETYPE_IPV6 = 0x86DD
    ETYPE_VLAN = 0x8100
    ETYPE_QINQ = 0x88A8

# constants.Icmp6Type: ICMPv6 types (RFC 4443, RFC 4861; FMIP = docs/design.md §2 default)
cdef enum:
    ICMP6T_DEST_UNREACH = 1
    ICMP6T_PACKET_TOO_BIG = 2
    ICMP6T_TIME_EXCEEDED = 3
    ICMP6T_PARAM_PROBLEM = 4
    ICMP6T_ECHO_REQUEST = 128
    ICMP6T_ECHO_REPLY = 129
    ICMP6T_ROUTER_SOLICITATION = 133
    ICMP6T_ROUTER_ADVERTISEMENT = 134
    ICMP6T_NEIGHBOR_SOLICITATION = 135
    ICMP6T_NEIGHBOR_ADVERTISEMENT = 136
    ICMP6T_REDIRECT = 137
    ICMP6T_FMIP = 200

# constants.FmipCode: Code octet of the seven fmipfast messages (docs/design.md §2)
cdef enum:
    FMIPCODE_HANDOVER_REDIRECT = 1
    FMIPCODE_HANDOVER_REDIRECT_ACK = 2
    FMIPCODE_HANDOVER = 3
    FMIPCODE_AUTHENTICATED_MN = 4
    FMIPCODE_ATTACH = 5
    FMIPCODE_HANDOVER_ERROR = 6
    FMIPCODE_FORWARDING_DISABLE = 7

# constants.SubOptType: sub-option types (docs/design.md §2)
cdef enum:
    SUBOPT_PRINCIPAL = 1
    SUBOPT_LKB = 2
    SUBOPT_HANDOVER_CONTROL = 3
    SUBOPT_ADDRESS = 4
    SUBOPT_ENCAPSULATED = 5
    SUBOPT_IDENTIFIER = 6
    SUBOPT_MAC = 7
    SUBOPT_STATUS = 8
    SUBOPT_LINK_LAYER_ADDRESS = 9

# constants.AddressKind: Address sub-option kinds
cdef enum:
    ADDRKIND_PCOA = 1
    ADDRKIND_NCOA = 2
    ADDRKIND_NAR = 3

# constants.HandoverStatus: Handover Error reasons
cdef enum:
    HOSTATUS_NCOA_IN_USE = 1
    HOSTATUS_UNSPECIFIED = 128
    HOSTATUS_ADMINISTRATIVELY_PROHIBITED = 129
    HOSTATUS_INSUFFICIENT_RESOURCES = 130
    HOSTATUS_AUTHENTICATION_FAILED = 131

# constants.NdOptType: ND option types (RFC 4861 §4.6; FMIP = RFC 4727 experiment)
cdef enum:
    NDOPT_SOURCE_LL_ADDR = 1
    NDOPT_TARGET_LL_ADDR = 2
    NDOPT_PREFIX_INFORMATION = 3
    NDOPT_REDIRECTED_HEADER = 4
    NDOPT_MTU = 5
    NDOPT_FMIP = 253

# constants.NdFmipSubtype: subtypes of the FMIP ND option
cdef enum:
    NDFMIP_ADJACENT_REALMS_REQUEST = 1
    NDFMIP_ADJACENT_REALMS = 2

# constants.MhType: Mobility Header types (RFC 6275)
cdef enum:
    MHTYPE_BINDING_REFRESH_REQUEST = 0
    MHTYPE_BINDING_UPDATE = 5
    MHTYPE_BINDING_ACK = 6

# constants.HrdFlag: Handover Redirect flags octet (draft §5)
cdef enum:
    HRDFLAG_M = 0x80
    HRDFLAG_C = 0x40
    HRDFLAG_S = 0x20

# constants.HiFlag: Handover flags octet (draft §6)
cdef enum:
    HIFLAG_M = 0x80

# constants.HandoverControlFlag: Handover Control sub-option flags
cdef enum:
    HCFLAG_U = 0x80

# module-level ints
cdef enum:
    DEFAULT_FMIP_TYPE = 200  # docs/design.md §2: RFC 4443 private experimentation, informational
    ND_HOP_LIMIT = 255       # RFC 4861: link-local-only messages are sent/checked with 255

# constants.Verdict: next stage of a frame after classify (docs/design.md §5)
cdef enum:
    VERDICT_DROP = 0
    VERDICT_FORWARD = 1
    VERDICT_TUNNEL = 2
    VERDICT_DECAP = 3
    VERDICT_BUFFER = 4
    VERDICT_CONTROL = 5
    VERDICT_RESOLVE = 6

# constants.Action: what the forwarding node did with a frame (_kernels/node.pxi)
cdef enum:
    ACTION_DROP = 0
    ACTION_FORWARD = 1
    ACTION_TUNNEL = 2
    ACTION_DECAP = 3
    ACTION_BUFFER = 4
    ACTION_CONTROL = 5
    ACTION_RESOLVE = 6
    ACTION_NO_ROUTE = 7
    ACTION_TIME_EXCEEDED = 8

# constants.NeighborFlag: flags of a neighbor-cache entry
cdef enum:
    NCFLAG_ROUTER = 0x01
    NCFLAG_PROXY = 0x02
    NCFLAG_LOCAL = 0x04
    NCFLAG_TUNNEL = 0x08
    NCFLAG_STATIC = 0x10
    NCFLAG_HOLD = 0x20

# constants.NeighborState: RFC 4861 §7.3.2 reachability states
cdef enum:
    NCSTATE_NONE = 0
    NCSTATE_INCOMPLETE = 1
    NCSTATE_REACHABLE = 2
    NCSTATE_STALE = 3
    NCSTATE_DELAY = 4
    NCSTATE_PROBE = 5

# constants.DropReason: why a frame was dropped (append-only, like the IntEnum)
cdef enum:
    DROP_NONE = 0
    DROP_ETH_TRUNCATED = 1
    DROP_NOT_IPV6 = 2
    DROP_TOO_MANY_VLANS = 3
    DROP_IP6_TRUNCATED = 4
    DROP_IP6_BAD_VERSION = 5
    DROP_IP6_BAD_PAYLOAD_LENGTH = 6
    DROP_IP6_BAD_SOURCE = 7
    DROP_IP6_BAD_DESTINATION = 8
    DROP_EXT_TRUNCATED = 9
    DROP_EXT_CHAIN_TOO_LONG = 10
    DROP_HBH_NOT_FIRST = 11
    DROP_ICMP6_TRUNCATED = 12
    DROP_ICMP6_BAD_CHECKSUM = 13
    DROP_ICMP6_BAD_HOP_LIMIT = 14
    DROP_ICMP6_BAD_CODE = 15
    DROP_ND_BAD_OPTION = 16
    DROP_ND_INVALID = 17
    DROP_FMIP_BAD_SUBOPTION = 18
    DROP_FMIP_BAD_LENGTH = 19
    DROP_FMIP_NO_AH = 20
    DROP_HOP_LIMIT_EXCEEDED = 21
    DROP_NEIGHBOR_TABLE_FULL = 22
    DROP_BUFFER_FULL = 23
    DROP_BUFFER_EXPIRED = 24
    DROP_FRAME_TOO_BIG = 25
    DROP_NO_ROUTE = 26
    DROP_TX_RING_FULL = 27
    DROP_RESOLVE_FAILED = 28
    DROP_DECAP_NOT_FROM_PEER = 29
    DROP_KERNEL_RING_DROP = 30
    DROP_RING_WALK_ERROR = 31
    DROP_CONTROL_REJECTED = 32
    DROP_OTHER_HOST = 33
    DROP_NOT_BUFFERED = 34
    DROP_CONTROL_ERROR = 35
    DROP_INTERNAL_ERROR = 36
    DROP_DECAP_TOO_DEEP = 37
