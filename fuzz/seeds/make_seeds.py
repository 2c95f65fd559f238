#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/seed-N) from inputs of the unit tests.

Each input is prefixed with the selector byte the target reads first (variant, limits,
second chunking). Re-run after adding inputs; libFuzzer adds what it finds beside them.
"""
import os

HTTP = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /missing HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=abcd\r\nX\r\n1;ext=abcd\r\nX\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"HEAD /stream HTTP/1.0\r\n\r\nGET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"BREW / HTCPCP/1.0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"\r\n\r\nGET /%2e%2e/x?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
]
SEEDS = {
    "line": [b"\x00one\r\ntwo\r\n\r\nthree", b"\x01a\nbb\nccc\n", b"\x02lenient\r\nbare\nx\r\r\n",
             b"\x03xxababyyabab\xffz", b"\x04" + b"far too long for the limit\r\nok\r\n"],
    "netstring": [b"\x40" + b"5:hello,0:,18:with, comma: colon,3:\x00\xff\n,3:ab",
                  b"\x05" + b"10:0123456789,", b"\x40" + b"01:a,", b"\x40" + b":x,", b"\x40" + b"3:abc;"],
    "length_prefixed": [b"\x01\x00\x01a\x00\x00\x00\x00\x04last", b"\x00\x01a\x00\x04last\xff",
                        b"\x02\x00\x00\x00\x03abc\x00\x00\x01\x00", b"\x30\x05hello\x00"],
    "http_head": [b"\x00" + h for h in HTTP[:1] + HTTP[4:]] + [
        b"\x07GET /a?b HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\nrest",
        b"\x00GET / HTTP/2.0\r\n\r\n", b"\xffGET " + b"/x" * 200 + b" HTTP/1.1\r\n\r\n"],
    "http_chunked": [b"\x015\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT",
                     b"\x7f1;a=12345\r\nX\r\n1;b=12345\r\nX\r\n0\r\nTrailer: x\r\n\r\n",
                     b"\x7fffffffffffff\r\n", b"\x05" + b"3\r\nabcd\r\n", b"\x20" + b"0\r\n\r\n"],
    "http_server": [bytes([s]) + h for s, h in zip([0, 9, 17, 64, 200, 3, 130, 77, 255], HTTP)],
    "http_url": [b"http://example.com:8080/a/b?x=1#top\x00../c?d", b"http://[::1]:80/\x00//other/x",
                 b"HTTP://Example.COM?q\x00/abs", b"https://example.com/", b"http://u:p@h/",
                 b"http://h:99999/", b"http://h/\x00http://g:81/y#z"],
    "http_response": [b"\x00HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                      b"\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
                      b"\x00HTTP/1.0 200 OK\r\n\r\nall of it", b"\x80HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n",
                      b"\x00SMTP 220 hello\r\n\r\n", b"\x00HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"],
    "upload": [b"\x81\x00\x00\x00\x10post|5|hello.txt\x00\x00\x00\x05hello",
               b"\x81\x00\x00\x00\x0fpost|0|empty.md\x00\x00\x00\x0fpost|1|again.md\x00\x00\x00\x01x",
               b"\x80post|5|hi.txt\nhello", b"\x80post|3|a.bpost|2|c.dxy", b"\x80post|-1|x", b"\x80put|3|a\nabc"],
    "command_wire": [b"\x0fecho\x00hello world\x00", b"\x00\x00\x00\x00\x06ohello\x00\x00\x00\x05x\x00\x00\x00\x00",
                     b"\x20\x00\x00\x00\x09t\x00\x00\x00\x00\x00\x00\x03\xe8\x00\x00\x00\x04rnope",
                     b"\x02a\x00b\x00c\x00", b"\x05\x00"],
    "endpoint": [b"tcp:8080:interface=127.0.0.1:backlog=50", b"tcp6:0:interface=\\:\\:1", b"unix:/tmp/x.sock:mode=660",
                 b"udp:9999:reuseport=1", b"tls:443:cert=c.pem:key=k.pem:alpn=h2,http/1.1", b"tcp:host=example.com:port=80:timeout=5",
                 b"unix:path=/tmp/x:timeout=1", b"ssl:host=h:port=1:ca=ca.pem", b"tcp:http"],
    "resp": [b"\x00*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n", b"\xc0SET k \"a\\x41 b\" 'c d'\r\n\r\n*0\r\n",
             b"\x03*1\r\n$4\r\nabcd\r\n", b"\x40*3\r\n", b"\x00*1\r\n$-1\r\n", b"\x00\"unbalanced\r\n",
             b"\x00*1\r\n$100000000000000000000000000\r\n"],
}

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
for target, inputs in SEEDS.items():
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(inputs):
        with open(os.path.join(d, f"seed-{i}"), "wb") as f:
            f.write(data)
