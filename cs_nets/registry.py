"""Every named choice of cs_nets, listed once.

Config validation, ``build_model``, the loss and activation tables, ``csnets
gradcheck``'s options and docs/configs.md's config reference (``csnets config
--reference``) all read these tuples; ``tests/test_registry.py`` holds each
implementation table to them. Adding a choice means adding its name here and its
implementation where the name is looked up. Plain data: importing this module
costs nothing (the CLI reads it to build its options).
"""

MODEL_TYPES = ("linear", "two_layer", "fc_net")
LOSSES = ("svm", "softmax")
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "maxout")
BACKPROP_EXAMPLES = ("simple", "sigmoid_neuron", "patterns", "vectorized")  # csnets backprop: cs_nets.circuits
INIT_SCHEMES = ("he", "xavier")  # besides a plain float std
SCHEDULES = ("constant", "step", "cosine")
FEATURE_TYPES = ("raw", "hog", "color_hist", "bow", "polar")
POINT_FEATURE_TYPES = ("polar",)  # transforms of 2-D points; the others take images
POINT_SOURCES = ("circles", "spiral", "blobs")  # 2-D toy problems: (N, 2) points, not images
IMAGE_FOLDER_SOURCES = ("folder",)  # your own images: cs_nets.data.folder (data.path, data.image_size)
DATA_SOURCES = ("cifar10", "cifar100", "synthetic", *IMAGE_FOLDER_SOURCES, *POINT_SOURCES)
ARCHIVE_SOURCES = ("cifar10", "cifar100")  # downloaded: data.dir, data.url, data.md5
LABEL_MODES = ("fine", "coarse")  # cifar100: 100 fine classes or 20 coarse superclasses
ARCHIVE_FORMATS = ("python", "binary")
NORMALIZATIONS = ("none", "mean", "mean_std")
DTYPES = ("float32", "float64")
# data.storage: how the training images are held (cs_nets.data.storage). float32: as model inputs in
# data.dtype, normalized once; uint8: as pixels, each minibatch normalized as it is drawn; auto: uint8
# only when the float inputs would not fit in memory (cs_nets.memory.choose_storage).
STORAGES = ("auto", "float32", "uint8")
SPLITS = ("train", "val", "test")
TASKS = ("train", "random_search")  # what a run does: cs_nets.runs.task
# A run's summary.json status. Results: a run that ended with its best parameters scored
# (stopped: a sweep's scheduler ended it early). Ended: nothing is left to resume.
RESULT_STATUSES = ("completed", "early_stopped", "stopped")
ENDED_STATUSES = (*RESULT_STATUSES, "diverged")
SWEEP_DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")  # csnets sweep: cs_nets.sweep.spec
SWEEP_SCHEDULERS = ("none", "asha")  # none: every trial runs to the end
SWEEP_BACKENDS = ("auto", "local", "ray")  # csnets sweep --backend: auto picks ray if installed, else local
SWEEP_METRICS = ("val_accuracy",)  # maximized; a run keeps its best epoch by validation accuracy
