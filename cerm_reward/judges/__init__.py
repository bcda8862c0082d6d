"""Judges: prompt templates, parsing of judge replies, the CE-RM group judge, and ``hosting``
(the interface every host holds and ``open_judge``, which opens the judge ``judge.kind`` names)."""
