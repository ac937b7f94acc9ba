"""Sparse-update scheme search (paper §2.2): contribution analysis, evolutionary search under the
compiler's exact memory plan, and the executors that run the analysis's many fine-tuning jobs.

- :mod:`~tte_algo.search.contrib`: the contribution table of a model on data (``tte analyze``);
- :mod:`~tte_algo.search.evolution`: genomes, the evolutionary and random searches, the Pareto front;
- :mod:`~tte_algo.search.cost`: a genome's compiled plan (memory, flash, MACs), memoised;
- :mod:`~tte_algo.search.driver`: the search of a scheme under budgets, its front and plot (``tte search``);
- :mod:`~tte_algo.search.executor`: local process pool or Ray, and the per-job cache;
- :mod:`~tte_algo.search.bench`: the search benchmark (``nox -s search``).

Importing this package does not import torch; the analysis imports it when it runs.
"""

from tte_algo.search.contrib import (
    AnalysisReport,
    AnalysisSettings,
    Job,
    PortableGraph,
    analyze,
    candidate_convs,
    data_digest,
    graph_digest,
    split_graph,
)
from tte_algo.search.cost import CompiledCost, PlanCost
from tte_algo.search.driver import Budgets, FrontPoint, SearchOutcome, front_points, plot_front, search_scheme
from tte_algo.search.evolution import (
    Candidate,
    Contributions,
    Genome,
    Limits,
    SearchError,
    SearchResult,
    evolutionary_search,
    pareto_front,
    random_search,
)
from tte_algo.search.executor import Executor, JobCache, LocalExecutor, RayExecutor, job_key, make_executor

__all__ = [
    "AnalysisReport",
    "AnalysisSettings",
    "Budgets",
    "Candidate",
    "CompiledCost",
    "Contributions",
    "Executor",
    "FrontPoint",
    "Genome",
    "Job",
    "JobCache",
    "Limits",
    "LocalExecutor",
    "PlanCost",
    "PortableGraph",
    "RayExecutor",
    "SearchError",
    "SearchOutcome",
    "SearchResult",
    "analyze",
    "candidate_convs",
    "data_digest",
    "evolutionary_search",
    "front_points",
    "graph_digest",
    "job_key",
    "make_executor",
    "pareto_front",
    "plot_front",
    "random_search",
    "search_scheme",
    "split_graph",
]
