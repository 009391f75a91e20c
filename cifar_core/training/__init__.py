"""The training wing: a config fitted resumably and recorded as a run.

``trainer.train_model`` is the entry: ``fitting`` runs the phase plan (``callbacks``,
``schedules``, ``muon``, ``finetune``, ``precision``) and writes live ``progress``; ``record``
scores the fit, writes the run folder and exports it (the one step after every training);
``tracking`` records a ``fit`` of your own the same way; ``status`` reads the trainings
under way; ``probe`` fits linear probes of a frozen backbone.

May import the root, models, data, artifacts, serving and analysis; nothing above it.
"""
