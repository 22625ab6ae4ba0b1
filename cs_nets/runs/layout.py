"""The files of a run directory: their names and the bounds they are read back within.

cs_nets.runs.writer writes these files, cs_nets.runs.reader reads them; both take
the names from here. What each file holds: cs_nets/runs/writer.py.
"""

# Bounds on the files a run directory holds (they are read back from disk, so untrusted).
MAX_SUMMARY_BYTES = 4 << 20
MAX_METRICS_BYTES = 64 << 20
MAX_SMALL_FILE_BYTES = 64 << 10  # sweep_args, exit_status
MAX_BATCH_LOSSES_BYTES = 1 << 30
METRIC_KEYS = ("epoch", "train_loss", "train_data_loss", "train_reg_loss", "train_accuracy", "val_accuracy", "lr",
               "seconds")  # train_loss = train_data_loss + train_reg_loss (both null in runs made before they were)
RUNNING = "running"
STATE_FILE = "state.npz"
# What makes a folder a run directory: csnets writes these, and nothing else does.
RUN_FILES = ("config.yaml", "metrics.jsonl", STATE_FILE, "summary.json", "model.npz")
