"""The picture of a run for people: lines decided per second and outcomes over time, as a PNG."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def write_run_chart(path: Path, posted_ts: list[float], refunded_ts: list[float], started: float,
                    title: str) -> Path:
    """`posted_ts` and `refunded_ts`: one epoch-seconds timestamp per decided line."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    end = max(posted_ts + refunded_ts + [started + 1])
    seconds = list(range(int(end - started) + 1))
    posted = Counter(int(t - started) for t in posted_ts)
    refunded = Counter(int(t - started) for t in refunded_ts)
    per_s_posted = [posted.get(s, 0) for s in seconds]
    per_s_refunded = [refunded.get(s, 0) for s in seconds]
    cum_posted, cum_refunded, p, r = [], [], 0, 0
    for s in seconds:
        p += posted.get(s, 0)
        r += refunded.get(s, 0)
        cum_posted.append(p)
        cum_refunded.append(r)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.bar(seconds, per_s_posted, width=1.0, color="#2e7d32", label="posted")
    top.bar(seconds, per_s_refunded, width=1.0, bottom=per_s_posted, color="#c62828", label="refunded")
    top.set_ylabel("lines decided per second")
    top.legend(loc="upper right")
    top.set_title(title)
    bottom.stackplot(seconds, cum_posted, cum_refunded, colors=["#66bb6a", "#ef5350"],
                     labels=["posted (cumulative)", "refunded (cumulative)"])
    bottom.set_xlabel("seconds since the first notification")
    bottom.set_ylabel("lines")
    bottom.legend(loc="upper left")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
