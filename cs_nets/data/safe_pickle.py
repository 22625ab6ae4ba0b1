"""Unpickle CIFAR-10 batch files without trusting them.

A pickle can name any importable callable and have it called (``os.system`` is the
classic), so plain ``pickle.load`` on a downloaded file runs whatever the file says.
The CIFAR batches only need NumPy's array reconstructor, so everything else is refused.
"""

import importlib
import pickle

from cs_nets.data.messages import one_line
from cs_nets.errors import DataError


def _reconstruct():
    # NumPy 2 moved numpy.core to numpy._core; the batch files name the old path.
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")  # pragma: no cover


def _allowed_globals():
    import numpy as np

    reconstruct = _reconstruct()
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch needs.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``DataError``
    naming the global and the file, before anything is called.
    """

    def __init__(self, file, name, encoding="bytes"):
        # encoding="bytes": the files are Python 2 pickles whose str objects are raw bytes.
        super().__init__(file, encoding=encoding)
        self.name = name
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {self.name}: it asks for the global "
                f"'{module}.{name}', which a CIFAR-10 batch never needs"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"refusing to unpickle {self.name}: it uses persistent ids")


def load_untrusted(file, name):
    """Unpickle one object from the binary file object ``file``; ``name`` is for messages.

    Raises ``DataError`` for a refused global and for a truncated or corrupt stream.
    """
    try:
        return RestrictedUnpickler(file, name).load()
    except DataError:
        raise
    except Exception as err:  # pickle reports corruption with many exception types
        raise DataError(f"{name} is truncated or corrupt ({one_line(err)})") from None
