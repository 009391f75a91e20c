"""What the pages share, by job. The engine (``cifar_core``) computes and reads; these
modules add Streamlit's caching and widgets on top and draw nothing a page does not ask for.

- ``loading``: the runs and studies, read through ``cifar_core.artifacts`` and cached until
  their files change; the empty states;
- ``serving``: the models behind the pages (predictions, heatmaps, features, architecture),
  loaded once per server and shared by every session;
- ``widgets``: test images, image and heatmap grids, figure helpers, chart selections.
"""
