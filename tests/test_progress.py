"""mrcnn.progress: the loops' progress bars."""

from mrcnn.progress import progress_over


def test_progress_over_yields_every_item_and_counts_them(capsys):
    seen = []
    for item in progress_over(["a", "b", "c"], verbose=1):
        seen.append(item)
        # The bar ticks once an item is done: while "a" is worked on, nothing is counted.
        if item == "a":
            assert "1/3" not in capsys.readouterr().out
    assert seen == ["a", "b", "c"]
    out = capsys.readouterr().out
    assert "3/3" in out and "image" in out


def test_no_bar_when_quiet_or_empty(capsys):
    assert list(progress_over([1, 2], verbose=0)) == [1, 2]
    assert list(progress_over([], verbose=1)) == []
    assert capsys.readouterr().out == ""
