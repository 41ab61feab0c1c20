"""Batch-folder review, Qt-free: scan a folder, inspect every image through a pipelined runner,
keep results and decisions in a per-folder store (resumable, change-aware), export CSV/JSON/PDF.

``station batch`` (``station.review.cli``) and the GUI's batch window (``station.ui.batch_window``)
share all of it. Importing this package loads nothing heavy; import the submodules.
"""
