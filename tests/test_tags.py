"""Tag names are defined once, in lrmon.tags, and every module uses them."""

from __future__ import annotations

import pytest

from lrmon.tags import is_lr_tag, lr_tag_order, lr_tags


def test_lr_tags_per_group_and_their_order():
    assert lr_tags(1) == ("lr",) and lr_tags(3) == ("lr/pg0", "lr/pg1", "lr/pg2")
    assert all(is_lr_tag(tag) for tag in lr_tags(1) + lr_tags(12))
    assert not any(is_lr_tag(tag) for tag in ("lrx", "lr/9x", "loss", "lr/pg1/x", "lr/"))
    assert sorted(["lr/pg10", "lr/pg2", "lr/pg0"], key=lr_tag_order) == ["lr/pg0", "lr/pg2", "lr/pg10"]
    with pytest.raises(ValueError, match="not an LR tag"):
        lr_tag_order("loss")


def test_named_parameter_groups():
    assert lr_tags(2, ["backbone", "head"]) == ("lr/backbone", "lr/head")
    assert lr_tags(1, ["all"]) == ("lr/all",)
    assert all(is_lr_tag(tag) for tag in ("lr/backbone", "lr/head.bias", "lr/layer-2"))
    assert sorted(["lr/head", "lr/backbone"], key=lr_tag_order) == ["lr/backbone", "lr/head"]
    for names, problem in ((["a"], "2 distinct names"), (["a", "a"], "2 distinct names"),
                           (["pg1", "b"], "pg1"), (["a", "b/c"], "b/c"), (["a", 3], "3")):
        with pytest.raises(ValueError, match=problem):
            lr_tags(2, names)


def test_phase_names_follow_the_curve():
    from lrmon.curve import CurveConfig

    config = CurveConfig(0.1, 10, 20)
    assert [config.phases[int(p)] for p in config.phase_at([0, 10, 20])] == ["warmup", "cosine", "past end"]
