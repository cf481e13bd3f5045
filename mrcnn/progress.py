"""Keras progress bars over the long loops that are not Keras' own (loading, inspecting)."""


def progress_over(items, verbose=1, unit_name="image"):
    """Iterate over ``items`` (a sized collection), a Keras progress bar ticking after each.

    verbose: 0 for no bar (the items as they are). An empty collection shows no bar.
    """
    if not verbose or not len(items):
        yield from items
        return
    import keras
    bar = keras.utils.Progbar(len(items), unit_name=unit_name)
    for item in items:
        yield item
        bar.add(1)
