"""The drivers of the suite's experiments, apart from the library (as open_clip keeps its training
scripts apart): the seeds' tables, SLURM submissions, the demo report, the SVO ablation and SVO's
accuracy table. They run ``shapvision`` / ``shapvision-clip`` as commands and read the experiment
configs (pipelines, resources, tables as YAML under ``experiments/``); nothing in ``shapvision``
imports them."""
