"""The analysis wing: reading a finished run and what several runs say together.

``report`` (the results table), ``seeds`` (seed groups and their intervals), ``runcard``
(a run's card), ``architecture``, ``saliency`` (Grad-CAM), ``embeddings`` and ``runmap`` (the
map of the test set), ``crossrun`` (label errors across runs), ``readme`` (the README's
generated blocks).

May import the root, models, data, artifacts and serving; nothing above it.
"""
