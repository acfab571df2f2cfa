"""Test-wide isolation."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_wandb_service():
    """wandb puts the address of the service it starts into ``os.environ["WANDB_SERVICE"]``: every subprocess a
    test starts afterwards (a training worker, an example) would then log through this process's wandb-core
    instead of its own, which no real training job does (and a SIGKILL of it would not touch that wandb-core)."""
    os.environ.pop("WANDB_SERVICE", None)
    yield
    os.environ.pop("WANDB_SERVICE", None)
