"""Tag names are defined once, in lrmon.tags, and every module uses them."""

from __future__ import annotations

import pytest

from lrmon.tags import PHASE_NAMES, is_lr_tag, lr_tag_order, lr_tags


def test_lr_tags_per_group_and_their_order():
    assert lr_tags(1) == ("lr",) and lr_tags(3) == ("lr/pg0", "lr/pg1", "lr/pg2")
    assert all(is_lr_tag(tag) for tag in lr_tags(1) + lr_tags(12))
    assert not any(is_lr_tag(tag) for tag in ("lrx", "lr/pg", "lr/pgx", "loss", "lr/pg1/x"))
    assert sorted(["lr/pg10", "lr/pg2", "lr/pg0"], key=lr_tag_order) == ["lr/pg0", "lr/pg2", "lr/pg10"]
    with pytest.raises(ValueError, match="not an LR tag"):
        lr_tag_order("loss")


def test_phase_names_follow_the_curve():
    from lrmon.curve import CurveConfig

    phases = CurveConfig(0.1, 10, 20).phase_at([0, 10, 20])
    assert [PHASE_NAMES[int(p)] for p in phases] == ["warmup", "cosine", "past end"]
