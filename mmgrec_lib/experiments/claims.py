"""The paper's empirical claims, checked against the committed tables (issue 14).

Every claim of the experiments section of the MMGRec paper (section 5) is a :class:`Claim`: an id, a short
quote, where the paper makes it, the table families it needs (``ablation`` stands for ``ablation_<ds>``, one
table per dataset; the first family is required, later ones add context) and one small check function that
turns one dataset's tables into a :class:`Finding` (a verdict and the numbers and p-values that decide it).
:func:`claims_table` runs every claim over the tables found in a ``tables/`` folder; :func:`write_claims`
saves the result as ``tables/claims.csv`` and ``.md`` (the runner calls it after ``mmgrec reports`` and in
``mmgrec readme``). Nothing here is measured: every number comes from the tables the notebooks wrote.

Verdict rules (the same text is the table's caption, :data:`CAPTION`):

1. Each claim is broken into comparisons (one per metric, or per sweep value, catalogue, batch and beam
   width); each comparison gets a status:

   - ``holds``: the claimed direction holds, with a paired two-sided p < :data:`ALPHA` where the table has a
     test, and within the claim's magnitude band where the claim has one;
   - ``weak``: the direction holds but p >= ALPHA (or the p-value is missing), or the size is outside the band;
   - ``fails``: the direction does not hold (equal or reversed) and the reversal is not significant;
   - ``opposite``: the direction is reversed with p < ALPHA.

   Tests used: ``overall_gain_<ds>``: ``p_users_max`` (the largest over seeds of the paired Wilcoxon p over
   test users; ``p_seeds`` is shown, not used). ``ablation_<ds>``: the variant row's ``p_recall@10`` /
   ``p_ndcg@10`` (paired Wilcoxon against the full model); where an ``ablation_seeds_<ds>`` table of two or more
   seeds holds both rows, its means over the seeds and ``p_<metric>_users_max`` (the largest over seeds of the
   Wilcoxon p against the full model of the same seed) instead, significant only when every seed puts the
   variant on the side of the full model that the means do. Comparisons the tables hold no test for (two
   ablation variants against each other, the hyper-parameter sweeps, the strongest baseline, the timing
   tables) are decided on the means alone and say ``means only``.
2. A dataset's verdict: ``reproduced`` when every comparison holds; ``not reproduced`` when none holds or is
   weak, i.e. every comparison fails or is opposite; ``mixed`` otherwise (comparisons disagree, or the
   direction holds without significance or outside the band).
3. The claim's verdict: ``reproduced`` / ``not reproduced`` when every dataset with evidence says so,
   ``mixed`` when datasets disagree, ``no evidence yet`` when no table (or no needed row) exists.

Thresholds of the claims that name a size (relative difference = (better - worse) / better):
"much worse" (ID w/o) >= :data:`MUCH_WORSE` (10%; the paper's drops are 23-36%); "slightly worse" (Emb w/o)
<= :data:`SLIGHTLY_WORSE` (5%; the paper's are 0.4-5.0%); "few layers suffice": the best of the smallest half
of the layer counts reaches >= :data:`NEAR_BEST` (95%) of the best over all counts (weak from
:data:`FAR_FROM_BEST`, 90%); "stabilises as heads grow": the last two head counts differ by <= :data:`PLATEAU`
(5%), the largest head count is >= 95% of the best, and some count above the smallest beats it (the rise;
plateau without rise is weak); "time stays flat while MF's grows": beam search's time per user grows <=
:data:`FLAT_GROWTH` (1.2x, the efficiency issue's threshold) from the smallest to the largest catalogue
while exact inner-product top-k (MF) grows >= :data:`MF_GROWTH` (2x); fails when beam search grows at least
as much as MF; "low item counts" are catalogues of at most :data:`PAPER_LOW_ITEMS` (1/4 of Kwai's 86,483
items, the paper's Table 1) and "large scale" the full Kwai, :data:`PAPER_LARGE_ITEMS`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..reporting.tables import save_table, to_markdown

REPRODUCED, NOT_REPRODUCED, MIXED, NO_EVIDENCE = "reproduced", "not reproduced", "mixed", "no evidence yet"
HOLDS, WEAK, FAILS, OPPOSITE = "holds", "weak", "fails", "opposite"

ALPHA = 0.05                 # significance level of the paired tests
MUCH_WORSE = 0.10            # "much worse": relative drop at least this
SLIGHTLY_WORSE = 0.05        # "slightly worse": relative drop at most this
NEAR_BEST = 0.95             # "few layers suffice": few-layer best at least this share of the best
FAR_FROM_BEST = 0.90         # below this share the few-layer claim fails
PLATEAU = 0.05               # "stabilises": last two head counts differ by at most this (relative)
FLAT_GROWTH = 1.2            # "stays flat": beam time grows at most this factor over the catalogue range
MF_GROWTH = 2.0              # "MF's grows": exact top-k time grows at least this factor
PAPER_LARGE_ITEMS = 86_483   # the paper's full Kwai (Table 1): where MMGRec is faster than MF (Fig. 5)
PAPER_LOW_ITEMS = PAPER_LARGE_ITEMS // 4   # 1/4 Kwai: the top of the paper's "item count is low" range
METRICS_10 = ("recall@10", "ndcg@10")
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
#: table families the claims read (``<family>_<ds>``) and other families that share a prefix with them
FAMILIES = ("overall", "overall_gain", "ablation", "ablation_seeds", "hyper", "efficiency", "efficiency_claims",
            "efficiency_crossover")
_OTHER_PREFIXES = ("efficiency_memory", "efficiency_detail")
#: reference (full-model) variant of each ablation table (schema: notebook 05)
_FULL = {"3": "full", "4": "graph_rqvae", "5": "relation"}
#: what the ablation claims read: the one-seed table (required) and notebook 05's seed table (when present)
_ABLATION_TABLES = ("ablation", "ablation_seeds")

CAPTION = (
    "The paper's empirical claims (section 5) checked against our tables; every number comes from the table "
    "named. Each claim is split into comparisons (per metric, sweep value or timing unit): holds = claimed "
    f"direction with paired two-sided p < {ALPHA} (where the table has a test) and within the claim's size band; "
    "weak = right direction but not significant, no p-value, or outside the band; fails = direction does not "
    f"hold; opposite = reversed with p < {ALPHA}. Tests: overall_gain p_users_max (largest over seeds of the "
    "paired Wilcoxon over test users); ablation p_recall@10 / p_ndcg@10 (Wilcoxon against the full model), or, "
    "where ablation_seeds has two or more seeds, its means over seeds and p_<metric>_users_max (largest over "
    "seeds of the Wilcoxon against the full model of the same seed; significant only when every seed puts the "
    "variant on the side of the full model that the means do); "
    "comparisons without a test in the tables are decided on means ('means only'). Per dataset: reproduced = "
    "every comparison holds; not reproduced = every comparison fails or is opposite; mixed otherwise. Per "
    "claim: reproduced / not reproduced when every dataset with evidence agrees, mixed when they disagree, "
    "'no evidence yet' when the table does not exist. Size bands (relative difference to the better value): "
    f"much worse >= {MUCH_WORSE:.0%}, slightly worse <= {SLIGHTLY_WORSE:.0%}; few layers suffice = best of the "
    f"smaller half of layer counts >= {NEAR_BEST:.0%} of the best ({FAR_FROM_BEST:.0%} for weak); stabilises = "
    f"last two head counts within {PLATEAU:.0%}, last >= {NEAR_BEST:.0%} of the best, after a rise; flat time = "
    f"beam growth <= {FLAT_GROWTH}x while exact top-k grows >= {MF_GROWTH}x; low item counts <= "
    f"{PAPER_LOW_ITEMS:,} and large scale = {PAPER_LARGE_ITEMS:,} items (1/4 and all of the paper's Kwai). "
    "Our datasets differ from the paper's, so the paper's numbers are for orientation only.")


@dataclass(frozen=True)
class Finding:
    """One dataset's verdict on one claim and the numbers (and p-values) that decide it."""
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Claim:
    """One empirical claim of the paper: ``check`` maps ``{family: DataFrame or None}`` (one dataset's
    tables of the families in ``tables``; the first is always present) to a :class:`Finding`."""
    id: str
    quote: str
    source: str
    tables: tuple[str, ...]
    rule: str
    check: Callable[[Mapping[str, pd.DataFrame | None]], Finding]


# ---------------------------------------------------------------------------------------------------------
# statuses and verdicts

def status(better: float, worse: float, p: float | None = None, test: bool = True,
           rel_min: float | None = None, rel_max: float | None = None) -> str:
    """Status of the claim ``better > worse`` on one comparison (rules in the module docstring).

    ``p``: the paired two-sided p-value (``test=False``: the table has none; decided on the means);
    ``rel_min`` / ``rel_max``: the band of the relative difference ``(better - worse) / better``."""
    significant = p is not None and not _nan(p) and p < ALPHA
    if not better > worse:
        return OPPOSITE if test and significant and better < worse else FAILS
    rel = (better - worse) / abs(better) if better else math.inf
    in_band = (rel_min is None or rel >= rel_min) and (rel_max is None or rel <= rel_max)
    return HOLDS if in_band and (significant or not test) else WEAK


def verdict(statuses: Sequence[str]) -> str:
    """A dataset's verdict from its comparisons' statuses."""
    if not statuses:
        return NO_EVIDENCE
    if all(s == HOLDS for s in statuses):
        return REPRODUCED
    if all(s in (FAILS, OPPOSITE) for s in statuses):
        return NOT_REPRODUCED
    return MIXED


def combine(verdicts: Iterable[str]) -> str:
    """A claim's verdict from its datasets' verdicts (datasets without evidence do not count)."""
    seen = {v for v in verdicts if v != NO_EVIDENCE}
    if not seen:
        return NO_EVIDENCE
    return seen.pop() if len(seen) == 1 else MIXED


def _nan(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def _p(p) -> str:
    return "NaN" if _nan(p) else f"{float(p):.2g}"


def _short(metric: str) -> str:
    return metric.replace("recall@", "R@").replace("ndcg@", "N@")


def _finding(statuses: Sequence[str], parts: Sequence[str]) -> Finding:
    return Finding(verdict(statuses), "; ".join(parts))


# ---------------------------------------------------------------------------------------------------------
# overall_<ds>, overall_gain_<ds> (notebook 04, Table 2)

def check_beats_strongest(tables: Mapping[str, pd.DataFrame | None]) -> Finding:
    """MMGRec's mean above the strongest baseline's on every metric of ``overall_gain``, p_users_max < ALPHA."""
    df = tables["overall_gain"]
    statuses, parts = [], []
    for _, r in df.iterrows():
        s = status(r["mmgrec_mean"], r["baseline_mean"], r["p_users_max"])
        statuses.append(s)
        parts.append(f"{_short(r['metric'])} {r['mmgrec_mean']:.4f} vs {r['strongest_baseline']} "
                     f"{r['baseline_mean']:.4f} ({r['improvement_pct']:+.1f}%, p_users_max {_p(r['p_users_max'])}, "
                     f"p_seeds {_p(r.get('p_seeds'))}, {int(r['n_seeds'])} seed(s)) {s}")
    return _finding(statuses, parts)


def check_ndcg_gain_larger(tables: Mapping[str, pd.DataFrame | None]) -> Finding:
    """The improvement over the strongest baseline is positive in NDCG@K and larger than in Recall@K (K = 10, 20;
    means only; a larger loss is no larger improvement)."""
    gain = tables["overall_gain"].set_index("metric")["improvement_pct"]
    statuses, parts = [], []
    for k in (10, 20):
        n, r = f"ndcg@{k}", f"recall@{k}"
        if n in gain.index and r in gain.index:
            s = status(gain[n], gain[r], test=False) if gain[n] > 0 else FAILS
            statuses.append(s)
            parts.append(f"K={k}: NDCG {gain[n]:+.1f}% vs Recall {gain[r]:+.1f}% {s}")
    return _finding(statuses, parts or ["no NDCG/Recall pair in the table"])


def check_lightgt_strongest(tables: Mapping[str, pd.DataFrame | None]) -> Finding:
    """LightGT is the strongest baseline (``strongest`` column) on every metric."""
    df = tables["overall"].copy()
    df["strongest"] = df["strongest"].fillna("").astype(str)
    if "lightgt" not in set(df["model"]):
        return Finding(NO_EVIDENCE, "lightgt not in the table")
    statuses, parts = [], []
    for m in METRICS:
        best = [r["model"] for _, r in df.iterrows() if m in [x.strip() for x in r["strongest"].split(",")]]
        s = HOLDS if best == ["lightgt"] else FAILS
        statuses.append(s)
        parts.append(f"{_short(m)} strongest baseline {', '.join(best) or '-'} {s}")
    return _finding(statuses, parts)


# ---------------------------------------------------------------------------------------------------------
# ablation_<ds> (notebook 05, Tables 3-5)

def _ablation_row(df: pd.DataFrame, variant: str) -> pd.Series | None:
    rows = df[df["variant"] == variant]
    return rows.iloc[0] if len(rows) else None


def _seed_rows(seeds: pd.DataFrame | None, better: str, worse: str) -> tuple[pd.Series, pd.Series] | None:
    """The two variants' rows of an ``ablation_seeds`` table when it has both, over two or more seeds."""
    if seeds is None or seeds.empty or "n_seeds" not in seeds.columns:
        return None
    a, b = _ablation_row(seeds, better), _ablation_row(seeds, worse)
    if a is None or b is None or _nan(a["n_seeds"]) or _nan(b["n_seeds"]) or min(a["n_seeds"], b["n_seeds"]) < 2:
        return None
    return a, b


def _count(x) -> str:
    return "?" if _nan(x) else str(int(x))


def _seeds_agree(a: pd.Series, b: pd.Series, metric: str, better: str, test_on: str) -> bool:
    """Whether every seed of an ``ablation_seeds`` table puts the tested variant (``test_on``'s row, compared
    with the full model) on the side of the full model that the means over seeds put it on (``seeds_below`` /
    ``seeds_above`` count the seeds where it is below / above on both Recall@10 and NDCG@10)."""
    variant, other = (a, b) if test_on == better else (b, a)
    side = "seeds_below" if variant[metric] < other[metric] else "seeds_above"
    return not _nan(variant.get(side)) and int(variant[side]) == int(variant["n_seeds"])


def ablation_comparison(df: pd.DataFrame, better: str, worse: str, test_on: str | None,
                        rel_min: float | None = None, rel_max: float | None = None,
                        seeds: pd.DataFrame | None = None) -> Finding:
    """``better`` variant above ``worse`` on Recall@10 and NDCG@10 of an ablation table; the p-value is read
    from variant ``test_on``'s row (its paired test against the full model); ``None``: means only. ``seeds``:
    the dataset's ``ablation_seeds`` table; where it holds both variants over two or more seeds, the means are
    its means over the seeds and the p-value its ``p_<metric>_users_max``, counted only when every seed puts the
    variant on the same side of the full model as the means do (else no significance); the paper's numbers
    still come from ``df``."""
    a, b = _ablation_row(df, better), _ablation_row(df, worse)
    if a is None or b is None:
        missing = [v for v, r in ((better, a), (worse, b)) if r is None]
        return Finding(NO_EVIDENCE, f"no row {', '.join(missing)}")
    over_seeds = _seed_rows(seeds, better, worse)
    paper_rows = (a, b)
    if over_seeds is not None:
        a, b = over_seeds
    statuses, parts = [], []
    for m in METRICS_10:
        p_col = f"p_{m}_users_max" if over_seeds is not None else f"p_{m}"
        p = p_read = None if test_on is None else (a if test_on == better else b)[p_col]
        agree = over_seeds is None or test_on is None or _seeds_agree(a, b, m, better, test_on)
        if not agree:
            p = math.nan                  # the seeds disagree on the direction: no significance, whatever p says
        s = status(a[m], b[m], p, test=test_on is not None, rel_min=rel_min, rel_max=rel_max)
        statuses.append(s)
        rel = (b[m] - a[m]) / a[m] if a[m] else float("nan")
        paper = ""
        pa, pb = paper_rows[0].get(f"paper_{m}"), paper_rows[1].get(f"paper_{m}")
        if not _nan(pa) and not _nan(pb) and pa:
            paper = f"; paper {100 * (pb - pa) / pa:+.1f}%"
        if test_on is None:
            test = "means only"
        elif over_seeds is None:
            test = f"p {_p(p)}"
        else:
            r = a if test_on == better else b
            test = (f"p_users_max {_p(p_read)}, below on {_count(r['seeds_below'])} / above on "
                    f"{_count(r['seeds_above'])}" + ("" if agree else ": seeds disagree"))
        if over_seeds is not None:
            test += f", {int(a['n_seeds'])} seeds"
        parts.append(f"{_short(m)} {better} {a[m]:.4f} vs {worse} {b[m]:.4f} ({worse} {100 * rel:+.1f}%, "
                     f"{test}{paper}) {s}")
    return _finding(statuses, parts)


def _ablation_claim(tables: Mapping[str, pd.DataFrame | None], better: str, worse: str, test_on: str | None,
                    **band: float) -> Finding:
    """:func:`ablation_comparison` on a dataset's ``ablation`` table and, when there is one, its ``ablation_seeds``
    table (``band``: ``rel_min`` / ``rel_max``)."""
    return ablation_comparison(tables["ablation"], better, worse, test_on, seeds=tables.get("ablation_seeds"), **band)


def check_id_wo(tables):
    """ID w/o much worse than the full model (relative drop >= MUCH_WORSE, p < ALPHA)."""
    return _ablation_claim(tables, _FULL["3"], "id_wo", "id_wo", rel_min=MUCH_WORSE)


def check_emb_wo(tables):
    """Emb w/o slightly worse than the full model (relative drop <= SLIGHTLY_WORSE, p < ALPHA)."""
    return _ablation_claim(tables, _FULL["3"], "emb_wo", "emb_wo", rel_max=SLIGHTLY_WORSE)


def check_hkmeans(tables):
    """HK-Means Rec-IDs worse than Graph RQ-VAE's (p < ALPHA)."""
    return _ablation_claim(tables, _FULL["4"], "hkmeans", "hkmeans")


def check_random_collision(tables):
    """A random collision token worse than the popularity token (p < ALPHA)."""
    return _ablation_claim(tables, _FULL["4"], "random_collision", "random_collision")


def check_relation_over_sinusoidal(tables):
    """Relation-aware self-attention above sinusoidal positional encoding (p < ALPHA)."""
    return _ablation_claim(tables, _FULL["5"], "sinusoidal_pe", "sinusoidal_pe")


def check_sinusoidal_over_none(tables):
    """Sinusoidal positional encoding above none (means only: the table tests variants against the full
    model only)."""
    return _ablation_claim(tables, "sinusoidal_pe", "no_pe", None)


def check_no_pe_poor(tables):
    """No positional encoding worse than relation-aware self-attention (p < ALPHA)."""
    return _ablation_claim(tables, _FULL["5"], "no_pe", "no_pe")


# ---------------------------------------------------------------------------------------------------------
# hyper_<ds> (notebook 06, Fig. 4)

def sweep_curve(df: pd.DataFrame, sweep: str, model: str, metric: str) -> pd.Series:
    """``metric`` against the swept value for one model (mean over duplicate rows), sorted by value."""
    sub = df[(df["sweep"] == sweep) & (df["model"] == model)]
    return sub.groupby("value")[metric].mean().sort_index()


def _few_share(curve: pd.Series) -> tuple[float, list, float, object]:
    """(best of the smaller half of the values / best overall, that half, best, where the best is)."""
    few = list(curve.index[: max(1, len(curve) // 2)])
    best = float(curve.max())
    return (float(curve[few].max()) / best if best else float("nan")), few, best, curve.idxmax()


def _layers(tables, model: str, inverted: bool) -> Finding:
    statuses, parts = [], []
    for m in METRICS_10:
        curve = sweep_curve(tables["hyper"], "layers", model, m)
        if len(curve) < 2:
            continue
        share, few, best, at = _few_share(curve)
        s = HOLDS if share >= NEAR_BEST else WEAK if share >= FAR_FROM_BEST else FAILS
        if inverted:
            s = {HOLDS: FAILS, FAILS: HOLDS}.get(s, s)
        statuses.append(s)
        parts.append(f"{_short(m)} best of {few} layer(s) {curve[few].max():.4f} = {share:.2f} of the best "
                     f"{best:.4f} ({at} layers) {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, f"fewer than 2 layer counts for {model}")
    return _finding(statuses, parts + ["means only"])


def check_few_layers(tables):
    """MMGRec's best over the smaller half of layer counts reaches NEAR_BEST of its best (means only)."""
    return _layers(tables, "mmgrec", inverted=False)


def check_lightgt_needs_layers(tables):
    """LightGT's best over the smaller half of layer counts stays below FAR_FROM_BEST of its best (means)."""
    return _layers(tables, "lightgt", inverted=True)


def check_heads_stabilise(tables):
    """MMGRec rises, then stabilises as heads grow: last two head counts within PLATEAU, the last within
    NEAR_BEST of the best, some count above the smallest beats it (means only; needs >= 3 head counts)."""
    statuses, parts = [], []
    for m in METRICS_10:
        v = sweep_curve(tables["hyper"], "heads", "mmgrec", m)
        if len(v) < 3:
            continue
        last, prev, best = float(v.iloc[-1]), float(v.iloc[-2]), float(v.max())
        change = abs(last - prev) / max(abs(last), abs(prev)) if max(abs(last), abs(prev)) else 0.0
        plateau = change <= PLATEAU and last >= NEAR_BEST * best
        rise = float(v.iloc[1:].max()) > float(v.iloc[0])
        s = HOLDS if plateau and rise else WEAK if plateau else FAILS
        statuses.append(s)
        curve = ", ".join(f"{h}: {x:.4f}" for h, x in v.items())
        parts.append(f"{_short(m)} by heads ({curve}): last step {change:.1%}, last {last / best:.2f} of the "
                     f"best, {'rises' if rise else 'no rise'} {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, "fewer than 3 head counts for mmgrec")
    return _finding(statuses, parts + ["means only"])


def check_lightgt_heads_decline(tables):
    """LightGT falls as heads grow: never rises from one head count to the next and ends below its start
    (ending below without being monotone: weak; means only)."""
    statuses, parts = [], []
    for m in METRICS_10:
        v = sweep_curve(tables["hyper"], "heads", "lightgt", m)
        if len(v) < 2:
            continue
        down = float(v.iloc[-1]) < float(v.iloc[0])
        s = HOLDS if down and (v.diff().dropna() <= 0).all() else WEAK if down else FAILS
        statuses.append(s)
        parts.append(f"{_short(m)} by heads ({', '.join(f'{h}: {x:.4f}' for h, x in v.items())}) {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, "fewer than 2 head counts for lightgt")
    return _finding(statuses, parts + ["means only"])


def check_beats_lightgt_sweeps(tables):
    """MMGRec above LightGT at every layer and head count (per sweep and metric: holds when above at every
    value, fails when at none, weak otherwise; means only)."""
    df = tables["hyper"]
    statuses, parts = [], []
    for sweep in ("layers", "heads"):
        for m in METRICS_10:
            a, b = sweep_curve(df, sweep, "mmgrec", m), sweep_curve(df, sweep, "lightgt", m)
            common = a.index.intersection(b.index)
            if not len(common):
                continue
            above = [status(a[v], b[v], test=False) == HOLDS for v in common]
            s = HOLDS if all(above) else FAILS if not any(above) else WEAK
            statuses.append(s)
            parts.append(f"{sweep} {_short(m)}: above at {sum(above)} of {len(common)} values "
                         f"(min margin {min(a[v] - b[v] for v in common):+.4f}) {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, "no sweep value with both mmgrec and lightgt")
    return _finding(statuses, parts + ["means only"])


# ---------------------------------------------------------------------------------------------------------
# efficiency_<ds>, efficiency_crossover_<ds>, efficiency_claims_<ds> (notebook 07, Fig. 5)

_BEAM = re.compile(r"^beam (\d+), batch (\d+)$")


def _timing_units(df: pd.DataFrame):
    """(catalogue, rows sorted by size, beam column, exact column) for every beam column with its exact
    matmul column at the same batch."""
    for cat, g in df.groupby("catalogue", sort=False):
        g = g.sort_values("n_items")
        for col in df.columns:
            hit = _BEAM.match(str(col))
            exact = f"exact matmul, batch {hit.group(2)}" if hit else None
            if hit and exact in df.columns:
                sub = g[["n_items", col, exact]].dropna()
                if len(sub) >= 2:
                    yield cat, sub, col, exact


def _claims_context(tables, word: str) -> list[str]:
    df = tables.get("efficiency_claims")
    if df is None:
        return []
    rows = df[df["claim"].astype(str).str.contains(word)]
    return [f"efficiency_claims: '{r['claim']}' = {r['value']:.2f}"
            + (f" (sweeps {r['per_sweep']})" if "per_sweep" in r and not _nan_str(r["per_sweep"]) else "")
            + f", holds {r['holds']}" for _, r in rows.iterrows()]


def _nan_str(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def check_flat_time(tables):
    """Beam search's time per user grows at most FLAT_GROWTH over each catalogue's size range while exact
    top-k (MF) grows at least MF_GROWTH; fails when beam search grows at least as much as exact top-k."""
    statuses, parts = [], []
    for cat, sub, beam, exact in _timing_units(tables["efficiency"]):
        gb = sub[beam].iloc[-1] / sub[beam].iloc[0]
        ge = sub[exact].iloc[-1] / sub[exact].iloc[0]
        s = HOLDS if gb <= FLAT_GROWTH and ge >= MF_GROWTH else FAILS if gb >= ge else WEAK
        statuses.append(s)
        parts.append(f"{cat} {int(sub['n_items'].iloc[0]):,}->{int(sub['n_items'].iloc[-1]):,} items, {beam}: "
                     f"{gb:.2f}x, exact {ge:.1f}x {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, "no catalogue with two sizes and both methods")
    return _finding(statuses, parts + _claims_context(tables, "grows"))


def check_slow_when_small(tables):
    """Beam search costs more per user than exact top-k at every catalogue size <= PAPER_LOW_ITEMS (holds),
    at none (fails), at some (weak)."""
    statuses, parts = [], []
    for cat, sub, beam, exact in _timing_units(tables["efficiency"]):
        low = sub[sub["n_items"] <= PAPER_LOW_ITEMS]
        if not len(low):
            continue
        ratio = low[beam] / low[exact]
        slower = ratio > 1
        s = HOLDS if slower.all() else FAILS if not slower.any() else WEAK
        statuses.append(s)
        parts.append(f"{cat} {int(low['n_items'].min()):,}-{int(low['n_items'].max()):,} items, {beam}: "
                     f"{ratio.min():.1f}-{ratio.max():.1f}x exact's time {s}")
    if not statuses:
        return Finding(NO_EVIDENCE, f"no catalogue size <= {PAPER_LOW_ITEMS:,} items")
    return _finding(statuses, parts)


def check_cheaper_at_scale(tables):
    """Against exact matmul (MF): beam search becomes cheaper at or below PAPER_LARGE_ITEMS (holds; "always"
    too), only later or not for good ("mixed") (weak), never up to a largest size >= PAPER_LARGE_ITEMS
    (fails); "never" on a smaller catalogue does not count (the paper's crossover lies above it)."""
    df = tables["efficiency_crossover"]
    statuses, parts, unscaled = [], [], []
    for _, r in df[df["against"] == "exact matmul"].iterrows():
        unit = f"{r['catalogue']} batch {r['batch']} beam {r['beam']}"
        kind, at, largest = r["beam_cheaper"], r["crossover_items"], int(r["largest_items"])
        if kind == "always" or (kind == "crosses" and not _nan(at) and float(at) <= PAPER_LARGE_ITEMS):
            s = HOLDS
        elif kind in ("crosses", "mixed"):
            s = WEAK
        elif kind == "never" and largest >= PAPER_LARGE_ITEMS:
            s = FAILS
        else:
            unscaled.append(f"{unit}: {kind} up to {largest:,} items")
            continue
        statuses.append(s)
        where = f"crosses at {int(float(at)):,} items" if not _nan(at) else kind
        parts.append(f"{unit}: {where} (largest {largest:,}) {s}")
    if unscaled:
        parts.append(f"not counted (largest catalogue below {PAPER_LARGE_ITEMS:,}): " + ", ".join(unscaled))
    if not statuses:
        return Finding(NO_EVIDENCE, "; ".join(parts) or "no exact matmul rows")
    return _finding(statuses, parts + _claims_context(tables, "faster"))


# ---------------------------------------------------------------------------------------------------------
# the claims

CLAIMS: tuple[Claim, ...] = (
    Claim("beats_strongest_baseline",
          "MMGRec consistently achieves the best performance in all cases. ... the improvements of MMGRec are "
          "statistically significant (p-value < 0.05).", "5.1, Table 2", ("overall_gain",),
          "MMGRec > strongest baseline on R@10, N@10, R@20, N@20, p_users_max < 0.05", check_beats_strongest),
    Claim("ndcg_gain_larger",
          "Comparing the performance of MMGRec on two evaluation metrics, we find larger improvements in terms "
          "of NDCG.", "5.1, Table 2", ("overall_gain",),
          "improvement_pct of N@K > 0 and > that of R@K, K = 10 and 20 (means only)", check_ndcg_gain_larger),
    Claim("lightgt_strongest_baseline",
          "MMGRec and the strongest baseline LightGT outperform other baselines by a large margin.",
          "5.1, Table 2", ("overall",),
          "lightgt is the strongest baseline on every metric (the margin is not checked)", check_lightgt_strongest),
    Claim("id_wo_much_worse",
          "The poor performance of ID w/o suggests that heterogeneous multimodal features cannot be directly "
          "used for Rec-ID assignment.", "5.2.1, Table 3", _ABLATION_TABLES,
          f"full > id_wo on R@10 and N@10 by >= {MUCH_WORSE:.0%}, p < 0.05", check_id_wo),
    Claim("emb_wo_slightly_worse",
          "Despite parameterizing input embedding, Emb w/o underperforms and is inferior to utilizing "
          "well-trained item representations.", "5.2.1, Table 3", _ABLATION_TABLES,
          f"full > emb_wo on R@10 and N@10 by <= {SLIGHTLY_WORSE:.0%}, p < 0.05", check_emb_wo),
    Claim("hkmeans_worse",
          "Graph RQ-VAE consistently outperforms HK-Means, illustrating the advantageous quantization ability.",
          "5.2.2, Table 4", _ABLATION_TABLES, "graph_rqvae > hkmeans on R@10 and N@10, p < 0.05", check_hkmeans),
    Claim("random_collision_worse",
          "it is obvious that such a random method is consistently inferior to our solution.",
          "5.2.2, Table 4", _ABLATION_TABLES, "graph_rqvae (popularity token) > random_collision on R@10 and N@10, "
          "p < 0.05", check_random_collision),
    Claim("relation_over_sinusoidal_pe",
          "Compared to default positional encoding, relation-aware self-attention yields remarkable "
          "improvements", "5.2.3, Table 5", _ABLATION_TABLES,
          "relation > sinusoidal_pe on R@10 and N@10, p < 0.05", check_relation_over_sinusoidal),
    Claim("sinusoidal_pe_over_no_pe",
          "Even using absolute positions of input elements for positional encoding can improve the performance.",
          "5.2.3, Table 5", _ABLATION_TABLES,
          "sinusoidal_pe > no_pe on R@10 and N@10 (means only: no paired test between the two)",
          check_sinusoidal_over_none),
    Claim("no_pe_poor",
          "The variant without any positional encoding achieves poor performance.", "5.2.3, Table 5",
          _ABLATION_TABLES, "relation > no_pe on R@10 and N@10, p < 0.05", check_no_pe_poor),
    Claim("few_layers_suffice",
          "MMGRec can achieve quite good performance with fewer layers.", "5.3, Fig. 4 left", ("hyper",),
          f"best of the smaller half of layer counts >= {NEAR_BEST:.0%} of the best (R@10, N@10; "
          f"< {FAR_FROM_BEST:.0%}: fails)", check_few_layers),
    Claim("lightgt_needs_layers",
          "the embedding-based method needs stacking Transformer layers to guarantee performance.",
          "5.3, Fig. 4 left", ("hyper",),
          f"lightgt: best of the smaller half of layer counts < {FAR_FROM_BEST:.0%} of its best "
          f"(>= {NEAR_BEST:.0%}: fails)", check_lightgt_needs_layers),
    Claim("heads_stabilise",
          "As the head number increases, the performance of MMGRec tends to stabilize after rising.",
          "5.3, Fig. 4 right", ("hyper",),
          f"last two head counts within {PLATEAU:.0%}, last >= {NEAR_BEST:.0%} of the best, a rise after the "
          "smallest count (R@10, N@10; >= 3 head counts)", check_heads_stabilise),
    Claim("lightgt_heads_decline",
          "In comparison, the performance of LightGT shows a continued downward trend.", "5.3, Fig. 4 right",
          ("hyper",), "lightgt never rises from one head count to the next and ends below its start",
          check_lightgt_heads_decline),
    Claim("beats_lightgt_every_setting",
          "MMGRec outperforms LightGT as varying layer numbers across all datasets. ... MMGRec consistently "
          "outperforms LightGT.", "5.3, Fig. 4", ("hyper",),
          "mmgrec > lightgt at every layer and head count (R@10, N@10; means only)", check_beats_lightgt_sweeps),
    Claim("time_flat_while_mf_grows",
          "as the number of items increases ..., the inference time of MF experiences a significant rise. ... "
          "In contrast, MMGRec demonstrates enhanced efficiency as its inference time remains relatively stable.",
          "5.4, Fig. 5", ("efficiency", "efficiency_claims"),
          f"per catalogue, batch and beam: beam time grows <= {FLAT_GROWTH}x from the smallest to the largest "
          f"size and exact matmul >= {MF_GROWTH}x (fails: beam grows at least as much)", check_flat_time),
    Claim("slower_when_items_few",
          "In scenarios where the item count is low (e.g., 1/16 ~ 1/4 Kwai), MMGRec exhibits inefficiency",
          "5.4, Fig. 5", ("efficiency",),
          f"beam search slower per user than exact matmul at every size <= {PAPER_LOW_ITEMS:,} items",
          check_slow_when_small),
    Claim("cheaper_at_scale",
          "These findings suggest that the generative paradigm holds the potential to deliver more efficient "
          "inference for large-scale recommendation.", "5.4, Fig. 5", ("efficiency_crossover", "efficiency_claims"),
          f"beam search becomes cheaper than exact matmul by {PAPER_LARGE_ITEMS:,} items (later: weak; never "
          f"up to >= {PAPER_LARGE_ITEMS:,}: fails)", check_cheaper_at_scale),
)


# ---------------------------------------------------------------------------------------------------------
# running the claims over a tables folder

def find_tables(tables_dir: str | Path, family: str) -> dict[str, Path]:
    """``{dataset tag: csv path}`` of the tables ``<family>_<ds>.csv`` in ``tables_dir`` (a name that
    belongs to a longer family, e.g. ``overall_gain_x`` for ``overall``, is not counted)."""
    longer = [f for f in (*FAMILIES, *_OTHER_PREFIXES) if f != family and f.startswith(family + "_")]
    out = {}
    for path in sorted(Path(tables_dir).glob(f"{family}_*.csv")):
        if not any(path.stem.startswith(f + "_") for f in longer):
            out[path.stem[len(family) + 1:]] = path
    return out


def load_tables(tables_dir: str | Path, families: Sequence[str] = FAMILIES) -> dict[str, dict[str, pd.DataFrame]]:
    """``{family: {dataset tag: DataFrame}}`` of every table of ``families`` found in ``tables_dir``."""
    return {f: {ds: _read(p) for ds, p in find_tables(tables_dir, f).items()} for f in families}


def _read(path: Path) -> pd.DataFrame:
    """A table's CSV; an empty file is an empty table (its claims then say which column they lack)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def check_claim(claim: Claim, tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> dict:
    """One row of the claims table: the claim, the tables read, its verdict, per-dataset verdicts and evidence.
    A table that lacks a column the check needs, or holds a value it cannot use, gives ``no evidence yet`` for
    that dataset, saying so (a missing row says ``no row ...``)."""
    main = claim.tables[0]
    found = tables.get(main, {})
    findings = {}
    for ds, df in found.items():
        frames = {f: tables.get(f, {}).get(ds) for f in claim.tables}
        try:
            findings[ds] = claim.check(frames)
        except KeyError as exc:
            findings[ds] = Finding(NO_EVIDENCE, f"{main}_{ds} lacks {exc}")
        except (ValueError, TypeError) as exc:
            findings[ds] = Finding(NO_EVIDENCE, f"{main}_{ds} cannot be read: {type(exc).__name__}: {exc}")
    names = [f"{f}_{ds}" for ds in found for f in claim.tables if tables.get(f, {}).get(ds) is not None]
    return {"claim": claim.id, "source": claim.source, "quote": claim.quote, "rule": claim.rule,
            "tables": ", ".join(names) or ", ".join(f"{f}_<ds>" for f in claim.tables) + " (missing)",
            "verdict": combine(f.verdict for f in findings.values()),
            "per_dataset": "; ".join(f"{ds}: {f.verdict}" for ds, f in findings.items()) or "-",
            "evidence": " / ".join(f"{ds}: {f.evidence}" for ds, f in findings.items())
                        or f"no {main}_<ds> table yet"}


def claims_table(tables_dir: str | Path, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """The claims table (one row per claim; columns ``claim, source, quote, rule, tables, verdict,
    per_dataset, evidence``) computed from the tables in ``tables_dir``."""
    tables = load_tables(tables_dir, tuple(dict.fromkeys(f for c in claims for f in c.tables)))
    return pd.DataFrame([check_claim(c, tables) for c in claims],
                        columns=["claim", "source", "quote", "rule", "tables", "verdict", "per_dataset", "evidence"])


def write_claims(reports_dir: str | Path, claims: Sequence[Claim] = CLAIMS) -> Path:
    """Compute the claims table from ``<reports_dir>/tables`` and save it as ``tables/claims.csv`` / ``.md``
    (caption :data:`CAPTION`); files whose content would not change are left untouched (so the README's date
    of the table stays the date its verdicts last changed). Returns the CSV's path."""
    df = claims_table(Path(reports_dir) / "tables", claims)
    csv = Path(reports_dir) / "tables" / "claims.csv"
    md = csv.with_suffix(".md")
    if (csv.is_file() and md.is_file() and csv.read_text() == df.to_csv(index=False)
            and md.read_text() == f"{CAPTION}\n\n{to_markdown(df)}"):
        return csv
    return save_table(df, "claims", reports_dir, caption=CAPTION)


__all__ = ["ALPHA", "CAPTION", "CLAIMS", "Claim", "Finding", "FAMILIES", "FAILS", "HOLDS", "MIXED",
           "NOT_REPRODUCED", "NO_EVIDENCE", "OPPOSITE", "REPRODUCED", "WEAK", "ablation_comparison",
           "check_claim", "claims_table", "combine", "find_tables", "load_tables", "status", "sweep_curve",
           "verdict", "write_claims"]
