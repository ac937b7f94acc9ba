"""``tte analyze`` and ``tte search`` (entry points of the ``tte.commands`` group, see :mod:`tte_ir.cli`).

Every user error is a :class:`~tte_ir.TteError`: one line on stderr, exit status 2. An interrupted
``tte analyze`` says how many jobs are cached (exit 130); running it again resumes.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tte_ir import TteError
from tte_ir.cli_args import (
    bounded_float,
    bounded_int,
    distinct_outputs,
    learning_rate,
    output_file,
    output_folder,
    parse_bytes,
    seed_value,
)
from tte_ir.progress import progress

__all__ = ["register_analyze", "register_search"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(_fraction(part) for part in text.split(","))
    except ValueError:
        raise TteError(f"cannot read '{text}' as a comma-separated list of numbers (e.g. 0.25,1)") from None


def _fraction(text: str) -> float:
    """``"1/4"`` or ``"0.25"`` as a float."""
    num, _, den = text.strip().partition("/")
    return float(num) / float(den) if den else float(num)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise TteError(f"cannot read '{text}' as a comma-separated list of integers (e.g. 0,1,2)") from None


def register_analyze(subparsers: Any) -> None:
    """Add ``tte analyze``."""
    p = subparsers.add_parser(
        "analyze",
        help="contribution analysis: measure what each bias range and conv weight slice adds to accuracy",
        description=(
            "Short, seeded int8 QAS fine-tuning runs on your model and data: the gain of training the last k "
            "biases over head-only, and of each candidate conv's weights at each ratio over bias-only. Results "
            "are cached per job, so an interrupted analysis resumes."
        ),
    )
    p.add_argument("model", help="a .tte forward graph (tte quantize / tte import-pkl)")
    p.add_argument("-o", "--output", required=True, help="the contribution table (JSON) to write")
    p.add_argument(
        "--data",
        default="digits",
        help="'digits' (built in, resized to the model's input), an image folder (one sub-folder per class), or an "
        ".npz with x (float inputs [N, C, H, W] in the model's input scale) and y (labels [N])",
    )
    p.add_argument("--classes", help="restrict the data to these classes, e.g. 5-9 (relabelled 0..)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="held out and never seen by the analysis; the same split as `tte train` with the same --split-seed (0.25)",
    )
    p.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split (default 0, as tte train)")
    p.add_argument("--cache", help="job cache folder (default: .tte-cache beside the output)")
    p.add_argument("--address", help="a Ray cluster address ('local' starts Ray here); default: a local process pool")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU core)")
    p.add_argument("--window", type=int, help="analyse the last N convs (default: half of them)")
    p.add_argument("--bias-points", type=int, default=6, help="values of k in the bias grid besides 0 (6)")
    p.add_argument(
        "--candidates", choices=("pointwise", "all"), default="pointwise", help="weight candidates in the window"
    )
    p.add_argument("--convs", help="explicit weight candidates, e.g. 21,24,27 (overrides --candidates)")
    p.add_argument("--ratios", default="1/4,1", help="ratios measured for every candidate first (1/4,1)")
    p.add_argument("--refine", type=int, default=4, help="candidates then measured at the other ratios (4)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each fine-tuning run (3)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate of the int8 biases and weights (1e-4)")
    p.add_argument("--head-lr", type=float, default=0.01, help="learning rate of the fp32 head (0.01)")
    p.add_argument("--seeds", default="0", help="training seeds; each measurement is their mean (0)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="validation split of the training data (0.3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_analyze)


def _check_analyze_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers and unwritable outputs of ``tte analyze`` before anything is loaded."""
    for name in ("--test-fraction", "--val-fraction"):
        value = getattr(args, name[2:].replace("-", "_"))
        bounded_float(value, name, 0.0, 1.0, low_open=True, high_open=True)
    seed_value(args.split_seed, "--split-seed")
    for name, value in (("--workers", args.workers), ("--window", args.window)):
        if value is not None:
            bounded_int(value, name, 1)
    bounded_int(args.bias_points, "--bias-points", 0)
    bounded_int(args.refine, "--refine", 0)
    bounded_int(args.epochs, "--epochs", 1)
    bounded_int(args.batch_size, "--batch-size", 1)
    learning_rate(args.lr, "--lr")
    learning_rate(args.head_lr, "--head-lr")
    for seed in _ints(args.seeds):
        seed_value(seed, "--seeds")
    output_file(args.output, "-o")
    if args.cache:
        output_folder(args.cache, "--cache")


def _cmd_analyze(args: argparse.Namespace) -> int:
    from tte_algo.search.contrib import AnalysisReport, AnalysisSettings, analyze, plan_analysis
    from tte_algo.search.executor import JobCache, make_executor
    from tte_ir import load

    _check_analyze_arguments(args)
    graph = load(args.model)
    settings = AnalysisSettings(
        window=args.window,
        bias_points=args.bias_points,
        candidates=args.candidates,
        convs=_ints(args.convs) if args.convs else None,
        first_ratios=_floats(args.ratios),
        refine=args.refine,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        seeds=_ints(args.seeds),
        val_fraction=args.val_fraction,
    )
    plan_analysis(graph, settings)  # refuse bad settings before torch and the data load

    from tte_algo.data import load_data, parse_classes
    from tte_algo.sim import head_node

    n_out = graph.tensors[head_node(graph).outputs[0]].shape[1]
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    data = load_data(args.data, shape, parse_classes(args.classes), quant=graph, head=n_out)
    train, _ = data.split(args.test_fraction, args.split_seed)
    cache = JobCache(Path(args.cache) if args.cache else Path(args.output).resolve().parent / ".tte-cache")
    executor = make_executor(args.address, args.workers)
    report = AnalysisReport()
    try:
        # the job count grows as the analysis refines its candidates, so the bar has no fixed total
        with progress("analysis", None, enabled=not args.quiet) as advance:
            shown = 0

            def update(done: int, _total: int, what: str) -> None:
                nonlocal shown
                advance(done - shown, what)
                shown = done

            contrib = analyze(graph, train, settings, cache=cache, executor=executor, progress=update, report=report)
    except KeyboardInterrupt:
        print(
            f"tte analyze: stopped after {report.cached + report.ran} of {report.total} jobs known so far "
            f"({report.ran} run now, cached in {cache.folder}); run the same command again to resume"
        )
        raise
    contrib.metadata["data"] = args.data
    contrib.save(args.output)
    meta = contrib.metadata
    print(
        f"wrote {args.output}: {len(contrib.dacc_bias)} bias points, {len(contrib.dacc_weight)} weight entries "
        f"({len(meta['candidates'])} candidate convs in the last {meta['window']}); jobs: {report.total} "
        f"({report.cached} from the cache, {report.ran} run); head-only {100 * meta['accuracy_head_only']:.1f}%, "
        f"bias-only {100 * meta['accuracy_bias_only']:.1f}% on {meta['val_samples']} validation images"
    )
    return 0


def register_search(subparsers: Any) -> None:
    """Add ``tte search``."""
    p = subparsers.add_parser(
        "search",
        help="evolutionary search of a sparse-update scheme under a memory budget",
        description=(
            "Maximise the summed contributions of a scheme (from `tte analyze`) subject to the compiled training "
            "step's SRAM (arena + trainable + I/O, the exact plan of `tte compile`) and optional flash and MAC "
            "budgets. Writes the scheme, and optionally the Pareto front (JSON) and its plot (PNG)."
        ),
    )
    p.add_argument("model", help="the .tte forward graph the table was measured on")
    p.add_argument("--contrib", required=True, help="contribution table from `tte analyze`")
    p.add_argument("--budget", required=True, help="SRAM budget of the training step, e.g. 128KB")
    p.add_argument("--flash-budget", help="flash budget of the frozen constants, e.g. 1MB")
    p.add_argument("--mac-budget", type=float, help="MACs of one training step (forward + backward + update)")
    p.add_argument("-o", "--output", required=True, help="the scheme JSON to write")
    p.add_argument("--front", help="write the Pareto front (JSON)")
    p.add_argument("--plot", help="write a plot of the search (PNG)")
    p.add_argument("--population", type=int, default=40)
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_search)


def _best_so_far(best: Any) -> str:
    """A search candidate as a progress note."""
    return f"best gain {100 * best.score:+.1f}% at {best.memory:,} B" + ("" if best.feasible else " (over budget)")


def _cmd_search(args: argparse.Namespace) -> int:
    from tte_algo.search.driver import Budgets, plot_front, search_scheme
    from tte_algo.search.evolution import Contributions
    from tte_ir import load, save_scheme

    budgets = Budgets(
        parse_bytes(args.budget, "--budget"),
        None if args.flash_budget is None else parse_bytes(args.flash_budget, "--flash-budget"),
        None if args.mac_budget is None else int(bounded_float(args.mac_budget, "--mac-budget", 1.0, 1e18)),
    )
    seed_value(args.seed, "--seed")
    for name, path in (("-o", args.output), ("--front", args.front), ("--plot", args.plot)):
        if path is not None:
            output_file(path, name)
    distinct_outputs(("-o", args.output), ("--front", args.front), ("--plot", args.plot))
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked now: the plot is drawn only after the whole search)
        except ImportError:
            raise TteError("--plot needs matplotlib: pip install matplotlib, or drop --plot") from None
    if args.population < 2 or args.generations < 1:
        raise TteError("--population must be at least 2 and --generations at least 1")
    forward = load(args.model)
    contrib = Contributions.load(args.contrib)
    with ExitStack() as bar:
        advance = None

        def generation(index: int, best: Any) -> None:
            # called as a generation starts, so it reports the one before (and the last one after the search);
            # the bar starts with the first generation, after the inputs are checked, so a refusal stays one line
            nonlocal advance
            if advance is None:
                advance = bar.enter_context(progress("search", args.generations, enabled=not args.quiet))
            advance(1 if index else 0, _best_so_far(best))

        outcome = search_scheme(
            forward,
            contrib,
            budgets,
            population=args.population,
            generations=args.generations,
            seed=args.seed,
            on_generation=generation,
        )
        generation(args.generations, outcome.result.best)
    save_scheme(outcome.scheme, args.output)
    if args.front:
        outcome.save_front(args.front)
    if args.plot:
        plot_front(outcome, args.plot, f"{forward.name}: sparse-update search, budget {args.budget}")
    best = outcome.result.best
    plan = outcome.cost(best.genome)
    weights = ", ".join(f"conv {i} @ {r:g}" for i, r in best.genome.ratios) or "none"
    print(
        f"wrote {args.output}: n_bias {best.genome.k}, weights {weights}; estimated gain {100 * best.score:+.1f}%; "
        f"{plan.total_bytes:,} B (arena {plan.arena_bytes:,} + trainable {plan.trainable_bytes:,} + I/O "
        f"{plan.io_bytes:,}) of {budgets.memory:,} B; {outcome.result.evaluations} plans compiled"
    )
    return 0
