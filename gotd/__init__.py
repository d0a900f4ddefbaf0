"""gotd: data selection for pre-fine-tuning by optimal-transport gradients (GOT-D).

The two entry points most users need:

- :func:`gotd.ot_gradients` — calibrated gradient of OT(pool, target) w.r.t. each pool row's mass.
- :func:`gotd.select` — row indices of the ``budget`` best candidates for a selection method.
"""
from gotd.ot import ot_gradients, sinkhorn
from gotd.selectors import available_methods, run_selector, select

__version__ = "0.1.0"

__all__ = ["ot_gradients", "sinkhorn", "select", "run_selector", "available_methods", "__version__"]
