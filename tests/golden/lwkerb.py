"""Known-answer vectors of the light-weight Kerberos PDUs (layouts: docs/security.md §3).

One exchange — AS (mn1@REALM-A gets a TGT), TGS (a ticket for nar1@REALM-B), AP at the NAR (case 1) with a
handover binding, a KRB-ERROR, and an OPEN-REQ/OPEN-REP pair (case 2) — built from the fixed keys, times and
nonces below through lwkerb's own builders (``tests/test_lwkerb_golden.py`` rebuilds it and compares octet
for octet).  The octets were produced once by the code and checked field by field against the layout tables;
the test also opens every sealed blob with AES-GCM directly, its associated data assembled from the layout.

Each entry: name -> hex; one line per field, ``#`` starts a comment, spaces and newlines are for reading.
``*.enc_part`` / ``*.authenticator`` are the plaintexts sealed inside the PDU of that name.
"""

REALM_A, REALM_B = "REALM-A", "REALM-B"
NOW = 1_800_000_000  # POSIX seconds

K_MN = bytes(range(0x00, 0x20))  # mn1@REALM-A, kvno 1
K_TGS = bytes(range(0x20, 0x40))  # krbtgt/REALM-A@REALM-A, kvno 2
K_NAR = bytes(range(0x40, 0x60))  # nar1@REALM-B, kvno 3
K_ACCESS = bytes(range(0x60, 0x80))  # access/REALM-B@REALM-B, kvno 4
SK_TGT = bytes(range(0x80, 0xA0))  # session key of the TGT
SK_SVC = bytes(range(0xA0, 0xC0))  # session key of the nar1 ticket

AS_NONCE = 0x0102030405060708
TGS_NONCE = 0x1112131415161718
OPEN_NONCE = 0x2122232425262728
AUTH_NONCE_TGS = b"tgs-auth"
AUTH_NONCE_AP = b"ap--auth"
#: GCM nonce of the i-th seal of the exchange: 12 octets of 0xc0 + i (never reuse one outside a test).
GCM = {i: bytes((0xC0 + i,)) * 12 for i in range(1, 12)}

NCOA, PCOA, NAR_ADDRESS, IDENTIFIER = "2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 0x0102

VECTORS: dict[str, str] = {
    # AS-REQ with PA-ENC-TIMESTAMP (seal 1), till = NOW + 36000 (90 octets)
    "as_req": """
        0a                                # type (AS-REQ) = 10
        01                                # version = 1
        00                                # options = 0
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0e                                # server: name length 14
        6b72627467742f5245414c4d2d41      # server: name 'krbtgt/REALM-A'
        07                                # server: realm length 7
        5245414c4d2d41                    # server: realm 'REALM-A'
        0102030405060708                  # nonce = 0x102030405060708
        6b4a5ea0                          # till = 1800036000
        01                                # PA present = 1
        01                                # PA kvno = 1
        c1c1c1c1c1c1c1c1c1c1c1c1          # PA-ENC-TIMESTAMP: GCM nonce
        0018                              # PA-ENC-TIMESTAMP: ciphertext length 24 (plaintext 8 + tag 16)
        74061791c313853b4465a6d98bb1844f  # PA-ENC-TIMESTAMP: ciphertext || tag
        1c93e9ec2f3d2843
    """,
    # the same AS-REQ without pre-authentication (51 octets)
    "as_req_nopa": """
        0a                                # type (AS-REQ) = 10
        01                                # version = 1
        00                                # options = 0
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0e                                # server: name length 14
        6b72627467742f5245414c4d2d41      # server: name 'krbtgt/REALM-A'
        07                                # server: realm length 7
        5245414c4d2d41                    # server: realm 'REALM-A'
        0102030405060708                  # nonce = 0x102030405060708
        6b4a5ea0                          # till = 1800036000
        00                                # PA present = 0
    """,
    # EncTicketPart of the TGT: INITIAL|PRE_AUTHENT, SK_TGT (60 octets)
    "tgt.enc_part": """
        0018                              # flags = 24
        6b49d200                          # authtime = 1800000000
        6b49d200                          # starttime = 1800000000
        6b4a5ea0                          # endtime = 1800036000
        808182838485868788898a8b8c8d8e8f  # session key
        909192939495969798999a9b9c9d9e9f
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0000                              # authorization TLV octets = 0
    """,
    # the TGT, sealed under K_TGS kvno 2 (seal 2), AD = usage 2 || octets 0..1+P(s) (115 octets)
    "tgt": """
        01                                # ticket.version = 1
        02                                # ticket.kvno = 2
        0e                                # ticket.server: name length 14
        6b72627467742f5245414c4d2d41      # ticket.server: name 'krbtgt/REALM-A'
        07                                # ticket.server: realm length 7
        5245414c4d2d41                    # ticket.server: realm 'REALM-A'
        c2c2c2c2c2c2c2c2c2c2c2c2          # ticket.enc (EncTicketPart): GCM nonce
        004c                              # ticket.enc (EncTicketPart): ciphertext length 76 (plaintext 60 + tag 16)
        a8a47fc4343b7076578aaf610b491ce6  # ticket.enc (EncTicketPart): ciphertext || tag
        da6871f0a23a2f157e57bd78813a95b3
        0e85a9bdc5c611796f7eed8e63973653
        724fe214237ecc9aca8c7bd89c728b5f
        a9270f87ec3a40f0c957e537
    """,
    # EncKdcRepPart of the AS-REP (77 octets)
    "as_rep.enc_part": """
        808182838485868788898a8b8c8d8e8f  # session key
        909192939495969798999a9b9c9d9e9f
        0102030405060708                  # nonce = 0x102030405060708
        0018                              # flags = 24
        6b49d200                          # authtime = 1800000000
        6b49d200                          # starttime = 1800000000
        6b4a5ea0                          # endtime = 1800036000
        0e                                # server: name length 14
        6b72627467742f5245414c4d2d41      # server: name 'krbtgt/REALM-A'
        07                                # server: realm length 7
        5245414c4d2d41                    # server: realm 'REALM-A'
    """,
    # AS-REP, enc sealed under K_MN (seal 3), AD = usage 3 || P(client) (239 octets)
    "as_rep": """
        0b                                # type (AS-REP) = 11
        01                                # version = 1
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0073                              # ticket length = 115
        01                                # ticket.version = 1
        02                                # ticket.kvno = 2
        0e                                # ticket.server: name length 14
        6b72627467742f5245414c4d2d41      # ticket.server: name 'krbtgt/REALM-A'
        07                                # ticket.server: realm length 7
        5245414c4d2d41                    # ticket.server: realm 'REALM-A'
        c2c2c2c2c2c2c2c2c2c2c2c2          # ticket.enc (EncTicketPart): GCM nonce
        004c                              # ticket.enc (EncTicketPart): ciphertext length 76 (plaintext 60 + tag 16)
        a8a47fc4343b7076578aaf610b491ce6  # ticket.enc (EncTicketPart): ciphertext || tag
        da6871f0a23a2f157e57bd78813a95b3
        0e85a9bdc5c611796f7eed8e63973653
        724fe214237ecc9aca8c7bd89c728b5f
        a9270f87ec3a40f0c957e537
        01                                # kvno of the client key = 1
        c3c3c3c3c3c3c3c3c3c3c3c3          # enc (EncKdcRepPart): GCM nonce
        005d                              # enc (EncKdcRepPart): ciphertext length 93 (plaintext 77 + tag 16)
        d161f35a22278810076251be2606755b  # enc (EncKdcRepPart): ciphertext || tag
        4d2eeaec19969994f81183942828f3a5
        a102da1072e48086b1f2cfcca9715246
        b7e6f7c60bf10675425cac5f33ded034
        e40376fe7d417b174b3cb95edfbb1aa9
        768f81e4244376064b5ba9d833
    """,
    # TGS-REQ for nar1@REALM-B at NOW+1 over the TGT; authenticator (seal 4) bound to the body (225 octets)
    "tgs_req": """
        0c                                # type (TGS-REQ) = 12
        01                                # version = 1
        00c3                              # AP-REQ length = 195
        0e                                # type (AP-REQ) = 14
        01                                # version = 1
        00                                # options = 0
        0073                              # ticket length = 115
        01                                # ticket.version = 1
        02                                # ticket.kvno = 2
        0e                                # ticket.server: name length 14
        6b72627467742f5245414c4d2d41      # ticket.server: name 'krbtgt/REALM-A'
        07                                # ticket.server: realm length 7
        5245414c4d2d41                    # ticket.server: realm 'REALM-A'
        c2c2c2c2c2c2c2c2c2c2c2c2          # ticket.enc (EncTicketPart): GCM nonce
        004c                              # ticket.enc (EncTicketPart): ciphertext length 76 (plaintext 60 + tag 16)
        a8a47fc4343b7076578aaf610b491ce6  # ticket.enc (EncTicketPart): ciphertext || tag
        da6871f0a23a2f157e57bd78813a95b3
        0e85a9bdc5c611796f7eed8e63973653
        724fe214237ecc9aca8c7bd89c728b5f
        a9270f87ec3a40f0c957e537
        c4c4c4c4c4c4c4c4c4c4c4c4          # authenticator: GCM nonce
        003d                              # authenticator: ciphertext length 61 (plaintext 45 + tag 16)
        27d17da97ec8796d2884ce9f65f225c9  # authenticator: ciphertext || tag
        fe88e911f4d2dafe6320b350b99f83ec
        923d5da8f2bf1e80bf14b9e408fc302f
        78d5776f894a0f1e6f6fe422e5
        00                                # options (body starts) = 0
        04                                # server: name length 4
        6e617231                          # server: name 'nar1'
        07                                # server: realm length 7
        5245414c4d2d42                    # server: realm 'REALM-B'
        1112131415161718                  # nonce = 0x1112131415161718
        6b49e011                          # till = 1800003601
    """,
    # EncTicketPart of the nar1 ticket: PRE_AUTHENT, SK_SVC, one transited realm (69 octets)
    "ticket.enc_part": """
        0010                              # flags = 16
        6b49d200                          # authtime = 1800000000
        6b49d201                          # starttime = 1800000001
        6b49e011                          # endtime = 1800003601
        a0a1a2a3a4a5a6a7a8a9aaabacadaeaf  # session key
        b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0009                              # authorization TLV octets = 9
        01                                # TLV type = 1
        07                                # TLV length = 7
        5245414c4d2d58                    # TLV value b'REALM-X'
    """,
    # ticket for nar1@REALM-B, sealed under K_NAR kvno 3 (seal 5) (114 octets)
    "ticket": """
        01                                # ticket.version = 1
        03                                # ticket.kvno = 3
        04                                # ticket.server: name length 4
        6e617231                          # ticket.server: name 'nar1'
        07                                # ticket.server: realm length 7
        5245414c4d2d42                    # ticket.server: realm 'REALM-B'
        c5c5c5c5c5c5c5c5c5c5c5c5          # ticket.enc (EncTicketPart): GCM nonce
        0055                              # ticket.enc (EncTicketPart): ciphertext length 85 (plaintext 69 + tag 16)
        632659162e10d6f0fd4dae8969e5317e  # ticket.enc (EncTicketPart): ciphertext || tag
        766b9a35163916a9494c50cb6982640c
        96790be8a05e810fb765a2f7a1aaad85
        bc63c80cb9bc64440a0f0495dd552087
        149349c3ad48a7450a81c5a7e1f0a1c2
        b76e76de01
    """,
    # EncKdcRepPart of the TGS-REP (67 octets)
    "tgs_rep.enc_part": """
        a0a1a2a3a4a5a6a7a8a9aaabacadaeaf  # session key
        b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
        1112131415161718                  # nonce = 0x1112131415161718
        0010                              # flags = 16
        6b49d200                          # authtime = 1800000000
        6b49d201                          # starttime = 1800000001
        6b49e011                          # endtime = 1800003601
        04                                # server: name length 4
        6e617231                          # server: name 'nar1'
        07                                # server: realm length 7
        5245414c4d2d42                    # server: realm 'REALM-B'
    """,
    # TGS-REP, enc sealed under SK_TGT (seal 6), AD = usage 8 || P(client) (228 octets)
    "tgs_rep": """
        0d                                # type (TGS-REP) = 13
        01                                # version = 1
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0072                              # ticket length = 114
        01                                # ticket.version = 1
        03                                # ticket.kvno = 3
        04                                # ticket.server: name length 4
        6e617231                          # ticket.server: name 'nar1'
        07                                # ticket.server: realm length 7
        5245414c4d2d42                    # ticket.server: realm 'REALM-B'
        c5c5c5c5c5c5c5c5c5c5c5c5          # ticket.enc (EncTicketPart): GCM nonce
        0055                              # ticket.enc (EncTicketPart): ciphertext length 85 (plaintext 69 + tag 16)
        632659162e10d6f0fd4dae8969e5317e  # ticket.enc (EncTicketPart): ciphertext || tag
        766b9a35163916a9494c50cb6982640c
        96790be8a05e810fb765a2f7a1aaad85
        bc63c80cb9bc64440a0f0495dd552087
        149349c3ad48a7450a81c5a7e1f0a1c2
        b76e76de01
        00                                # kvno of the client key = 0
        c6c6c6c6c6c6c6c6c6c6c6c6          # enc (EncKdcRepPart): GCM nonce
        0053                              # enc (EncKdcRepPart): ciphertext length 83 (plaintext 67 + tag 16)
        df368ad5e607249d97cd941f0aafd743  # enc (EncKdcRepPart): ciphertext || tag
        cf0856aeb43a957a68eb04e309dd25f9
        b2576e06fcbb0828ca10cbde70e94495
        5457e079f208f849c25d78d313578bb0
        30b2eca59cce71bc86b942a4e870f856
        868471
    """,
    # authenticator of the AP-REQ: ctime NOW+2 s, handover binding (79 octets)
    "ap_req.authenticator": """
        03                                # client: name length 3
        6d6e31                            # client: name 'mn1'
        07                                # client: realm length 7
        5245414c4d2d41                    # client: realm 'REALM-A'
        0006651728b70480                  # ctime (µs) = 0x6651728b70480
        61702d2d61757468                  # nonce b'ap--auth'
        01                                # binding kind = 1
        20010db8000b00000000000000000099  # binding: NCoA
        20010db8000a00000000000000000099  # binding: PCoA
        20010db8000b00000000000000000001  # binding: NAR address
        0102                              # binding: identifier = 258
    """,
    # AP-REQ to the NAR (case 1), mutual; authenticator sealed under SK_SVC (seal 7), AD = usage 11 (228 octets)
    "ap_req": """
        0e                                # type (AP-REQ) = 14
        01                                # version = 1
        01                                # options = 1
        0072                              # ticket length = 114
        01                                # ticket.version = 1
        03                                # ticket.kvno = 3
        04                                # ticket.server: name length 4
        6e617231                          # ticket.server: name 'nar1'
        07                                # ticket.server: realm length 7
        5245414c4d2d42                    # ticket.server: realm 'REALM-B'
        c5c5c5c5c5c5c5c5c5c5c5c5          # ticket.enc (EncTicketPart): GCM nonce
        0055                              # ticket.enc (EncTicketPart): ciphertext length 85 (plaintext 69 + tag 16)
        632659162e10d6f0fd4dae8969e5317e  # ticket.enc (EncTicketPart): ciphertext || tag
        766b9a35163916a9494c50cb6982640c
        96790be8a05e810fb765a2f7a1aaad85
        bc63c80cb9bc64440a0f0495dd552087
        149349c3ad48a7450a81c5a7e1f0a1c2
        b76e76de01
        c7c7c7c7c7c7c7c7c7c7c7c7          # authenticator: GCM nonce
        005f                              # authenticator: ciphertext length 95 (plaintext 79 + tag 16)
        369606267816fc3c5c32b98fb5a28176  # authenticator: ciphertext || tag
        174b01df2b4df920117cb413aa9e0e79
        9095743be15c71f75219290c3c387102
        c9af35de11edc6fb6c6dd2aa4cc0bcef
        767efdcad725e6b3995f82a2b29af19b
        df20881c1a302a10416af4da9ba735
    """,
    # EncApRepPart: the authenticator's ctime and nonce (16 octets)
    "ap_rep.enc_part": """
        0006651728b70480                  # ctime (µs) = 0x6651728b70480
        61702d2d61757468                  # nonce b'ap--auth'
    """,
    # AP-REP from the verifier's ApContext (seal 8), AD = usage 12 (48 octets)
    "ap_rep": """
        0f                                # type (AP-REP) = 15
        01                                # version = 1
        c8c8c8c8c8c8c8c8c8c8c8c8          # enc (EncApRepPart): GCM nonce
        0020                              # enc (EncApRepPart): ciphertext length 32 (plaintext 16 + tag 16)
        a72ac16588ece2dd88931631f9e34194  # enc (EncApRepPart): ciphertext || tag
        d0a54aa6e0ed0c6e7261b922973d297f
    """,
    # KRB-ERROR: SKEW (37) at NOW+3, echoing the TGS nonce (27 octets)
    "krb_error": """
        1e                                # type (KRB-ERROR) = 30
        01                                # version = 1
        0025                              # error code = 37
        6b49d203                          # server time = 1800000003
        1112131415161718                  # nonce = 0x1112131415161718
        0a                                # text length = 10
        636c6f636b20736b6577              # text 'clock skew'
    """,
    # OPEN-REQ from nar1 for an access/REALM-B ticket (seal 9) holding the nar1 EncTicketPart; ctime sealed under
    # K_NAR (seal 10), AD = usage 40 || everything before it (188 octets)
    "open_req": """
        28                                # type (OPEN-REQ) = 40
        01                                # version = 1
        04                                # requester: name length 4
        6e617231                          # requester: name 'nar1'
        07                                # requester: realm length 7
        5245414c4d2d42                    # requester: realm 'REALM-B'
        03                                # kvno = 3
        2122232425262728                  # nonce = 0x2122232425262728
        007c                              # ticket length = 124
        01                                # ticket.version = 1
        04                                # ticket.kvno = 4
        0e                                # ticket.server: name length 14
        6163636573732f5245414c4d2d42      # ticket.server: name 'access/REALM-B'
        07                                # ticket.server: realm length 7
        5245414c4d2d42                    # ticket.server: realm 'REALM-B'
        c9c9c9c9c9c9c9c9c9c9c9c9          # ticket.enc (EncTicketPart): GCM nonce
        0055                              # ticket.enc (EncTicketPart): ciphertext length 85 (plaintext 69 + tag 16)
        21d1644d616206ae8409059e0977b6da  # ticket.enc (EncTicketPart): ciphertext || tag
        bf8f29814e64d858e2da928dd2cf52be
        8c81d7d74c69eef2d35b27da929a61db
        89c69e3aa363899be470c7dd1cbd0103
        2616884ab6d56dff9f0679480e0de91c
        c1275dfd74
        cacacacacacacacacacacaca          # enc (ctime µs): GCM nonce
        0018                              # enc (ctime µs): ciphertext length 24 (plaintext 8 + tag 16)
        93ac5f4cac352b466211ee7af03e02e4  # enc (ctime µs): ciphertext || tag
        8f0dd82d15efdbe1
    """,
    # OPEN-REP: the EncTicketPart sealed under K_NAR (seal 11), AD = usage 41 || octets 0-9 (109 octets)
    "open_rep": """
        29                                # type (OPEN-REP) = 41
        01                                # version = 1
        2122232425262728                  # nonce = 0x2122232425262728
        cbcbcbcbcbcbcbcbcbcbcbcb          # enc (EncTicketPart): GCM nonce
        0055                              # enc (EncTicketPart): ciphertext length 85 (plaintext 69 + tag 16)
        fba537815e79db555fdf500e8042c124  # enc (EncTicketPart): ciphertext || tag
        3bcac4db7c450b9fa1e503330e16bf42
        74a7f7264d4eeab5c565f50dd91c461c
        dcde16d33601f385523b9b3e99f8790e
        d24bfaa3f0de3ea95eb4e618e95b730a
        4f126b74ac
    """,
}
