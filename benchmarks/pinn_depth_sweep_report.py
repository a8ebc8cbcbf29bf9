"""Tables, plots and the depth sweep's results page, from the sweep's CSV.

  python benchmarks/pinn_depth_sweep_report.py            # write all
  python benchmarks/pinn_depth_sweep_report.py --check    # all up to date?

Writes ``pinn_depth_sweep.md`` (every table) and the figures
(``pinn_depth_sweep_*.png``) beside the CSV, and the docs page
``docs/results/depth_sweep.md``, from the rows (`pinn_depth_sweep_cells`), the
verdicts (`pinn_depth_sweep_verdicts`), pages (`pinn_depth_sweep_pages`) and
figures (`pinn_depth_sweep_figures`).
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

import mdtables
import pinn_depth_sweep_figures as figures
import pinn_depth_sweep_pages as pages
import pinn_depth_sweep_results as results
from pinn_depth_sweep_cells import Sweep

TITLE = pages.TITLE  # the page's first line, as every report script names it


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, results.RESULTS, "depth_sweep.md", "the tables")
    parser.add_argument("--outdir", type=pathlib.Path, default=None)
    parser.add_argument("--tune-seed", type=int, default=results.TUNE_SEED)
    parser.add_argument("--tune-depth", type=int, default=results.TUNE_DEPTH)
    args = parser.parse_args(argv)
    sweep = Sweep(results.read_rows(args.results), args.tune_seed, args.tune_depth)
    outdir = args.outdir or args.results.parent
    drawings, notes = figures.drawings(sweep, results.read_history(args.results))
    drawn = {outdir / name: draw for name, draw in drawings.items()}
    outputs = {
        args.page: pages.page(sweep, list(drawn), notes, args.results, args.page),
        outdir / "pinn_depth_sweep.md": pages.full_tables(sweep),
    }
    return mdtables.check_or_write(
        outputs, args.check, pages.SCRIPT, args.results, drawn
    )


if __name__ == "__main__":
    sys.exit(main())
