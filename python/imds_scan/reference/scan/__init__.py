"""Scanning, as the Rust engine's ``scan`` folder (crates/imds-core/src/scan) does it:

- :mod:`.source`: opening an input, telling and decoding its compression (``source.rs``);
- :mod:`.lines`: cutting the decoded data into lines, reading past overlong ones (``lines.rs``);
- :mod:`.engine`: every line parsed and every rule evaluated, hits and statistics gathered
  (``engine.rs``; the reference engine has no prefilter and reads inputs one after another).

This package imports nothing itself: reading inputs (:mod:`.source`, :mod:`.lines`) does not
load the evaluator.
"""
