-- fmipfast: a Wireshark/tshark dissector for the messages of draft-koodli-mobileip-fastv6-02 as fmipfast
-- puts them on the wire (docs/design.md §2): ICMPv6 type 200, one Code per message, the draft's layouts after
-- the 4-octet ICMPv6 header, then sub-options (1-octet type, 1-octet length counting its 2-octet header;
-- types 1-8 of docs/design.md §2, and 9, the MN's link-layer address the project's Attach carries).
--
--   tshark -X lua_script:$(fmipfast wireshark) -r demo.pcap -Y fmipfast
--   wireshark -X lua_script:$(fmipfast wireshark) demo.pcap      (or copy it to the personal plugins folder)
--
-- Wireshark's ICMPv6 dissector keeps the ICMPv6 header (type, code, checksum and its validation); this one
-- runs after it (a post-dissector) and adds an "fmipfast" tree with the message's fields, every sub-option,
-- and expert warnings for what fmipfast's own decoder rejects (a sub-option length below 2 or past the end,
-- a Length field that disagrees with the message).  The ICMPv6 type and the seven Codes are preferences
-- (Edit > Preferences > Protocols > FMIPFAST, or tshark -o fmipfast.icmp_type:201 -o fmipfast.attach:15 ...),
-- named as the [codepoints] keys, for deployments that remap them.  Filter fields: fmipfast.message,
-- fmipfast.code, fmipfast.identifier, fmipfast.ncoa, fmipfast.nar_address, fmipfast.status, fmipfast.mac,
-- fmipfast.principal.name, fmipfast.principal.realm, fmipfast.lkb, fmipfast.hc.lifetime_ms, ...
--
-- Checked by tests/test_wireshark.py against fmipfast's decoder on the shipped sample and a demo capture.

local fmip = Proto("fmipfast", "fmipfast (Fast Handovers for Mobile IPv6, draft-koodli-mobileip-fastv6-02)")
fmip.prefs.icmp_type = Pref.uint("ICMPv6 type", 200, "The ICMPv6 type of fmipfast messages (docs/design.md §2)")
-- The Codes, as [codepoints] in fmipfast's configuration names them (a deployment may remap them).
local CODE_KEYS = { "handover_redirect", "handover_redirect_ack", "handover", "authenticated_mn", "attach",
                    "handover_error", "forwarding_disable" }
for kind, key in ipairs(CODE_KEYS) do
  fmip.prefs[key] = Pref.uint("Code of " .. key, kind, "[codepoints] " .. key .. " (default " .. kind .. ")")
end

-- by message kind: the default profile's code (1..7), which fixes the layout
local MESSAGES = {
  [1] = "Handover Redirect", [2] = "Handover Redirect Ack", [3] = "ICMP Handover", [4] = "Authenticated-MN",
  [5] = "Attach", [6] = "Handover Error", [7] = "Forwarding Disable",
}
local SUBOPTIONS = {
  [1] = "Kerberos principal/realm", [2] = "Light-weight Kerberos message", [3] = "Handover control",
  [4] = "Address", [5] = "Encapsulated packet", [6] = "Identifier", [7] = "Message authentication code",
  [8] = "Status", [9] = "Link-layer address",
}
local STATUS = {
  [0] = "accepted", [1] = "NCoA in use", [128] = "unspecified", [129] = "administratively prohibited",
  [130] = "insufficient resources", [131] = "authentication failed",
}
local ADDRESS_KIND = { [1] = "PCoA", [2] = "NCoA", [3] = "NAR address" }
local LKB_SUBTYPES = {
  [10] = "lwkerb AS-REQ", [11] = "lwkerb AS-REP", [12] = "lwkerb TGS-REQ", [13] = "lwkerb TGS-REP",
  [14] = "lwkerb AP-REQ", [15] = "lwkerb AP-REP", [30] = "lwkerb KRB-ERROR", [40] = "lwkerb OPEN-REQ",
  [41] = "lwkerb OPEN-REP", [0x80] = "GSS-API initiator token", [0x81] = "GSS-API acceptor MIC",
}

local f = {
  message = ProtoField.string("fmipfast.message", "Message"),
  code = ProtoField.uint8("fmipfast.code", "Code"),
  prefix_size = ProtoField.uint8("fmipfast.prefix_size", "Prefix size"),
  flags = ProtoField.uint8("fmipfast.flags", "Flags", base.HEX),
  flag_m = ProtoField.bool("fmipfast.flags.m", "M (link-layer address present)", 8, nil, 0x80),
  flag_c = ProtoField.bool("fmipfast.flags.c", "C (NCoA present)", 8, nil, 0x40),
  flag_s = ProtoField.bool("fmipfast.flags.s", "S (principal/realm sub-option present)", 8, nil, 0x20),
  nar_address = ProtoField.ipv6("fmipfast.nar_address", "NAR address"),
  nar_mac = ProtoField.bytes("fmipfast.nar_mac", "NAR link-layer address (EUI-64)", base.COLON),
  ncoa = ProtoField.ipv6("fmipfast.ncoa", "New care-of address"),
  mn_mac = ProtoField.bytes("fmipfast.mn_mac", "MN link-layer address (EUI-64)", base.COLON),
  length = ProtoField.uint16("fmipfast.length", "Length (whole message)"),
  subopt = ProtoField.uint8("fmipfast.subopt.type", "Sub-option", base.DEC, SUBOPTIONS),
  subopt_len = ProtoField.uint8("fmipfast.subopt.length", "Length"),
  principal_name = ProtoField.string("fmipfast.principal.name", "Principal"),
  principal_realm = ProtoField.string("fmipfast.principal.realm", "Realm"),
  lkb = ProtoField.bytes("fmipfast.lkb", "LKB PDU fragment"),
  lkb_subtype = ProtoField.uint8("fmipfast.lkb.subtype", "LKB sub-type (mechanism)", base.HEX, LKB_SUBTYPES),
  lkb_mechanism = ProtoField.string("fmipfast.lkb.mechanism", "Kerberos mechanism"),
  lkb_token_len = ProtoField.uint16("fmipfast.lkb.gss_length", "GSS-API token length"),
  hc_buffer = ProtoField.bool("fmipfast.hc.buffer", "U (buffer at the NAR)", 8, nil, 0x80),
  hc_max = ProtoField.uint16("fmipfast.hc.max_packets", "Max buffered packets"),
  hc_lifetime = ProtoField.uint32("fmipfast.hc.lifetime_ms", "Lifetime (ms)"),
  addr_kind = ProtoField.uint8("fmipfast.address.kind", "Address kind", base.DEC, ADDRESS_KIND),
  addr = ProtoField.ipv6("fmipfast.address", "Address"),
  encapsulated = ProtoField.bytes("fmipfast.encapsulated", "Encapsulated packet"),
  identifier = ProtoField.uint16("fmipfast.identifier", "Identifier"),
  mac = ProtoField.bytes("fmipfast.mac", "MAC (HMAC-SHA-256-128)"),
  status = ProtoField.uint8("fmipfast.status", "Status", base.DEC, STATUS),
  lla = ProtoField.bytes("fmipfast.link_layer_address", "Link-layer address (EUI-64)", base.COLON),
  unknown = ProtoField.bytes("fmipfast.subopt.value", "Value"),
}
fmip.fields = {
  f.message, f.code, f.prefix_size, f.flags, f.flag_m, f.flag_c, f.flag_s, f.nar_address, f.nar_mac, f.ncoa,
  f.mn_mac, f.length, f.subopt, f.subopt_len, f.principal_name, f.principal_realm, f.lkb, f.lkb_subtype,
  f.lkb_mechanism, f.lkb_token_len, f.hc_buffer,
  f.hc_max, f.hc_lifetime, f.addr_kind, f.addr, f.encapsulated, f.identifier, f.mac, f.status, f.lla, f.unknown,
}

local e_malformed = ProtoExpert.new("fmipfast.malformed", "Malformed fmipfast message", expert.group.MALFORMED,
                                    expert.severity.WARN)
fmip.experts = { e_malformed }

local icmpv6_type_f = Field.new("icmpv6.type")
local ipv6_plen_f = Field.new("ipv6.plen")

-- The end of the IPv6 packet the ICMPv6 message at `at` belongs to: the innermost IPv6 header before it.
local function packet_end(at)
  local best, stop = nil, nil
  for _, plen in ipairs({ ipv6_plen_f() }) do
    local header = plen.offset - 4
    if header < at and (best == nil or header > best) then
      best, stop = header, header + 40 + plen.value
    end
  end
  return stop
end

local function suboptions(tvb, tree, off, stop)
  local lkb_starts = true
  while off < stop do
    if off + 2 > stop then
      tree:add_proto_expert_info(e_malformed, "a sub-option header runs past the end of the message")
      return
    end
    local typ, len = tvb(off, 1):uint(), tvb(off + 1, 1):uint()
    if len < 2 or off + len > stop then
      tree:add_proto_expert_info(e_malformed, string.format(
        "sub-option %d: length %d is below 2 or runs past the end of the message", typ, len))
      return
    end
    local st = tree:add(f.subopt, tvb(off, len), typ)
    st:add(f.subopt_len, tvb(off + 1, 1))
    local v, vlen = off + 2, len - 2
    if typ == 1 and vlen >= 1 then
      local nlen = tvb(v, 1):uint()
      if 1 + nlen <= vlen then
        if nlen > 0 then st:add(f.principal_name, tvb(v + 1, nlen)) end
        if vlen - 1 - nlen > 0 then st:add(f.principal_realm, tvb(v + 1 + nlen, vlen - 1 - nlen)) end
      else
        st:add_proto_expert_info(e_malformed, "principal name length runs past the sub-option")
      end
    elseif typ == 2 and vlen > 0 then
      st:add(f.lkb, tvb(v, vlen))
      if lkb_starts then
        -- the first octet of an LKB PDU names its mechanism: below 0x80 a light-weight Kerberos message type,
        -- 0x80/0x81 standard Kerberos through GSS-API (docs/security.md)
        local sub = tvb(v, 1):uint()
        st:add(f.lkb_subtype, tvb(v, 1))
        st:add(f.lkb_mechanism, tvb(v, 1), sub >= 0x80 and "gssapi" or "lwkerb")
        if sub >= 0x80 and vlen >= 4 then st:add(f.lkb_token_len, tvb(v + 2, 2)) end
      end
      lkb_starts = vlen < 253  -- a full fragment is continued by the next type-2 sub-option
    elseif typ == 3 and vlen == 7 then
      st:add(f.hc_buffer, tvb(v, 1))
      st:add(f.hc_max, tvb(v + 1, 2))
      st:add(f.hc_lifetime, tvb(v + 3, 4))
    elseif typ == 4 and vlen == 18 then
      st:add(f.addr_kind, tvb(v, 1))
      st:add(f.addr, tvb(v + 2, 16))
    elseif typ == 5 and vlen > 0 then
      st:add(f.encapsulated, tvb(v, vlen))
    elseif typ == 6 and vlen == 4 then
      st:add(f.identifier, tvb(v, 2))
    elseif typ == 7 and vlen == 16 then
      st:add(f.mac, tvb(v, 16))
    elseif typ == 8 and vlen == 1 then
      st:add(f.status, tvb(v, 1))
    elseif typ == 9 and vlen == 8 then
      st:add(f.lla, tvb(v, 8))
    elseif vlen > 0 then
      if typ >= 1 and typ <= 9 then
        st:add_proto_expert_info(e_malformed, string.format("sub-option %d has a %d-octet value", typ, vlen))
      end
      st:add(f.unknown, tvb(v, vlen))
    end
    off = off + len
  end
end

-- code on the wire -> message kind (1..7), from the preferences
local function kinds()
  local out = {}
  for kind, key in ipairs(CODE_KEYS) do out[fmip.prefs[key]] = kind end
  return out
end

local function dissect_one(tvb, tree, at, stop, code)
  local name = MESSAGES[code]
  if name == nil then return end
  local t = tree:add(fmip, tvb(at, stop - at))
  t:add(f.message, tvb(at, 2), name)
  t:add(f.code, tvb(at + 1, 1))
  t:append_text(": " .. name)
  local need = (code == 1 or code == 3 or code == 6) and 24 or 10
  if stop - at < need then
    t:add_proto_expert_info(e_malformed, string.format("%s: %d octets, at least %d needed", name, stop - at, need))
    return
  end
  local pos
  if code == 1 or code == 3 then
    t:add(f.prefix_size, tvb(at + 4, 1))
    local flags = tvb(at + 5, 1):uint()
    local ft = t:add(f.flags, tvb(at + 5, 1))
    ft:add(f.flag_m, tvb(at + 5, 1))
    if code == 1 then
      ft:add(f.flag_c, tvb(at + 5, 1))
      ft:add(f.flag_s, tvb(at + 5, 1))
      t:add(f.nar_address, tvb(at + 8, 16))
    else
      t:add(f.ncoa, tvb(at + 8, 16))
    end
    pos = at + 24
    if bit.band(flags, 0x80) ~= 0 and pos + 8 <= stop then
      t:add(code == 1 and f.nar_mac or f.mn_mac, tvb(pos, 8))
      pos = pos + 8
    end
    if code == 1 and bit.band(flags, 0x40) ~= 0 and pos + 16 <= stop then
      t:add(f.ncoa, tvb(pos, 16))
      pos = pos + 16
    end
  elseif code == 6 then
    t:add(f.ncoa, tvb(at + 8, 16))
    pos = at + 24
  else
    local lt = t:add(f.length, tvb(at + 8, 2))
    if tvb(at + 8, 2):uint() ~= stop - at then
      lt:add_proto_expert_info(e_malformed, string.format("Length says %d octets, the message has %d",
                                                          tvb(at + 8, 2):uint(), stop - at))
    end
    pos = at + 10
  end
  suboptions(tvb, t, pos, stop)
end

function fmip.dissector(tvb, pinfo, tree)
  local by_code = nil
  for _, typ in ipairs({ icmpv6_type_f() }) do
    if typ.value == fmip.prefs.icmp_type then
      local at = typ.offset
      local stop = packet_end(at)
      if stop ~= nil and stop <= tvb:len() and at + 4 <= stop then
        by_code = by_code or kinds()
        local kind = by_code[tvb(at + 1, 1):uint()]
        pinfo.cols.protocol:set("FMIPFAST")
        if kind ~= nil then
          pinfo.cols.info:set(MESSAGES[kind])
          dissect_one(tvb, tree, at, stop, kind)
        end
      end
    end
  end
end

register_postdissector(fmip)
