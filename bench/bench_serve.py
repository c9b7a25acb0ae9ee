"""Throughput and latency of the sample container's `serve` against the classic SageMaker sample stack.

Both stacks serve the same model (the sample trained on the shipped iris data) on loopback and get the
same load: single-row CSV POST /invocations over keep-alive connections, from the same load generator
(wrk with a Lua script; a bounded Python keep-alive client when wrk cannot be had). The classic stack is
nginx -> gunicorn (sync workers, one per CPU) -> a Flask app that parses every request with pandas, as in
the classic decision-trees sample (bench/classic/). Prints requests/s, p50 and p99 of both and the ratio;
writes the figures to bench/out/serve.json. Not part of `make test`.

With `--baseline DIR` (another copy of `container/`, e.g. from an earlier commit) it compares the two
sample servers instead, alternating them for `--rounds` rounds, and prints the best figures of each and
their ratios (best requests/s; least p50 and p99) to bench/out/serve-baseline.json.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python bench/bench_serve.py [--seconds 10] [--connections 8]
    .venv/bin/python bench/bench_serve.py --baseline /tmp/before/container --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the path set-up, so that it runs from a checkout
from sagedock.image import LocalImage, build_local_image  # noqa: E402
from sagedock.optml import layout_opt_ml, pack_model, unpack_model  # noqa: E402
from sagedock.programs import ServeProcess, free_port, run_train  # noqa: E402

CLASSIC = Path(__file__).resolve().parent / "classic"
BODY = b"5.1,3.5,1.4,0.2"
GOALS = {"ratio": 3.0, "p99_ms": 5.0}


@dataclass
class Result:
    """One stack under one load."""

    stack: str
    tool: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


# ---------------------------------------------------------------- tools


def ensure_apt(*packages: str) -> list[str]:
    """Install missing Debian packages when we can; returns those still missing."""
    binaries = {"nginx": "nginx", "wrk": "wrk"}
    missing = [
        p for p in packages if shutil.which(binaries[p]) is None and not Path(f"/usr/sbin/{p}").exists()
    ]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            env=env,
            check=False,
            capture_output=True,
            timeout=600,
        )
    return [p for p in packages if shutil.which(binaries[p]) is None and not Path(f"/usr/sbin/{p}").exists()]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


# ---------------------------------------------------------------- load generators

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "text/csv"
done = function(summary, latency, requests)
  io.write(string.format("SUMMARY %d %d %d %d %d %d\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(
    url: str, seconds: float, connections: int, workdir: Path
) -> tuple[int, int, float, float, float]:
    """(requests, errors, rps, p50 ms, p99 ms) from wrk with one thread."""
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY.decode()))
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), f"{url}/invocations"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    match = re.search(r"SUMMARY (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}\n{result.stderr}")
    requests, errors, bad_status, duration_us, p50_us, p99_us = (int(g) for g in match.groups())
    return requests, errors + bad_status, requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000


def _client(port: int, deadline: float, queue: multiprocessing.Queue[tuple[list[float], int]]) -> None:
    latencies: list[float] = []
    errors = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "text/csv"}
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=BODY, headers=headers)
            reply = connection.getresponse()
            reply.read()
            if reply.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        latencies.append(time.perf_counter() - started)
    connection.close()
    queue.put((latencies, errors))


def run_python_client(port: int, seconds: float, connections: int) -> tuple[int, int, float, float, float]:
    """The fallback load generator: one process per connection, bounded in time."""
    queue: multiprocessing.Queue[tuple[list[float], int]] = multiprocessing.Queue()
    deadline = time.monotonic() + seconds
    workers = [
        multiprocessing.Process(target=_client, args=(port, deadline, queue)) for _ in range(connections)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    latencies = sorted(latency for batch, _ in results for latency in batch)
    errors = sum(errors for _, errors in results)
    if not latencies:
        return 0, errors, 0.0, 0.0, 0.0
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies), errors, len(latencies) / seconds, p50, p99


def measure(stack: str, url: str, port: int, args: argparse.Namespace, workdir: Path) -> Result:
    """Warm up, then measure one stack."""
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    tool = "wrk" if use_wrk else "python keep-alive client"
    for seconds in (args.warmup, args.seconds):
        if use_wrk:
            figures = run_wrk(url, seconds, args.connections, workdir)
        else:
            figures = run_python_client(port, seconds, args.connections)
    requests, errors, rps, p50, p99 = figures
    return Result(stack, tool, requests, errors, rps, p50, p99)


# ---------------------------------------------------------------- the two stacks


def train_model(image: LocalImage, workdir: Path) -> Path:
    """The sample trained on the shipped data; returns model.tar.gz."""
    opt_ml = workdir / "train"
    layout_opt_ml(
        opt_ml, hyperparameters={"max_leaf_nodes": "5"}, channels={"train": ROOT / "container" / "data"}
    )
    outcome = run_train(image, opt_ml, timeout=300)
    if not outcome.ok:
        raise SystemExit(f"bench: training the sample failed: {outcome.failure_reason}")
    return pack_model(opt_ml, workdir / "model.tar.gz")


@contextlib.contextmanager
def sample_stack(
    image: LocalImage, model_tar: Path, workdir: Path, workers: int
) -> Iterator[tuple[str, int]]:
    """The sample container's serve, as process mode runs it."""
    port = free_port()
    server = ServeProcess.start(
        image, model_tar, port=port, workdir=workdir / "sample", extra_env={"SAGEDOCK_WORKERS": str(workers)}
    )
    try:
        if not server.wait_healthy(60):
            raise SystemExit(f"bench: the sample server did not start: {server.output_tail()}")
        yield server.url, port
    finally:
        server.stop(grace=10)


def _start(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def classic_stack(model_tar: Path, workdir: Path, workers: int) -> Iterator[tuple[str, int]]:
    """nginx -> gunicorn (sync workers) -> Flask + pandas, with the same model."""
    nginx = nginx_binary()
    assert nginx is not None
    home = workdir / "classic"
    opt_ml = home / "opt_ml"
    unpack_model(model_tar, opt_ml / "model")
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (home / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = f"user {os.environ.get('USER', 'root')};" if os.geteuid() == 0 else ""
    config = (CLASSIC / "nginx.conf.template").read_text()
    for name, value in (("USER", user), ("WORKDIR", str(home)), ("PORT", str(port))):
        config = config.replace(f"@{name}@", value)
    (home / "nginx.conf").write_text(config)
    env = {
        **os.environ,
        "SAGEDOCK_OPT_ML": str(opt_ml),
        "PYTHONPATH": str(CLASSIC),
        "OMP_NUM_THREADS": "1",
    }
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "--timeout",
        "60",
        "-k",
        "sync",
        "-b",
        f"unix:{home / 'gunicorn.sock'}",
        "-w",
        str(workers),
        "wsgi:application",
    ]
    processes = [
        _start(gunicorn, CLASSIC, env, home / "gunicorn.log"),
        _start([nginx, "-c", str(home / "nginx.conf")], home, env, home / "nginx.log"),
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = "\n".join((home / name).read_text() for name in ("gunicorn.log", "nginx.log"))
                raise SystemExit(f"bench: the classic stack did not start:\n{logs}")
            time.sleep(0.1)
        yield url, port
    finally:
        for process in reversed(processes):
            _stop(process)


def same_answer(url_port: tuple[str, int]) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", url_port[1], timeout=10)
    connection.request("POST", "/invocations", body=BODY, headers={"Content-Type": "text/csv"})
    return connection.getresponse().read().strip()


def compare_with_baseline(args: argparse.Namespace) -> int:
    """This checkout's sample server against the one in `args.baseline`, alternating, same model."""
    ensure_apt("wrk")
    runs: dict[str, list[Result]] = {"this checkout": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="sagedock-bench-") as tmp:
        workdir = Path(tmp)
        images = {
            "this checkout": build_local_image(ROOT / "container", workdir / "image"),
            "baseline": build_local_image(args.baseline, workdir / "baseline-image"),
        }
        model_tar = train_model(images["this checkout"], workdir)
        expected: bytes | None = None
        for round_number in range(1, args.rounds + 1):
            order = list(images.items())
            for name, image in order if round_number % 2 else reversed(order):  # neither always goes first
                home = workdir / f"{name}-{round_number}".replace(" ", "-")
                with sample_stack(image, model_tar, home, args.workers) as stack:
                    answer = same_answer(stack)
                    if expected is not None and answer != expected:
                        raise SystemExit(f"bench: the servers disagree: {answer!r} != {expected!r}")
                    expected = answer
                    result = measure(name, *stack, args, workdir)
                runs[name].append(result)
                print(
                    f"round {round_number} {name:<14} {result.rps:>9.0f} req/s  p50 {result.p50_ms:.3f} ms  "
                    f"p99 {result.p99_ms:.3f} ms  errors {result.errors}",
                    flush=True,
                )
    best = {
        name: {
            "rps": max(r.rps for r in results),
            "p50_ms": min(r.p50_ms for r in results),
            "p99_ms": min(r.p99_ms for r in results),
        }
        for name, results in runs.items()
    }
    ours, theirs = best["this checkout"], best["baseline"]
    ratios = {key: ours[key] / theirs[key] for key in ours}
    print(
        f"\nbest of {args.rounds} alternating rounds, {args.connections} connections, "
        f"{args.workers} workers: "
        f"this checkout {ours['rps']:.0f} req/s p50 {ours['p50_ms']:.3f} ms p99 {ours['p99_ms']:.3f} ms; "
        f"baseline {theirs['rps']:.0f} req/s p50 {theirs['p50_ms']:.3f} ms p99 {theirs['p99_ms']:.3f} ms"
    )
    print(
        f"ratio this/baseline: req/s {ratios['rps']:.3f}x, p50 {ratios['p50_ms']:.3f}x, "
        f"p99 {ratios['p99_ms']:.3f}x"
    )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "runs": {name: [asdict(r) for r in results] for name, results in runs.items()},
        "best": best,
        "ratios": ratios,
        "args": {key: str(value) for key, value in vars(args).items()},
    }
    (out / "serve-baseline.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per stack")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per stack")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="server workers")
    parser.add_argument("--python-client", action="store_true", help="use the Python client, not wrk")
    parser.add_argument("--baseline", type=Path, help="another container/ to compare the sample with")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds with --baseline")
    args = parser.parse_args()

    if args.baseline is not None:
        return compare_with_baseline(args)
    missing = ensure_apt("wrk", "nginx")
    if "wrk" in missing:
        print("bench: wrk is not available: using the bounded Python keep-alive client", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sagedock-bench-") as tmp:
        workdir = Path(tmp)
        image = build_local_image(ROOT / "container", workdir / "image")
        model_tar = train_model(image, workdir)
        with sample_stack(image, model_tar, workdir, args.workers) as (url, port):
            expected = same_answer((url, port))
            results.append(measure("sample serve", url, port, args, workdir))
        if "nginx" in missing:
            print("bench: nginx is not available (apt-get failed): the classic stack is skipped", flush=True)
        else:
            with classic_stack(model_tar, workdir, args.workers) as (url, port):
                answer = same_answer((url, port))
                if answer != expected:
                    raise SystemExit(f"bench: the stacks disagree: {answer!r} != {expected!r}")
                results.append(measure("classic nginx+gunicorn+flask", url, port, args, workdir))

    print(
        f"\nsingle-row CSV POST /invocations, keep-alive, {args.connections} connections, "
        f"{args.workers} workers, {os.cpu_count()} CPUs, {args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    print(f"{'stack':<32} {'tool':<8} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(
            f"{r.stack:<32} {r.tool[:8]:<8} {r.requests:>9} {r.errors:>7} {r.rps:>9.0f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        )
    summary: dict[str, object] = {"results": [asdict(r) for r in results], "args": vars(args)}
    if len(results) == 2:
        ratio = results[0].rps / results[1].rps
        summary["ratio"] = ratio
        verdict = ratio >= GOALS["ratio"] and results[0].p99_ms < GOALS["p99_ms"]
        print(
            f"throughput ratio: {ratio:.1f}x (goal >= {GOALS['ratio']:g}x); "
            f"sample p99 {results[0].p99_ms:.2f} ms (goal < {GOALS['p99_ms']:g} ms): "
            f"{'met' if verdict else 'NOT met'}"
        )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
