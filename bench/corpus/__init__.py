"""The benchmark corpus generator, as a package; bench/gen_corpus.py is its command line.

- vocabulary: static words, command-line templates, process specs
- text: the literal guard and the rewrites of a serialized line
- benign: the fleet (hosts, processes) and the benign event builders
- planted: helpers shared by the planted lines
- positives / near_misses: one method per planted variant (tp_* / nm_*)
- generator: deals planted lines among benign ones and labels every line
- writer: the command line, the output file and OUT.expected.json
"""
