#!/usr/bin/env python3
"""Deterministic generator of realistic ECS NDJSON security logs for imds-scan benchmarks.

Writes Elastic Agent / Auditbeat / Filebeat shaped events (process, network, dns, file,
authentication, web) from Linux and Windows hosts, with planted true positives and near
misses for the bundled Cloud Instance Metadata API rule, plus ``PATH.expected.json``
holding the counts known by construction (no scanner is run).

    python3 bench/gen_corpus.py --size 1G --seed 7 --out bench/data/ecs-1g.ndjson

Python 3.11. The same arguments always give the same bytes. The code is the package
bench/corpus/; see bench/README.md ("Corpus generator") for the knobs and what is planted.
"""

import sys

from corpus.writer import main

if __name__ == "__main__":
    sys.exit(main())
