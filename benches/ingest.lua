-- wrk script for the ingest benchmark (benches/ingest.rs runs it):
--
--   wrk -t2 -c64 -d8s -s benches/ingest.lua http://127.0.0.1:PORT -- WORKLOAD SECRET
--
-- Every request is a distinct ZengaPay collection callback of about 600 bytes, signed as
-- ZengaPay signs: hex HMAC-SHA256 of the raw body with the shared secret, in
-- X-ZENGAPAY-SIGNATURE. WORKLOAD is `ordered` (references increase per thread: an index
-- append) or `random` (UUID references: a random index insert). The sequence is a pure
-- function of the thread number, so the bare server and payhook get identical bodies.
--
-- The fields that change are at the end of the body, so the HMAC's inner hash over the
-- constant prefix is computed once (its mid-state) and each request hashes only the
-- tail: the generator then stays well ahead of the servers it measures.

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end

local IV = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}
for i = 1, 8 do IV[i] = tobit(IV[i]) end

local W = {}

-- One SHA-256 compression of the 64 bytes of `s` from (0-based) `off` into state `H`.
local function compress(H, s, off)
  for i = 0, 15 do
    local a, b, c, d = s:byte(off + i * 4 + 1, off + i * 4 + 4)
    W[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
  end
  for i = 16, 63 do
    local w15, w2 = W[i - 15], W[i - 2]
    local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
    local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
    W[i] = tobit(W[i - 16] + s0 + W[i - 7] + s1)
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for i = 0, 63 do
    local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
    local ch = bxor(band(e, f), band(bnot(e), g))
    local t1 = tobit(h + S1 + ch + K[i + 1] + W[i])
    local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
    local maj = bxor(band(a, b), band(a, c), band(b, c))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + S0 + maj)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

local function copy(H)
  return { H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8] }
end

-- Finishes a hash whose state `H` already covers `done` bytes (a multiple of 64), with the
-- remaining message `tail`; returns the 32-byte digest.
local function finish_state(H, done, tail)
  local bits = (done + #tail) * 8
  local pad = 64 - ((#tail + 9) % 64)
  if pad == 64 then pad = 0 end
  local hi = math.floor(bits / 4294967296)
  local m = tail .. "\128" .. string.rep("\0", pad)
    .. string.char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255),
                   band(rshift(hi, 8), 255), band(hi, 255),
                   band(rshift(bits, 24), 255), band(rshift(bits, 16), 255),
                   band(rshift(bits, 8), 255), band(bits, 255))
  for off = 0, #m - 1, 64 do compress(H, m, off) end
  return H
end

-- The digest's 32 bytes.
local function finish(H, done, tail)
  H = finish_state(H, done, tail)
  local out = {}
  for i = 1, 8 do
    out[i] = string.char(band(rshift(H[i], 24), 255), band(rshift(H[i], 16), 255),
                         band(rshift(H[i], 8), 255), band(H[i], 255))
  end
  return table.concat(out)
end

-- The digest in lower-case hex.
local function finish_hex(H, done, tail)
  H = finish_state(H, done, tail)
  local out = {}
  for i = 1, 8 do out[i] = tohex(H[i], 8) end
  return table.concat(out)
end

-- HMAC-SHA256 keyed states: the inner (key ^ ipad) and outer (key ^ opad) blocks, hashed.
local function keyed(secret)
  if #secret > 64 then secret = finish(copy(IV), 0, secret) end
  local ipad, opad = {}, {}
  for i = 1, 64 do
    local k = i <= #secret and secret:byte(i) or 0
    ipad[i] = string.char(bxor(k, 0x36))
    opad[i] = string.char(bxor(k, 0x5c))
  end
  local inner, outer = copy(IV), copy(IV)
  compress(inner, table.concat(ipad), 0)
  compress(outer, table.concat(opad), 0)
  return inner, outer
end

-- The constant part of the body; the per-request tail follows it.
local PREFIX = table.concat({
  '{"event":"collection.success","data":{"transactionStatus":"SUCCEEDED",',
  '"MNOTransactionReferenceId":"42026012031","currencyCode":"UGX-MTNMM",',
  '"msisdn":"256772123456","channel":"API","transactionType":"INBOUND_MSISDN_CREDIT",',
  '"transactionInitiationDate":"2024-08-05 13:16:43",',
  '"transactionCompletionDate":"2024-08-05 13:16:55",',
  '"narration":"Payment for order at Kampala Central branch, till 004512, counter 3, cashier on duty: Nakato",',
})

local workload, secret
local inner_mid, outer_key, prefix_done, prefix_rest
local counter = 0

function setup(thread)
  setup_count = (setup_count or 0) + 1
  thread:set("thread_id", setup_count)
end

function init(args)
  workload = args[1] or "ordered"
  secret = args[2] or error("usage: -- WORKLOAD SECRET")
  local inner
  inner, outer_key = keyed(secret)
  prefix_done = #PREFIX - #PREFIX % 64
  for off = 0, prefix_done - 1, 64 do compress(inner, PREFIX, off) end
  inner_mid = inner
  prefix_rest = PREFIX:sub(prefix_done + 1)
  math.randomseed(0x5eed + thread_id)
  -- LuaJIT's generator only mixes well after a few draws.
  for _ = 1, 16 do math.random() end
end

local function reference()
  if workload == "random" then
    return string.format("%08x-%04x-4%03x-%04x-%04x%08x",
      math.random(0, 0x7fffffff) * 2 + math.random(0, 1), math.random(0, 0xffff),
      math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffff),
      math.random(0, 0x7fffffff) * 2 + math.random(0, 1))
  end
  return string.format("ord-%02d-%012d", thread_id, counter)
end

function request()
  counter = counter + 1
  local r = reference()
  local tail = prefix_rest .. '"amount":"' .. (1000 + counter % 90000)
    .. '","transactionReference":"' .. r
    .. '","transactionExternalReference":"INV-' .. r .. '"}}'
  local body = PREFIX .. tail:sub(#prefix_rest + 1)
  -- The inner hash already covers the key block and the prefix's whole blocks.
  local ih = finish(copy(inner_mid), 64 + prefix_done, tail)
  local sig = finish_hex(copy(outer_key), 64, ih)
  return wrk.format("POST", "/callbacks/zengapay", {
    ["Host"] = "127.0.0.1",
    ["Content-Type"] = "application/json",
    ["X-ZENGAPAY-SIGNATURE"] = sig,
  }, body)
end

-- One machine-readable line for benches/ingest.rs.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
