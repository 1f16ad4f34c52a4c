"""Moved to ``lakeforge.models.network`` (the serving model loads the network without the train stage). Kept
so that torch models logged before the move, whose pickled pyfunc names this module, still load."""

from lakeforge.models.network import NetSpec, Preprocessing, TabularNet, TabularPyfunc, load_network, predict_numpy

__all__ = ["NetSpec", "Preprocessing", "TabularNet", "TabularPyfunc", "load_network", "predict_numpy"]
