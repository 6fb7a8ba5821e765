"""Issue 17, round 2: city-wide (cross-lot) level inputs for the correction trees, and the city
level as a shrinkage target for the anchor's level; round 3: how the trees are fitted (a bag
over resampled days, one model per step). Scored on the same rolling-origin folds as
benchmarks/forecast.py (choice folds decide; the final fold is printed and decides nothing).

    .venv/bin/python benchmarks/forecast_city.py [--variants shipped,city,shrink]
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,daybag,perstep   # round 3
    .venv/bin/python benchmarks/forecast_city.py --variants pasterror                # round 4
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,feedback         # round 5
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,monotone         # round 6
    .venv/bin/python benchmarks/forecast_city.py --variants shipped --oracle         # the blend's ceiling
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,fine             # round 7
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,daybag,gated --cache DIR   # round 8
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,support --new-deployment   # round 9
    .venv/bin/python benchmarks/forecast_city.py --variants shipped,clipped                    # round 10
    # the bag in commands of a few minutes each (members cached), then its scores:
    .venv/bin/python benchmarks/forecast_city.py --variants daybag --cache DIR --fold K [--seeds 0,1,2,3]
    .venv/bin/python benchmarks/forecast_city.py --variants daybag --cache DIR

Pre-registered variants, run in this order, one run each (round 2):
  shipped  the shipped inputs (reproduces benchmarks/forecast.py --only folds)
  city     + 4 city inputs at the origin: the median over lots observed at that moment of
           (a) the gap now against the same slot a week ago, (b) the mean of that gap over
           today's slots so far, (c) the gap against the 3-week median; and (d) this lot's gap
           minus the city's (a)
  shrink   city inputs, and the anchor's level gap shrunk toward the city's:
           anchor = week-ago + w[h] * lot gap + (1 - w[h]) * city gap, w[h] per horizon fitted
           (least absolute error, grid 0..1) on each fold's training origins only
  calendar the shipped inputs + days to Christmas at the target (0..90) and whether the target's
           day 1, 2 and 3 weeks back fell in the English school half-term (Birmingham City
           Council, autumn 2016: 24-28 Oct; the only school holiday inside the sample's lags;
           public holidays are in the shipped inputs already)

Round 3, fixed before running, one run each, in this order (shipped inputs and tree settings;
the blend weights and conformal band are learned from the resulting corrections exactly as
shipped):
  daybag   8 tree models, model k fitted on a bootstrap resample of the fold's training days
           (as many days as the fold trains on, drawn with replacement by
           numpy.random.default_rng(k), k = 0..7; one drawn day brings every lot's origins of
           that day, a day drawn twice brings them twice); the correction is the mean of the 8
  perstep  one tree model per step h = 1..8, each fitted only on that step's samples (the same
           inputs, the step column included, constant within a model), instead of one joint model

Round 4 (2026-11-28, fixed before running, one run):
  pasterror the shipped inputs + the anchor's own error for the same origin slot and target slot
           on each of the last 3 days, averaged: (rate - week-ago rate) at the target slot minus
           the same at the origin slot, day d-k, k = 1..3 (how the level gap drifted from the
           origin's time to the target's time on recent days; the shipped inputs hold that gap at
           the origin slot only). Reads only earlier days.

Round 5 (2026-11-28, written just before its one run at 08:33 UTC; what
the day's own forecasts say; this text was written before the run but an editing slip kept it
out of the file until round 6 was added, word for word as written then):
  feedback the shipped trees; each test origin's correction is scaled by m, from how the same
           lot's corrections did earlier that day: the verified pairs are the earlier origins of
           the same lot and day, at their steps whose target slot is at or before this origin's
           slot (observed by now); s* = the s in {0, 0.25, .., 1.5} with the least sum of
           |actual - anchor - s x correction| over them; m = (n s* + 8) / (n + 8) for n verified
           pairs (no pair: m = 1). The blend and band are then learned as shipped on the scaled
           corrections. Reads only readings up to the origin. Worth building (serving would
           recompute the day's earlier corrections) only if the choice-fold mean beats +7.8 % by
           more than 0.5 point and no choice fold is worse.

Round 6 (2026-11-28 08:56 UTC, fixed before running, one run; a constraint, not an input):
  monotone the shipped trees, constrained to let the correction only grow with each input that
           is another forecast minus the anchor: now_gap (persistence), level_2week_gap,
           level_day_gap, level_3week_gap, level_median_gap, today_level_gap, recent_level_gap,
           ratio_gap. A combination of forecasts should not move away from one that says "higher";
           with 5-8 weeks to learn from, that rules out the non-monotone shapes a wrong week can
           teach. Same rule as round 5 to be worth shipping.

Round 7 (session 8, 2026-11-28 10:45 UTC, fixed before running, one run; input resolution):
  fine     the shipped inputs on a grid of 1/1024 instead of 1/128 (correction.QUANT). At 1/128 a
           gap input has about 25 distinct values within +-0.1, where most of the data lie, and
           each gets its own bin; at 1/1024 the trees' 255 bins follow the data's quantiles
           instead, finer where the data are dense. Every value and bin edge stays exact in
           float32, so the ONNX export still compares as scikit-learn. Same rule as round 5.

Round 8 (session 9, fixed in commit 630adfc before running, one run; the correction gated by
the trees' own disagreement):
  gated    the shipped trees' correction where at least 7 of the 8 day-bag members of round 3
           (the same inputs, each fitted on a bootstrap resample of the fold's training days) give
           it the same sign, else no correction (the anchor). The blend and band are then learned
           as shipped. The --oracle run showed that no per-horizon weight reaches 10 %: the trees
           are wrong on whole stretches, and a per-origin weight needs a per-origin signal of when;
           the spread of trees fitted on other draws of the days is the one tried here. Same rule
           as round 5 (would ship 9 tree models if it passed). Run with the round 3 cache:
           --variants shipped,daybag,gated --cache DIR (daybag's row checks the cache).
           Result: +7.6 +- 1.5 % (+6.0 / +7.8 / +8.9, final +18.4 %), worse on every choice fold; at
           full weight the first fold stays at -3.6 % (shipped -3.8 %). The bag agreed with 73-81 % of
           the corrections: trees fitted on other draws of the same weeks make the same mistakes.
           Not kept. (daybag reproduced its round 3 row, +7.3 +- 2.2 %, from the cache.)

Round 9 (session 10, 2026-11-28, fixed in this docstring and committed before its one run; which
inputs a short history can teach). A diagnostic on the first choice fold (scripts outside the
repo; the final fold was not looked at): at full weight its trees lose most on 10 and 14 Nov
(-45 % and -33 % against the anchor, +0.013 mean correction on 10 Nov where the anchor's error
is -0.001), and putting the training median into the inputs that read three weeks back removes
most of it. That fold trains on 35 days (4 Oct - 7 Nov): those inputs exist on 14 of them, the
half-term week 24-28 Oct and the week after it, so the trees learned their effect from one shock.
  support  an input is used only when the fold's training days hold at least MIN_SUPPORT_DAYS = 21
           days on which it can be observed (days since the start of the data >= its depth: 21 for
           the six inputs that read three weeks back: level_3week_gap, level_median_gap,
           week_ago_unusual, unusual_x_median, unusual_x_now, week_now_vs_median; 14 for the four
           that read two weeks back: level_2week_gap, weekly_growth, two_week_target_diff,
           past_days_gap); otherwise it is set to 0 in training and test (a constant input the
           trees cannot split on). With the sample's folds only the first choice fold changes (the
           six three-week inputs); the others and the final fold train on >= 42 days and keep all.
           Same rule as round 5 to be kept. Because the final fold cannot test it, a second check,
           fixed now and reported whatever round 9 gives: a new deployment with 35 days of history,
           the grid cut to start on 25 Oct (so the folds' data begin there), trees trained on its
           days up to 28 Nov and scored on the final fold 29 Nov - 5 Dec at full weight and with
           the blend weights of the main run's choice folds, shipped inputs against support. The
           rule is shipped only if support is not worse there either.
           Result (one run, 60 s with shipped): +8.1 +- 1.2 % (+6.8 / +8.2 / +9.2, final +18.9 %),
           better on every choice fold but 0.3 point above shipped, inside the 0.5-point noise
           rule: a tie, not kept. At full weight the first fold moves from -3.8 % to -1.8 %. The
           new deployment (35 days): full weight +17.5 % against +17.2 %, with the blend +13.3 %
           against +13.2 %, so not worse. The three-week inputs explain part of the first
           fold's loss; the rest comes from inputs every fold can observe.
           Corrections after the run (a reviewer's reading of this text, results unchanged):
           - the diagnostic script looped over all four folds, so it also printed the final
             fold's per-day gains at full weight, and they were seen; no choice here used them;
           - the three-week inputs average or take the median over the weeks there are, so from
             the 15th day they exist as two-week versions: on the first fold they are complete
             (three weeks) on 14 of its 35 days, 25 Oct - 7 Nov, and present on 21;
             weekly_growth and past_days_gap read about 8 days back, not 14;
           - only the first fold's trees changed: the other folds moved (+0.1 to +0.3 point) only
             through the blend weights learned with it, so "better on every choice fold" says
             less than it seems.

Round 10 (session 10, 2026-11-28, fixed in this docstring and committed before its one run; how
far the correction may move the anchor). A diagnostic on the three choice folds' full-weight
corrections (script outside the repo; the final fold not looked at): by size of the correction,
those of 0.08 or more lose 23 % and 28 % against the anchor on the first and third choice folds
(+4 % on the second), those of 0.04-0.08 lose 19 % on the first and gain 13-16 % on the others,
small ones gain little everywhere. The largest come from event car parks (27 Nov: the trees moved
NIA South by -0.24 on average where the anchor was off by -0.07). A per-horizon weight scales all
sizes alike, so the oracle's ceiling does not bound a rule that treats them apart.
  clipped  the correction clipped to +-tau before the blend; tau is chosen with the per-horizon
           weights on the same folds as they are (each choice fold from the other two, the final
           fold from all three): for each tau in CLIP_GRID = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08,
           0.12, none), the blend is learned on those folds' clipped corrections, and the tau whose
           blended forecast has the least MAE on those folds is taken. Same rule as round 5 to be
           kept (it would ship as one more number in the blend).
           Result (one run, 27 s): +7.5 +- 1.6 % (+5.7 / +8.0 / +8.9, final +18.6 %), worse on two
           choice folds; not kept. The clip each fold got from the other two: 0.06, none, 0.04
           (none for the final fold), and with it the blend learned higher weights (0.6-0.8), so
           the first fold's many mid-sized wrong corrections grew while its few large ones shrank.
           Corrections after the run: that explanation is likely, not measured; "small ones gain
           little everywhere" holds below 0.02 (0.02-0.04 gain 10-14 % on the second and third
           folds); the largest corrections come from event car parks among others (only 26-27 Nov
           was looked at per lot); and the diagnostic also printed the final fold's figures (see
           round 9), unused here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.forecast import HORIZON, fold_bounds, full_weight, sample_cube  # noqa: E402
from parking_core.forecasting import correction  # noqa: E402
from parking_core.forecasting import correction_training as ct  # noqa: E402
from parking_core.forecasting.correction import FEATURES, QUANT, Design, _weekly, calendar, gather  # noqa: E402
from parking_core.forecasting.features import Profile  # noqa: E402

SHRINK_GRID = np.linspace(0.0, 1.0, 21)


def city_grid(hist: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """[D, S, 3] city signals at every (day, slot), each reading that day's slots <= slot and
    earlier days only, over every lot observed at that moment (median over lots)."""
    n_lots, n_days, slots = hist.shape
    lot, day, slot = np.meshgrid(np.arange(n_lots), np.arange(n_days), np.arange(slots), indexing="ij")
    gap = hist - _weekly(hist, holiday, lot, day, slot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med3 = np.nanmedian([gather(hist, lot, day - 7 * k, slot) for k in (1, 2, 3)], axis=0)
        seen = ~np.isnan(gap)
        today = np.cumsum(np.where(seen, gap, 0.0), axis=2) / np.cumsum(seen, axis=2)
        today = np.where(np.isnan(hist), np.nan, today)  # only lots observed at that moment
        return np.stack([np.nanmedian(gap, axis=0), np.nanmedian(today, axis=0), np.nanmedian(hist - med3, axis=0)],
                        axis=-1)


def with_city(d: Design, hist, holiday, lot, day, slot, weight: np.ndarray | None) -> tuple[Design, np.ndarray]:
    """The design plus the city inputs (and, with `weight`, the anchor shrunk toward the city)."""
    city = np.nan_to_num(city_grid(hist, holiday)[day, slot], nan=0.0)  # [N, 3]
    point_gap = gather(hist, lot, day, slot) - _weekly(hist, holiday, lot, day, slot)
    lot_minus_city = np.nan_to_num(point_gap - city[:, 0], nan=0.0)
    horizon = d.anchor.shape[1]
    extra = np.repeat(np.concatenate([city, lot_minus_city[:, None]], axis=1)[:, None, :], horizon, axis=1)
    extra = np.clip(np.round(extra * QUANT), -QUANT + 1, QUANT - 1) / QUANT
    x = np.concatenate([d.x, extra.astype(np.float32)], axis=-1)
    anchor = d.anchor
    if weight is not None:
        anchor = shrunk_anchor(d, lot_minus_city, weight)
    return Design(x, anchor, d.same_day, d.target_day, d.target_slot), lot_minus_city


HALF_TERM = {date(2016, 10, 24) + timedelta(days=k) for k in range(5)}


def with_calendar(d: Design, days) -> Design:
    extended = [*days, days[-1] + timedelta(days=1)]
    tday = np.clip(d.target_day, 0, len(extended) - 1)
    to_xmas = np.array([min(max((date(x.year, 12, 25) - x).days, 0), 90) for x in extended])[tday] / QUANT
    school = [np.array([(x - timedelta(days=7 * k)) in HALF_TERM for x in extended])[tday] for k in (1, 2, 3)]
    extra = np.stack([to_xmas, *school], axis=-1).astype(np.float32)
    return Design(np.concatenate([d.x, extra], axis=-1), d.anchor, d.same_day, d.target_day, d.target_slot)


def with_past_error(d: Design, hist, holiday, lot, day, slot) -> Design:
    """The design plus the anchor's error on the last 3 days for the same origin and target slots."""
    horizon = d.anchor.shape[1]
    lots = np.repeat(lot[:, None], horizon, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        errors = []
        for k in (1, 2, 3):
            at_target = gather(hist, lots, d.target_day - k, d.target_slot) - \
                _weekly(hist, holiday, lots, d.target_day - k, d.target_slot)
            at_origin = gather(hist, lot, day - k, slot) - _weekly(hist, holiday, lot, day - k, slot)
            errors.append(at_target - at_origin[:, None])
        past = np.nan_to_num(np.nanmean(errors, axis=0), nan=0.0)
    extra = (np.clip(np.round(past * QUANT), -QUANT + 1, QUANT - 1) / QUANT).astype(np.float32)[..., None]
    return Design(np.concatenate([d.x, extra], axis=-1), d.anchor, d.same_day, d.target_day, d.target_slot)


def shrunk_anchor(d: Design, lot_minus_city: np.ndarray, weight: np.ndarray) -> np.ndarray:
    # week-ago + w * lot gap + (1 - w) * city gap = anchor - (1 - w) * (lot gap - city gap)
    return np.clip(d.anchor - (1.0 - weight[None, :]) * lot_minus_city[:, None], 0.0, 1.0).astype(np.float32)


def fit_shrink(d: Design, actual, mask, lot_minus_city) -> np.ndarray:
    weight = np.ones(d.anchor.shape[1], np.float32)
    for h in range(len(weight)):
        m = mask[:, h]
        errors = [np.abs(shrunk_anchor(d, lot_minus_city, np.full(len(weight), w))[m, h] - actual[m, h]).sum()
                  for w in SHRINK_GRID]
        weight[h] = SHRINK_GRID[int(np.argmin(errors))]
    return weight


def fold_design(cube, stop, profile, holidays, first, last, horizon, variant, weight=None):
    shipped_quant = correction.QUANT
    correction.QUANT = FINE_QUANT if variant == "fine" else shipped_quant  # design() reads it when called
    try:
        d, actual, mask, (lot, day, slot) = ct.cube_design(cube, stop, profile, holidays, first, last, horizon)
    finally:
        correction.QUANT = shipped_quant
    lmc = None
    if variant == "calendar":
        d = with_calendar(d, cube.days[:stop])
    elif variant in ("city", "shrink"):
        holiday = np.tile(calendar(cube.days[:stop], holidays)[1], (len(cube.lots), 1))
        d, lmc = with_city(d, cube.rate[:, :stop], holiday, lot, day, slot, weight)
    elif variant == "pasterror":
        holiday = np.tile(calendar(cube.days[:stop], holidays)[1], (len(cube.lots), 1))
        d = with_past_error(d, cube.rate[:, :stop], holiday, lot, day, slot)
    return d, actual, mask, (lot, day, slot), lmc


BAG_SEEDS = range(8)
VARIANTS = ("shipped", "city", "shrink", "calendar", "daybag", "perstep", "pasterror", "feedback", "monotone",
            "fine", "gated", "support", "clipped")
CLIP_GRID = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, None)
MIN_SUPPORT_DAYS = 21
INPUT_DEPTH = {**{name: 21 for name in ("level_3week_gap", "level_median_gap", "week_ago_unusual", "unusual_x_median",
                                        "unusual_x_now", "week_now_vs_median")},
               **{name: 14 for name in ("level_2week_gap", "weekly_growth", "two_week_target_diff", "past_days_gap")}}
FINE_QUANT = 1024
GATE_AGREE = 7  # of the 8 bag members
MONOTONE = ("now_gap", "level_2week_gap", "level_day_gap", "level_3week_gap", "level_median_gap", "today_level_gap",
            "recent_level_gap", "ratio_gap")
FEEDBACK_GRID = np.arange(0, 1.51, 0.25)
FEEDBACK_PRIOR = 8  # verified pairs the prior m = 1 counts as


def day_feedback(test: Design, actual, mask, lot, day, slot, correction) -> np.ndarray:
    """[N] scale of each origin's correction from the lot's verified corrections earlier that day."""
    scale = np.ones(len(lot))
    for key in np.unique(np.stack([lot, day], axis=1), axis=0):
        rows = np.flatnonzero((lot == key[0]) & (day == key[1]))
        for i in rows:
            earlier = rows[slot[rows] < slot[i]]
            if len(earlier) == 0:
                continue
            seen = mask[earlier] & test.same_day[earlier] & (test.target_slot[earlier] <= slot[i])
            if not seen.any():
                continue
            a, base, c = actual[earlier][seen], test.anchor[earlier][seen], correction[earlier][seen]
            loss = [np.abs(a - base - s * c).sum() for s in FEEDBACK_GRID]
            n = int(seen.sum())
            scale[i] = (n * FEEDBACK_GRID[int(np.argmin(loss))] + FEEDBACK_PRIOR) / (n + FEEDBACK_PRIOR)
    return scale


def take_origins(d: Design, actual, mask, age, index) -> tuple[Design, np.ndarray, np.ndarray, np.ndarray]:
    """The origins at `index` (repeats allowed) of a design and its targets."""
    return (Design(d.x[index], d.anchor[index], d.same_day[index], d.target_day[index], d.target_slot[index]),
            actual[index], mask[index], age[index])


def fold_correction(variant, train, stop: int, test: Design, cfg, cache: Path | None = None,
                    seeds=BAG_SEEDS) -> np.ndarray | None:
    """[N, H] correction of the `test` origins by the fold's trees, fitted on `train` = (design,
    actual, mask, origin day) of the days before `stop`. A daybag member's forecast is kept in
    `cache` (when given) so that one bag can be fitted over several commands: members found
    there are read, those in `seeds` fitted, and None comes back while any is missing."""
    d, actual, mask, day = train
    age = (stop - 1 - day).astype(float)  # sample ages, as ct.fit_head
    if variant in ("daybag", "gated"):
        by_day = [np.flatnonzero(day == k) for k in range(stop)]
        members = []
        for seed in BAG_SEEDS:
            path = cache / f"daybag-stop{stop}-seed{seed}.npy" if cache else None
            if path is not None and path.exists():
                members.append(np.load(path))
            elif seed in seeds:
                drawn = np.random.default_rng(seed).choice(stop, size=stop, replace=True)
                index = np.concatenate([by_day[k] for k in drawn])
                members.append(ct.TreeHead.fit(*take_origins(d, actual, mask, age, index), cfg).correction(test))
                if path is not None:
                    np.save(path, members[-1])
        if len(members) < len(BAG_SEEDS):
            return None
        if variant == "daybag":
            return np.mean(members, axis=0)
        shipped = ct.TreeHead.fit(d, actual, mask, age, cfg).correction(test)
        agree = (np.sign(np.stack(members)) == np.sign(shipped)[None]).sum(axis=0) >= GATE_AGREE
        print(f"  stop {stop}: the bag agrees with {agree.mean():.1%} of the corrections")
        return np.where(agree, shipped, 0.0).astype(np.float32)
    if variant == "perstep":
        step = np.arange(mask.shape[1])[None, :]
        return np.stack([ct.TreeHead.fit(d, actual, mask & (step == h), age, cfg).correction(test)[:, h]
                         for h in range(mask.shape[1])], axis=1)
    if variant == "monotone":
        cfg = dataclasses.replace(cfg, monotone=MONOTONE)
    return ct.TreeHead.fit(d, actual, mask, age, cfg).correction(test)


def unsupported(train_days: int) -> list[str]:
    """The inputs fewer than MIN_SUPPORT_DAYS of `train_days` training days can observe (round 9)."""
    return [name for name, depth in INPUT_DEPTH.items() if train_days - depth < MIN_SUPPORT_DAYS]


def without(d: Design, names: list[str]) -> Design:
    """The design with the inputs `names` set to 0 (a constant the trees cannot split on)."""
    x = d.x.copy()
    x[..., [FEATURES.index(name) for name in names]] = 0.0
    return Design(x, d.anchor, d.same_day, d.target_day, d.target_slot)


def new_deployment_check(cube, holidays, cfg, choice_runs: dict[str, list]) -> None:
    """Round 9's second check: 35 days of history before the final fold (the grid starts on
    25 Oct), shipped inputs against support, on the final fold at full weight and with each
    variant's blend from the main run's choice folds."""
    start = cube.days.index(date(2016, 10, 25))
    short = dataclasses.replace(cube, days=cube.days[start:], rate=cube.rate[:, start:])
    first, last, _ = fold_bounds(cube)[-1]
    first, last = first - start, last - start
    print(f"\n== new deployment: history {short.days[0]}..{short.days[first - 1]} ({first} days), "
          f"final fold {short.days[first]}..{short.days[last]}")
    for variant, runs in choice_runs.items():
        if variant not in ("shipped", "support"):
            print(f"  {variant}: skipped (the check compares shipped and support)")
            continue
        run, _, _ = run_fold(short, first, last, "final", holidays, HORIZON, cfg, variant)
        full = ct.Blend(np.ones(HORIZON, np.float32), np.zeros((HORIZON, 2), np.float32))
        for label, blend in (("full weight", full), ("blend of the choice folds", ct.learn_blend(runs))):
            result = ct.score(run, blend, short)
            print(f"  {variant:8s} {label:26s} MAE {result.mae['model']:.4f}  weekly level-adjusted "
                  f"{result.mae['weekly_level']:.4f}  gain {result.improvement:+.1%}")


def clipped_run(run: ct.FoldRun, tau: float | None) -> ct.FoldRun:
    if tau is None:
        return run
    return dataclasses.replace(run, correction=np.clip(run.correction, -tau, tau))


def learn_clipped(runs: list[ct.FoldRun]) -> tuple[float | None, ct.Blend]:
    """Round 10: the clip and the per-horizon blend with the least MAE of the blended forecast
    on `runs` (the blend learned on the clipped corrections, as shipped)."""
    best = None
    for tau in CLIP_GRID:
        clipped = [clipped_run(r, tau) for r in runs]
        blend = ct.learn_blend(clipped)
        error = sum(np.abs(blend.quantiles(r.design, r.correction)[..., 1] - r.actual)[r.mask].sum() for r in clipped)
        if best is None or error < best[0]:
            best = (error, tau, blend)
    return best[1], best[2]


def score_clipped(runs: list[ct.FoldRun], cube) -> list[dict]:
    """Each choice fold with the clip and blend of the other two, the final fold with those of all three."""
    choice = [r for r in runs if r.role == "choice"]
    rows = []
    for r in runs:
        tau, blend = learn_clipped([c for c in choice if c is not r] or choice)
        print(f"  fold {cube.days[r.first]}: clip {tau}, weights {[round(float(w), 1) for w in blend.weight]}")
        rows.append(ct.score(clipped_run(r, tau), blend, cube).to_dict())
    return rows


def run_fold(cube, first, last, role, holidays, horizon, cfg, variant, cache=None, seeds=BAG_SEEDS
             ) -> tuple[ct.FoldRun | None, np.ndarray | None, float]:
    """The fold's out-of-sample run (None while a cached bag is incomplete), the shrink weights
    and the seconds spent fitting trees."""
    profile = Profile.fit(cube.lots, cube.rate[:, :first], cube.days[:first])
    d, actual, mask, (_, day, _), lmc = fold_design(cube, first, profile, holidays, 0, first - 1, horizon, variant)
    weight = None
    if variant == "shrink":
        weight = fit_shrink(d, actual, mask, lmc)
        d = Design(d.x, shrunk_anchor(d, lmc, weight), d.same_day, d.target_day, d.target_slot)
    test, test_actual, test_mask, (lot, test_day, slot), _ = fold_design(cube, last + 1, profile, holidays, first,
                                                                         last, horizon, variant, weight)
    if variant == "support":
        dropped = unsupported(first)
        print(f"  {first} training days: inputs set to 0: {dropped or 'none'}")
        d, test = without(d, dropped), without(test, dropped)
    started = time.monotonic()
    correction = fold_correction(variant, (d, actual, mask, day), first, test, cfg, cache, seeds)
    fit_seconds = time.monotonic() - started
    if correction is None:
        return None, weight, fit_seconds
    if variant == "feedback":
        m = day_feedback(test, test_actual, test_mask, lot, test_day, slot, correction)
        print(f"  fold {cube.days[first]}: feedback scale quartiles {np.round(np.quantile(m, [0.25, 0.5, 0.75]), 2)}")
        correction = correction * m[:, None]
    base = ct.fold_baselines(cube, lot, test_day, slot, horizon)
    return ct.FoldRun(first, last, role, test, test_actual, test_mask, correction, base), weight, fit_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="shipped,city,shrink")
    parser.add_argument("--cache", type=Path, default=None,
                        help="daybag: keep each member's fold forecast here (and read those already there)")
    parser.add_argument("--fold", type=int, default=None,
                        help="daybag with --cache: fit this fold's members only (0-3) and stop, no scores")
    parser.add_argument("--seeds", default=",".join(map(str, BAG_SEEDS)), help="daybag: the members to fit now")
    parser.add_argument("--oracle", action="store_true",
                        help="also score each fold with the blend fitted on that fold itself: a ceiling for any "
                             "blend of the anchor and these trees, not a result (it sees the fold's answers)")
    parser.add_argument("--new-deployment", action="store_true",
                        help="round 9's second check: each variant trained on 35 days of history, final fold")
    args = parser.parse_args()
    seeds = {int(k) for k in args.seeds.split(",")}
    if args.new_deployment and args.fold is not None:
        parser.error("--new-deployment needs every fold (no --fold)")
    if args.fold is not None and (args.cache is None or args.variants != "daybag"):
        parser.error("--fold needs --variants daybag and --cache")
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    cube, holidays = sample_cube()
    cfg = ct.GbmConfig()
    choice_runs = {}
    for variant in args.variants.split(","):
        started = time.monotonic()
        runs, fit_seconds = [], 0.0
        for k, (first, last, role) in enumerate(fold_bounds(cube)):
            if args.fold not in (None, k):
                continue
            run, weight, seconds = run_fold(cube, first, last, role, holidays, HORIZON, cfg, variant, args.cache,
                                            seeds)
            runs.append(run)
            fit_seconds += seconds
            if weight is not None:
                print(f"  fold {cube.days[first]}: lot-gap weight per horizon {np.round(weight, 2).tolist()}")
        if args.fold is not None or any(r is None for r in runs):
            print(f"{variant}: fold(s) {args.fold if args.fold is not None else 'all'} fitted in {fit_seconds:.0f} s; "
                  f"{sum(r is None for r in runs)} fold(s) still lack bag members in {args.cache}")
            continue
        choice_runs[variant] = [r for r in runs if r.role == "choice"]
        if variant == "clipped":
            rows = score_clipped(runs, cube)
        else:
            rows = [score.to_dict() for score in ct.score_runs(runs, cube)]
        print(f"\n== {variant} ({time.monotonic() - started:.0f} s; tree fitting on the 4 folds {fit_seconds:.0f} s)")
        print(ct.fold_table(rows))
        unclipped = ", unclipped" if variant == "clipped" else ""
        print(f"the same trees at full weight{unclipped} (no blend; decides nothing):")
        print(ct.fold_table([score.to_dict() for score in ct.score_runs(runs, cube, full_weight)]))
        tau, blend = learn_clipped(choice_runs[variant]) if variant == "clipped" else \
            (None, ct.learn_blend(choice_runs[variant]))
        print("blend weights learned on the 3 choice folds (what would ship):",
              [round(float(w), 2) for w in blend.weight], f"clip {tau}" if variant == "clipped" else "")
        if args.oracle:
            print(f"ceiling{unclipped}: each fold with the blend fitted on its own answers (decides nothing):")
            print(ct.fold_table([ct.score(r, ct.learn_blend([r]), cube).to_dict() for r in runs]))
        # The shrunk anchor alone (blend weight 0 everywhere), for the record.
        if variant == "shrink":
            anchor_only = ct.Blend(np.zeros(HORIZON, np.float32), np.zeros((HORIZON, 2), np.float32))
            alone = [ct.score(r, anchor_only, cube).to_dict() for r in runs]
            print("shrunk anchor alone (no trees; coverage meaningless):")
            print(ct.fold_table(alone))
        sys.stdout.flush()
    if args.new_deployment:
        new_deployment_check(cube, holidays, cfg, choice_runs)


if __name__ == "__main__":
    main()
