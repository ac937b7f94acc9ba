"""Sparse-update scheme search: contribution tables, evolutionary search, job execution."""

from tte_algo.search.evolution import (
    Candidate,
    Contributions,
    Genome,
    SearchError,
    SearchResult,
    evolutionary_search,
    pareto_front,
    random_search,
)
from tte_algo.search.executor import Executor, JobCache, LocalExecutor, RayExecutor, job_key, make_executor

__all__ = [
    "Candidate",
    "Contributions",
    "Executor",
    "Genome",
    "JobCache",
    "LocalExecutor",
    "RayExecutor",
    "SearchError",
    "SearchResult",
    "evolutionary_search",
    "job_key",
    "make_executor",
    "pareto_front",
    "random_search",
]
