"""What process mode's sandbox costs a serve: start-up to the first ping, and latency through the bridge.

The sample container's `serve` runs in process mode twice per round, alternating: in its sandbox (its own
8080, reached through the bridge: host TCP -> unix socket -> the sandbox's 127.0.0.1:8080) and without it
(`SAGEDOCK_SANDBOX=off`: the host port itself). Each run is a fresh interpreter, so the sandbox is probed
and started as `sagedock local up` would. Per run: the time from start to the first 200 on /ping, the
median of single-row POST /invocations each on a new connection, and the median over one keep-alive
connection. Prints the minima over the rounds of each figure, for both, and their ratios (sandboxed over
plain) and differences; writes them to bench/out/sandbox.json. Not part of `make test`.

    .venv/bin/python bench/bench_sandbox.py [--rounds 5] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the path set-up, so that it runs from a checkout
from bench_serve import train_model  # noqa: E402  (bench/ is this script's directory)

from sagedock import sandbox  # noqa: E402
from sagedock.image import build_local_image  # noqa: E402
from sagedock.programs import ServeProcess, free_port  # noqa: E402

BODY = b"5.1,3.5,1.4,0.2"
HEADERS = {"Content-Type": "text/csv"}
FIGURES = ("first_ping_ms", "new_connection_ms", "keep_alive_ms")


def _post(connection: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    connection.request("POST", "/invocations", body=BODY, headers=HEADERS)
    reply = connection.getresponse()
    reply.read()
    if reply.status != 200:
        raise SystemExit(f"bench: /invocations answered {reply.status}")
    return (time.perf_counter() - started) * 1000


def child(model_tar: Path, requests: int) -> dict[str, float | bool]:
    """One serve, started and measured in this interpreter (sandboxed unless SAGEDOCK_SANDBOX=off)."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        work = Path(scratch)
        image = build_local_image(ROOT / "container", work / "image")
        started = time.perf_counter()
        server = ServeProcess.start(image, model_tar, port=free_port(), workdir=work / "serve")
        try:
            if not server.wait_healthy(60):
                raise SystemExit("bench: the sample serve never answered /ping")
            first_ping = (time.perf_counter() - started) * 1000
            fresh = []
            for _ in range(requests):
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                fresh.append(_post(connection))
                connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            kept = [_post(connection) for _ in range(requests)]
            connection.close()
        finally:
            server.stop(grace=10)
    return {
        "sandboxed": sandbox.support().available,
        "first_ping_ms": first_ping,
        "new_connection_ms": statistics.median(fresh),
        "keep_alive_ms": statistics.median(kept),
    }


def run_child(model_tar: Path, requests: int, *, sandboxed: bool) -> dict[str, float | bool]:
    env = {key: value for key, value in os.environ.items() if key != "SAGEDOCK_SANDBOX"}
    if not sandboxed:
        env["SAGEDOCK_SANDBOX"] = "off"
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(model_tar), "--requests", str(requests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: a measured serve failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, float | bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.requests)), flush=True)
        return 0
    if not sandbox.support().available:
        print(f"bench: no sandbox on this machine ({sandbox.support().reason}): nothing to compare")
        return 0
    runs: dict[str, list[dict[str, float | bool]]] = {"sandboxed": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-model-") as scratch:
        work = Path(scratch)
        model_tar = train_model(build_local_image(ROOT / "container", work / "image"), work)
        for round_number in range(1, args.rounds + 1):
            for name in ("sandboxed", "plain") if round_number % 2 else ("plain", "sandboxed"):
                result = run_child(model_tar, args.requests, sandboxed=name == "sandboxed")
                if bool(result["sandboxed"]) != (name == "sandboxed"):
                    raise SystemExit(f"bench: the {name} run was not {name}")
                runs[name].append(result)
            print(f"round {round_number}/{args.rounds} done", flush=True)
    best = {name: {f: min(float(r[f]) for r in results) for f in FIGURES} for name, results in runs.items()}
    print(f"\nprocess-mode serve, minima of {args.rounds} alternating rounds, {args.requests} requests each:")
    print(f"{'figure':<20}{'sandboxed':>12}{'plain':>12}{'ratio':>9}{'difference':>13}")
    report: dict[str, object] = {"rounds": args.rounds, "requests": args.requests, "best": best}
    for figure in FIGURES:
        inside, outside = best["sandboxed"][figure], best["plain"][figure]
        print(
            f"{figure:<20}{inside:>10.2f}ms{outside:>10.2f}ms{inside / outside:>8.2f}x"
            f"{inside - outside:>+11.2f}ms"
        )
        report[f"{figure}_ratio"] = inside / outside
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "sandbox.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
