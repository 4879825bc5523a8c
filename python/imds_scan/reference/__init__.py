"""The pure-Python reference engine: the rule IR evaluated plainly, line by line, with the
standard library's :mod:`json` and no fast path. It is the oracle the Rust engine is tested
against (spec/semantics.md, spec/ir.md) and the baseline the benchmark compares with.

Its modules mirror the Rust core's (crates/imds-core/src) by name, one to one:

- :mod:`.event`: a line's JSON parsed, a field's values looked up (``event.rs``);
- :mod:`.eval`: a rule's IR compiled and evaluated, with its witness (``eval.rs``);
- :mod:`.typed`: field values read as their Elasticsearch type, literals, comparison;
- :mod:`.expr`: ``expr`` nodes, their functions and combinations of field values;
- :mod:`.lucene_regex`: Lucene regular expressions (``lucene_regex.rs``);
- :mod:`.ip`: IP address and CIDR parsing (``ip.rs``);
- :mod:`.wildcard`: EQL wildcard patterns, ASCII case folding (``wildcard.rs``);
- :mod:`.analysis`: text analysis of ``text`` fields, lowercasing (``analysis.rs``);
- :mod:`.endpoint`: the ``imds_endpoint`` decoder (``endpoint.rs``);
- :mod:`.scan`: reading inputs, cutting them into lines and scanning them (the ``scan``
  folder: :mod:`.scan.source`, :mod:`.scan.lines`, :mod:`.scan.engine`).

This package imports nothing itself, so that importing :mod:`.event` (which reporting, the
filters and the input-shape check share) or :mod:`.ip` (which the rule compiler uses) does
not load the engine. Call it through :func:`imds_scan.run_scan` with ``engine="python"``.
"""
