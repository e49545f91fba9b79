"""Attribution plots and post-hoc baselines."""
