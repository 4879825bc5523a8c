"""Reporting: hits as a Polars DataFrame, output formats, summaries, the HTML report.

- :mod:`.frame`: ``SCHEMA`` and ``hits_frame`` (the hits as a DataFrame);
- :mod:`.formats`: ``--format``/``--output`` writers;
- :mod:`.alerts`: ECS alert documents;
- :mod:`.summary`: the ``--summary`` aggregations;
- :mod:`.html`: the ``--report`` page.

Import the submodules: this package stays empty so that writing NDJSON never imports Polars.
"""
