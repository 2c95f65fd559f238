#!/usr/bin/env python3
"""Soak driver for one `torsion serve` process (see benches/soak.sh, which starts it).

Drives a mix of clients for DURATION seconds against the echo, line, chat, HTTP, upload and
UDP echo services, samples the server once a second (RSS and descriptors from /proc, open
connections, timers pending, accepts and panics from /stats.json), then checks:

- no sampled resource trends upward after the warm-up (the median of the last third is at
  most the median of the first third after warm-up, plus a small slack);
- every well-behaved client saw no error and no wrong byte;
- the server logged no panic and reports none.

Writes a table (soak.md), the samples (samples.csv) and a chart (soak.svg) to OUT. Exit
status 1 when a check fails. Standard library only.
"""
import argparse
import collections
import csv
import errno
import json
import os
import random
import socket
import statistics
import struct
import sys
import threading
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--pid", type=int, required=True)
p.add_argument("--log", required=True, help="the server's log file (checked for panics)")
p.add_argument("--ports", required=True, help="echo,line,chat,http,upload,udp")
p.add_argument("--duration", type=float, default=1800)
p.add_argument("--warmup", type=float, default=None, help="seconds (default: a fifth)")
p.add_argument("--out", required=True)
p.add_argument("--faults", action="store_true",
               help="faults are injected: a reset or an early end is a clean error, not a failure")
args = p.parse_args()
ECHO, LINE, CHAT, HTTP, UPLOAD, UDP = (int(x) for x in args.ports.split(","))
HOST = "127.0.0.1"
warmup = args.warmup if args.warmup is not None else args.duration / 5
stop = threading.Event()
lock = threading.Lock()
ok = collections.Counter()       # well-behaved exchanges completed, per client kind
errors = collections.Counter()   # well-behaved exchanges that failed, per client kind
failures = []                    # the first few messages of those failures
hostile = collections.Counter()  # hostile clients run (their errors are expected)
clean = collections.Counter()    # with --faults: exchanges ended by a reset or an early end


def record(kind, error=None):
    with lock:
        # A connection the server reset may also show as ENOTCONN (shutdown after the RST).
        ended = isinstance(error, (ConnectionError, EOFError)) or (
            isinstance(error, OSError) and error.errno == errno.ENOTCONN)
        if args.faults and ended:
            clean[kind] += 1
        elif error is None:
            ok[kind] += 1
        else:
            errors[kind] += 1
            if len(failures) < 20:
                failures.append(f"{time.strftime('%H:%M:%S')} {kind}: {error!r}")


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_line(f):
    line = f.readline()
    if not line.endswith(b"\n"):
        raise EOFError(f"EOF in a line: {line[:40]!r}")
    return line


def loop(kind, body, pause=0.0):
    """Runs `body` until the end; a well-behaved client's exception is an error."""
    def run():
        rng = random.Random(hash(kind) & 0xFFFF)
        while not stop.is_set():
            try:
                body(rng)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                record(kind, e)
            if pause:
                stop.wait(pause)
    t = threading.Thread(target=run, name=kind, daemon=True)
    t.start()
    return t


def steady_echo(rng):
    with connect(ECHO) as s:
        for _ in range(200):
            if stop.is_set():
                return
            data = rng.randbytes(rng.randint(1, 16384))
            s.sendall(data)
            if recv_exact(s, len(data)) != data:
                raise ValueError("echo came back altered")
            record("steady echo")


def churn(rng):
    with connect(ECHO) as s:
        data = rng.randbytes(64)
        s.sendall(data)
        if recv_exact(s, 64) != data:
            raise ValueError("echo came back altered")
    record("churn")


def line_client(rng):
    with connect(LINE) as s:
        f = s.makefile("rb")
        for i in range(50):
            msg = b"line %d %s\n" % (i, rng.randbytes(20).hex().encode())
            s.sendall(msg)
            got = recv_line(f)
            if got.rstrip(b"\r\n") != msg.rstrip(b"\n"):
                raise ValueError(f"line came back altered: {got[:60]!r}")
        record("line")


def chat_client(rng):
    with connect(CHAT) as s:
        f = s.makefile("rb")
        nick = "soak%d" % rng.randint(0, 10**9)
        s.sendall(b"/nick %s\n/who\n" % nick.encode())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if nick.encode() in recv_line(f):
                break
        else:
            raise ValueError("/who never listed our nickname")
        s.sendall(b"/quit\n")
    record("chat")


def http_pipelined(rng):
    with connect(HTTP) as s:
        f = s.makefile("rb")
        n = rng.randint(1, 10)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n" * n)
        for _ in range(n):
            status = recv_line(f)
            if not status.startswith(b"HTTP/1.1 200"):
                raise ValueError(f"status {status!r}")
            length = None
            while (line := recv_line(f)) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = f.read(length)
            if len(body) != length:
                raise EOFError("short body")
        record("pipelined http")


def upload_client(rng):
    data = rng.randbytes(rng.randint(1, 200_000))
    name = "soak-%d.bin" % rng.randint(0, 50)
    with connect(UPLOAD) as s:
        header = b"post|%d|%s" % (len(data), name.encode())
        frame = lambda b: struct.pack(">I", len(b)) + b  # noqa: E731
        s.sendall(frame(header) + frame(data))
        s.shutdown(socket.SHUT_WR)
        reply = s.makefile("rb").read()
        if not reply:
            raise EOFError("no answer")
        if b"ok" not in reply.lower() and b"stored" not in reply.lower():
            raise ValueError(f"upload answered {reply[:60]!r}")
    record("upload")


# Hostile clients: whatever happens to them is fine, as long as the server stays healthy.

def hostile_run(kind, fn):
    def body(rng):
        try:
            fn(rng)
        except OSError:
            pass
        with lock:
            hostile[kind] += 1
    return body


def slow_reader(rng):
    with connect(ECHO) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(2)
        for _ in range(64):
            s.sendall(b"x" * 65536)
            s.recv(512)
            stop.wait(0.05)


def reset_mid_write(rng):
    s = connect(rng.choice([ECHO, LINE, HTTP, UPLOAD]))
    s.sendall(rng.randbytes(rng.randint(1, 100_000)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def oversized_line(rng):
    with connect(LINE) as s:
        s.settimeout(5)
        s.sendall(b"y" * 200_000)
        s.recv(100)


def slowloris(rng):
    with connect(HTTP, timeout=30) as s:
        for b in b"GET / HTTP/1.1\r\nHost: slow\r\nX-A: " + b"a" * 60:
            if stop.is_set():
                return
            s.sendall(bytes([b]))
            stop.wait(0.5)


def cancelled_upload(rng):
    with connect(UPLOAD) as s:
        header = b"post|100000|cancel-%d.bin" % rng.randint(0, 9)
        s.sendall(struct.pack(">I", len(header)) + header + struct.pack(">I", 100000))
        s.sendall(rng.randbytes(50_000))


def udp_flood(rng):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    for _ in range(2000):
        try:
            s.sendto(b"f" * 512, (HOST, UDP))
        except BlockingIOError:
            pass
    s.close()
    stop.wait(0.2)


def sample(t0):
    with open(f"/proc/{args.pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{args.pid}/fd"))
    with urllib.request.urlopen(f"http://{HOST}:{HTTP}/stats.json", timeout=10) as r:
        st = json.load(r)
    with lock:
        good, bad = sum(ok.values()), sum(errors.values())
    return {"t": round(time.monotonic() - t0, 1), "rss_kib": rss // 1024, "fds": fds,
            "open": st["open"], "timers": st["timers_pending"], "accepted": st["accepted"],
            "panics": st["panics"], "ok": good, "errors": bad}


def svg(rows, path):
    metrics = [("rss_kib", "RSS (KiB)"), ("fds", "descriptors"), ("open", "connections"),
               ("timers", "timers pending")]
    w, h, pad = 640, 150, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h * len(metrics)}" '
           'font-family="sans-serif" font-size="11">']
    tmax = max(r["t"] for r in rows) or 1
    for i, (key, label) in enumerate(metrics):
        y0 = i * h
        vals = [r[key] for r in rows]
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or 1
        pts = " ".join(f"{pad + (r['t'] / tmax) * (w - 2 * pad):.1f},"
                       f"{y0 + h - 20 - (r[key] - lo) / span * (h - 40):.1f}" for r in rows)
        wx = pad + warmup / tmax * (w - 2 * pad)
        out.append(f'<text x="{pad}" y="{y0 + 14}">{label}: {lo} .. {hi}</text>')
        out.append(f'<line x1="{wx:.1f}" y1="{y0 + 20}" x2="{wx:.1f}" y2="{y0 + h - 20}" '
                   'stroke="#bbb" stroke-dasharray="4"/>')
        out.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>')
    out.append(f'<text x="{pad}" y="{h * len(metrics) - 4}">seconds 0 .. {tmax:.0f}; '
               'dashed: end of warm-up</text></svg>')
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    os.makedirs(args.out, exist_ok=True)
    threads = [
        loop("steady echo", steady_echo), loop("steady echo", steady_echo),
        loop("churn", churn, 0.01), loop("churn", churn, 0.01),
        loop("line", line_client, 0.05), loop("chat", chat_client, 0.2),
        loop("pipelined http", http_pipelined, 0.01), loop("upload", upload_client, 0.2),
        loop("slow reader", hostile_run("slow reader", slow_reader), 0.5),
        loop("reset mid-write", hostile_run("reset mid-write", reset_mid_write), 0.05),
        loop("oversized line", hostile_run("oversized line", oversized_line), 0.5),
        loop("slowloris", hostile_run("slowloris", slowloris)),
        loop("slowloris", hostile_run("slowloris", slowloris)),
        loop("cancelled upload", hostile_run("cancelled upload", cancelled_upload), 0.3),
        loop("udp flood", hostile_run("udp flood", udp_flood)),
    ]
    t0 = time.monotonic()
    rows = []
    while time.monotonic() - t0 < args.duration:
        time.sleep(max(0.0, len(rows) + 1 - (time.monotonic() - t0)))
        try:
            rows.append(sample(t0))
        except Exception as e:  # noqa: BLE001
            record("sampler", e)
    stop.set()
    for t in threads:
        t.join(timeout=40)

    with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    svg(rows, os.path.join(args.out, "soak.svg"))

    problems = []
    after = [r for r in rows if r["t"] >= warmup]
    third = max(1, len(after) // 3)
    slack = {"rss_kib": 4096, "fds": 16, "open": 16, "timers": 32}
    trend = []
    for key, extra in slack.items():
        first = statistics.median(r[key] for r in after[:third])
        last = statistics.median(r[key] for r in after[-third:])
        grew = last > first * 1.10 + extra
        trend.append((key, first, last, "GREW" if grew else "flat"))
        if grew:
            problems.append(f"{key} trends upward after warm-up: median {first} -> {last}")
    if sum(errors.values()):
        problems.append(f"well-behaved clients saw {sum(errors.values())} errors")
    with open(args.log, errors="replace") as f:
        panics = [l for l in f if "panic" in l.lower()]
    if panics or any(r["panics"] for r in rows):
        problems.append(f"the server panicked: {panics[:3]}")

    md = [f"# Soak: {args.duration:.0f} s, warm-up {warmup:.0f} s",
          "", f"Written by benches/soak.sh on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
          "", "## Verdict", "", "PASS" if not problems else "FAIL: " + "; ".join(problems),
          "", "## Trend after warm-up (median of the first third vs the last third)", "",
          "| metric | first | last | |", "|---|---:|---:|---|"]
    md += [f"| {k} | {a} | {b} | {v} |" for k, a, b, v in trend]
    md += ["", "## Clients", "", "| client | completed | errors | clean errors (faults on) |",
           "|---|---:|---:|---:|"]
    for kind in sorted(set(ok) | set(errors) | set(clean)):
        md.append(f"| {kind} | {ok[kind]} | {errors[kind]} | {clean[kind]} |")
    for kind in sorted(hostile):
        md.append(f"| {kind} (hostile: errors expected) | {hostile[kind]} | - | - |")
    if failures:
        md += ["", "First failures:", ""] + [f"- {x}" for x in failures]
    md += ["", "## Samples (every 10th second)", "", "| " + " | ".join(rows[0]) + " |",
           "|" + "---:|" * len(rows[0])]
    md += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows[::10]]
    md += ["", "All samples: samples.csv; chart: soak.svg."]
    with open(os.path.join(args.out, "soak.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[:20]))
    sys.exit(1 if problems else 0)


main()
