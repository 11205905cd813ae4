#!/usr/bin/env python3
"""Writes the starting seeds of fuzz/corpus/<target>/ from the repo's own fixtures and a few
hand-made inputs (DNS messages, compressed bodies, CDN header blocks, sessions). The
committed corpus is this plus what the fuzzers found, minimised with `cargo fuzz cmin`."""
import base64, glob, gzip, hashlib, hmac, json, os, struct, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


# Check files and coordinator.toml: every example and fixture in the repo.
for p in sorted(glob.glob(f"{ROOT}/deploy/**/*.toml", recursive=True)
                + glob.glob(f"{ROOT}/checks/tests/fixtures/*.toml")):
    text = open(p, "rb").read()
    put("coordinator_toml" if p.endswith("coordinator.toml") else "check_toml", text)

# Batches.
RESULT = {"v": 1, "check_id": "c", "vendor": "v", "kind": "tcp", "probe_id": "p1",
          "boot_id": "b", "seq": 1, "started_at": "2026-12-01T00:00:00Z", "status": "ok",
          "timings": {"total_ms": 1.0}, "facts": {"kind": "none"}}
DNS = dict(RESULT, kind="dns", status="fail", failure="dns_servfail", message="answered SERVFAIL",
           facts={"kind": "dns", "qname": "example.com", "qtype": "A", "servers": [
               {"server": "ns1", "address": "192.0.2.53:53", "rcode": "SERVFAIL",
                "answers": ["192.0.2.10"], "rtt_ms": 3.5}], "laggards": []})
put("ingest", json.dumps({"results": [RESULT]}))
put("ingest", json.dumps({"results": [RESULT, dict(RESULT, seq=2, check_id="us-only"), DNS],
                          "counters": {"dropped": 1}}))
put("ingest", json.dumps({"results": [dict(RESULT, future_field=1), {"v": 2}]}))

# DNS: qtype index byte, then a message.
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".") if l) + b"\0"

def rr(owner, rtype, rdata, ttl=300):
    return name(owner) + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata

def msg(qname, qtype, answers=(), auth=(), add=(), rcode=0, aa=True, opt=None):
    flags = 0x8000 | (0x0400 if aa else 0) | rcode
    adds = list(add) + ([opt] if opt else [])
    head = struct.pack(">HHHHHH", 0x1234, flags, 1, len(answers), len(auth), len(adds))
    return head + name(qname) + struct.pack(">HH", qtype, 1) + b"".join(answers) + b"".join(auth) + b"".join(adds)

A, NS, CNAME, SOA, MX, TXT, AAAA, SRV, OPT = 1, 2, 5, 6, 15, 16, 28, 33, 41
soa = name("ns1.example.com") + name("hostmaster.example.com") + struct.pack(">IIIII", 2026120101, 3600, 600, 86400, 300)
nsid = struct.pack(">HH", 3, 8) + b"fra1-ns1"
opt = b"\0" + struct.pack(">HHIH", OPT, 1232, 0, len(nsid)) + nsid
put("dns_answer", bytes([0]) + msg("example.com", A, [rr("example.com", A, bytes([192, 0, 2, 10])), rr("example.com", A, bytes([192, 0, 2, 11]))], opt=opt))
put("dns_answer", bytes([1]) + msg("example.com", AAAA, [rr("example.com", AAAA, bytes(range(16)))]))
put("dns_answer", bytes([2]) + msg("www.example.com", CNAME, [rr("www.example.com", CNAME, name("edge.cdn.example")), rr("edge.cdn.example", A, bytes([198, 51, 100, 7]))]))
put("dns_answer", bytes([3]) + msg("example.com", NS, [], [rr("example.com", NS, name("ns1.example.com")), rr("example.com", NS, name("NS2.Example.COM"))], [rr("ns1.example.com", A, bytes([192, 0, 2, 53]))], aa=False))
put("dns_answer", bytes([4]) + msg("example.com", MX, [rr("example.com", MX, struct.pack(">H", 10) + name("mx.example.com"))]))
put("dns_answer", bytes([5]) + msg("example.com", TXT, [rr("example.com", TXT, b"\x0bv=spf1 -all\x05 more")]))
put("dns_answer", bytes([6]) + msg("example.com", SOA, [rr("example.com", SOA, soa)]))
put("dns_answer", bytes([7]) + msg("_sip._tcp.example.com", SRV, [rr("_sip._tcp.example.com", SRV, struct.pack(">HHH", 1, 5, 5060) + name("sip.example.com"))]))
put("dns_answer", bytes([0]) + msg("missing.example.com", A, [], [rr("example.com", SOA, soa)], rcode=3))
put("dns_answer", bytes([0]) + msg("example.com", A, [], rcode=2, aa=False))

# Bodies: layers, codings, cap (u16le), body.
page = b"<html><body>" + b"hello vantage " * 200 + b"</body></html>"
def body(codings, cap, data):
    return bytes([len(codings)] + codings) + struct.pack("<H", cap) + data
put("body_decode", body([0], 8192, gzip.compress(page)))
put("body_decode", body([0], 100, gzip.compress(page)))
put("body_decode", body([2], 8192, zlib.compress(page)))
put("body_decode", body([0, 0], 8192, gzip.compress(gzip.compress(page))))
put("body_decode", body([0], 8192, gzip.compress(b"one") + gzip.compress(b"two")))
put("body_decode", body([4], 10, page))
put("body_decode", body([6], 10, page))
# A brotli stream of "hello" (a metadata-free, uncompressed meta-block).
put("body_decode", body([3], 8192, bytes.fromhex("0b028068656c6c6f03")))

# HTML pages: max, then the page.
for html in [
    '<html><head><base href="https://static.example/v2/"><link rel="stylesheet" href="app.css">'
    '<script src="/app.js"></script></head><body><img src="logo.png#x"><img src="data:image/png;base64,AA=="></body></html>',
    '<!doctype html><link rel="preload stylesheet" href="//cdn.example/a.css"><script src=" https://cdn.example/a.js "></script>'
    '<img src="a.png"><img src="a.png"><img src="javascript:alert(1)"><img src="">',
]:
    put("html_assets", bytes([8]) + html.encode())

# CDN header blocks.
for block in [
    "cf-cache-status: HIT\ncf-ray: 8a1b2c3d4e5f6789-FRA\nage: 42\nserver: cloudflare",
    "x-cache: Hit from cloudfront\nx-amz-cf-pop: FRA56-P1\nvia: 1.1 abc.cloudfront.net (CloudFront)",
    "x-cache: MISS, HIT\nx-served-by: cache-fra-1234-FRA, cache-lhr-5678-LHR\nx-timer: S1,VS0\nx-cache-hits: 0, 1",
    "x-cache: TCP_MISS from a23-1-2-3.deploy.akamaitechnologies.com (AkamaiGHost/22.1)\nakamai-grn: 0.1",
    "x-cache-status: EXPIRED\nserver: nginx",
    "cdn-cache: BYPASS\nserver: BunnyCDN-DE1-123",
    "age: 0\nx-cache: RefreshHit from cloudfront",
]:
    put("cache_status", block)

# Sessions: later (u16le), the Authorization value, then Cookie values.
NOW, LIFETIME = 1_796_083_200, 12 * 3600
def session(token, now):
    key = hashlib.sha256(token.encode()).digest()
    expiry = now + LIFETIME
    tag = hmac.new(key, f"vantage-page-session|v1|{expiry}".encode(), hashlib.sha256).digest()
    return f"v1.{expiry}." + base64.urlsafe_b64encode(tag).decode().rstrip("=")
READER = "reader-token-0123456789abcdef0123456789"
OPERATOR = "operator-token-0123456789abcdef012345678"
put("auth", struct.pack("<H", 60) + f"Bearer {READER}\ntheme=dark; vantage_session={session(READER, NOW)}; x=1".encode())
put("auth", struct.pack("<H", 0) + f"bearer   {OPERATOR}  \nvantage_session={session(OPERATOR, NOW)}".encode())
put("auth", struct.pack("<H", 9) + b"Basic dXNlcjpwYXNz\nvantage_session=v1.1.AAAA\nvantage_session=")

# Query strings of the read API.
for q in [
    "vendor=fastcdn&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z",
    "check=dns-apex&probe=p1&since=1796083200000&until=2026-12-02T10:00:00.123%2B02:00&limit=100",
    "vendor=v&to=1796083200000",
    "month=2026-12&month=9999-12",
    "vendor=a%20b&region=eu-west&since=1970-01-01T00:00:00Z",
]:
    put("api_params", q)
