"""Tracker sinks for lrmon, one module per tracker: ``lrmon.integrations.tensorboard``, ``.wandb``, ``.clu``.

Each module imports its tracker only when used; install the matching extra (``pip install lrmon[wandb]`` ...).
"""
