"""Write bench/REPORT.md, with plots, from the benchmarks' results in bench/results/.

Every benchmark prints its lines and writes a JSON file; this reads those files (whatever
has been run: a missing one is named with the command that makes it) and renders one page
people can read: a summary of each figure against its reference (the reference measured in
the same run wherever there is one: a real etcd, raw Docker, dnsmasq, a direct pod IP),
then a section per benchmark, with matplotlib PNGs in bench/plots/ of throughput and
latency against cluster size (scheduler) and against the reference (store, apiserver).

    .venv/bin/python bench/report.py          (or: make bench-report, which runs them all)
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI machine
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "bench" / "plots"
REPORT = ROOT / "bench" / "REPORT.md"


@dataclass
class Section:
    """One benchmark's part of the report."""

    title: str
    command: str
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(figure, kemu, reference, ratio) rows for the summary table."""
    body: list[str] = field(default_factory=list)


def _load(name: str) -> Any | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _f(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _bars(path: Path, title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
          ylabel: str, *, log: bool = False) -> str:
    """A grouped bar chart; the Markdown that shows it."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![{title}]({path.relative_to(REPORT.parent).as_posix()})"


# ---- one function per benchmark: its results -> a Section ---------------------------------


def store(d: dict[str, Any], s: Section) -> None:
    rows = []
    for line in d["lines"]:
        unit = line["unit"]
        fmt = "{:.2f} ms" if unit == "ms" else "{:.0f}/s"
        rows.append((line["name"], _f(line["kemu"], fmt), _f(line["etcd"], fmt),
                     _f(line["ratio"], "{:.2f}")))
    s.summary += [(f"store {r[0]}", *r[1:]) for r in rows
                  if r[0] in ("put c=64", "range c=64", "watch 1000 p99 @100k")]
    s.summary.append(("store RSS, 100k keys", f"{d['store_rss_mb_100k_keys']:.0f} MB",
                      _f(d.get("etcd_rss_mb_100k_keys"), "{:.0f} MB"),
                      _f(d.get("etcd_rss_mb_100k_keys") and
                         d["etcd_rss_mb_100k_keys"] / d["store_rss_mb_100k_keys"],
                         "{:.2f}")))
    s.body += ["Ratios are kemu/etcd for throughput and etcd/kemu for latency, so above 1 "
               "is kemu ahead.", "", *_table(("line", "kemu", "etcd", "ratio"), rows)]
    throughput = [x for x in d["lines"] if x["unit"] == "/s" and x["etcd"]]
    s.body.append(_bars(PLOTS / "store-throughput.png", "store throughput (higher is better)",
                        [x["name"] for x in throughput],
                        {"kemu store": [x["kemu"] for x in throughput],
                         "etcd 3.4": [x["etcd"] for x in throughput]}, "operations/s",
                        log=True))


def apiserver(d: dict[str, Any], s: Section) -> None:
    ours, ref = d["kemu-store"], d.get("etcd", {})
    rows = []
    for line, v in ours.items():
        r = ref.get(line)
        rows.append((line, f"{v['per_s']:.0f}/s", f"{v['p50_ms']:.1f} ms",
                     f"{v['p99_ms']:.1f} ms", _f(r and r["per_s"], "{:.0f}/s"),
                     _f(r and r["p99_ms"], "{:.1f} ms"),
                     _f(r and v["per_s"] / r["per_s"], "{:.2f}")))
    worst = max((v["p99_ms"] for k, v in ours.items()
                 if k.startswith(("create", "update"))), default=None)
    s.summary.append(("apiserver mutating p99 (SLO <= 1000 ms)", _f(worst, "{:.0f} ms"),
                      "1000 ms", _f(worst and 1000 / worst, "{:.1f}")))
    for key in ("create c=16", "watch 100 watchers"):
        if key in ours and key in ref:
            s.summary.append((f"apiserver {key}", f"{ours[key]['per_s']:.0f}/s",
                              f"{ref[key]['per_s']:.0f}/s (on etcd)",
                              f"{ours[key]['per_s'] / ref[key]['per_s']:.2f}"))
    s.body += ["The same apiserver binary on each store; the reference is it on etcd 3.4. "
               "Kubernetes' API SLO: p99 <= 1 s for single-object mutating calls.", "",
               *_table(("line", "rate", "p50", "p99", "rate on etcd", "p99 on etcd",
                        "ratio"), rows)]
    labels = [k for k in ours if k in ref]
    s.body.append(_bars(PLOTS / "apiserver-p99.png", "apiserver p99 latency (lower is better)",
                        labels, {"on kemu store": [ours[k]["p99_ms"] for k in labels],
                                 "on etcd 3.4": [ref[k]["p99_ms"] for k in labels]}, "ms",
                        log=True))


def scheduler(d: dict[str, Any], s: Section) -> None:
    runs = sorted(d["runs"], key=lambda r: r["nodes"])
    threshold = d["reference"]["pods_per_s"]
    rows = []
    for r in runs:
        rss = r.get("peak_rss_mb", {})
        rows.append((str(r["nodes"]), str(r["pods"]), f"{r['pods_per_s']:.0f}",
                     f"{r['ratio']:.2f}", f"{r['latency_s']['p50']:.2f} s",
                     f"{r['latency_s']['p99']:.2f} s",
                     ", ".join(f"{k} {v:.0f}" for k, v in rss.items())))
        s.summary.append((f"scheduler {r['nodes']} nodes / {r['pods']} pods",
                          f"{r['pods_per_s']:.0f} pods/s", f"{threshold:g} pods/s",
                          f"{r['ratio']:.2f}"))
    s.body += [f"Reference: {d['reference']['name']} of {threshold:g} pods/s "
               "(target at least that; stretch 1,000).", "",
               *_table(("nodes", "pods", "pods/s", "ratio", "p50", "p99", "peak RSS MB"),
                       rows)]
    if runs:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
        nodes = [r["nodes"] for r in runs]
        left.plot(nodes, [r["pods_per_s"] for r in runs], "o-", label="kemu")
        left.axhline(threshold, color="grey", linestyle="--", label=f"{threshold:g} pods/s")
        left.set_ylim(bottom=0)
        left.set_xlabel("nodes")
        left.set_ylabel("pods scheduled / s")
        left.set_title("throughput")
        left.legend(fontsize=8)
        for q in ("p50", "p99"):
            right.plot(nodes, [r["latency_s"][q] for r in runs], "o-", label=q)
        right.set_ylim(bottom=0)
        right.set_xlabel("nodes")
        right.set_ylabel("create to bound, s")
        right.set_title("scheduling latency")
        right.legend(fontsize=8)
        fig.tight_layout()
        PLOTS.mkdir(parents=True, exist_ok=True)
        fig.savefig(PLOTS / "scheduler.png", dpi=110)
        plt.close(fig)
        s.body.append("![scheduler throughput and latency against cluster size]"
                      "(plots/scheduler.png)")


def memory(d: dict[str, Any], s: Section) -> None:
    total, ref = d["control_plane_peak_mb"], d["reference"]["mb"]
    s.summary.append((f"control plane peak RSS ({d['nodes']} nodes, {d['pods']} pods; "
                      f"target {d['target_mb']:.0f} MB)", f"{total:.0f} MB",
                      f"{ref:.0f} MB (k3s server)", f"{ref / total:.2f}"))
    s.body += [f"Reference: {d['reference']['name']}.", "",
               *_table(("process", "peak MB", "settled MB"),
                       [(name, f"{mb:.0f}", _f(d.get("settled_rss_mb", {}).get(name)))
                        for name, mb in d["peak_rss_mb"].items()]),
               "```", *d.get("lines", []), "```", ""]


def pods(d: dict[str, Any], s: Section) -> None:
    for key, label in (("single", "pod start"), ("burst", "burst of pods")):
        v = d[key]
        s.summary.append((f"{label} p99", f"{v['kemu']['p99']:.2f} s",
                          f"{v['raw']['p99']:.2f} s (docker run)",
                          f"{v['raw']['p99'] / v['kemu']['p99']:.2f}"))
    s.body += ["```", *d.get("lines", []), "```", ""]


def dns(d: dict[str, Any], s: Section) -> None:
    s.summary.append(("DNS queries/s", f"{d['kemu']['qps']:.0f}",
                      f"{d['dnsmasq']['qps']:.0f} (dnsmasq)", f"{d['ratio']:.2f}"))
    s.body += _table(("server", "queries/s", "p50", "p99", "lost"), [
        (name, f"{v['qps']:.0f}", f"{v['p50_ms']:.3f} ms", f"{v['p99_ms']:.3f} ms",
         str(v["lost"])) for name, v in (("kemu", d["kemu"]), ("dnsmasq", d["dnsmasq"]))])


def datapath(d: dict[str, Any], s: Section) -> None:
    rows = []
    for key, unit in (("tcp", "Gbit/s"), ("http", "req/s"), ("http_close", "req/s")):
        v = d[key]
        rows.append((key, f"{v['clusterip']:.1f} {unit}", f"{v['direct']:.1f} {unit}",
                     f"{v['clusterip'] / v['direct']:.2f}"))
        s.summary.append((f"ClusterIP {key}", *rows[-1][1:]))
    s.body += _table(("traffic", "through a ClusterIP", "to the pod IP", "ratio"), rows)


def up(d: dict[str, Any], s: Section) -> None:
    s.summary.append((f"kemu up --nodes {d['nodes']} (median)", f"{d['median']:.1f} s",
                      "33 s (k3d, minikube's time-to-k8s)", f"{33 / d['median']:.2f}"))


SECTIONS: list[tuple[str, Callable[[Any, Section], None], str, str]] = [
    ("store", store, "Store against etcd 3.4", "python bench/bench_store.py"),
    ("apiserver", apiserver, "Apiserver on kemu's store and on etcd",
     "python bench/bench_apiserver.py"),
    ("scheduler", scheduler, "Scheduler throughput on simulated nodes",
     "python bench/bench_scheduler.py"),
    ("memory", memory, "Control-plane memory", "python bench/bench_memory.py"),
    ("pods", pods, "Pod start-up against raw Docker", "python bench/bench_pods.py"),
    ("dns", dns, "Cluster DNS against dnsmasq", "python bench/bench_dns.py"),
    ("datapath", datapath, "Service datapath against a direct pod IP",
     "python bench/bench_datapath.py"),
    ("up", up, "Time to a working cluster", "python bench/bench_up.py"),
]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render() -> str:
    sections: list[Section] = []
    missing: list[str] = []
    for name, build, title, command in SECTIONS:
        data = _load(name)
        if data is None:
            missing.append(f"- {title}: not run yet (`{command}`)")
            continue
        try:
            section = Section(title, command)
            build(data, section)
            sections.append(section)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            missing.append(f"- {title}: bench/results/{name}.json is not in the expected "
                           f"shape ({type(e).__name__}: {e}); run `{command}` again")
    out = ["# kemu benchmark report", "",
           f"Generated by `bench/report.py` from bench/results/*.json (commit {_commit()}). "
           "Each benchmark measures its reference in the same run on the same machine "
           "(2 cores here), so the ratios compare like with like; absolute figures move "
           "with the machine's load. Regenerate everything with `make bench-report`.", "",
           "## Summary", "",
           *_table(("figure", "kemu", "reference", "ratio (above 1: kemu ahead)"),
                   [row for s in sections for row in s.summary])]
    if missing:
        out += ["Not in this report:", "", *missing, ""]
    for s in sections:
        out += [f"## {s.title}", "", f"`{s.command}`", "", *s.body, ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    REPORT.write_text(render())
    print(f"wrote {REPORT.relative_to(ROOT)} and {PLOTS.relative_to(ROOT)}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
