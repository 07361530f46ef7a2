"""Entry point for the `feast` CLI only (``cd features && NEXTBEST_HOME=... feast apply``).

The nextbest commands never import this module: they build the same objects with
:func:`nextbest.features.store.definitions`. Feast discovers objects as module attributes, so this is the one
place where definitions are built at import time.
"""

from nextbest.features.store import definitions
from nextbest.settings import load_settings

_data_dir = load_settings().data_dir
assert _data_dir is not None  # Settings fills it in
for _obj in definitions(_data_dir):
    globals()[f"_{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
