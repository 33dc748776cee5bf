"""Agora: which model should make my training data, at what volume, for my budget?

The package reproduces and extends AgoraBench. Entry points call `agora.<stage>.run(cfg, tracker)`.
"""


class AgoraError(Exception):
    """A problem the user can fix: the message names the value and the fix. Printed as one line."""
