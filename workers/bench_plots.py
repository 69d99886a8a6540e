"""Draw the benchmark's two plots as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from workers.bench import percentile  # noqa: E402


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
    ax.set_yscale("log")
    ax.set_xlabel("updates per message (batch size)")
    ax.set_ylabel("updates per second")
    ax.set_title("Ingest throughput by batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
