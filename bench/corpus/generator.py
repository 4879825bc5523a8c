"""The generator: benign events with planted true positives and near misses dealt among them
at the requested rates, rendered as NDJSON lines with their labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from .near_misses import NearMisses
from .noise import NOISE_WEIGHTS, Noise
from .positives import Positives
from .text import go_escape, has_guard_literal, hide_literals, to_json


class Generator(Positives, NearMisses, Noise):
    def __init__(
        self, seed: int, size: int, tp_rate: float, nm_rate: float, noise_rate: float = 0.0
    ) -> None:
        super().__init__(seed, size)
        self.tp_rate = tp_rate
        self.nm_rate = nm_rate
        self.noise_rate = noise_rate
        self.tp_deck: list[str] = []
        self.nm_deck: list[str] = []
        self.noise_deck: list[str] = []
        self.tp_builders: dict[
            str, Callable[[], tuple[dict[str, Any] | str, str, dict[str, Any]]]
        ] = {
            name[3:]: getattr(self, name)
            for name in dir(self)
            if name.startswith("tp_") and callable(getattr(self, name))
        }
        self.nm_builders: dict[str, Callable[[], tuple[dict[str, Any] | str, dict[str, Any]]]] = {
            name[3:]: getattr(self, name)
            for name in dir(self)
            if name.startswith("nm_") and callable(getattr(self, name))
        }
        self.planted_tp: Counter[str] = Counter()
        self.planted_nm: Counter[str] = Counter()
        self.planted_noise: Counter[str] = Counter()
        self.modifiers: Counter[str] = Counter()
        self.guard_rejects = 0

    # ---------------------------------------------------------------- lines
    def _deal(self, deck: list[str], names: list[str]) -> str:
        if not deck:
            deck.extend(names)
            self.r.shuffle(deck)
        return deck.pop()

    def _render_planted(self, doc: dict[str, Any], opts: dict[str, Any]) -> str:
        r = self.r
        if opts.get("dot", True) and r.random() < 0.3:
            doc = self.dot_mix(doc)
            self.modifiers["dotted"] += 1
        raw = to_json(doc)
        if opts.get("go"):
            esc = go_escape(raw)
            if esc != raw:
                self.modifiers["go_escaped"] += 1
            raw = esc
        if "dup" in opts:
            raw = raw[:-1] + opts["dup"] + "}"
        if opts.get("slash") or (r.random() < 0.08 and not opts.get("hide")):
            raw = raw.replace("/", "\\/")
            self.modifiers["slash_escaped"] += 1
        if opts.get("hide") or r.random() < 0.08:
            raw = hide_literals(raw, r)
            self.modifiers["literals_hidden"] += 1
        return raw

    def lines(self):
        """Yield (line without newline, label).

        label is None (benign), ("tp", branch, variant), ("nm", variant) or ("noise", variant)."""
        r = self.r
        tp_rate = self.tp_rate
        nm_edge = tp_rate + self.nm_rate
        noise_edge = nm_edge + self.noise_rate
        noise_names = [n for n, w in sorted(NOISE_WEIGHTS.items()) for _ in range(w)]
        tp_names = sorted(self.tp_builders)
        nm_names = sorted(self.nm_builders)
        dumps = to_json
        while True:
            u = r.random()
            if u < tp_rate:
                variant = self._deal(self.tp_deck, tp_names)
                doc, branch, opts = self.tp_builders[variant]()
                self.planted_tp[variant] += 1
                yield self._render_planted(doc, opts), ("tp", branch, variant)
            elif u < nm_edge:
                variant = self._deal(self.nm_deck, nm_names)
                doc, opts = self.nm_builders[variant]()
                self.planted_nm[variant] += 1
                yield self._render_planted(doc, opts), ("nm", variant)
            elif u < noise_edge:
                variant = self._deal(self.noise_deck, noise_names)
                doc, go = getattr(self, "nz_" + variant)()
                if r.random() < 0.1:
                    doc = self.dot_mix(doc)
                raw = dumps(doc)
                # The point of a noise line: the prefilter's literals in plain sight.
                assert has_guard_literal(raw), variant
                self.planted_noise[variant] += 1
                yield go_escape(raw) if go else raw, ("noise", variant)
            else:
                while True:
                    doc, go = self.benign()
                    if r.random() < 0.1:
                        doc = self.dot_mix(doc)
                    raw = dumps(doc)
                    if not has_guard_literal(raw):
                        break
                    self.guard_rejects += 1
                if go:
                    raw = go_escape(raw)
                yield raw, None
