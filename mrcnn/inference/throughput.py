"""Pipelined detection: images, files or video frames in, one ``detect()`` result per input out.

``MaskRCNN.detect_iter`` runs here. A producer thread walks the inputs and hands each one to a
small thread pool that reads it (``images.read_rgb`` for paths), checks it
(``images.check_image``) and molds it (``transform.mold_inputs``); the calling thread batches
the molded images and runs the graph and the unmolding (``MaskRCNN._detect_molded``), so the
next images are read and molded while the current batch is inferred. The queue between them is
bounded: at most ``prefetch`` inputs are read ahead, whatever the length of the input (a video
can be endless).

Each result is ``detect()``'s dict (rois, class_ids, scores, masks) plus ``index`` (the
position in the input) and ``name`` (the path, or ``"image <index>"``); results come in input
order. An input that cannot be read or is not a valid image gives ``{"index", "name",
"error"}`` (the error names the input) and the others go on.
"""

import concurrent.futures
import os
import queue
import threading

import numpy as np

from mrcnn.inference import molding as transform
from mrcnn.data.images import check_image, read_rgb

# What the producer thread puts in the queue after the last input.
_END = object()


def input_name(item, index):
    """How results and errors name an input: a path as given, anything else by position."""
    if isinstance(item, (str, bytes, os.PathLike)):
        return os.fsdecode(item)
    return "image {}".format(index)


def prepare(item, index, config):
    """Read (paths), check and mold one input; returns a dict with ``index`` and ``name``, and
    either ``molded``, ``meta``, ``window``, ``image`` or ``error`` (a message naming it)."""
    name = input_name(item, index)
    entry = {"index": index, "name": name}
    if isinstance(item, (str, bytes, os.PathLike)):
        try:
            item = read_rgb(item)
        except Exception as e:  # any reader failure (missing, corrupt, not an image) is the input's
            entry["error"] = "{}: cannot read the image ({}: {})".format(name, type(e).__name__, e)
            return entry
    try:
        # Checked here first so that the message names the input (mold_inputs would say
        # "detect() image <i>"); a checked image passes mold_inputs' own check unchanged.
        image = check_image(item, name, config.IMAGE_CHANNEL_COUNT)
        molded, metas, windows = transform.mold_inputs([image], config, first_index=index)
    except (ValueError, TypeError) as e:
        message = str(e)
        entry["error"] = message if message.startswith(name) else "{}: {}".format(name, message)
        return entry
    entry.update(image=image, molded=molded[0], meta=metas[0], window=windows[0])
    return entry


def check_batch_size(batch_size, config):
    """``batch_size`` (None: BATCH_SIZE) as an int within 1..BATCH_SIZE, or ValueError.

    The graph takes BATCH_SIZE images per call; a smaller batch is filled up with copies (its
    results come sooner, e.g. for live video, at the cost of throughput).
    """
    if batch_size is None:
        return int(config.BATCH_SIZE)
    if not 1 <= int(batch_size) <= config.BATCH_SIZE:
        raise ValueError("batch_size must be within 1..BATCH_SIZE ({}), got {}".format(
            config.BATCH_SIZE, batch_size))
    return int(batch_size)


def _produce(inputs, pool, config, pending, stop):
    """Producer thread: submit each input to ``pool`` and queue its future, in input order.

    The queue's bound blocks this thread when the consumer is behind (bounded memory); ``stop``
    ends it early when the consumer goes away. An exception of the input iterable itself (not of
    one input) is queued for the consumer to raise.
    """
    def put(value):
        while not stop.is_set():
            try:
                pending.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    index = 0
    try:
        # ``stop`` is looked at before each next(): no input is read after the consumer left.
        while not stop.is_set():
            try:
                item = next(inputs)
            except StopIteration:
                put(_END)
                return
            if not put(pool.submit(prepare, item, index, config)):
                return
            index += 1
    except BaseException as e:  # re-raised in the consumer's thread, where the caller sees it
        put(e)


def detect_iter(model, inputs, batch_size=None, workers=2, prefetch=None, return_images=False):
    """Detect on an iterable of images, image paths or video frames; yields results in order.

    See :meth:`mrcnn.model.MaskRCNN.detect_iter`. Arguments are checked now (ValueError); the
    inputs are read only as the returned generator is consumed.
    """
    if model.mode != "inference":
        raise ValueError("create the model in inference mode to detect")
    batch_size = check_batch_size(batch_size, model.config)
    if int(workers) < 1:
        raise ValueError("workers must be at least 1, got {}".format(workers))
    # Enough read ahead to fill the next batch while one is inferred, not more (memory).
    prefetch = 2 * batch_size + int(workers) if prefetch is None else int(prefetch)
    if prefetch < 1:
        raise ValueError("prefetch must be at least 1, got {}".format(prefetch))
    # iter() now: an input that is not iterable is the caller's error at the call.
    return _pipeline(model, iter(inputs), batch_size, int(workers), prefetch, return_images)


def _pipeline(model, inputs, batch_size, workers, prefetch, return_images):
    """The generator behind :func:`detect_iter`."""
    pending = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="mrcnn-mold")
    producer = threading.Thread(target=_produce, name="mrcnn-inputs", daemon=True,
                                args=(inputs, pool, model.config, pending, stop))
    producer.start()
    # Entries waiting for their batch, errors included: results leave in input order.
    waiting, batch = [], []

    def run_batch():
        results = []
        if batch:
            detections = model._detect_molded(
                np.stack([e["molded"] for e in batch]), np.stack([e["meta"] for e in batch]),
                [e["image"].shape for e in batch], [e["window"] for e in batch])
            for entry, detection in zip(batch, detections):
                entry["result"] = detection
        for entry in waiting:
            result = {"index": entry["index"], "name": entry["name"]}
            if "error" in entry:
                result["error"] = entry["error"]
            else:
                result.update(entry["result"])
                if return_images:
                    result["image"] = entry["image"]
            results.append(result)
        del waiting[:], batch[:]
        return results

    try:
        while True:
            item = pending.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                yield from run_batch()   # the inputs before the failure still come back
                raise item
            entry = item.result()
            if "error" not in entry and batch and \
                    entry["molded"].shape != batch[0]["molded"].shape:
                # Images molded to another size (IMAGE_RESIZE_MODE "none", "pad64") cannot share
                # the batch: run the batch so far first.
                yield from run_batch()
            waiting.append(entry)
            if "error" not in entry:
                batch.append(entry)
            # A full batch runs; an error with no image before it waiting leaves at once.
            if len(batch) == batch_size or not batch:
                yield from run_batch()
        yield from run_batch()
    finally:
        # Also on an early exit (the caller stopped iterating): end the producer, unblock it,
        # and drop the inputs read ahead.
        stop.set()
        while True:
            try:
                pending.get_nowait()
            except queue.Empty:
                break
        # Waited for, so that once the caller's close() returns no thread touches its inputs
        # (e.g. a video capture it then releases); it ends at its next look at ``stop``.
        producer.join()
        pool.shutdown(wait=True, cancel_futures=True)
