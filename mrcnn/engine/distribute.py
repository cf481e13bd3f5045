"""Training on several devices: the ``tf.distribute`` strategy a config asks for.

``Config.DISTRIBUTE`` picks it (``None``: decide from the config and the environment):

- no strategy: one device, as Matterport with GPU_COUNT = 1 (and every inference model);
- ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over GPU_COUNT GPUs of this machine (or,
  on a machine without GPUs, over GPU_COUNT logical CPU devices);
- ``"multi_worker"``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the workers that the
  ``TF_CONFIG`` environment variable describes, GPU_COUNT GPUs each (one CPU replica per worker
  without GPUs).

Each replica trains on IMAGES_PER_GPU images per step, so a step takes IMAGES_PER_GPU x
GPU_COUNT (= BATCH_SIZE) images on one machine and BATCH_SIZE x workers with several.
The chief (the ``"chief"`` task, else worker 0) is the one process that writes checkpoints and
TensorBoard logs: see :func:`is_chief`; the others log in a directory of their own
(:func:`worker_log_dir`).
"""

import contextlib
import json
import os
import tempfile

from mrcnn.config import DISTRIBUTE_KINDS

# The seed of worker k's input pipeline is SEED + k * WORKER_SEED_STRIDE: each worker shuffles
# and augments its own stream (see prepare_dataset).
WORKER_SEED_STRIDE = 1_000_003

# The strategies created, reused by later models: a process can configure TensorFlow's
# collective ops once, so it holds one MultiWorkerMirroredStrategy.
_STRATEGIES = {}


def tf_config(environ=None):
    """The parsed ``TF_CONFIG`` of ``environ`` (default ``os.environ``); {} when unset."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError("TF_CONFIG is not valid JSON ({}): {!r}".format(error, text)) from None
    if not isinstance(value, dict):
        raise ValueError("TF_CONFIG must be a JSON object, got {!r}".format(text))
    return value


def cluster_size(environ=None):
    """Number of training processes (chief and workers) that ``TF_CONFIG`` describes; 0 when
    there is no TF_CONFIG. Parameter-server clusters are a ValueError: mrcnn trains with
    synchronous all-reduce only."""
    cluster = tf_config(environ).get("cluster", {})
    if cluster.get("ps"):
        raise ValueError("TF_CONFIG describes parameter servers ('ps' tasks); mrcnn trains "
                         "with MultiWorkerMirroredStrategy: list 'chief'/'worker' tasks only")
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def strategy_kind(config, environ=None):
    """The strategy the training ``config`` asks for: None, "mirrored" or "multi_worker".

    An explicit ``config.DISTRIBUTE`` wins. Otherwise: "multi_worker" when TF_CONFIG lists
    several training processes, "mirrored" when GPU_COUNT > 1, else None (one device).
    """
    kind = getattr(config, "DISTRIBUTE", None)
    if kind is not None:
        return kind
    if cluster_size(environ) > 1:
        return "multi_worker"
    return "mirrored" if config.GPU_COUNT > 1 else None


def replica_devices(count):
    """The ``count`` devices one machine trains on: its first ``count`` GPUs, or, when it has
    no GPU, ``count`` logical CPU devices. Raises ValueError naming what TensorFlow found.
    (Lists logical devices, which starts TensorFlow's runtime.)"""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= count:
        return [d.name for d in gpus[:count]]
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) >= count:
        return [d.name for d in cpus[:count]]
    raise ValueError(
        "GPU_COUNT={} asks for {} devices but TensorFlow finds {} GPU(s){}; lower GPU_COUNT "
        "(IMAGES_PER_GPU x GPU_COUNT is the batch){}".format(
            count, count, len(gpus), "" if gpus else " and {} CPU device(s)".format(len(cpus)),
            "" if gpus else ", or split the CPU with "
            "tf.config.set_logical_device_configuration before TensorFlow starts"))


def create_strategy(config, environ=None):
    """The ``tf.distribute.Strategy`` that trains ``config`` (None: no strategy, one device).

    Inside a strategy scope that the caller entered, that strategy is returned: the caller
    chose. Call it before building the model: the model and its optimizer are created in
    ``scope(strategy)``.
    """
    import tensorflow as tf
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    kind = strategy_kind(config, environ)
    if kind not in DISTRIBUTE_KINDS:
        raise ValueError("DISTRIBUTE must be one of {}, got {!r}".format(DISTRIBUTE_KINDS,
                                                                          kind))
    if kind is None:
        return None
    if kind == "mirrored":
        devices = tuple(replica_devices(config.GPU_COUNT))
        if ("mirrored", devices) not in _STRATEGIES:
            _STRATEGIES["mirrored", devices] = tf.distribute.MirroredStrategy(list(devices))
        return _STRATEGIES["mirrored", devices]
    return _multi_worker_strategy(config, environ)


def _multi_worker_strategy(config, environ):
    """MultiWorkerMirroredStrategy over TF_CONFIG's workers, GPU_COUNT GPUs (or one CPU) each."""
    import tensorflow as tf
    if cluster_size(environ) < 1:
        raise ValueError("DISTRIBUTE='multi_worker' needs the TF_CONFIG environment variable "
                         "describing the cluster and this process's task")
    if "multi_worker" in _STRATEGIES:
        return _STRATEGIES["multi_worker"]
    # The strategy replicates over every visible GPU of the worker: show it GPU_COUNT of them.
    # Physical devices only: listing logical ones would start the runtime, and the strategy
    # must configure the collective ops before it starts.
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and len(gpus) < config.GPU_COUNT:
        raise ValueError("GPU_COUNT={} but this worker has {} GPU(s)".format(
            config.GPU_COUNT, len(gpus)))
    if not gpus and config.GPU_COUNT != 1:
        raise ValueError("GPU_COUNT={}: this worker has no GPU, and multi-worker training on "
                         "CPUs runs one replica per worker; set GPU_COUNT = 1".format(
                             config.GPU_COUNT))
    if len(gpus) > config.GPU_COUNT:
        tf.config.set_visible_devices(gpus[:config.GPU_COUNT], "GPU")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _STRATEGIES["multi_worker"] = strategy
    return strategy


def scope(strategy):
    """``strategy.scope()``, or a no-op context for no strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _task(strategy, environ):
    """(task type, task index, cluster dict) of this process; (None, 0, {}) when it is the
    only one."""
    if strategy is not None:
        resolver = strategy.cluster_resolver
        if resolver is None or resolver.task_type is None:
            return None, 0, {}
        return resolver.task_type, int(resolver.task_id or 0), \
            resolver.cluster_spec().as_dict()
    config = tf_config(environ)
    if cluster_size(environ) <= 1:
        return None, 0, {}
    task = config.get("task", {})
    return task.get("type"), int(task.get("index", 0)), config.get("cluster", {})


def is_multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy over several workers."""
    import tensorflow as tf
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    _, _, cluster = _task(strategy, None)
    return len(cluster.get("chief", [])) + len(cluster.get("worker", [])) > 1


def worker_index(strategy=None, environ=None):
    """This process's rank among the training processes: 0 for the chief ("chief" task, else
    worker 0), then the workers in order."""
    task_type, task_id, cluster = _task(strategy, environ)
    if task_type is None or task_type == "chief":
        return 0
    return task_id + (1 if cluster.get("chief") else 0)


def is_chief(strategy=None, environ=None):
    """True on the process that writes checkpoints, TensorBoard logs and pictures.

    strategy: the training strategy (``MaskRCNN.strategy``); without one, TF_CONFIG of
    ``environ`` decides. A single process (no strategy, MirroredStrategy) is its own chief.
    Custom callbacks that write files should check it: they run on every worker.
    """
    task_type, _, _ = _task(strategy, environ)
    return task_type is None or worker_index(strategy, environ) == 0


@contextlib.contextmanager
def worker_log_dir(strategy, environ=None):
    """A context giving this worker's private log directory, or None on the chief.

    Only the chief writes in ``model_dir`` (:func:`is_chief`; ``environ`` as there); another
    worker's logs (of custom callbacks) go to a temporary directory of its own, removed on exit
    when it is empty.
    """
    if is_chief(strategy, environ):
        yield None
        return
    path = tempfile.mkdtemp(prefix="mrcnn_worker{}_".format(worker_index(strategy, environ)))
    try:
        yield path
    finally:
        if not os.listdir(path):
            os.rmdir(path)


def global_batch_size(config, strategy):
    """Images per training step over all replicas: IMAGES_PER_GPU per replica (BATCH_SIZE on
    one machine, BATCH_SIZE x workers with several)."""
    if strategy is None:
        return config.BATCH_SIZE
    return config.IMAGES_PER_GPU * strategy.num_replicas_in_sync


def worker_seed(seed, strategy):
    """The input-pipeline seed of this worker: ``seed`` on the chief (and on one machine),
    offset on the other workers so that each draws its own images."""
    return seed + WORKER_SEED_STRIDE * worker_index(strategy)


def prepare_dataset(dataset, strategy):
    """An input pipeline of global batches made ready for ``keras.Model.fit`` under
    ``strategy`` (unchanged without one).

    Keras splits each global batch between the replicas. Several workers do not shard it
    (auto-shard OFF): each worker's pipeline is seeded differently (:func:`worker_seed`) and
    every worker prepares only the images that its replicas take (sharding by DATA would make
    each worker prepare every image of the global batch and drop the others').
    """
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)
