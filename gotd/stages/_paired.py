"""The compare stage's statistics: paired differences between methods over the same texts and seeds, 95% intervals.

A model's score on a set of texts is a ratio of per-text sums, transformed:

* perplexity: :math:`\\exp(\\sum_i \\ell_i / \\sum_i n_i)`, with :math:`\\ell_i` the summed next-token NLL of
  text :math:`i` (nats) and :math:`n_i` its number of predicted tokens (token-weighted, as usual);
* accuracy: :math:`\\sum_i c_i / \\sum_i 1`, with :math:`c_i \\in \\{0, 1\\}`.

Seeds give one score per model; a method's value is the mean over seeds. The difference between methods
A and B is :math:`\\bar d = \\frac1S \\sum_s (A_s - B_s)`, paired over seeds and over the very same texts.

Two 95% intervals are reported:

``ci_low``/``ci_high`` (the one the verdict uses)
    a two-level bootstrap: each replicate resamples the seeds with replacement and the texts with
    replacement (one draw of texts shared by every seed and both methods, so the pairs stay paired), and
    recomputes :math:`\\bar d`; the interval is the 2.5 and 97.5 percentiles. It reflects both the finite
    test set and the seed-to-seed variation.
``t_low``/``t_high``
    a t-interval over the per-seed differences :math:`d_s` (``S - 1`` degrees of freedom; NaN for one seed).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from gotd.errors import GotdInputError

METRICS = {"perplexity": np.exp, "accuracy": lambda x: x, "nll": lambda x: x}
"""How a ratio of per-text sums becomes a score: ``perplexity`` exponentiates it; ``accuracy`` and ``nll``
(nats/token when the denominator counts tokens, nats/text when it is 1) keep it."""


@dataclass(frozen=True)
class Scores:
    """Per-text numerators ``num[s, i]`` (seeds x texts) and the shared denominators ``den[i]`` of one model."""

    num: np.ndarray
    den: np.ndarray
    metric: str = "perplexity"

    def __post_init__(self) -> None:
        if self.num.ndim != 2 or self.den.ndim != 1 or self.num.shape[1] != self.den.shape[0]:
            raise GotdInputError(f"Scores: num must be (seeds, texts) and den (texts,), got {self.num.shape} and "
                                 f"{self.den.shape}")
        if self.metric not in METRICS:
            raise GotdInputError(f"metric {self.metric!r} is not one of {sorted(METRICS)}")

    def per_seed(self) -> np.ndarray:
        """The score of each seed, shape (S,)."""
        return METRICS[self.metric](self.num.sum(axis=1) / self.den.sum())


def _text_weights(n_texts: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each text is drawn in each replicate: (n_boot, n_texts) multinomial counts."""
    return rng.multinomial(n_texts, np.full(n_texts, 1.0 / n_texts), size=n_boot).astype(np.float64)


def _boot_per_seed(scores: Scores, weights: np.ndarray) -> np.ndarray:
    """Replicate x seed scores under the text weights."""
    ratio = (weights @ scores.num.T) / (weights @ scores.den)[:, None]
    return METRICS[scores.metric](ratio)


def _seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def _broadcast(a: Scores, b: Scores) -> tuple[Scores, Scores]:
    """A model scored once (the un-warmed model) is paired with every seed of the other."""
    if a.num.shape[1] != b.num.shape[1] or not np.array_equal(a.den, b.den):
        raise GotdInputError("paired scores need the same texts (same per-text token counts) for both models")
    s = max(len(a.num), len(b.num))
    fix = lambda x: x if len(x.num) == s else Scores(np.repeat(x.num, s, axis=0), x.den, x.metric)  # noqa: E731
    if len(a.num) not in (1, s) or len(b.num) not in (1, s):
        raise GotdInputError(f"paired scores need the same seeds (or one): got {len(a.num)} and {len(b.num)}")
    return fix(a), fix(b)


def paired_difference(a: Scores, b: Scores, *, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> dict[str, float]:
    """Mean over seeds of ``a - b`` with the bootstrap and t intervals described in the module docstring."""
    a, b = _broadcast(a, b)
    d = a.per_seed() - b.per_seed()
    rng = np.random.default_rng(seed)
    w = _text_weights(a.num.shape[1], n_boot, rng)
    boot = _boot_per_seed(a, w) - _boot_per_seed(b, w)
    pick = _seed_draws(len(d), n_boot, rng)
    reps = np.take_along_axis(boot, pick, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    out = {"diff": float(d.mean()), "ci_low": float(np.quantile(reps, alpha)),
           "ci_high": float(np.quantile(reps, 1 - alpha)),
           "n_seeds": int(len(d)), "n_texts": int(a.num.shape[1])}
    if len(d) > 1:
        half = _sps.t.ppf(1 - alpha, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        out.update(t_low=float(d.mean() - half), t_high=float(d.mean() + half))
        sd = d.std(ddof=1)
        if sd > 0:       # two-sided one-sample t-test of the per-seed differences
            out["p_value"] = float(2 * _sps.t.sf(abs(d.mean()) / (sd / np.sqrt(len(d))), len(d) - 1))
        else:            # every seed gives the same difference
            out["p_value"] = 0.0 if d.mean() != 0 else 1.0
    else:
        out.update(t_low=float("nan"), t_high=float("nan"), p_value=float("nan"))
    out.update(zip(("wide_low", "wide_high"), wider_interval(out)))
    return out


def wider_interval(row: dict[str, float]) -> tuple[float, float]:
    """The wider of the bootstrap interval (``ci_low``, ``ci_high``) and the t-interval (``t_low``, ``t_high``).

    With few seeds the bootstrap's seed level under-covers (3 seeds: about 75% for a nominal 95%), while the
    t-interval ignores the finite test set; the verdict uses whichever is wider (a NaN t-interval, one
    seed, leaves the bootstrap's).
    """
    boot = (row["ci_low"], row["ci_high"])
    t = (row.get("t_low", float("nan")), row.get("t_high", float("nan")))
    if not np.all(np.isfinite(t)):
        return boot
    return t if t[1] - t[0] > boot[1] - boot[0] else boot


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over the comparisons given).

    Sorted ascending, :math:`\\tilde p_{(i)} = \\max_{j \\le i} \\min(1, (m - j + 1) p_{(j)})`; a comparison is
    significant at level alpha when its adjusted p-value is at most alpha. NaN stays NaN and is not counted.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def level_interval(a: Scores, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean over seeds of one model's score, its seed standard deviation and a two-level bootstrap interval."""
    rng = np.random.default_rng(seed)
    per = a.per_seed()
    boot = _boot_per_seed(a, _text_weights(a.num.shape[1], n_boot, rng))
    reps = np.take_along_axis(boot, _seed_draws(len(per), n_boot, rng), axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    return {"mean": float(per.mean()), "std": float(per.std(ddof=1)) if len(per) > 1 else float("nan"),
            "ci_low": float(np.quantile(reps, alpha)), "ci_high": float(np.quantile(reps, 1 - alpha)),
            "n_seeds": len(per)}


def scores_of(table: pd.DataFrame, *, metric: str, num: str, den: str | None = None) -> dict[tuple, Scores]:
    """Group a per-text table into :class:`Scores` by (scenario, split, method, budget).

    ``table`` has columns scenario, split, method, budget, seed, text_index and ``num`` (and ``den``; for
    accuracy the denominator is 1 per text). Texts are aligned by ``text_index``; seeds are sorted.
    """
    need = {"scenario", "split", "method", "budget", "seed", "text_index", num} | ({den} if den else set())
    missing = need - set(table.columns)
    if missing:
        raise GotdInputError(f"per-text table lacks columns {sorted(missing)}")
    out: dict[tuple, Scores] = {}
    for key, g in table.groupby(["scenario", "split", "method", "budget"], sort=True):
        wide = g.pivot_table(index="seed", columns="text_index", values=num, aggfunc="first").sort_index()
        if wide.isna().any().any():
            raise GotdInputError(f"{key}: not every seed scored every text; the pairing would be broken")
        dens = (g.groupby("text_index")[den].first().reindex(wide.columns).to_numpy(float) if den
                else np.ones(wide.shape[1]))
        out[tuple(key)] = Scores(wide.to_numpy(float), dens, metric)
    return out


def paired_table(scores: dict[tuple, Scores], *, reference: str = "gotd", baseline: str = "base",
                 n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """For every (scenario, split, budget, method): the paired difference to ``reference`` and to ``baseline``.

    ``baseline`` is the un-warmed model (any budget key); rows: scenario, split, budget, method, vs, diff,
    ci_low, ci_high, t_low, t_high, n_seeds, n_texts, where ``diff = value(method) - value(vs)``.
    """
    rows = []
    base = {(k[0], k[1]): v for k, v in scores.items() if k[2] == baseline}
    for (scen, split, method, budget), sc in scores.items():
        if method == baseline:
            continue
        ref = scores.get((scen, split, reference, budget))
        pairs = [(reference, ref)] if ref is not None and method != reference else []
        if (scen, split) in base:
            pairs.append((baseline, base[(scen, split)]))
        for vs, other in pairs:
            rows.append({"scenario": scen, "split": split, "budget": budget, "method": method, "vs": vs,
                         **paired_difference(sc, other, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    x = float(x) + 0.0                      # no "-0"
    text = f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return "0" if text in ("-0", "0") else text


def verdict_sentences(paired: pd.DataFrame, *, split: str = "test", reference: str = "gotd",
                      metric_name: str = "target perplexity", pool_sizes: dict[str, int] | None = None,
                      labels: dict[str, str] | None = None, lower_is_better: bool = True,
                      order: Sequence[str] | None = None) -> list[str]:
    """One sentence per scenario, written from the paired differences to ``reference`` on ``split``.

    At the smallest budget (the paper's claim is strongest there) every baseline is named with its
    difference and interval (as an advantage of ``reference``: positive = ``reference`` better); then the count
    over all budgets of comparisons where ``reference`` is better, worse, or not different beyond the 95%
    bootstrap interval.
    """
    out = []
    sub = paired[(paired["split"] == split) & (paired["vs"] == reference)] if not paired.empty else paired
    groups = dict(list(sub.groupby("scenario", sort=True))) if not sub.empty else {}
    names = [s for s in (order or []) if s in groups] + [s for s in groups if s not in (order or [])]
    for scen in names:
        g = groups[scen]
        label = (labels or {}).get(scen, scen)
        sign = 1 if lower_is_better else -1          # > 0 means the reference is better
        g = g.assign(edge=sign * g["diff"], elo=np.where(sign > 0, g["ci_low"], -g["ci_high"]),
                     ehi=np.where(sign > 0, g["ci_high"], -g["ci_low"]))
        better, worse = g[g["elo"] > 0], g[g["ehi"] < 0]
        b0 = g["budget"].min()
        at = g[g["budget"] == b0].sort_values("method")
        n_pool = (pool_sizes or {}).get(scen)
        where = f"at {b0} chunks" + (f" ({100 * b0 / n_pool:.2g}% of the pool)" if n_pool else "")
        parts = []
        for _, r in at.iterrows():
            if r["elo"] > 0:       # the reference is better by edge, interval [elo, ehi]
                parts.append(f"better than {r['method']} by {_fmt(r['edge'])} [{_fmt(r['elo'])}, {_fmt(r['ehi'])}]")
            elif r["ehi"] < 0:     # worse by -edge, interval [-ehi, -elo]
                parts.append(f"worse than {r['method']} by {_fmt(-r['edge'])} [{_fmt(-r['ehi'])}, {_fmt(-r['elo'])}]")
            else:
                parts.append(f"not different from {r['method']} ({_fmt(r['edge'])} [{_fmt(r['elo'])}, "
                             f"{_fmt(r['ehi'])}])")
        n = len(g)
        if better.empty and worse.empty:
            tail = f"over all {g['budget'].nunique()} budgets no method differs from GOT-D beyond the 95% intervals."
        else:
            tail = (f"over all {g['budget'].nunique()} budgets GOT-D is better beyond the 95% interval in "
                    f"{len(better)} of {n} comparisons and worse in {len(worse)}.")
        out.append(f"{label}: {where} GOT-D's {metric_name} is " + "; ".join(parts) + "; " + tail)
    return out


def summarise_levels(scores: dict[tuple, Scores], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean, seed std and bootstrap interval of every (scenario, split, method, budget)."""
    rows = [{"scenario": k[0], "split": k[1], "method": k[2], "budget": k[3], **level_interval(v, n_boot=n_boot,
             seed=seed)} for k, v in scores.items()]
    return pd.DataFrame(rows)


def methods_in_order(methods: Sequence[str]) -> list[str]:
    """GOT-D first, then the other methods in the order given, each once."""
    unique = list(dict.fromkeys(methods))
    return [m for m in unique if m == "gotd"] + [m for m in unique if m != "gotd"]
