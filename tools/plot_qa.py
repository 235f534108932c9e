"""Draw a run's curves from its log_history.json: training loss and learning rate, dev scores.

    python tools/plot_qa.py results/runs/squad20pct          # or a run folder such as runs/squad20pct
    make plots RUN=results/runs/squad20pct

Writes training_curves.png and dev_scores.png into the folder (or --out). run_qa.py draws them at
the end of every run (qa/run/plots.py), so the plots sit beside the metrics they come from.
"""

import argparse
import sys

from qa.run.plots import PlotError, draw_run_plots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="+", help="folders holding a log_history.json")
    parser.add_argument("--out", help="write the PNGs here (default: into each folder)")
    args = parser.parse_args(argv)
    for run_dir in args.run:
        try:
            for path in draw_run_plots(run_dir, args.out):
                print("wrote", path)
        except PlotError as err:
            raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
