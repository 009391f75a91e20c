"""Artifacts: everything a run leaves on disk, and the only code that knows its file names.

    root = artifacts_root()                 # --artifacts-dir, $CIFAR_ARTIFACTS or ./artifacts
    run = read_run(root, "cnn_bn-1a2b3c4d") # validated (schema v2); ArtifactError names the bad file
    ids = list_runs(root)                   # complete runs only

Modules, by concern:
- ``reading``: run folders (``runs/<id>/``): ids, listing, reading;
- ``writing``: a run folder written atomically, evaluations, a lean run's model dropped;
- ``testdata``: where a run's data is, and its test images (from there, else its thumbnails);
- ``schema``: the run format (version 2) and the validating readers;
- ``codecs``: the float16 model file and the JPEG thumbnails;
- ``work``: the work folder of a run in training (checkpoints, caches) and its lock;
- ``migrate``: older formats converted once (``python -m cifar_core migrate``);
- ``mapfiles``: the optional files made after a run (its map of the test set, its data facts;
  cifar_core.analysis.runmap makes them).
"""

from cifar_core.artifacts.codecs import compact_keras_file, keep_thumbnails, thumbnail_bytes
from cifar_core.artifacts.mapfiles import (
    ARCHITECTURE,
    DATA_FACTS,
    EMBEDDING,
    read_architecture,
    read_data_facts,
    read_embedding,
    runs_without_map,
    write_architecture,
    write_data_facts,
    write_embedding,
)
from cifar_core.artifacts.reading import (
    CONFUSION,
    EVALUATIONS,
    FILES,
    HISTORY,
    MANIFEST,
    METRICS,
    MODEL,
    PER_CLASS,
    PREDICTIONS,
    RUNS,
    SOURCE,
    TEMP_PREFIX,
    THUMBNAILS,
    Run,
    artifacts_root,
    check_run_id,
    is_ladder_run,
    list_runs,
    load_runs,
    read_manifest,
    read_run,
    run_dir,
    run_exists,
    run_kind,
    runs_signature,
)
from cifar_core.artifacts.schema import SCHEMA_VERSION
from cifar_core.artifacts.testdata import (
    available_test_indices,
    data_folder,
    data_record,
    relative_path,
    test_images,
)
from cifar_core.artifacts.work import training_lock, work_dir
from cifar_core.artifacts.writing import (
    ROBUSTNESS,
    RunContents,
    drop_model,
    read_robustness,
    read_robustness_arrays,
    record_export,
    robustness_path,
    write_evaluation,
    write_robustness,
    write_run,
)
from cifar_core.errors import ArtifactError, RunExistsError, RunLockedError

__all__ = [
    "CONFUSION",
    "ARCHITECTURE",
    "DATA_FACTS",
    "EMBEDDING",
    "EVALUATIONS",
    "FILES",
    "HISTORY",
    "MANIFEST",
    "METRICS",
    "MODEL",
    "PER_CLASS",
    "PREDICTIONS",
    "RUNS",
    "SCHEMA_VERSION",
    "SOURCE",
    "TEMP_PREFIX",
    "THUMBNAILS",
    "ArtifactError",
    "Run",
    "RunExistsError",
    "RunLockedError",
    "artifacts_root",
    "available_test_indices",
    "check_run_id",
    "compact_keras_file",
    "keep_thumbnails",
    "data_folder",
    "data_record",
    "drop_model",
    "record_export",
    "list_runs",
    "is_ladder_run",
    "run_kind",
    "load_runs",
    "read_manifest",
    "read_architecture",
    "read_data_facts",
    "read_embedding",
    "read_run",
    "relative_path",
    "run_dir",
    "run_exists",
    "runs_signature",
    "runs_without_map",
    "test_images",
    "thumbnail_bytes",
    "training_lock",
    "work_dir",
    "write_architecture",
    "write_data_facts",
    "write_embedding",
    "write_evaluation",
    "write_robustness",
    "read_robustness",
    "read_robustness_arrays",
    "robustness_path",
    "ROBUSTNESS",
    "write_run",
    "RunContents",
]
