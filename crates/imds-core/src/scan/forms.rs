//! What a streaming scan makes of each hit in the thread that found it, from the line as it
//! was parsed there: the hit's NDJSON record after its line number, its row's cells, and
//! whether its `@timestamp` is inside the time window. The consumer of the hits then only
//! concatenates (the line number, known once the parts before are counted, goes in between),
//! so that many hits cost little more than the parse, in parallel.

use super::alert::{alert_labels, alert_source, write_alert, AlertParts, AlertRule};
use super::record::{push_line, write_rest};
use super::rows::{event_timestamp, row_projection, RowCells};
use super::{Engine, Hit, HitRows, RecordError, RecordMeta};
use crate::eval::Match;
use crate::event::{ParsedLine, Projection};
use crate::sequence::{Prepared, Preparer, StageParse};

/// A half-open window `[since, until)` on the events' `@timestamp`, in microseconds since
/// 1970-01-01T00:00:00Z (spec/semantics.md, @timestamp); either end may be open. With a
/// bound, an event without a parsable `@timestamp` is outside (it cannot be shown to be in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// The first instant inside.
    pub since: Option<i64>,
    /// The first instant after the window.
    pub until: Option<i64>,
}

impl TimeWindow {
    /// Whether either end is set.
    pub fn active(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// Whether an event of this time is inside.
    pub fn contains(&self, stamp: Option<i64>) -> bool {
        if !self.active() {
            return true;
        }
        stamp.is_some_and(|t| self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u))
    }
}

/// What each hit of a streaming scan is made into ([`Engine::scan_stream_with`]).
pub struct HitForms {
    meta: Option<RecordMeta>,
    records: bool,
    /// Keep each hit's event text and witness (for consumers of [`Hit`]s).
    full: bool,
    window: TimeWindow,
    /// What candidate lines are parsed into: the rules' fields and `@timestamp` (`None`: the
    /// engine's own).
    projection: Option<Projection>,
    /// What a hit's line is parsed into again for its row.
    row_projection: Option<Projection>,
    /// Per input: its records' start, up to the line number.
    heads: Vec<Vec<u8>>,
    /// Per rule, per branch: its records' labels.
    labels: Vec<Vec<Vec<u8>>>,
    /// ECS alert documents ([`HitForms::with_alerts`]).
    alerts: Option<Alerts>,
    /// How many rules the engine has.
    rules: usize,
    /// Per rule: the reader and stages of a sequence's stage rule ([`HitForms::with_stages`]).
    stages: Vec<Option<(Preparer, Vec<usize>)>>,
    /// Per rule: the fields it reads (the projection's, with the stage readers').
    rule_fields: Vec<Vec<String>>,
}

/// What the hits of one line share in [`HitForms::hit`]: its `@timestamp`.
#[derive(Default)]
pub(super) struct LineCache {
    stamp: Option<Option<i64>>,
    /// A stage hit of the line has its text already.
    stage_text: bool,
}

/// What alert documents are made of, besides the event.
struct Alerts {
    rules: Vec<AlertRule>,
    /// Per input: `, "imds_scan": {"source": …, "line": `.
    sources: Vec<Vec<u8>>,
    /// Per rule, per branch: `, "branch": …, "severity": …, "matched": `.
    labels: Vec<Vec<Vec<u8>>>,
}

/// What a hit made with [`HitForms`] carries besides the [`Hit`] itself.
#[derive(Debug, Clone, Default)]
pub struct HitExtra {
    /// The event is outside the time window: the hit is to be counted, not handed out.
    pub outside: bool,
    /// The record after its line number (empty without records).
    tail: Vec<u8>,
    cells: Option<RowCells>,
    /// The alert document up to its line number, and after it (empty without alerts).
    alert: (Vec<u8>, Vec<u8>),
    /// A stage rule's hit read for its matcher, once per stage it is a candidate of (empty
    /// otherwise, or when a stage is one it lacks).
    stages: Vec<Prepared>,
}

impl HitExtra {
    /// What it takes in memory.
    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<HitExtra>()
            + self.tail.len()
            + self.cells.as_ref().map_or(0, RowCells::bytes)
            + self.alert.0.len()
            + self.alert.1.len()
            + self.stages.iter().map(Prepared::bytes).sum::<usize>()
    }

    /// A stage rule's hit as its matcher reads it, per stage in order, taken out (empty:
    /// the matcher reads the text itself).
    pub fn take_stages(&mut self) -> Vec<Prepared> {
        std::mem::take(&mut self.stages)
    }
}

impl HitForms {
    /// The forms of `engine`'s hits: `records` (NDJSON) and `rows` need `meta`, checked
    /// against the engine's rules; `full` keeps the hits' event text and witness; `window`
    /// drops the hits outside it (they are still made, marked [`HitExtra::outside`], so
    /// that they can be counted in order).
    pub fn new(
        engine: &Engine,
        meta: Option<RecordMeta>,
        records: bool,
        rows: bool,
        full: bool,
        window: TimeWindow,
    ) -> Result<HitForms, RecordError> {
        let (mut heads, mut labels) = (Vec::new(), Vec::new());
        if records || rows {
            let meta = meta
                .as_ref()
                .ok_or_else(|| RecordError("records and rows need names".into()))?;
            if meta.rules.len() != engine.rules.len() {
                return Err(RecordError(format!(
                    "{} rules named, the engine has {}",
                    meta.rules.len(),
                    engine.rules.len()
                )));
            }
            for (k, rule) in engine.rules.iter().enumerate() {
                let branches = (0..rule.ir.branches.len())
                    .map(|b| meta.labels(k, b))
                    .collect::<Result<Vec<_>, _>>()?;
                labels.push(branches);
            }
            heads = (0..meta.sources.len())
                .map(|s| meta.head(s))
                .collect::<Result<_, _>>()?;
        }
        // The window reads a field the rules may not: the parse of a candidate line builds
        // it too. (A row's fields are not added so: building them for every candidate line
        // costs more than reading a hit's line again for them.)
        let projection = window.active().then(|| {
            let fields = engine.rules.iter().flat_map(|r| r.fields());
            Projection::new(fields.chain(["@timestamp"]))
        });
        let row_projection = rows.then(row_projection);
        Ok(HitForms {
            meta,
            records,
            full,
            window,
            projection,
            row_projection,
            heads,
            labels,
            alerts: None,
            rules: engine.rules.len(),
            stages: Vec::new(),
            rule_fields: (engine.rules.iter())
                .map(|r| r.fields().into_iter().map(str::to_string).collect())
                .collect(),
        })
    }

    /// These forms, the hits of sequence stage rules read for their matchers instead
    /// (`stages[rule]`: the rule's [`Preparer`] and the stages its hits are candidates of, in
    /// order; `None` for other rules), in the threads that find them: such a hit keeps its
    /// [`HitExtra::take_stages`] and nothing else (no record, row or alert, no witness), and
    /// its event text only if it is its line's first stage hit, or its reading needs the
    /// text ([`Prepared::needs_text`]).
    pub fn with_stages(
        mut self,
        stages: Vec<Option<(Preparer, Vec<usize>)>>,
    ) -> Result<HitForms, RecordError> {
        if stages.len() != self.rules {
            return Err(RecordError(format!(
                "{} stage routes for {} rules",
                stages.len(),
                self.rules
            )));
        }
        // A candidate line's parse builds the fields of the readers of the stage rules open
        // on it too: it serves them (a second parse of each stage hit's line cost a tenth of
        // a scan with Elastic's rules).
        let fields = |r: usize| {
            let reader = stages[r].iter().flat_map(|(p, _)| p.fields());
            self.rule_fields[r].iter().map(String::as_str).chain(reader)
        };
        self.projection = Some(if self.window.active() {
            Projection::new((0..self.rules).flat_map(fields).chain(["@timestamp"]))
        } else {
            Projection::by_rule((0..self.rules).map(fields))
        });
        self.stages = stages;
        Ok(self)
    }

    /// These forms, each hit also made into its ECS alert document (`rules`: per rule of the
    /// engine); needs the names given to [`HitForms::new`].
    pub fn with_alerts(mut self, rules: Vec<AlertRule>) -> Result<HitForms, RecordError> {
        let meta = (self.meta.as_ref()).ok_or_else(|| RecordError("alerts need names".into()))?;
        if rules.len() != meta.rules.len() {
            return Err(RecordError(format!(
                "{} alert rules for {} rules",
                rules.len(),
                meta.rules.len()
            )));
        }
        let sources = meta.sources.iter().map(|s| alert_source(s)).collect();
        let labels = (meta.rules.iter())
            .map(|rule| {
                (rule.branches.iter())
                    .map(|branch| alert_labels(branch, &rule.severity))
                    .collect()
            })
            .collect();
        self.alerts = Some(Alerts {
            rules,
            sources,
            labels,
        });
        Ok(self)
    }

    /// Whether these forms are what a plain [`Hit`] is already (the whole hit, no record,
    /// no row, no window): then a scan needs no forms.
    pub fn is_plain(&self) -> bool {
        self.full
            && !self.records
            && self.row_projection.is_none()
            && self.alerts.is_none()
            && !self.window.active()
            && self.stages.is_empty()
    }

    /// What candidate lines are parsed into, when not the engine's own projection.
    pub(super) fn projection(&self) -> Option<&Projection> {
        self.projection.as_ref()
    }

    /// The hit of `rule` on the line `parsed` (number `line` of input `source`). `cache`
    /// keeps what the rules that hit the line share.
    pub(super) fn hit(
        &self,
        (source, line, rule): (usize, u64, usize),
        found: Match,
        parsed: &ParsedLine<'_>,
        cache: &mut LineCache,
    ) -> Hit {
        let time = if self.window.active() {
            *cache
                .stamp
                .get_or_insert_with(|| event_timestamp(&parsed.doc))
        } else {
            None
        };
        let mut extra = HitExtra {
            outside: !self.window.contains(time),
            ..HitExtra::default()
        };
        let inside = !extra.outside;
        if let Some((preparer, stages)) = self.stages.get(rule).and_then(Option::as_ref) {
            if inside {
                extra.stages = read_stages(preparer, stages, parsed);
            }
            // The line's first stage hit carries its text (its consumer keeps one copy per
            // line), and any whose reading needs it.
            let text = inside
                && (!cache.stage_text
                    || extra.stages.is_empty()
                    || extra.stages.iter().any(Prepared::needs_text));
            cache.stage_text |= text;
            return Hit {
                source,
                line,
                rule,
                branch: found.branch,
                witness: None,
                event: if text {
                    parsed.text.to_string()
                } else {
                    String::new()
                },
                extra: Some(Box::new(extra)),
            };
        }
        if inside && self.records {
            if let Some(labels) = self.labels.get(rule).and_then(|r| r.get(found.branch)) {
                extra.tail.reserve(labels.len() + parsed.text.len() + 128);
                extra.tail.extend_from_slice(labels);
                write_rest(found.witness.as_ref(), &parsed.text, &mut extra.tail);
            }
        }
        // The row's fields from the hit's line read again, here where it runs in parallel.
        if let Some(projection) = self.row_projection.as_ref().filter(|_| inside) {
            let cells = RowCells::of_text(&parsed.text, found.witness.as_ref(), projection);
            extra.cells = Some(cells);
        }
        if let Some(alerts) = self.alerts.as_ref().filter(|_| inside) {
            let parts = (alerts.sources.get(source))
                .zip(alerts.labels.get(rule).and_then(|r| r.get(found.branch)))
                .zip(alerts.rules.get(rule));
            if let Some(((source, labels), rule)) = parts {
                let parts = AlertParts {
                    source,
                    labels,
                    rule,
                };
                let (before, after) = &mut extra.alert;
                write_alert(&parsed.text, found.witness.as_ref(), &parts, before, after);
            }
        }
        let keep = inside && self.full;
        Hit {
            source,
            line,
            rule,
            branch: found.branch,
            witness: if keep { found.witness } else { None },
            event: if keep {
                parsed.text.to_string()
            } else {
                String::new()
            },
            extra: Some(Box::new(extra)),
        }
    }

    /// Append `hit`'s NDJSON record to `out` (its line number as it is now).
    pub fn write_record(&self, hit: &Hit, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let meta = self
            .meta
            .as_ref()
            .ok_or_else(|| RecordError("no names".into()))?;
        match hit.extra.as_deref() {
            Some(extra) if !extra.tail.is_empty() => {
                let head = (self.heads.get(hit.source))
                    .ok_or_else(|| RecordError(format!("no source {}", hit.source)))?;
                out.extend_from_slice(head);
                push_line(hit.line, out);
                out.extend_from_slice(&extra.tail);
                Ok(())
            }
            _ => meta.write(hit, out),
        }
    }

    /// Append `hit`'s alert document to `out` (its line number as it is now); an error when
    /// the hit was not made with alerts.
    pub fn write_alert(&self, hit: &Hit, out: &mut Vec<u8>) -> Result<(), RecordError> {
        match hit.extra.as_deref() {
            Some(HitExtra {
                alert: (before, after),
                ..
            }) if !before.is_empty() => {
                out.extend_from_slice(before);
                push_line(hit.line, out);
                out.extend_from_slice(after);
                Ok(())
            }
            _ => Err(RecordError("the hit was made without its alert".into())),
        }
    }

    /// Append `hit`'s row to `rows`.
    pub fn push_row(&self, hit: &Hit, rows: &mut HitRows) -> Result<(), RecordError> {
        let meta = self
            .meta
            .as_ref()
            .ok_or_else(|| RecordError("no names".into()))?;
        match hit.extra.as_deref().and_then(|e| e.cells.as_ref()) {
            Some(cells) => rows.push_cells(hit, meta, cells),
            None => rows.push(hit, meta, &row_projection()),
        }
    }
}

/// A stage hit's line read for each of `stages` (the first read, the others its copies when
/// they read the same join keys); empty when one is a stage the rule lacks (the matcher then
/// reads the text and says so).
fn read_stages(preparer: &Preparer, stages: &[usize], parsed: &ParsedLine<'_>) -> Vec<Prepared> {
    let doc = StageParse::of(parsed);
    let mut read: Vec<Prepared> = Vec::with_capacity(stages.len());
    for &stage in stages {
        let copy = match read.first() {
            Some(first) => preparer.restage(first, stage),
            None => Ok(None),
        };
        match copy.and_then(|c| c.map_or_else(|| preparer.prepare_doc(stage, &doc), Ok)) {
            Ok(p) => read.push(p),
            Err(_) => return Vec::new(),
        }
    }
    read
}
