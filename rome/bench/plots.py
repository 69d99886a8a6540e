"""Draw the benchmarks' plots as PNG files (matplotlib, from the bench extra)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from rome.bench.common import percentile  # noqa: E402


def label_log_axes(ax, x: str, y: str, title: str, legend_size: int) -> None:
    """Name a log-scaled plot's axes and title, grid it and give it its legend."""
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)


def save(fig, path: Path) -> None:
    """Write the figure to path and free it."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_batches(by_batch: list[dict], naive: float, path: Path) -> None:
    """Plot throughput against batch size for COPY, Rome's path and one message per update."""
    sizes = [row["batch"] for row in by_batch]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    copy = [row["copy_rows_per_s"] for row in by_batch]
    if all(v is not None for v in copy):
        ax.plot(sizes, copy, "o-", label="COPY + dedup + aggregate (ceiling)")
    ax.plot(sizes, [row["rome_updates_per_s"] for row in by_batch], "s-",
            label="Rome: published → committed")
    ax.axhline(naive, color="grey", linestyle="--", label="one message per update")
    ax.set_xscale("log")
    label_log_axes(ax, "updates per message (batch size)", "updates per second",
                   "Ingest throughput by batch size", 8)
    save(fig, path)


def plot_freshness(delays_ms: list[float], rate: float, path: Path) -> None:
    """Plot the distribution of emit → visible delays."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.hist(delays_ms, bins=50, color="#4a6fa5")
    ordered = delays_ms
    for q, style in ((50, "-"), (99, "--")):
        value = percentile(ordered, q)
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} = {value:.0f} ms")
    ax.set_xlabel("emit → visible in GET /api/races (ms)")
    ax.set_ylabel("messages")
    ax.set_title(f"Freshness at {rate:,.0f} updates/s offered")
    ax.legend()
    save(fig, path)


def plot_growth(steps: list[dict], path: Path) -> None:
    """Plot the apply rate and each read endpoint's p50 and p99 against the history's size."""
    rows = [step["history_rows"] / 1e6 for step in steps]
    fig, (apply, reads) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    apply.plot(rows, [step["apply_rows_per_s"] for step in steps], "o-",
               label="this history")
    apply.plot(rows, [step["apply_rows_per_s_empty"] for step in steps], "s--",
               color="grey", label="an empty history, batch for batch in turn")
    apply.set_ylim(bottom=0)
    apply.legend(fontsize=8, loc="lower right")
    apply.set_xlabel("history rows (millions)")
    apply.set_ylabel("rows per second")
    apply.set_title("Apply rate (record_snapshots, in process)")
    apply.grid(True, alpha=0.3)
    for endpoint in steps[0]["reads_ms"]:
        line, = reads.plot(rows, [step["reads_ms"][endpoint]["p50"] for step in steps], "o-",
                           label=endpoint.replace("{race}", "1").split("?")[0])
        reads.plot(rows, [step["reads_ms"][endpoint]["p99"] for step in steps], ":",
                   color=line.get_color())
    label_log_axes(reads, "history rows (millions)", "ms (solid p50, dotted p99)",
                   "Read endpoints under concurrent readers", 7)
    save(fig, path)


def plot_scale(scales: list[dict], path: Path, cores: int | None = None) -> None:
    """Plot throughput against processes, and each party's CPU per update."""
    processes = [row["processes"] for row in scales]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    rate.plot(processes, [row["updates_per_s"] for row in scales], "o-")
    rate.set_xticks(processes)
    rate.set_ylim(bottom=0)
    rate.set_xlabel("caesar processes (and as many notekeeper processes)")
    rate.set_ylabel("updates per second")
    rate.set_title("Throughput, published → committed"
                   + (f" ({cores} CPUs)" if cores else ""))
    rate.grid(True, alpha=0.3)
    bottom = [0.0] * len(scales)
    for party in scales[0]["cpu_us_per_update"]:
        values = [row["cpu_us_per_update"][party] for row in scales]
        cpu.bar([str(p) for p in processes], values, bottom=bottom, label=party)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cpu.set_xlabel("caesar processes (and as many notekeeper processes)")
    cpu.set_ylabel("CPU µs per update")
    cpu.set_title("Where the CPU goes")
    cpu.legend(fontsize=8)
    save(fig, path)
