#!/usr/bin/env python3
"""Throughput and p50/p99 latency of the lab's Flask app with ddtrace and without, side by side.

Runs inside a host where the flask_app role converged (by default the Molecule instance
lab-flask_app, reached with `docker exec`; all traffic stays on that host's 127.0.0.1). It starts
two copies of the app's own gunicorn command line, as the app's user with the unit's environment,
on two loopback ports: one under ddtrace-run (as the unit runs it, traces going to the agent the
unit names), one without. ApacheBench (Debian's apache2-utils, installed there when missing) then
loads them in alternation, route after route, each run bounded by a request count and a time
limit. The copies are stopped at the end; the service itself is left alone.

Usage: tests/bench/app_latency.py [--container lab-flask_app] [--requests 2000] [--concurrency 4]
A measurement, not a test: it asserts nothing about speed.
"""

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import time

ROUTES = ["/", "/api/apm", "/api/trace"]
VARIANTS = {"ddtrace-run": 5901, "plain": 5902}  # loopback ports for the two copies


def sh(container, script, check=True, timeout=120):
    """Run a bash script in the container as root; its stdout."""
    res = subprocess.run(
        ["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True, timeout=timeout
    )
    if check and res.returncode != 0:
        sys.exit(f"in {container}: {script!r} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def unit_settings(container, unit):
    """The unit's argv (ddtrace-run first), environment and user."""
    show = sh(container, f"systemctl show -p ExecStart -p Environment -p User {shlex.quote(unit)}")
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    argv = re.search(r"argv\[\]=(.*?) ;", props["ExecStart"]).group(1).split()
    if not argv[0].endswith("/ddtrace-run"):
        sys.exit(f"{unit} does not run under ddtrace-run: {argv}")
    return argv, props["Environment"].split(), props["User"]


def copy_argv(argv, port):
    """The unit's gunicorn command line on 127.0.0.1:port, without its access log."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == "--bind":
            out += ["--bind", f"127.0.0.1:{port}"]
            skip = True
        elif arg == "--access-logfile":
            skip = True
        else:
            out.append(arg)
    return out


def start(container, name, argv, env, user, port):
    """Starts one copy in the background; returns its PID once it answers."""
    runtime = f"/tmp/bench-{name}"
    env = [e for e in env if not e.startswith("XDG_RUNTIME_DIR=")] + [f"XDG_RUNTIME_DIR={runtime}"]
    cmd = " ".join(shlex.quote(a) for a in ["runuser", "-u", user, "--", "env", *env, *argv])
    pid = sh(
        container, f"install -d -o {user} -m 0700 {runtime} && " f"(setsid {cmd} >/dev/null 2>&1 </dev/null & echo $!)"
    ).strip()
    probe = f"python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)\""
    deadline = time.monotonic() + 60
    while sh(container, f"{probe} 2>/dev/null && echo up", check=False).strip() != "up":
        if time.monotonic() > deadline:
            sys.exit(f"{name} copy did not answer on 127.0.0.1:{port} within 60 s")
        time.sleep(0.5)
    return pid


def ab(container, port, path, requests, concurrency, time_limit):
    """One bounded ApacheBench run: (completed, req/s, p50 ms, p99 ms)."""
    csv = f"/tmp/bench-ab-{port}.csv"
    # -t first: ab's -t sets -n 50000, which the -n after it overrides.
    out = sh(
        container,
        f"ab -q -t {time_limit} -n {requests} -c {concurrency} -e {csv} " f"http://127.0.0.1:{port}{path} && cat {csv}",
        timeout=time_limit + 30,
    )
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if failed or non_2xx:
        sys.exit(f"127.0.0.1:{port}{path}: {failed} failed requests, non-2xx: {non_2xx and non_2xx.group(1)}")
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    pct = dict(re.findall(r"^(\d+),([\d.]+)$", out, re.M))
    return done, rps, float(pct["50"]), float(pct["99"])


def cpu_seconds(container, unit):
    """CPU time (user + system, s) used so far by a unit's main process; None without one."""
    pid = sh(container, f"systemctl show -p MainPID --value {shlex.quote(unit)}", check=False).strip()
    if pid in ("", "0"):
        return None
    fields = sh(container, f"cut -d' ' -f14,15 /proc/{pid}/stat; getconf CLK_TCK", check=False).split()
    return (int(fields[0]) + int(fields[1])) / int(fields[2]) if len(fields) == 3 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--container", default="lab-flask_app")
    parser.add_argument("--unit", default="flask-app")
    parser.add_argument("--requests", type=int, default=2000, help="per run (one route, one variant)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--time-limit", type=int, default=30, help="seconds, per run")
    parser.add_argument("--warmup", type=int, default=200, help="requests per variant before measuring")
    parser.add_argument(
        "--intake-unit",
        default="datadog-agent-trace",
        help="the agent's trace receiver, whose CPU time during the ddtrace-run runs is shown",
    )
    args = parser.parse_args()

    sh(
        args.container,
        "command -v ab >/dev/null || DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -qq --no-install-recommends apache2-utils >/dev/null",
        timeout=300,
    )
    argv, env, user = unit_settings(args.container, args.unit)
    commands = {
        "ddtrace-run": copy_argv(argv, VARIANTS["ddtrace-run"]),
        "plain": copy_argv(argv[1:], VARIANTS["plain"]),
    }
    pids = {}
    try:
        for name, port in VARIANTS.items():
            pids[name] = start(args.container, name, commands[name], env, user, port)
        for name, port in VARIANTS.items():
            ab(args.container, port, "/", args.warmup, args.concurrency, args.time_limit)
        results = {name: [] for name in VARIANTS}
        intake_cpu, traced_wall = 0.0, 0.0
        for path in ROUTES:  # alternate the variants so both see the same machine load
            for name, port in VARIANTS.items():
                cpu_before, wall_before = cpu_seconds(args.container, args.intake_unit), time.monotonic()
                results[name].append(
                    (path, *ab(args.container, port, path, args.requests, args.concurrency, args.time_limit))
                )
                cpu_after = cpu_seconds(args.container, args.intake_unit)
                if name == "ddtrace-run" and None not in (cpu_before, cpu_after):
                    intake_cpu += cpu_after - cpu_before
                    traced_wall += time.monotonic() - wall_before
    finally:
        for pid in pids.values():
            # setsid made the copy its own session (id = its PID): stop that session, nothing else.
            sh(
                args.container,
                f"pkill -TERM -s {pid}; for i in $(seq 50); do pgrep -s {pid} >/dev/null || exit 0; "
                f"sleep 0.2; done; pkill -KILL -s {pid}",
                check=False,
            )

    cpus = sh(args.container, "nproc").strip()
    print(
        f"{args.container}: gunicorn {' '.join(commands['plain'][1:])}; {cpus} CPUs; ab -c {args.concurrency}, "
        f"at most {args.requests} requests / {args.time_limit} s per run\n"
    )
    print(f"{'route':<12} {'variant':<12} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for i, path in enumerate(ROUTES):
        for name in VARIANTS:
            _, done, rps, p50, p99 = results[name][i]
            print(f"{path:<12} {name:<12} {done:>8} {rps:>9.1f} {p50:>8.2f} {p99:>8.2f}")
    print()
    summary = {
        name: (
            statistics.median(r[2] for r in rows),
            statistics.median(r[3] for r in rows),
            statistics.median(r[4] for r in rows),
        )
        for name, rows in results.items()
    }
    for name, (rps, p50, p99) in summary.items():
        print(f"{'median':<12} {name:<12} {'':>8} {rps:>9.1f} {p50:>8.2f} {p99:>8.2f}")
    (t_rps, t_p50, t_p99), (p_rps, p_p50, p_p99) = summary["ddtrace-run"], summary["plain"]
    print(
        f"\nddtrace-run vs plain: throughput {100 * (t_rps / p_rps - 1):+.0f}%, "
        f"p50 {t_p50 - p_p50:+.2f} ms, p99 {t_p99 - p_p99:+.2f} ms"
    )
    if traced_wall:
        print(
            f"{args.intake_unit} (same CPUs) used {intake_cpu:.1f} s CPU during the "
            f"{traced_wall:.1f} s of ddtrace-run runs"
        )


if __name__ == "__main__":
    main()
