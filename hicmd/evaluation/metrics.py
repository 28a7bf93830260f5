"""Re-identification metrics: CMC, mAP and mINP under the RegDB, SYSU-MM01 and LLCM protocols.

Semantics follow the AGW evaluators (`eval_regdb`, `eval_sysu`, `eval_llcm`; docs/reference/evaluation.md §7-10):

- the gallery is ranked per query with the default (quicksort) `argsort` of the distance matrix;
- a per-query removal mask drops gallery items before anything is counted (SYSU: cam3 queries skip every cam2
  item, whatever its identity; LLCM: items with the query's own (pid, camera));
- CMC is either the standard first-hit curve (RegDB) or the curve over the ranked list with duplicate
  identities dropped, first occurrence kept (SYSU, LLCM);
- AP and INP are always computed on the raw filtered list;
- a query with no surviving true match is invalid: it is left out of every mean.

Everything is vectorised over the (queries x gallery) matrix; a 3,803 x 301 SYSU trial takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Metrics", "evaluate_ranking", "eval_regdb", "eval_sysu", "eval_llcm", "mean_metrics", "MAX_RANK"]

MAX_RANK = 20


@dataclass(frozen=True)
class Metrics:
    """Result of one evaluation (or the mean of several trials). All values are fractions in [0, 1]."""

    cmc: np.ndarray  # (max_rank,) cumulative match characteristic; cmc[k] = rank-(k+1) accuracy
    mAP: float
    mINP: float
    num_valid: int  # queries with at least one true match left after removal
    num_query: int

    @property
    def r1(self) -> float:
        return float(self.cmc[0])

    @property
    def r5(self) -> float:
        return float(self.cmc[4])

    @property
    def r10(self) -> float:
        return float(self.cmc[9])

    @property
    def r20(self) -> float:
        return float(self.cmc[19])

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """JSON-able summary in percent (the unit papers report)."""
        return {
            "r1": 100 * self.r1,
            "r5": 100 * self.r5,
            "r10": 100 * self.r10,
            "r20": 100 * self.r20,
            "mAP": 100 * self.mAP,
            "mINP": 100 * self.mINP,
            "cmc": [100 * float(v) for v in self.cmc],
            "num_valid": self.num_valid,
            "num_query": self.num_query,
        }


def _first_occurrences(ranked_labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(Q, G) mask of kept items whose label (dense ints) did not appear earlier among the row's kept items."""
    num_q, num_g = ranked_labels.shape
    keys = np.arange(num_q)[:, None] * num_g + ranked_labels  # unique per (row, label); labels < num_g
    flat_keep = np.flatnonzero(keep)  # row-major, so within a row earlier ranks come first
    _, first = np.unique(keys.ravel()[flat_keep], return_index=True)
    mask = np.zeros(num_q * num_g, dtype=bool)
    mask[flat_keep[first]] = True
    return mask.reshape(num_q, num_g)


def evaluate_ranking(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    remove: np.ndarray | None = None,
    unique_ids: bool = False,
    max_rank: int = MAX_RANK,
    stable: bool = False,
) -> Metrics:
    """CMC / mAP / mINP of a (Q, G) distance matrix (smaller = more similar).

    remove: optional (Q, G) boolean mask in gallery order; True drops that item from that query's ranking.
    unique_ids: compute CMC on the ranked list with repeated identities dropped (SYSU / LLCM convention).
    stable: rank tied distances in gallery order (the official MATLAB code) instead of numpy's default quicksort
    (the AGW evaluators, whose tie order is unspecified).
    Raises ValueError when no query has a true match in the gallery.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    num_q, num_g = distmat.shape
    if q_pids.shape != (num_q,) or g_pids.shape != (num_g,):
        raise ValueError(f"distmat {distmat.shape} does not match {q_pids.shape} query and {g_pids.shape} gallery ids")

    order = np.argsort(distmat, axis=1, kind="stable" if stable else None)  # default: AGW parity
    ranked_pids = g_pids[order]
    keep = np.ones((num_q, num_g), dtype=bool) if remove is None else ~np.asarray(remove, bool)[
        np.arange(num_q)[:, None], order]
    hits = (ranked_pids == q_pids[:, None]) & keep

    rank = np.cumsum(keep, axis=1)  # 1-based rank of each kept item in its filtered list
    num_hits = hits.sum(axis=1)
    valid = num_hits > 0
    if not valid.any():
        raise ValueError("no query has a true match in the gallery: check that query and gallery share identities")
    rank, hits, num_hits = rank[valid], hits[valid], num_hits[valid]

    # AP = mean over true matches of (matches so far / rank); INP = |G_i| / rank of the hardest match.
    hit_count = np.cumsum(hits, axis=1)
    ap = np.where(hits, hit_count / np.maximum(rank, 1), 0.0).sum(axis=1) / num_hits  # max: removed lead items
    last_rank = np.where(hits, rank, 0).max(axis=1)
    inp = num_hits / last_rank

    first_hit = hits.argmax(axis=1)  # position of the first true match in the unfiltered order
    if unique_ids:
        dense = np.unique(g_pids, return_inverse=True)[1].reshape(num_g)
        distinct = _first_occurrences(dense[order[valid]], keep[valid])
        first_rank = np.cumsum(distinct, axis=1)[np.arange(len(first_hit)), first_hit]
    else:
        first_rank = rank[np.arange(len(first_hit)), first_hit]
    cmc = (first_rank[:, None] <= np.arange(1, max_rank + 1)[None, :]).mean(axis=0)

    return Metrics(cmc=cmc, mAP=float(ap.mean()), mINP=float(inp.mean()), num_valid=int(valid.sum()),
                   num_query=num_q)


def eval_regdb(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, max_rank: int = MAX_RANK) -> Metrics:
    """RegDB: the two modalities are different cameras, so nothing is removed; standard CMC."""
    return evaluate_ranking(distmat, q_pids, g_pids, max_rank=max_rank)


def eval_sysu(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    max_rank: int = MAX_RANK,
    stable: bool = False,
) -> Metrics:
    """SYSU-MM01: cam3 (IR, room 2) queries skip every cam2 (RGB, room 2) item; ID-deduplicated CMC."""
    remove = (np.asarray(q_cams)[:, None] == 3) & (np.asarray(g_cams)[None, :] == 2)
    return evaluate_ranking(distmat, q_pids, g_pids, remove=remove, unique_ids=True, max_rank=max_rank,
                            stable=stable)


def eval_llcm(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    max_rank: int = MAX_RANK,
) -> Metrics:
    """LLCM: items with the query's own (pid, camera) are removed; ID-deduplicated CMC."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    remove = (q_pids[:, None] == g_pids[None, :]) & (np.asarray(q_cams)[:, None] == np.asarray(g_cams)[None, :])
    return evaluate_ranking(distmat, q_pids, g_pids, remove=remove, unique_ids=True, max_rank=max_rank)


def mean_metrics(results: list[Metrics]) -> Metrics:
    """Arithmetic mean over trials (CMC vector, mAP, mINP), as the protocols report."""
    if not results:
        raise ValueError("mean_metrics needs at least one result")
    return Metrics(
        cmc=np.mean([r.cmc for r in results], axis=0),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        num_valid=int(round(np.mean([r.num_valid for r in results]))),
        num_query=int(round(np.mean([r.num_query for r in results]))),
    )
