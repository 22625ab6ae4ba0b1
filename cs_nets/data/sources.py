"""What each data source gives before it is loaded: its number of classes."""

from cs_nets.data.batches import NUM_CLASSES as CIFAR10_CLASSES
from cs_nets.data.synthetic import NUM_CLASSES as SYNTHETIC_CLASSES
from cs_nets.data.toy import DEFAULT_CLASSES


def num_classes(data) -> int:
    """Classes of the source a config's data section names (a cs_nets.config.DataConfig)."""
    if data.source == "cifar10":
        return CIFAR10_CLASSES
    if data.source == "synthetic":
        return SYNTHETIC_CLASSES
    if data.source == "cifar100":
        from cs_nets.data.cifar100 import LABEL_MODES

        return LABEL_MODES[data.label_mode]
    if data.source == "folder":
        from cs_nets.data.folder import count_classes

        return count_classes(data.path)
    return data.classes if data.classes is not None else DEFAULT_CLASSES[data.source]
