"""Cross-domain comparison: grids of runs, statistics, report, plots and the attention gallery."""
