#!/usr/bin/env python3
"""Peak memory under concurrent conversions, against the decode budget.

Starts a release `tintype serve` with TINTYPE_MAX_DECODE_MEMORY set to each
budget in turn, uploads pictures that decode large (noisy 3000x3000 PNGs, a
43-byte GIF declaring a 10000x10000 screen, a 4000x3000 JPEG), then asks for
variants of all of them from CONCURRENCY clients at once, twice, and prints
the answers and the server's peak RSS (VmHWM) beside the budget.

    bench/memory.py --bin target/release/tintype [--budgets 128,256,512] [--concurrency 16]
"""

import argparse
import collections
import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib

MiB = 1 << 20


def noisy_png(w, h, seed):
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(w * 3) for _ in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def gif_bomb():
    # A 10000x10000 logical screen holding one 1x1 frame: 43 bytes.
    return (b"GIF89a" + struct.pack("<HHBBB", 10000, 10000, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00" + b";")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(bin_path, budget_mib, concurrency, pictures):
    data = tempfile.mkdtemp(prefix="tintype-mem-")
    port = free_port()
    env = dict(os.environ, TINTYPE_DATA_DIR=data, TINTYPE_LISTEN=f"127.0.0.1:{port}",
               TINTYPE_LOG="error", TINTYPE_WORKERS="0",
               TINTYPE_MAX_DECODE_MEMORY=str(budget_mib * MiB), TINTYPE_DECODE_WAIT_SECS="30")
    subprocess.run([bin_path, "user", "create", "m"], env=env, check=True, capture_output=True)
    token = subprocess.run([bin_path, "token", "create", "m"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    srv = subprocess.Popen([bin_path, "serve"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        idle = peak_rss_mib(srv.pid)
        ids = []
        uploads = collections.Counter()
        for name, body in pictures:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            c.request("POST", f"/v1/images?name={name}", body=body,
                      headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            text = r.read()
            uploads[r.status] += 1
            if r.status == 201:
                import json
                ids.append(json.loads(text)["id"])
        after_upload = peak_rss_mib(srv.pid)
        statuses = collections.Counter()
        lock = threading.Lock()
        jobs = [(i, p) for i in ids for p in ("large", "large1080", "thumbnail", "medium")]

        def client(k):
            for n, (i, p) in enumerate(jobs):
                if n % concurrency != k:
                    continue
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    c.request("GET", f"/v1/images/{i}/variants/{p}",
                              headers={"Authorization": f"Bearer {token}"})
                    r = c.getresponse()
                    r.read()
                    s = r.status
                except (OSError, http.client.HTTPException) as e:
                    s = f"error {e}"
                with lock:
                    statuses[s] += 1

        t0 = time.time()
        ts = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.time() - t0
        peak = peak_rss_mib(srv.pid)
        alive = srv.poll() is None
    finally:
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        subprocess.run(["rm", "-rf", data])
    return idle, after_upload, peak, dict(uploads), dict(statuses), took, alive


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--budgets", default="128,256,512")
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    pictures = [(f"noise{i}.png", noisy_png(3000, 3000, i)) for i in range(4)]
    pictures += [("bomb.gif", gif_bomb())]
    print(f"{len(pictures)} pictures, {args.concurrency} concurrent clients, 4 presets each")
    print("| budget MiB | idle RSS MiB | peak RSS MiB | peak - budget MiB | uploads | variant answers | s | alive |")
    print("|---|---|---|---|---|---|---|---|")
    for b in [int(x) for x in args.budgets.split(",")]:
        idle, up, peak, uploads, st, took, alive = run(args.bin, b, args.concurrency, pictures)
        print(f"| {b} | {idle:.0f} | {peak:.0f} | {peak - b:+.0f} | {uploads} | {st} | {took:.1f} | {alive} |")


if __name__ == "__main__":
    main()
