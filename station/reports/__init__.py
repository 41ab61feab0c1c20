"""Printed reports: the page style their HTML shares (``style``) and the one Qt module outside
``station.ui`` that lays that HTML out as a PDF (``pdf``, imported only when a PDF is written)."""
